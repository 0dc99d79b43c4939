"""MAML on sinusoids (Finn, Abbeel & Levine 2017), beside its relatives.

Every task is a sine wave y = A sin(x - phase) with A in [0.1, 5] and phase in [0, pi];
a learner sees K = 10 points of a new wave and must predict the rest. All learners share
the paper's 1-40-40-1 ReLU network, meta-batches of 25 tasks and the same number of
meta-iterations:

* MAML (second order): learns an initialisation from which one SGD step (lr 0.01)
  fits a new task; the meta-gradient flows through that step (Hessian-vector products);
* first-order MAML: the same, dropping the second-order term (cheaper);
* Meta-SGD: also learns a learning rate per parameter;
* Reptile: no second derivatives and no query set; moves the init toward adapted weights;
* the paper's baseline: one network regressed on all tasks at once, then fine-tuned.

Printed: the query MSE on new tasks after 0, 1, 2, 5 and 10 adaptation steps (mean and
95% interval, ``meta.evaluate``). Plots: the Finn figure, the same task for every
learner, MSE against adaptation steps, and the meta-training curves.
"""
import time

import numpy as np

import tinymeta as tm
from tinymeta import meta, nn, optim
from tinymeta.meta.plots import sinusoid_adaptation
from tinymeta.nn import functional as F
from _common import parse_args, pyplot, savefig, section


class Pretrained(meta.MAML):
    """Finn et al.'s baseline: train one network on the pooled data of all tasks (no inner
    loop), then at test time fine-tune it with the same SGD steps as MAML (its ``adapt``)."""

    def meta_loss(self, batch, inner_steps=None):
        x = np.concatenate([batch.x_support, batch.x_query], axis=1)
        y = np.concatenate([batch.y_support, batch.y_query], axis=1)
        return F.mse_loss(self.model(x), y)  # nn.Linear maps (tasks, points, 1) just fine


def make_learners(seed):
    """name -> (learner, meta-optimizer). The same initial network for everyone."""
    def net():
        return nn.MLP([1, 40, 40, 1], activation="relu", rng=seed)

    learners = {
        "MAML": meta.MAML(net(), inner_lr=0.01, inner_steps=1),
        "first-order MAML": meta.MAML(net(), inner_lr=0.01, inner_steps=1, first_order=True),
        "Meta-SGD": meta.MetaSGD(net(), inner_lr=0.01, inner_steps=1),
        "pretrained": Pretrained(net(), inner_lr=0.01),
    }
    out = {name: (l, optim.Adam(l.parameters(), lr=1e-3)) for name, l in learners.items()}
    # Reptile takes its own outer step theta += eps (phi - theta): no optimizer.
    # Nichol et al. used 32 inner steps on sinusoids; 5 steps at lr 0.02 keeps it quick.
    out["Reptile"] = (meta.Reptile(net(), inner_lr=0.02, inner_steps=5, outer_step_size=0.1), None)
    return out


def main():
    args = parse_args("06_maml_sinusoid", __doc__)
    iterations = 30 if args.quick else 3000
    eval_tasks = 20 if args.quick else 300
    steps = (0, 1, 2, 5, 10)
    tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)

    section(f"Meta-training: {iterations} meta-iterations of 25 tasks each")
    learners = make_learners(args.seed)
    histories, results = {}, {}
    for name, (learner, opt) in learners.items():
        t0 = time.perf_counter()
        # Every learner sees the same sequence of training tasks (same rng seed).
        histories[name] = meta.fit(learner, tasks, opt, iterations=iterations, meta_batch=25,
                                   rng=args.seed, log_every=max(1, iterations // 40),
                                   progress=False)
        took = time.perf_counter() - t0
        # Evaluate on fresh tasks (another seed), 100 query points each. errstate: a
        # learner whose steps diverge (see Meta-SGD below) would otherwise flood the
        # output with overflow warnings; the table says "diverged" and, below it, why.
        with np.errstate(all="ignore"):
            results[name] = meta.evaluate(learner, tasks, n_tasks=eval_tasks, steps=steps,
                                          rng=args.seed + 1000, k_query=100)
        print(f"{name:<17} trained in {took:5.1f} s ({took / iterations * 1e3:.1f} ms/iteration)")

    section(f"Query MSE on {eval_tasks} new tasks (10 shots; mean +- 95% interval)")
    print(f"{'':<17}" + "".join(f"{f'{s} step' + 's' * (s != 1):>17}" for s in steps))
    for name, res in results.items():
        cells = [f"{res[s]['mse'][0]:>9.3f} +-{res[s]['mse'][1]:>5.3f}"
                 if np.isfinite(res[s]["mse"][0]) else f"{'diverged':>17}" for s in steps]
        print(f"{name:<17}" + "".join(cells))
    for name, res in results.items():
        bad = [s for s in steps if not np.isfinite(res[s]["mse"][0])]
        if bad:
            explain_divergence(name, learners[name][0], tasks, bad[0], args.seed + 1000)
    # What to notice:
    # * at 0 steps every meta-learner predicts roughly the average wave (MSE near the
    #   tasks' variance); a single step brings MAML and Meta-SGD close to the task;
    # * first-order MAML is a little worse, at about a third of the cost per iteration;
    # * the pretrained network is a good "average" but one step barely moves it: it was
    #   never trained to be adaptable, which is the point of the Finn figure;
    # * Meta-SGD learned its step sizes for exactly one step; repeating that step ten
    #   times can overshoot, while MAML's plain SGD keeps improving.

    # ------------------------------------------------------------------ plots
    section("Plots")
    maml = learners["MAML"][0]
    fig = sinusoid_adaptation(maml, tasks, rng=args.seed + 7, steps=(0, 1, 10),
                              title="MAML: the meta-learned init (0 steps), after 1 and 10 steps")
    savefig(fig, args, "finn_figure_maml.png")
    savefig(compare_on_one_task(learners, tasks, args.seed + 7), args, "all_learners_one_task.png")

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    for name, res in results.items():
        ok = [s for s in steps if np.isfinite(res[s]["mse"][0])]  # drop diverged points
        ax1.errorbar(ok, [res[s]["mse"][0] for s in ok], yerr=[res[s]["mse"][1] for s in ok],
                     marker="o", capsize=3, label=name)
    ax1.set(xlabel="adaptation steps on the 10 support points", ylabel="query MSE (new tasks)",
            yscale="log", title="Few-shot adaptation (95% intervals)")
    ax1.grid(alpha=0.3)
    ax1.legend()
    for name, h in histories.items():
        label = name + {"Reptile": " (loss after its inner steps)",
                        "pretrained": " (pooled loss, no adaptation)"}.get(name, "")
        ax2.plot(h["iteration"], h["loss"], label=label)
    ax2.set(xlabel="meta-iteration", ylabel="meta-training loss", yscale="log",
            title="Meta-training curves (query loss after adaptation)")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    savefig(fig, args, "adaptation_and_training_curves.png")


def explain_divergence(name, learner, tasks, first_bad, seed, n_tasks=50):
    """Say why a learner's mean query MSE is not finite: measure, on new tasks, how its
    support loss moves step by step, and (Meta-SGD) how large its learned step sizes are."""
    batch = tasks.sample(n_tasks, np.random.default_rng(seed))
    curves = np.zeros((n_tasks, first_bad + 1))
    with np.errstate(all="ignore"):
        for i in range(n_tasks):
            xs, ys = batch.x_support[i], batch.y_support[i]
            for s in range(first_bad + 1):
                params = learner.adapt(xs, ys, steps=s)
                with tm.no_grad():
                    curves[i, s] = float(np.mean((learner.predict(params, xs).numpy() - ys) ** 2))
    blown = ~np.isfinite(curves[:, -1]) | (curves[:, -1] > 1e3 * curves[:, 0])
    print(f"\nWhy {name} shows 'diverged' after {first_bad} steps (measured on {n_tasks} new tasks):")
    print("  median support loss by step: "
          + ", ".join(f"{s}: {np.median(curves[:, s]):.3g}" for s in range(first_bad + 1)))
    grows = [int(np.argmax(~np.isfinite(c) | (c > 1e3 * c[0]))) for c in curves[blown]]
    print(f"  on {blown.sum()} of {n_tasks} tasks the loss on the task's own support points grows "
          f"over 1000x its start (first at step {min(grows) if grows else '-'}); one inf or NaN "
          "makes the mean of all tasks inf")
    if hasattr(learner, "alphas"):
        lrs = np.concatenate([np.abs(a.numpy()).ravel() for a in learner.alphas.values()])
        print(f"  its learned step sizes: median {np.median(lrs):.3g}, max {lrs.max():.3g} "
              f"(all started at 0.01). They were learned for ONE step; repeated, a step larger "
              "than 2/curvature along some direction overshoots more each time (gradient "
              "descent's stability limit), so the loss grows instead of shrinking")


def compare_on_one_task(learners, tasks, seed):
    """One new task, one panel per learner: before and after 1 and 10 steps."""
    plt = pyplot()
    batch = tasks.sample(1, np.random.default_rng(seed), k_support=10)
    xs, ys = batch.x_support[0], batch.y_support[0]
    grid = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    truth = tasks.evaluate(batch.params["amplitude"], batch.params["phase"], grid[:, 0])
    fig, axes = plt.subplots(1, len(learners), figsize=(4 * len(learners), 3.4), sharey=True)
    for ax, (name, (learner, _)) in zip(axes, learners.items()):
        ax.plot(grid[:, 0], truth, "k-", lw=2, label="true function")
        ax.plot(xs[:, 0], ys[:, 0], "^", color="tab:red", label="10 support points")
        for s, color in ((0, "tab:gray"), (1, "tab:blue"), (10, "tab:green")):
            params = learner.adapt(xs, ys, steps=s)  # adapt differentiates: not under no_grad
            with tm.no_grad():
                pred = learner.predict(params, grid).numpy()[:, 0]
            ax.plot(grid[:, 0], pred, "--", color=color, label=f"{s} step{'s' * (s != 1)}")
        ax.set(title=name, xlabel="x", ylim=(-6, 6))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()

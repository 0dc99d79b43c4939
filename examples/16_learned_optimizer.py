"""A learned update rule against tuned SGD and tuned Adam: learning to learn by gradient
descent by gradient descent (Andrychowicz et al. 2016), on NumPy.

meta.LearnedOptimizer runs a tiny network on every coordinate of a model's parameters:
from that coordinate's gradient and running statistics of it (Adam's moments, log
magnitudes) it outputs the step. The network is meta-trained by backpropagating through
K unrolled optimisation steps on tasks of one family, here sine regression with a
1-20-20-1 MLP that always starts from the same random initialisation (no learned
initialisation: only the update rule is learned).

On held-out tasks of the same family, with the same K steps from the same start, it is
compared with SGD and Adam, each with its learning rate tuned on a grid (the best grid
point picked on separate validation tasks, then measured on the test tasks). Printed:
query MSE after K steps, mean and 95% interval over the test tasks, and the loss after
every step. The figure shows the loss curves and the learned first-step update as a
function of the gradient, beside SGD's (a straight line) and Adam's (a sign).
"""
import time

import numpy as np

from tinymeta import meta, nn, optim
from tinymeta.engine import enable_grad, grad, no_grad
from tinymeta.metrics import mean_confidence_interval
from _common import parse_args, pyplot, savefig, section

SIZES = [1, 20, 20, 1]
K = 10                    # optimisation steps, for every method
LRS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # the grid for SGD and Adam


def baseline_curve(learner, batch, rule, lr, steps):
    """Mean-over-tasks query MSE after each of ``steps`` steps of SGD or Adam (all tasks at
    once), and the per-task query MSE at the end."""
    xs, ys, _ = learner._batched_input(batch.x_support, batch.y_support)
    xq, yq, _ = learner._batched_input(batch.x_query, batch.y_query)
    names = list(learner.init_params())
    fast = [p.detach() for p in learner.expand({n: p.detach() for n, p in learner.init_params().items()},
                                               len(batch)).values()]
    state, curve = None, []
    for _ in range(steps):
        leaves = [p.detach().requires_grad_() for p in fast]
        with enable_grad(), np.errstate(all="ignore"):
            grads = grad(learner.task_losses(dict(zip(names, leaves)), xs, ys).sum(), leaves)
        with no_grad(), np.errstate(all="ignore"):  # a diverging grid point is a result (inf/nan)
            if rule == "sgd":
                fast, _ = optim.functional.sgd([p.detach() for p in leaves], grads, lr=lr)
            else:
                fast, state = optim.functional.adam([p.detach() for p in leaves], grads, state, lr=lr)
            per_task = learner.task_losses(dict(zip(names, fast)), xq, yq).data
        curve.append(float(per_task.mean()))
    return curve, per_task


def learned_curve(learner, batch, steps):
    xq, yq, _ = learner._batched_input(batch.x_query, batch.y_query)
    curve = []
    for s in range(1, steps + 1):  # re-running from the start is cheap at this size
        with no_grad():
            fast = learner.adapt(batch.x_support, batch.y_support, steps=s)
            per_task = learner.task_losses(fast, xq, yq).data
        curve.append(float(per_task.mean()))
    return curve, per_task


def main():
    def extra(p):
        p.add_argument("--iterations", type=int, default=3000,
                       help="meta-training iterations of the update rule (default 3000)")
    args = parse_args("16_learned_optimizer", __doc__, extra)
    its = 10 if args.quick else args.iterations
    n_val, n_test = (20, 20) if args.quick else (200, 1000)
    tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)
    model = nn.MLP(SIZES, rng=args.seed)

    section(f"Meta-training the update rule: {its} iterations of 16 sinusoid tasks, {K} unrolled steps")
    lo = meta.LearnedOptimizer(model, inner_steps=K, hidden=20, learn_init=False, rng=args.seed)
    t0 = time.perf_counter()
    hist = meta.fit(lo, tasks, optim.Adam(lo.parameters(), lr=3e-3), iterations=its, meta_batch=16,
                    rng=args.seed, progress=False, log_every=max(1, its // 10))
    print(f"{time.perf_counter() - t0:.0f} s; meta-loss (query MSE along the trajectory) by window: "
          + ", ".join(f"{v:.3f}" for v in hist["loss"]))
    print(f"learned global step size exp(s) = {float(np.exp(lo.log_step.data)):.4f}")

    val = tasks.sample(n_val, rng=args.seed + 1, k_query=100)
    test = tasks.sample(n_test, rng=args.seed + 2, k_query=100)
    section(f"Tuning SGD's and Adam's learning rates on {n_val} validation tasks ({K} steps)")
    chosen = {}
    for rule, lrs in (("sgd", LRS), ("adam", LRS)):
        scores = {lr: baseline_curve(lo, val, rule, lr, K)[0][-1] for lr in lrs}
        print(f"  {rule}: " + ", ".join(f"lr {lr}: {v:.3f}" for lr, v in scores.items()))
        chosen[rule] = min(scores, key=lambda lr: np.nan_to_num(scores[lr], nan=np.inf))

    section(f"Query MSE on {n_test} test tasks after {K} steps from the same start (mean +- 95% interval)")
    results = {f"SGD (lr {chosen['sgd']})": baseline_curve(lo, test, "sgd", chosen["sgd"], K),
               f"Adam (lr {chosen['adam']})": baseline_curve(lo, test, "adam", chosen["adam"], K),
               "learned optimizer": learned_curve(lo, test, K)}
    for name, (curve, per_task) in results.items():
        m, h = mean_confidence_interval(per_task)
        print(f"  {name:<20} {m:.3f} +- {h:.3f}    by step: " + " ".join(f"{c:.2f}" for c in curve))
    # A check on the tuning: the best grid point chosen on the test tasks themselves (an
    # oracle no real tuning has) for SGD and Adam.
    for rule, lrs in (("sgd", LRS), ("adam", LRS)):
        finals = {lr: baseline_curve(lo, test, rule, lr, K)[0][-1] for lr in lrs}
        best = min(finals, key=lambda lr: np.nan_to_num(finals[lr], nan=np.inf))
        print(f"  oracle {rule}: best lr on the test tasks {best}, query MSE {finals[best]:.3f}")
    learned = results["learned optimizer"][1]
    for name, (_, per_task) in list(results.items())[:2]:
        d = per_task - learned
        m, h = mean_confidence_interval(d)
        verdict = ("learned optimizer better" if m - h > 0 else "no clear winner" if m + h > 0
                   else "learned optimizer worse")
        print(f"  {name} minus learned, per task: {m:+.3f} +- {h:.3f} ({verdict})")

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.3))
    for name, (curve, _) in results.items():
        ax1.plot(range(1, K + 1), curve, marker="o", label=name)
    ax1.set(xlabel="optimisation step", ylabel="query MSE (test tasks)", yscale="log",
            title=f"From the same init, {K} steps on new sinusoids")
    ax1.legend()
    ax1.grid(alpha=0.3)
    g = np.concatenate([-np.logspace(1, -4, 200), np.logspace(-4, 1, 200)])
    ax2.plot(g, lo.update_curve(g), label="learned rule, step 1")
    ax2.plot(g, chosen["sgd"] * g, "--", label=f"SGD, lr {chosen['sgd']}")
    ax2.plot(g, chosen["adam"] * np.sign(g), ":", label=f"Adam's first step, lr {chosen['adam']}")
    ax2.set_xscale("symlog", linthresh=1e-3)
    ax2.set(xlabel="gradient of a coordinate", ylabel="update (subtracted from the coordinate)",
            ylim=(-2 * chosen["adam"] - 0.05, 2 * chosen["adam"] + 0.05),
            title="The learned update as a function of the gradient")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    savefig(fig, args, "learned_optimizer.png")


if __name__ == "__main__":
    main()

"""The mapping meta-learner: "everything is a mapping", from a task's data to its model.

The idea: learn a function f_theta that takes a task's data and
outputs the task model's optimal parameters, phi* = f_theta(D), trained by backprop on
(task data, optimal parameters) pairs like any supervised model. ``meta.MappingLearner``
is that function: a Deep Sets encoder (an MLP on each (x, y) pair, averaged over the
support set, then an MLP head) whose output is the full parameter vector of a base model.

1. Supervised, on linear tasks: targets are each task's
   least-squares optimum through the pseudo-inverse (``meta.linear_targets``).
2. End to end on sinusoids, with an MLP base learner: trained on the query loss of the
   generated network, compared with MAML, including how long adapting takes.
3. Why the supervised form cannot work for an MLP base learner: its optimum is not
   unique, so "the optimal parameters" is not a well-defined target.
"""
import time

import numpy as np

import tinymeta as tm
from tinymeta import meta, nn, optim
from tinymeta.nn import functional as F
from _common import parse_args, pyplot, savefig, section


def flat(model):
    return np.concatenate([p.numpy().ravel() for p in model.parameters()])


def main():
    args = parse_args("07_mapping_learner", __doc__)
    its = 40 if args.quick else 2000
    n_eval = 50 if args.quick else 500

    # ================================================================== 1. supervised
    section(f"1. Supervised on linear tasks: f_theta(support set) -> pinv optimum ({its} iterations)")
    # y = x . w + 0.1 noise with x in R^2 and 10 support points per task. (With more
    # dimensions the encoder must learn to invert X^T X from averages, which takes far
    # more training than a quick example allows.)
    lin_tasks = meta.tasks.LinearFunctions(dim=2, k_support=10, k_query=10, noise=0.1)
    base = nn.Linear(2, 1, bias=False, rng=args.seed)
    mapper = meta.MappingLearner(base, mode="supervised", target_fn=meta.linear_targets(lin_tasks),
                                 rng=args.seed)
    hist_sup = meta.fit(mapper, lin_tasks, optim.Adam(mapper.parameters(), lr=3e-3),
                        iterations=its, meta_batch=25, rng=args.seed,
                        log_every=max(1, its // 40), progress=False)

    test = lin_tasks.sample(n_eval, rng=args.seed + 1000)
    w_star = lin_tasks.optimal_params(test.x_support, test.y_support)[..., 0]    # (T, 2) pinv
    w_hat = mapper.adapt(test.x_support, test.y_support)["weight"].numpy()[:, 0]  # (T, 2), one pass
    rel = np.linalg.norm(w_hat - w_star, axis=1) / np.linalg.norm(w_star, axis=1)

    def query_mse(w):
        pred = test.x_query @ w[:, :, None]
        return float(np.mean((pred - test.y_query) ** 2))

    print(f"relative parameter error |w_hat - w*| / |w*| on {n_eval} new tasks: "
          f"median {np.median(rel):.3f}, mean {rel.mean():.3f}")
    print(f"query MSE with the generated w_hat: {query_mse(w_hat):.4f}")
    print(f"query MSE with the pinv optimum w*: {query_mse(w_star):.4f}   "
          f"(noise floor 0.1^2 = 0.01; w = 0 would give {query_mse(0 * w_star):.3f})")

    # ================================================================== 2. end to end
    section(f"2. End to end on sinusoids vs MAML ({its} iterations each)")
    sin_tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)
    e2e = meta.MappingLearner(nn.MLP([1, 40, 40, 1], rng=args.seed), mode="end_to_end",
                              rng=args.seed)
    maml = meta.MAML(nn.MLP([1, 40, 40, 1], rng=args.seed), inner_lr=0.01, inner_steps=1)
    hist = {}
    for name, learner in (("mapping", e2e), ("MAML", maml)):
        hist[name] = meta.fit(learner, sin_tasks, optim.Adam(learner.parameters(), lr=1e-3),
                              iterations=its, meta_batch=25, rng=args.seed,
                              log_every=max(1, its // 40), progress=False)
    res_map = meta.evaluate(e2e, sin_tasks, n_tasks=n_eval, steps=(0,), rng=args.seed + 1, k_query=100)
    res_maml = meta.evaluate(maml, sin_tasks, n_tasks=n_eval, steps=(1, 10), rng=args.seed + 1,
                             k_query=100)

    # Wall time to adapt to one new task, averaged over tasks: the mapping is one forward
    # pass; MAML takes gradient steps (each a forward and a backward pass).
    batch = sin_tasks.sample(20 if args.quick else 100, rng=args.seed + 2)

    def adapt_time(learner, steps):
        t0 = time.perf_counter()
        for i in range(len(batch)):
            learner.adapt(batch.x_support[i], batch.y_support[i], steps=steps)
        return (time.perf_counter() - t0) / len(batch) * 1e3

    t_map, t_maml1, t_maml10 = adapt_time(e2e, None), adapt_time(maml, 1), adapt_time(maml, 10)
    print(f"query MSE on {n_eval} new tasks (100 query points each), mean +- 95% interval:")
    print(f"  {'mapping, one forward pass':<28} {res_map[0]['mse'][0]:.3f} +- {res_map[0]['mse'][1]:.3f}"
          f"   adapt {t_map:.2f} ms/task")
    print(f"  {'MAML, 1 step':<28} {res_maml[1]['mse'][0]:.3f} +- {res_maml[1]['mse'][1]:.3f}"
          f"   adapt {t_maml1:.2f} ms/task")
    print(f"  {'MAML, 10 steps':<28} {res_maml[10]['mse'][0]:.3f} +- {res_maml[10]['mse'][1]:.3f}"
          f"   adapt {t_maml10:.2f} ms/task ({t_maml10 / t_map:.0f}x the mapping)")

    # ================================================================== 3. non-unique optima
    section("3. Why supervised targets fail for an MLP: the optimum is not unique")
    # Fit two 1-40-40-1 networks to the *same* task (100 points of a sine of amplitude
    # 3 to 5, so it is easy to see) from two random initialisations.
    task = meta.tasks.Sinusoid(amp_range=(3, 5)).sample(1, rng=args.seed + 3, k_support=100)
    x, y = task.x_support[0], task.y_support[0]
    nets = [nn.MLP([1, 40, 40, 1], rng=args.seed + 10 + k) for k in range(2)]
    for net in nets:
        opt = optim.Adam(net.parameters(), lr=3e-3)
        for _ in range(150 if args.quick else 2000):
            loss = F.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    grid = np.linspace(-5, 5, 400, dtype=np.float32)[:, None]
    truth = sin_tasks.evaluate(task.params["amplitude"], task.params["phase"], grid[:, 0])
    with tm.no_grad():
        f1, f2 = (net(grid).numpy()[:, 0] for net in nets)
    p1, p2 = flat(nets[0]), flat(nets[1])
    print(f"two fits of one task: training MSE {F.mse_loss(nets[0](x), y).item():.4f} and "
          f"{F.mse_loss(nets[1](x), y).item():.4f}")
    print(f"  functions:  RMS |f1 - f2| on [-5, 5] = {np.sqrt(np.mean((f1 - f2) ** 2)):.3f}  "
          f"(the function's own RMS is {np.sqrt(np.mean(truth ** 2)):.2f})")
    print(f"  parameters: |p1 - p2| / |p1| = {np.linalg.norm(p1 - p2) / np.linalg.norm(p1):.2f}"
          f"  (cosine similarity {p1 @ p2 / np.linalg.norm(p1) / np.linalg.norm(p2):.2f})")

    # Exactly the same function, other parameters: permute the first hidden layer's units.
    perm = np.random.default_rng(args.seed).permutation(40)
    permuted = nn.MLP([1, 40, 40, 1])
    sd = nets[0].state_dict()
    sd["0.weight"], sd["0.bias"] = sd["0.weight"][perm], sd["0.bias"][perm]  # units' inputs
    sd["2.weight"] = sd["2.weight"][:, perm]                                  # and outputs
    permuted.load_state_dict(sd)
    with tm.no_grad():
        f_perm = permuted(grid).numpy()[:, 0]
    print(f"  permuting hidden units of fit 1: max |f - f_perm| = {np.abs(f1 - f_perm).max():.1e}, "
          f"|p - p_perm| / |p| = {np.linalg.norm(p1 - flat(permuted)) / np.linalg.norm(p1):.2f}")

    # A regression onto such targets learns their average, and the average of two good
    # solutions is not a solution.
    avg = nn.MLP([1, 40, 40, 1])
    avg.load_state_dict({k: (v + nets[1].state_dict()[k]) / 2 for k, v in nets[0].state_dict().items()})
    with tm.no_grad():
        f_avg = avg(grid).numpy()[:, 0]
    print(f"  the average (p1 + p2) / 2: training MSE {F.mse_loss(avg(x), y).item():.3f}, "
          f"vs {float(np.mean(y ** 2)):.3f} for predicting 0")
    # What to notice: equally good fits, near-identical functions, far-apart parameters.
    # "The optimal parameters of this task" does not exist for an MLP, so section 1's
    # supervised recipe has no consistent target; end-to-end training (section 2) only asks
    # the generated network to fit the query points, which any of the optima does.

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    axes[0].scatter(w_star[:, 0], w_hat[:, 0], s=6, label="w[0]")
    axes[0].scatter(w_star[:, 1], w_hat[:, 1], s=6, label="w[1]")
    lim = [float(w_star.min()), float(w_star.max())]
    axes[0].plot(lim, lim, "k-", lw=1)
    axes[0].set(xlabel="pinv optimum w*", ylabel="generated w_hat = f_theta(support set)",
                title="1. Supervised mapping, linear tasks")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    for name, h in hist.items():
        axes[1].plot(h["iteration"], h["loss"], label=name)
    axes[1].set(xlabel="meta-iteration", ylabel="query MSE (training batches)", yscale="log",
                title="2. Sinusoids: mapping (end to end) vs MAML (1 step)")
    axes[1].legend()
    axes[1].grid(alpha=0.3)
    axes[2].plot(grid[:, 0], truth, "k-", lw=2, label="true function")
    axes[2].plot(grid[:, 0], f1, "--", label="MLP fit 1")
    axes[2].plot(grid[:, 0], f2, ":", lw=2, label="MLP fit 2")
    axes[2].plot(grid[:, 0], f_avg, "-", color="tab:red", alpha=0.7, label="parameters averaged")
    axes[2].set(xlabel="x", title="3. Same function, different parameters", ylim=(-6, 6))
    axes[2].legend(fontsize=8)
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    savefig(fig, args, "mapping_learner.png")
    # The supervised form's training loss is the regression onto phi*, not a query loss.
    fig = hist_sup.plot(title="supervised mapping: regression onto each task's optimum phi*")
    fig.axes[0].set_ylabel("parameter regression loss |f(D) - phi*|^2")
    fig.axes[0].get_legend().get_texts()[0].set_text("parameter regression loss (train batches)")
    savefig(fig, args, "supervised_training_curve.png")


if __name__ == "__main__":
    main()

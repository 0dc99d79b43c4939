"""Every meta-learner in tinymeta, side by side, on one budget: sinusoid regression and
few-shot character classification.

Two benchmarks, each learner meta-trained for the same number of meta-iterations on the
same meta-batches (same seed), then evaluated on the same new tasks:

* Finn et al.'s sinusoids: a 1-40-40-1 ReLU MLP (CAVIA: 1+5 inputs), K = 10 shots,
  meta-batch 25, Adam 1e-3. Query MSE on 1,000 new tasks (100 query points each) after 1
  and 10 adaptation steps, mean and 95% interval.
* 5-way 1-shot and 5-shot classification: meta-trained on ~1,000 font-glyph character
  classes (see _glyphs.py and 08_few_shot_digits.py), tested on the ten handwritten digits,
  which no learner ever sees in meta-training. A 64-128-128-5 ReLU MLP (ProtoNet: a
  64-128-128-64 encoder), meta-batch 16. Accuracy on 500 digit episodes (15 queries per
  class) with each learner adapting as it was meta-trained (its own inner lr and steps).

The papers' orderings are the anchors: ANIL within a couple of points of MAML (Raghu et
al. 2020); iMAML at least as good as MAML at equal inner steps (Rajeswaran et al. 2019);
ProtoNets strong in 1-shot (Snell et al. 2017); CAVIA at least as good as MAML on
sinusoids with far fewer adapted parameters (Zintgraf et al. 2019). Also printed:
meta-training time per iteration (this machine, loaded: read ratios, not absolutes) and
the number of parameters each learner adapts per task. Results go to a JSON file
(--json) and a figure.
"""
import argparse
import json
import os
import time

import numpy as np

from tinymeta import meta, nn, optim
from tinymeta.data import load_digits
from _common import parse_args, pyplot, savefig, section
from _glyphs import glyph_classes, render

SIN_ITERATIONS, CLS_ITERATIONS = 1000, 500
SIZES = [64, 128, 128, 5]


def sinusoid_learner(name, seed):
    """(learner, meta-optimizer or None, adapted parameters per task) for sinusoids."""
    mlp = nn.MLP([1, 40, 40, 1], rng=seed)
    n_all = mlp.num_parameters()
    if name == "MAML":
        return meta.MAML(mlp, inner_lr=0.01, inner_steps=1), n_all
    if name == "MAML, 5 steps":
        return meta.MAML(mlp, inner_lr=0.01, inner_steps=5), n_all
    if name == "first-order MAML":
        return meta.MAML(mlp, inner_lr=0.01, inner_steps=1, first_order=True), n_all
    if name == "Reptile":
        return meta.Reptile(mlp, inner_lr=0.02, inner_steps=5, outer_step_size=0.1), n_all
    if name == "Meta-SGD":
        return meta.MetaSGD(mlp, inner_lr=0.01, inner_steps=1), n_all
    if name == "mapping learner":
        return meta.MappingLearner(mlp, rng=seed), 0
    if name == "iMAML, 5 steps":
        return meta.IMAML(mlp, inner_lr=0.01, inner_steps=5, lam=2.0, cg_steps=5), n_all
    if name == "iMAML, 5 steps, lam 20":
        return meta.IMAML(mlp, inner_lr=0.01, inner_steps=5, lam=20.0, cg_steps=5), n_all
    if name == "ANIL":
        return meta.ANIL(mlp, inner_lr=0.01, inner_steps=1), 41
    if name == "CAVIA":
        return meta.CAVIA(nn.MLP([1 + 5, 40, 40, 1], rng=seed), num_context=5, inner_lr=1.0,
                          inner_steps=1), 5
    if name == "learned optimizer":
        return meta.LearnedOptimizer(mlp, inner_steps=5, hidden=20, learn_init=True, rng=seed), n_all
    raise KeyError(name)


def classification_learner(name, seed):
    mlp = nn.MLP(SIZES, rng=seed)
    n_all, ce = mlp.num_parameters(), "cross_entropy"
    if name == "MAML":
        return meta.MAML(mlp, inner_lr=0.4, inner_steps=1, loss=ce), n_all
    if name == "MAML, 5 steps":
        return meta.MAML(mlp, inner_lr=0.1, inner_steps=5, loss=ce), n_all
    if name == "first-order MAML":
        return meta.MAML(mlp, inner_lr=0.4, inner_steps=1, first_order=True, loss=ce), n_all
    if name == "Reptile":
        return meta.Reptile(mlp, inner_lr=0.1, inner_steps=5, outer_step_size=0.1, loss=ce), n_all
    if name == "Meta-SGD":
        return meta.MetaSGD(mlp, inner_lr=0.4, inner_steps=1, loss=ce), n_all
    if name == "mapping learner":
        return meta.MappingLearner(mlp, loss=ce, rng=seed), 0
    if name == "iMAML, 5 steps":
        return meta.IMAML(mlp, inner_lr=0.1, inner_steps=5, lam=2.0, cg_steps=5, loss=ce), n_all
    if name == "iMAML, 5 steps, lam 20":
        return meta.IMAML(mlp, inner_lr=0.1, inner_steps=5, lam=20.0, cg_steps=5, loss=ce), n_all
    if name == "ANIL":
        return meta.ANIL(mlp, inner_lr=0.4, inner_steps=1, loss=ce), 128 * 5 + 5
    if name == "CAVIA":
        return meta.CAVIA(nn.MLP([64 + 5] + SIZES[1:], rng=seed), num_context=5, inner_lr=1.0,
                          inner_steps=1, loss=ce), 5
    if name == "ProtoNet":
        return meta.ProtoNet(nn.MLP([64, 128, 128, 64], rng=seed)), 0
    raise KeyError(name)


LEARNED_OPTIMIZER = "learned optimizer"
SINUSOID = ["MAML", "MAML, 5 steps", "first-order MAML", "Reptile", "Meta-SGD", "mapping learner",
            "iMAML, 5 steps", "iMAML, 5 steps, lam 20", "ANIL", "CAVIA", "learned optimizer"]
CLASSIFICATION = ["MAML", "MAML, 5 steps", "first-order MAML", "Reptile", "Meta-SGD",
                  "mapping learner", "iMAML, 5 steps", "iMAML, 5 steps, lam 20", "ANIL", "CAVIA", "ProtoNet"]


def meta_train(learner, tasks, iterations, meta_batch, seed):
    """Meta-train; returns seconds per meta-iteration."""
    opt = None if isinstance(learner, meta.Reptile) else optim.Adam(learner.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    meta.fit(learner, tasks, opt, iterations=iterations, meta_batch=meta_batch, rng=seed,
             progress=False, log_every=max(1, iterations // 10))
    return (time.perf_counter() - t0) / iterations


def own_steps(learner):
    return getattr(learner, "inner_steps", 0)


def run_sinusoid(args, names, iterations, n_eval):
    tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)
    meta_train(sinusoid_learner("MAML", 0)[0], tasks, 2, 25, 0)  # compile kernels outside the timings
    rows = {}
    for name in names:
        learner, adapted = sinusoid_learner(name, args.seed)
        sec = meta_train(learner, tasks, iterations, 25, args.seed)
        steps = (0,) if name == "mapping learner" else (1, 10)
        res = meta.evaluate(learner, tasks, n_tasks=n_eval, steps=steps, rng=10_000 + args.seed,
                            k_query=100)
        rows[name] = {"ms_per_iteration": sec * 1e3, "adapted_parameters": adapted,
                      **{f"mse_{s}": list(res[s]["mse"]) for s in steps}}
        shown = ", ".join(f"{s} step{'s' * (s != 1)}: {m:.3f} +- {h:.3f}" for s, (m, h) in
                          ((s, res[s]["mse"]) for s in steps))
        print(f"  {name:<18} {sec * 1e3:7.1f} ms/it   query MSE {shown}", flush=True)
    return rows


def imaml_diagnostic(seed):
    """Why iMAML can trail MAML at equal inner steps, measured: its meta-gradient is exact
    only at the inner problem's optimum. On one meta-batch at a fresh initialisation, compare
    it with the exact gradient of the same number of SGD steps (second-order MAML) and report
    how much of the inner problem's gradient the steps leave."""
    from tinymeta import grad
    tasks = meta.tasks.Sinusoid(k_support=10, k_query=10)
    batch = tasks.sample(25, rng=seed + 123)
    rows = []
    for steps, lam in ((5, 2.0), (20, 2.0), (5, 20.0)):
        found = []
        for learner in (meta.IMAML(nn.MLP([1, 40, 40, 1], rng=seed), inner_lr=0.01, inner_steps=steps,
                                   lam=lam),
                        meta.MAML(nn.MLP([1, 40, 40, 1], rng=seed), inner_lr=0.01, inner_steps=steps)):
            learner.meta_loss(batch).backward()
            found.append(np.concatenate([p.grad.data.ravel() for p in learner.parameters()]))
        gi, gm = found
        imaml = meta.IMAML(nn.MLP([1, 40, 40, 1], rng=seed), inner_lr=0.01, inner_steps=steps, lam=lam)
        xs, ys, _ = imaml._batched_input(batch.x_support, batch.y_support)
        theta = {n: p.detach() for n, p in imaml.init_params().items()}

        def inner_gradient_norm(params, pull):
            leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
            gs = grad(imaml.task_losses(leaves, xs, ys).sum(), list(leaves.values()))
            return np.sqrt(sum(((g.data + pull * (leaves[n].data - theta[n].data)) ** 2).sum()
                               for n, g in zip(leaves, gs)))

        start = inner_gradient_norm(imaml.expand(theta, len(batch)), 0.0)
        left = inner_gradient_norm(imaml.adapt(batch.x_support, batch.y_support), lam) / start
        cos = float(gi @ gm / np.linalg.norm(gi) / np.linalg.norm(gm))
        rows.append({"inner_steps": steps, "lam": lam, "cosine_with_maml": cos,
                     "norm_ratio": float(np.linalg.norm(gi) / np.linalg.norm(gm)),
                     "inner_residual": float(left)})
        print(f"  iMAML, {steps} steps of lr 0.01, lam {lam}: inner gradient left {left:.2f} of its start; "
              f"cosine with MAML's exact {steps}-step meta-gradient {cos:.2f}, norm ratio "
              f"{rows[-1]['norm_ratio']:.1f}", flush=True)
    return rows


def run_classification(args, names, iterations, n_eval, glyphs):
    Xg, yg = glyphs
    X, y = load_digits()
    mu, sd = Xg.mean(), Xg.std()  # one global shift and scale, as in 08_few_shot_digits.py
    Xg, Xd = (Xg - mu) / sd, (X - mu) / sd
    rows = {}
    for k in (1, 5):
        train = meta.tasks.FewShotClassification(Xg, yg, n_way=5, k_shot=k, k_query=15)
        test = meta.tasks.FewShotClassification(Xd, y, n_way=5, k_shot=k, k_query=15)
        meta_train(classification_learner("MAML", 0)[0], train, 2, 16, 0)  # warm the kernels
        for name in (n for n in names if n != LEARNED_OPTIMIZER):
            learner, adapted = classification_learner(name, args.seed)
            sec = meta_train(learner, train, iterations, 16, args.seed)
            s = own_steps(learner)
            res = meta.evaluate(learner, test, n_tasks=n_eval, steps=(s,), rng=20_000 + args.seed)
            row = rows.setdefault(name, {"adapted_parameters": adapted, "adaptation_steps": s})
            row[f"accuracy_{k}shot"] = list(res[s]["accuracy"])
            row[f"ms_per_iteration_{k}shot"] = sec * 1e3
            m, h = res[s]["accuracy"]
            print(f"  {k}-shot {name:<18} {sec * 1e3:7.1f} ms/it   accuracy {m:.3f} +- {h:.3f}", flush=True)
        if LEARNED_OPTIMIZER in names:
            # The learned rule runs its network on every coordinate of every task: 16 x 25,221
            # here against 25 x 1,761 on sinusoids. Its time per iteration is measured (on 3
            # iterations) to say why it is left out of this benchmark's budget.
            lo = meta.LearnedOptimizer(nn.MLP(SIZES, rng=args.seed), inner_steps=5, hidden=20,
                                       learn_init=True, loss="cross_entropy", rng=args.seed)
            if not args.train_learned_optimizer:
                sec = meta_train(lo, train, 3, 16, args.seed)
                rows.setdefault(LEARNED_OPTIMIZER, {})[f"ms_per_iteration_{k}shot"] = sec * 1e3
                print(f"  {k}-shot {LEARNED_OPTIMIZER:<18} {sec * 1e3:7.1f} ms/it   (not trained: "
                      f"{sec * iterations / 60:.0f} min for the budget; --train-learned-optimizer)", flush=True)
                continue
            sec = meta_train(lo, train, iterations, 16, args.seed)  # the same budget as the others
            s = own_steps(lo)
            res = meta.evaluate(lo, test, n_tasks=n_eval, steps=(s,), rng=20_000 + args.seed)
            row = rows.setdefault(LEARNED_OPTIMIZER, {"adaptation_steps": s})
            row[f"accuracy_{k}shot"] = list(res[s]["accuracy"])
            row[f"ms_per_iteration_{k}shot"] = sec * 1e3
            m, h = res[s]["accuracy"]
            print(f"  {k}-shot {LEARNED_OPTIMIZER:<18} {sec * 1e3:7.1f} ms/it   accuracy {m:.3f} +- {h:.3f}",
                  flush=True)
    return rows


def main():
    def extra(p):
        p.add_argument("--sinusoid-iterations", type=int, default=SIN_ITERATIONS,
                       help=f"meta-iterations per learner on sinusoids (default {SIN_ITERATIONS})")
        p.add_argument("--classification-iterations", type=int, default=CLS_ITERATIONS,
                       help="meta-iterations per learner and shot count on glyphs "
                            f"(default {CLS_ITERATIONS})")
        p.add_argument("--train-learned-optimizer", action=argparse.BooleanOptionalAction, default=True,
                       help="meta-train the learned optimizer on classification too, on the same budget "
                            "(default on; slow: its network runs on every weight of every task, about 13 "
                            "min here; --no-train-learned-optimizer only times 3 iterations)")
        p.add_argument("--only", default="",
                       help="learner names to run, separated by semicolons (default: all), e.g. 'MAML;ANIL'")
        p.add_argument("--skip", choices=["sinusoid", "classification"], default=None,
                       help="leave out one of the two benchmarks (default: run both)")
        p.add_argument("--json", default=os.path.join("results", "meta_learners_compared.json"),
                       help="where to write the results (default results/meta_learners_compared.json)")

    args = parse_args("15_meta_learners_compared", __doc__, extra)
    quick = args.quick
    sin_its = 3 if quick else args.sinusoid_iterations
    cls_its = 2 if quick else args.classification_iterations
    n_sin, n_cls = (20, 20) if quick else (1000, 500)
    only = [s.strip() for s in args.only.split(";") if s.strip()]
    pick = (lambda names: [n for n in names if not only or n in only])
    result = {"seed": args.seed, "quick": quick,
              "budget": {"sinusoid_iterations": sin_its, "sinusoid_meta_batch": 25,
                         "classification_iterations": cls_its, "classification_meta_batch": 16,
                         "sinusoid_eval_tasks": n_sin, "classification_eval_episodes": n_cls}}

    if args.skip != "sinusoid":
        section(f"Sinusoids: {sin_its} meta-iterations of 25 tasks per learner")
        result["sinusoid"] = run_sinusoid(args, pick(SINUSOID), sin_its, n_sin)
        if any(n.startswith("iMAML") for n in pick(SINUSOID)):
            section("iMAML's meta-gradient against MAML's exact one, at a fresh initialisation")
            result["imaml_diagnostic"] = imaml_diagnostic(args.seed)
    if args.skip != "classification":
        t0 = time.perf_counter()
        classes = glyph_classes(max_classes=40 if quick else None)
        glyphs = render(classes, 30, rng=args.seed + 100)
        section(f"Glyphs -> digits, 5-way: {cls_its} meta-iterations of 16 episodes per learner "
                f"({len(classes)} glyph classes rendered in {time.perf_counter() - t0:.0f} s)")
        result["classification"] = run_classification(args, pick(CLASSIFICATION + [LEARNED_OPTIMIZER]),
                                                      cls_its, n_cls, glyphs)

    section("Table (mean +- 95% interval)")
    sin, cls = result.get("sinusoid", {}), result.get("classification", {})
    print(f"{'learner':<18} {'MSE 1 step':>15} {'MSE 10 steps':>15} {'acc 1-shot':>14} "
          f"{'acc 5-shot':>14} {'ms/it sin':>9} {'ms/it 5-shot':>12}")

    def cell(row, key, fmt="{:.3f}"):
        if row is None or key not in row:
            return "-"
        m, h = row[key]
        return f"{fmt.format(m)} +-{fmt.format(h)}"

    for name in dict.fromkeys(pick(SINUSOID) + pick(CLASSIFICATION)):
        s, c = sin.get(name), cls.get(name)
        one = cell(s, "mse_1") if s and "mse_1" in s else (cell(s, "mse_0") + " (0)" if s else "-")
        ms_sin = f"{s['ms_per_iteration']:.1f}" if s else "-"
        ms_cls = f"{c['ms_per_iteration_5shot']:.1f}" if c and "ms_per_iteration_5shot" in c else "-"
        print(f"{name:<18} {one:>15} {cell(s, 'mse_10'):>15} {cell(c, 'accuracy_1shot'):>14} "
              f"{cell(c, 'accuracy_5shot'):>14} {ms_sin:>9} {ms_cls:>12}")

    if args.json and not quick:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"  wrote {args.json}")

    # ------------------------------------------------------------------ plot
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
    if sin:
        # A learner that diverged (nan) has no bar to draw on a log scale.
        names = [n for n in sin if "mse_1" in sin[n] and np.isfinite(sin[n]["mse_1"][0])]
        xpos = np.arange(len(names))
        for j, s in enumerate((1, 10)):
            ax1.bar(xpos + (j - 0.5) * 0.38, [sin[n][f"mse_{s}"][0] for n in names], 0.38,
                    yerr=[sin[n][f"mse_{s}"][1] for n in names], capsize=3,
                    label=f"after {s} step{'s' * (s != 1)}")
        ax1.set_xticks(xpos, names, rotation=35, ha="right", fontsize=8)
        ax1.set(ylabel="query MSE (new sinusoids)", yscale="log",
                title=f"Sinusoids, {sin_its} meta-iterations each")
        ax1.legend()
        ax1.grid(alpha=0.3, axis="y")
    if cls:
        names = [n for n in cls if "accuracy_1shot" in cls[n]]
        xpos = np.arange(len(names))
        for j, k in enumerate((1, 5)):
            ax2.bar(xpos + (j - 0.5) * 0.38, [cls[n].get(f"accuracy_{k}shot", [0, 0])[0] for n in names],
                    0.38, yerr=[cls[n].get(f"accuracy_{k}shot", [0, 0])[1] for n in names], capsize=3,
                    label=f"{k}-shot")
        ax2.axhline(0.2, color="gray", ls=":", label="chance")
        ax2.set_xticks(xpos, names, rotation=35, ha="right", fontsize=8)
        ax2.set(ylabel="accuracy (5-way, digits never trained on)", ylim=(0, 1),
                title=f"Glyphs -> digits, {cls_its} meta-iterations each")
        ax2.legend(loc="upper center", ncol=3, fontsize=8)
        ax2.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    savefig(fig, args, "meta_learners_compared.png")


if __name__ == "__main__":
    main()

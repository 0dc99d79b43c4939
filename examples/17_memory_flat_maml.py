"""Memory-flat second-order MAML with tm.checkpoint, and forward mode (jvp, jacfwd).

Second-order MAML backpropagates through every inner SGD step, so it keeps every step's
graph (activations, the inner gradient and that gradient's own graph) until backward():
its memory grows linearly with the number of inner steps. ``MAML(..., checkpoint=True)``
wraps each inner step in ``tm.checkpoint``: only the adapted parameters phi_1..phi_k are
kept, and backward recomputes one step at a time. This script

1. checks that the checkpointed meta-gradient is the plain one (float64),
2. measures peak memory (tracemalloc; NumPy reports its arrays to it) of one meta-gradient
   against the number of inner steps, for plain and checkpointed second-order MAML and for
   first-order MAML, and draws the curve (maml_memory.png),
3. shows forward mode: tm.func.jacfwd builds a Jacobian with one pass per input where
   tm.func.jacobian needs one per output, with the same numbers.

Default size: 25 tasks x 100 shots (support and query), a 1-40-40-1 ReLU network, 1..20
inner steps. ``--out docs`` writes the README's figure.
"""
import time
import tracemalloc

import numpy as np

import tinymeta as tm
from tinymeta import meta, nn
from _common import parse_args, pyplot, savefig, section

VARIANTS = [  # label, checkpoint, first_order, colour, marker
    ("second order, plain", False, False, "tab:red", "o"),
    ("second order, checkpoint=True", True, False, "tab:blue", "s"),
    ("first order (FOMAML)", False, True, "tab:gray", "^"),
]


def make(steps, checkpoint, first_order, dtype="float32"):
    model = nn.MLP([1, 40, 40, 1], activation="relu", rng=0)
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    return model, meta.MAML(model, inner_lr=0.01, inner_steps=steps, first_order=first_order,
                            checkpoint=checkpoint)


def peak_mib(batch, steps, checkpoint, first_order):
    """Peak traced memory of one meta-gradient (meta_loss + backward), in MiB."""
    _, learner = make(steps, checkpoint, first_order)
    tracemalloc.start()
    learner.meta_loss(batch).backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def meta_grads(batch, steps, checkpoint, first_order):
    model, learner = make(steps, checkpoint, first_order, dtype="float64")
    learner.meta_loss(batch).backward()
    return [p.grad.numpy() for p in model.parameters()]


def main():
    def extra(p):
        p.add_argument("--max-steps", type=int, default=20,
                       help="largest number of inner steps on the curve (default 20)")
        p.add_argument("--tasks", type=int, default=25, help="tasks per meta-batch (default 25)")
        p.add_argument("--shots", type=int, default=100,
                       help="support and query points per task (default 100)")
    args = parse_args("17_memory_flat_maml", __doc__, extra)
    if args.quick:
        args.max_steps, args.tasks, args.shots = min(args.max_steps, 5), min(args.tasks, 5), min(args.shots, 20)
    seed = int(args.rng.integers(2 ** 31))
    family = meta.tasks.Sinusoid(k_support=args.shots, k_query=args.shots)

    section("1. Checkpointed MAML gives the plain meta-gradient (float64)")
    small = family.sample(5, rng=seed)
    for first_order in (False, True):
        plain = meta_grads(small, 5, False, first_order)
        ckpt = meta_grads(small, 5, True, first_order)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(plain, ckpt))
        scale = max(float(np.abs(a).max()) for a in plain)
        print(f"  {'first' if first_order else 'second'}-order, 5 inner steps: largest |difference| "
              f"{diff:.1e} (gradients up to {scale:.2f})")

    section(f"2. Peak memory of one meta-gradient: {args.tasks} tasks x {args.shots} shots, "
            f"1-40-40-1, 1..{args.max_steps} inner steps")
    batch = family.sample(args.tasks, rng=seed)
    for _, ck, fo, _, _ in VARIANTS:  # warm-up: first calls allocate one-off caches
        peak_mib(family.sample(2, rng=seed), 1, ck, fo)
    steps_list = list(range(1, args.max_steps + 1))
    curves = {label: [] for label, *_ in VARIANTS}
    print(f"  {'steps':>5}  " + "  ".join(f"{label:>30}" for label, *_ in VARIANTS))
    for k in steps_list:
        row = [peak_mib(batch, k, ck, fo) for _, ck, fo, _, _ in VARIANTS]
        for (label, *_), v in zip(VARIANTS, row):
            curves[label].append(v)
        print(f"  {k:>5}  " + "  ".join(f"{v:>26.1f} MiB" for v in row), flush=True)
    plain, ckpt, fomaml = (curves[label][-1] for label, *_ in VARIANTS)
    k = steps_list[-1]
    print(f"\n  at {k} inner steps: plain {plain:.1f} MiB, checkpointed {ckpt:.1f} MiB "
          f"({ckpt / plain:.2f} of plain; the bar is 0.5), first order {fomaml:.1f} MiB")
    print(f"  growth per inner step (least squares): plain "
          f"{np.polyfit(steps_list, curves[VARIANTS[0][0]], 1)[0]:.2f} MiB, checkpointed "
          f"{np.polyfit(steps_list, curves[VARIANTS[1][0]], 1)[0]:.2f} MiB")

    # The price: each inner step is run again in backward (and its inner gradient too).
    times = {}
    for label, ck, fo, _, _ in VARIANTS[:2]:
        _, learner = make(k, ck, fo)
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            learner.meta_loss(batch).backward()
            runs.append(time.perf_counter() - t0)
        times[label] = float(np.median(runs))
    t_plain, t_ckpt = times[VARIANTS[0][0]], times[VARIANTS[1][0]]
    print(f"  time of one meta-gradient at {k} steps (median of 3; a shared machine): plain "
          f"{t_plain:.2f} s, checkpointed {t_ckpt:.2f} s ({t_ckpt / t_plain:.2f}x)")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for label, _, _, colour, marker in VARIANTS:
        ax.plot(steps_list, curves[label], marker=marker, color=colour, label=label, ms=4)
    ax.axhline(plain / 2, color="tab:red", ls=":", lw=1)
    ax.text(1, plain / 2, f"half of plain at {k} steps (the target)",
            va="bottom", fontsize=8, color="tab:red")
    ax.annotate(f"{plain:.1f} MiB", (k, plain), textcoords="offset points", xytext=(-10, 0),
                ha="right", va="center", color="tab:red")
    ax.annotate(f"{ckpt:.1f} MiB ({ckpt / plain:.2f} of plain)", (k, ckpt),
                textcoords="offset points", xytext=(-8, 8), ha="right", color="tab:blue")
    ax.annotate(f"{fomaml:.1f} MiB", (k, fomaml), textcoords="offset points", xytext=(-8, 6),
                ha="right", color="tab:gray")
    ax.set_xlabel("inner SGD steps")
    ax.set_ylabel("peak memory of one meta-gradient (MiB)")
    ax.set_title(f"MAML on sinusoids: {args.tasks} tasks x {args.shots} shots, 1-40-40-1 MLP\n"
                 "second order keeps every inner step's graph; checkpointing keeps one at a time",
                 fontsize=10)
    ax.set_xlim(0, k + 0.5)
    ax.set_ylim(0, max(plain, ckpt) * 1.12)
    if k <= 20:
        ax.set_xticks(steps_list)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    savefig(fig, args, "maml_memory.png")

    section("3. Forward mode: jacfwd (one pass per input) vs jacobian (one per output)")
    grid = tm.tensor(np.linspace(-1, 1, 200 if not args.quick else 50), dtype="float64")

    def curve(p):  # 2 parameters -> a whole curve of outputs
        return (grid * p[0]).sin() * p[1]

    p = tm.tensor([1.5, 0.7], dtype="float64")
    Jf, Jr = tm.func.jacfwd(curve)(p), tm.func.jacobian(curve)(p)
    print(f"  f: R^2 -> R^{grid.shape[0]}; Jacobian shape {Jf.shape}; jacfwd runs 2 backward passes "
          f"through the transposed graph, jacobian runs {grid.shape[0]}; "
          f"largest |difference| {np.abs(Jf.numpy() - Jr.numpy()).max():.1e}")
    out, jt = tm.func.jvp(curve, p, tm.tensor([1.0, 0.0], dtype="float64"))
    print(f"  jvp along the first parameter = Jacobian column 0: "
          f"{np.abs(jt.numpy() - Jr.numpy()[:, 0]).max():.1e} apart")


if __name__ == "__main__":
    main()

"""How tinymeta's cost grows with the work (tinymeta only; medians):
- MAML meta-iteration (sinusoid setup) vs meta-batch size, second and first order, with
  BLAS's threads as the environment leaves them and with one BLAS thread;
- MAML meta-iteration vs inner steps: time, and peak memory of one iteration
  (tracemalloc, which sees NumPy's buffers): second order keeps every inner step's graph,
  so it should grow linearly; first order should stay flat;
- adaptation (``maml.adapt``, no meta-gradient) time per step for 1..10 steps: flat;
- the 784-256-256-10 MLP training step vs batch size, beside the NumPy floor, with BLAS's
  threads as the environment leaves them and with one BLAS thread (threadpoolctl).
Curves go to the JSON ("scaling": wall-time medians in "series", CPU-time medians in
"cpu_series") and, with --plots DIR, to DIR/scaling.png (CPU time dashed)."""
import gc
import os
import tracemalloc

import numpy as np

from tinymeta import meta

from . import mlp
from .common import load_tinymeta_mlp, mlp_init, sinusoid_batches
from .harness import log
from .maml import SIZES as MAML_SIZES, tinymeta_maker
from .timing import Budget, measure

FULL = {"meta_batch": [1, 2, 5, 10, 25, 50, 100, 200], "inner_steps": [1, 2, 3, 5, 7, 10],
        "adapt_steps": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "mlp_batch": [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096]}
QUICK = {"meta_batch": [1, 25], "inner_steps": [1, 2], "adapt_steps": [1, 3],
         "mlp_batch": [1, 128]}


def _peak_bytes(fn):
    """Peak traced memory of one call above what was live before it."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


class Series:
    """Wall-time medians and CPU-time medians of one curve."""

    def __init__(self):
        self.wall, self.cpu = [], []

    def add(self, t, div=1.0):
        self.wall.append(t["median"] / div)
        self.cpu.append(t["cpu_median"] / div)
        return f"{self.wall[-1]:.3f} (cpu {self.cpu[-1]:.3f})"


def _curve(title, xlabel, x, unit, series):
    return {"title": title, "xlabel": xlabel, "x": x, "unit": unit,
            "series": {k: s.wall for k, s in series.items()},
            "cpu_series": {k: s.cpu for k, s in series.items()}}


def _thread_modes(ctx):
    """BLAS threads as the environment leaves them, and one BLAS thread (threadpoolctl),
    unless --threads fixed them: OpenBLAS's threaded path can be 10-100x slower on a busy
    2-core machine once the matrices pass its threading threshold."""
    modes = [("", None)]
    if not ctx.threads:
        try:
            import threadpoolctl
            modes.append((", 1 BLAS thread", threadpoolctl))
        except ImportError:
            pass
    return modes


def _timed(step, ctx, tpc):
    if tpc is None:
        return measure(step, Budget.curve(ctx.quick), scale=1e3)
    with tpc.threadpool_limits(1):
        return measure(step, Budget.curve(ctx.quick), scale=1e3)


def maml_vs_meta_batch(ctx, init, sizes):
    series = {}
    for suffix, tpc in _thread_modes(ctx):
        for label, fo in (("second order", False), ("first order", True)):
            s = series[label + suffix] = Series()
            for n in sizes:
                batches = sinusoid_batches(4, n, seed=3)
                step, _ = tinymeta_maker(init, batches, fo)
                log(f"   maml meta-batch {n} {label}{suffix}: {s.add(_timed(step, ctx, tpc))} ms")
    return _curve("MAML meta-iteration vs meta-batch size", "meta-batch", sizes, "ms", series)


def maml_vs_inner_steps(ctx, init, steps_list):
    batches = sinusoid_batches(4, 25, seed=3)
    times, mems = {}, {}
    for label, fo in (("second order", False), ("first order", True)):
        ts, ms = Series(), []
        times[label] = ts
        for k in steps_list:
            step, _ = tinymeta_maker(init, batches, fo, inner_steps=k)
            txt = ts.add(measure(step, Budget.curve(ctx.quick), scale=1e3))
            ms.append(_peak_bytes(step) / 2 ** 20)
            log(f"   maml {k} inner steps {label}: {txt} ms, peak {ms[-1]:.2f} MiB")
        mems[label] = ms
    return (_curve("MAML meta-iteration vs inner steps", "inner steps", steps_list, "ms", times),
            {"title": "MAML peak memory of one meta-iteration vs inner steps", "xlabel": "inner steps",
             "x": steps_list, "unit": "MiB", "series": mems})


def adaptation_per_step(ctx, init, steps_list):
    b = sinusoid_batches(1, 25, seed=8)[0]
    learner = meta.MAML(load_tinymeta_mlp(MAML_SIZES, init), inner_lr=0.01)
    s = Series()
    for k in steps_list:
        t = measure(lambda: learner.adapt(b.x_support, b.y_support, steps=k), Budget.curve(ctx.quick),
                    scale=1e3)
        log(f"   adapt {k} steps: {s.add(t, div=k)} ms/step")
    return _curve("adaptation (25 tasks) time per inner step", "steps", steps_list, "ms/step",
                  {"adapt": s})


def mlp_vs_batch(ctx, sizes):
    init = mlp_init(mlp.SIZES, seed=0, dtype=np.float32)
    series = {}
    for suffix, tpc in _thread_modes(ctx):
        for impl, make in (("tinymeta", mlp.tinymeta_step), ("numpy (by hand)", mlp.numpy_step)):
            s = series[impl + suffix] = Series()
            for n in sizes:
                X, Y = mlp.data(batch=n, seed=9)
                step = make(init, X, Y)
                log(f"   mlp batch {n} {impl}{suffix}: {s.add(_timed(step, ctx, tpc))} ms")
    return _curve("MLP 784-256-256-10 training step vs batch size", "batch", sizes, "ms", series)


def verdicts(curves):
    out = {}
    a = curves.get("adapt_per_step")
    if a:
        # Flat = the per-step time of the longer runs is no more than that of the shorter
        # ones (medians of each half, so one noisy point does not decide). CPU time decides:
        # wall time on a shared machine grows with a call's length (more preemption).
        cpu, wall = a["cpu_series"]["adapt"], a["series"]["adapt"]
        h = max(1, len(cpu) // 2)
        first, last = float(np.median(cpu[:h])), float(np.median(cpu[h:] or cpu[-1:]))
        ok = last <= 1.2 * first
        out["adaptation per step flat"] = (
            f"{'yes' if ok else 'NO'}: median cpu {first:.3f} ms/step for {a['x'][0]}-{a['x'][h - 1]} "
            f"steps, {last:.3f} for {a['x'][min(h, len(cpu) - 1)]}-{a['x'][-1]} steps (wall per step "
            f"{min(wall):.3f}-{max(wall):.3f})")
    m = curves.get("maml_memory_vs_inner_steps")
    if m and len(m["x"]) > 1:
        x = np.asarray(m["x"], float)
        for label, ys in m["series"].items():
            ys = np.asarray(ys)
            slope, icpt = np.polyfit(x, ys, 1)
            resid = np.max(np.abs(np.polyval([slope, icpt], x) - ys)) / max(ys.max(), 1e-9)
            growth = ys[-1] / ys[0]
            out[f"memory {label}"] = (f"{ys[0]:.2f} -> {ys[-1]:.2f} MiB from {int(x[0])} to {int(x[-1])} "
                                      f"steps ({growth:.2f}x; {slope:.3f} MiB/step, linear fit max "
                                      f"residual {resid:.0%})")
    return out


def plot(curves, path):
    import matplotlib
    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt
    panels = [k for k, c in curves.items() if isinstance(c, dict) and "x" in c]
    ncol = min(3, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.8 * nrow), squeeze=False)
    axes = axes.ravel()
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, key in zip(axes, panels):
        c = curves[key]
        for label, ys in c["series"].items():
            line, = ax.plot(c["x"], ys, marker="o", label=label)
            cpu = c.get("cpu_series", {}).get(label)
            if cpu is not None:
                ax.plot(c["x"], cpu, ls="--", lw=1, color=line.get_color(), label=f"{label} (cpu)")
        if key in ("maml_vs_meta_batch", "mlp_vs_batch"):
            ax.set_xscale("log")
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.set_xlabel(c["xlabel"])
        ax.set_ylabel(c["unit"])
        ax.set_title(c["title"], fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("tinymeta scaling (solid: wall-time median; dashed: CPU-time median)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(ctx):
    p = QUICK if ctx.quick else FULL
    init = mlp_init(MAML_SIZES, seed=0, dtype=np.float32)
    curves = {"maml_vs_meta_batch": maml_vs_meta_batch(ctx, init, p["meta_batch"])}
    curves["maml_vs_inner_steps"], curves["maml_memory_vs_inner_steps"] = \
        maml_vs_inner_steps(ctx, init, p["inner_steps"])
    curves["adapt_per_step"] = adaptation_per_step(ctx, init, p["adapt_steps"])
    curves["mlp_vs_batch"] = mlp_vs_batch(ctx, p["mlp_batch"])
    curves["verdicts"] = verdicts(curves)
    if ctx.plots:
        os.makedirs(ctx.plots, exist_ok=True)
        path = os.path.join(ctx.plots, "scaling.png")
        plot(curves, path)
        curves["plot"] = path
        log(f"   wrote {path}")
    return [], curves

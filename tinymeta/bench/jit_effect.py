"""Kernels on vs off (``tm.kernels.set_enabled``): the whole-step effect of the numba
kernels on a small-MLP training step (1-40-40-1 ReLU, batch 25, MSE, Adam, float32) and
on the MAML meta-iteration of workload 3. Ratio = kernels-off time / kernels-on time:
the speed-up the kernels give (goal for the small-MLP step: at least 1.5x)."""
import numpy as np

from .. import kernels
from .common import mlp_init, row, sinusoid_batches, tinymeta_train_step
from .harness import measure
from .maml import N_BATCHES, check_and_time, tinymeta_maker

W = "kernels"
SMALL = "small MLP 1-40-40-1 b25 step"
SPEEDUP_GOAL = 1.5


def small_mlp_maker(init, x, y):
    return tinymeta_train_step([1, 40, 40, 1], init, x, y, "mse")


def run(ctx):
    if not kernels.enabled() and kernels._want:
        ctx.note("numba is unavailable: kernels on == kernels off")
    init = mlp_init([1, 40, 40, 1], seed=0, dtype=np.float32)
    g = np.random.default_rng(7)
    x = g.uniform(-5, 5, (25, 1)).astype(np.float32)
    y = (2.0 * np.sin(x - 0.5)).astype(np.float32)
    batches = sinusoid_batches(N_BATCHES, 25, seed=3)
    was = kernels._want
    rows = []

    def add(case, impl, on, check, t):
        rows.append(row(W, case, impl, t, "ms", check=check, rtol=1e-4, reference=on))
    try:
        for case in (SMALL, "MAML second order", "MAML first order"):
            for on in (True, False):
                kernels.set_enabled(on)  # the dispatch reads it at every call
                impl = f"tinymeta (kernels {'on' if on else 'off'})"
                if case == SMALL:
                    step = small_mlp_maker(init, x, y)
                    check = [step() for _ in range(3)]
                    add(case, impl, on, check, measure(step, ctx.budget, scale=1e3))
                else:
                    fo = case.endswith("first order")
                    add(case, impl, on, *check_and_time(ctx, *tinymeta_maker(init, batches, fo)))
    finally:
        kernels.set_enabled(was)
    return rows


def speedup_goal(rows):
    """Mark the kernels-off row of the small-MLP step: speed-up >= 1.5x met or missed."""
    for r in rows:
        if r["workload"] == W and r.get("case") == SMALL and not r.get("reference") \
                and r.get("ratio"):
            ok = r["ratio"] >= SPEEDUP_GOAL
            r["goal_met"] = ok
            r["goal_text"] = f"speed-up >= {SPEEDUP_GOAL}x {'met' if ok else 'MISSED'}"
    return rows

"""Kernels on vs off (``tm.kernels.set_enabled``): the whole-step effect of the numba
kernels on a small-MLP training step (1-40-40-1 ReLU, batch 25, MSE, Adam, float32) and
on the MAML meta-iteration of the maml workload. Ratio = kernels-off time / kernels-on
time: the speed-up the kernels give (the goal for the small-MLP step is in goals.py)."""
import numpy as np
import tinymeta as tm

from .common import kernels_enabled, mlp_init, sinusoid_batches, tinymeta_train_step
from .harness import row
from .maml import N_BATCHES, check_and_time, tinymeta_maker
from .timing import measure

W = "kernels"
SMALL = "small MLP 1-40-40-1 b25 step"


def small_mlp_maker(init, x, y):
    """(step, gradients) like maml.tinymeta_maker; the check reads no gradient here."""
    return tinymeta_train_step([1, 40, 40, 1], init, x, y, "mse"), None


def small_mlp_check_and_time(ctx, step, _grads):
    check = [step() for _ in range(3)]  # the first three losses
    return check, measure(step, ctx.budget, scale=1e3)


def run(ctx):
    with kernels_enabled(True):
        if not tm.kernels.enabled():
            ctx.note("numba is unavailable: kernels on == kernels off")
    init = mlp_init([1, 40, 40, 1], seed=0, dtype=np.float32)
    g = np.random.default_rng(7)
    x = g.uniform(-5, 5, (25, 1)).astype(np.float32)
    y = (2.0 * np.sin(x - 0.5)).astype(np.float32)
    batches = sinusoid_batches(N_BATCHES, 25, seed=3)
    cases = {SMALL: (lambda: small_mlp_maker(init, x, y), small_mlp_check_and_time),
             "MAML second order": (lambda: tinymeta_maker(init, batches, False), check_and_time),
             "MAML first order": (lambda: tinymeta_maker(init, batches, True), check_and_time)}
    rows = []
    for case, (make, check_and_time_of) in cases.items():
        for on in (True, False):
            with kernels_enabled(on):
                check, t = check_and_time_of(ctx, *make())
            rows.append(row(W, case, f"tinymeta (kernels {'on' if on else 'off'})", t, "ms",
                            check=check, rtol=1e-4, reference=on))
    return rows

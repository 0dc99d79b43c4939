"""Kernels on vs off (``tm.kernels.set_enabled``): the whole-step effect of the numba
kernels on a small-MLP training step (1-40-40-1 ReLU, batch 25, MSE, Adam, float32) and
on the MAML meta-iteration of the maml workload. Ratio = kernels-off time / kernels-on
time: the speed-up the kernels give (the goal for the small-MLP step is in goals.py)."""
import numpy as np
import tinymeta as tm

from .common import kernels_enabled, mlp_init, sinusoid_batches, tinymeta_train_step
from .harness import row
from .maml import N_BATCHES, check_and_time, tinymeta_maker
from .timing import measure, measure_interleaved

W = "kernels"
SMALL = "small MLP 1-40-40-1 b25 step"


def small_mlp_maker(init, x, y):
    """(step, gradients) like maml.tinymeta_maker; the check reads no gradient here."""
    return tinymeta_train_step([1, 40, 40, 1], init, x, y, "mse"), None


def small_mlp_check_and_time(ctx, step, _grads, time_it=True):
    check = [step() for _ in range(3)]  # the first three losses
    return (check, measure(step, ctx.budget, scale=1e3)) if time_it else check


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
        # Built and checked with the switch set, then timed in interleaved rounds, each call
        # under its own switch: the speed-up is a goal, and on a shared machine rows timed
        # one after the other met different loads (1.31x to 1.78x across runs).
        steps, checks = {}, {}
        for on in (True, False):
            with kernels_enabled(on):
                step, grads = make()
                checks[on] = check_and_time_of(ctx, step, grads, time_it=False)
            steps[on] = _switched(step, on)
        t = measure_interleaved({on: steps[on] for on in (True, False)}, ctx.budget, scale=1e3)
        for on in (True, False):
            rows.append(row(W, case, f"tinymeta (kernels {'on' if on else 'off'})", t[on], "ms",
                            check=checks[on], rtol=1e-4, reference=on))
    return rows


def _switched(step, on):
    """``step`` with the kernels switched ``on`` (or off) for its call."""
    def run():
        with kernels_enabled(on):
            return step()
    return run

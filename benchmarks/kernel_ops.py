"""Every tinymeta kernel, compiled (numba), against its NumPy twin; and the size sweep.

Workload ``kernel_ops``: per kernel and size, in the dtype of ``--dtype``, the median
time per call (microseconds) of
- "kernel": the compiled kernel writing into outputs passed in. The kernels issue set
  its goals this way (NumPy time / kernel time), so it is the reference row and the
  NumPy row's ratio is the speed-up, held to goals.KERNEL_SPEEDUPS;
- "numpy twin": the NumPy twin, the best NumPy expression we found (for ``linear_act``
  the faster of the twin and ``np.maximum(x @ w.T + b, 0)``);
- "wrapper": the compiled path allocating its outputs, as the engine calls it;
- "public function": ``tinymeta.kernels.<name>`` (dtype/layout checks, then the
  wrapper), i.e. what a caller really pays.
Then the cold start of a fresh process importing ``tinymeta.kernels`` and calling every
kernel once: with an empty numba cache, with that cache warm, and with TINYMETA_JIT=0.

Workload ``kernel_sweep`` (not in the default run): the elementwise kernels through the
public API, kernels on vs off, 1 to 4M elements: the evidence for (not) having size
thresholds in tinymeta.kernels.
"""
import shutil
import tempfile

import numpy as np
import tinymeta as tm

from . import goals
from .cold import cold_row, run_once
from .common import kernels_enabled
from .harness import row
from .timing import Budget, measure

W, SWEEP = "kernel_ops", "kernel_sweep"
ELEMENTWISE = ("relu", "relu_backward", "tanh_backward", "sigmoid_backward")


def internals():
    """(twin(name), wrapper(name), compiled module): the only place the benchmarks reach
    inside tinymeta.kernels. The goals are speed-ups of the raw compiled kernel over the
    raw NumPy twin, and neither is public: the public functions add checks and dispatch
    (timed here as the "public function" row)."""
    kernels = tm.kernels
    kernels._impl("relu", True)  # loads numba as the library does (cache folder first); raises without it
    from tinymeta.kernels import _numba
    return (lambda name: kernels._impl(name, False)), (lambda name: kernels._impl(name, True)), _numba


def cases(dt):
    """(kernel, size label, make, raw): make(f) returns a no-arg callable running the
    public-signature function f; raw(nb) one running the compiled kernel of module nb
    (tinymeta.kernels._numba) with its outputs preallocated."""
    rng = np.random.default_rng(0)

    def arr(*shape):
        return rng.standard_normal(shape).astype(dt)

    def elementwise(name, shape):
        x, g, res = arr(*shape), arr(*shape), np.empty(shape, dt)
        out = {"relu_backward": np.maximum(x, 0), "tanh_backward": np.tanh(x),
               "sigmoid_backward": 1 / (1 + np.exp(-x))}.get(name)
        if name == "relu":
            return (lambda f: lambda: f(x)), (lambda nb: lambda: nb._relu(x, res))

        def raw(nb):
            kernel = getattr(nb, "_" + name)
            return lambda: kernel(g, out, res)
        return (lambda f: lambda: f(g, out)), raw

    def bias(shape):
        y, b = arr(*shape), arr(shape[-1])
        return (lambda f: lambda: f(y, b, "relu")), (lambda nb: lambda: nb._bias_act(y, b, True))

    def linear(n, d_in, d_out):
        # The whole layer relu(x @ W^T + b), as the issue measured it. The twin is
        # np.dot then bias + relu in place; the best NumPy expression is
        # np.maximum(x @ w.T + b, 0), and the faster of the two is the reference.
        x, w, b = arr(n, d_in), arr(d_out, d_in), arr(d_out)
        y = np.empty((n, d_out), dt)

        def make(f):
            return lambda: f(x, w, b, "relu")

        def raw(nb):
            if n * d_in * d_out <= nb.LINEAR_LOOPS:
                return lambda: nb._linear_act(x, w, b, y, True, True)
            return lambda: nb._bias_act(np.dot(x, w.T), b, True)
        return make, raw

    def xent(n, c):
        z, lab = arr(n, c), rng.integers(0, c, n)
        losses = np.empty(n, dt)
        return (lambda f: lambda: f(z, lab)), (lambda nb: lambda: nb.softmax_xent_into(z, lab, losses))

    def mse(shape, lead):
        # One loss over everything (lead 0), or one per leading index (per task) over the rest.
        axis = None if lead == 0 else tuple(range(lead, len(shape)))
        p, t = arr(*shape), arr(*shape)
        g, res = arr(*shape[:lead]), np.empty(shape, dt)
        out = np.empty(max(1, int(np.prod(shape[:lead]))), dt)
        return ((lambda f: lambda: f(p, t, axis)), (lambda nb: lambda: nb._mse(p, t, out.size, out)),
                (lambda f: lambda: f(g, p, t, axis)), (lambda nb: lambda: nb._mse_backward(g, p, t, res)))

    def optim(name, shapes):
        # One "step" updates every parameter tensor of the model.
        params = []
        for s in shapes:
            p, g = arr(*s), arr(*s) * dt(0.01)
            state = (np.zeros_like(p), np.zeros_like(p)) if name == "adam_update" else (np.zeros_like(p),)
            params.append((p, g, state))
        args = {"sgd_update": lambda p, g, st: (p, g, st[0], 1e-3, 0.9, 0.0, False, 1e-4, False),
                "adam_update": lambda p, g, st: (p, g, *st, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 10),
                "rmsprop_update": lambda p, g, st: (p, g, st[0], 1e-3, 0.99, 1e-8, 0.0, 0.0, None),
                "adagrad_update": lambda p, g, st: (p, g, st[0], 1e-2, 1e-10, 0.0)}[name]
        calls = [args(*t) for t in params]
        # The compiled kernels take the same arrays; Adam's bias corrections are
        # formed once per step (by the wrapper) rather than per call.
        raws = {
            "sgd_update": lambda nb, p, g, st: (nb._sgd, (p, g, st[0], 1e-3, 0.9, 0.0, False, 1e-4, False)),
            "adam_update": lambda nb, p, g, st: (nb._adam, (p, g, *st, 1e-3, 0.9, 0.999, 1e-8, 0.0, False,
                                                            1 - 0.9 ** 10, 1 - 0.999 ** 10)),
            "rmsprop_update": lambda nb, p, g, st: (nb._rmsprop,
                                                    (p, g, st[0], p, 1e-3, 0.99, 1e-8, 0.0, 0.0)),
            "adagrad_update": lambda nb, p, g, st: (nb._adagrad, (p, g, st[0], 1e-2, 1e-10, 0.0))}[name]

        def make(f):
            def step():
                for a in calls:
                    f(*a)
            return step

        def raw(nb):
            fns = [raws(nb, *t) for t in params]

            def step():
                for fn, a in fns:
                    fn(*a)
            return step
        return make, raw

    out = []
    for name in ("relu", "relu_backward", "tanh_backward", "sigmoid_backward"):
        for shape in ((25, 40), (128, 256)):
            out.append((name, "%dx%d" % shape, *elementwise(name, shape)))
    for shape in ((25, 40), (128, 256)):
        out.append(("bias_act", "%dx%d relu" % shape, *bias(shape)))
    for n, d_in, d_out in ((10, 1, 40), (25, 40, 40)):
        out.append(("linear_act", f"{n}x{d_in}->{d_out} relu", *linear(n, d_in, d_out)))
    for n, c in ((128, 10), (25, 5)):
        out.append(("softmax_xent", f"{n}x{c}", *xent(n, c)))
    for shape, lead, label in (((25, 1), 0, "25x1"), ((25, 10, 1), 1, "25x10x1 per task")):
        f_make, f_raw, b_make, b_raw = mse(shape, lead)
        out.append(("mse", label, f_make, f_raw))
        out.append(("mse_backward", label, b_make, b_raw))
    for name in ("adam_update", "sgd_update", "rmsprop_update", "adagrad_update"):
        out.append((name, "40x40+40", *optim(name, [(40, 40), (40,)])))
        out.append((name, "784x256", *optim(name, [(784, 256)])))
    return out


def _linear_numpy(x, w, b, act):
    return np.maximum(x @ w.T + b, 0)


def run(ctx):
    twin, wrapper, nb = internals()
    budget = Budget.microseconds(ctx.quick)
    dt = np.dtype(ctx.dtype).type
    rows = []
    for name, size, make, raw in cases(dt):
        case = f"{name} {size}, {ctx.dtype}"

        def us(fn):
            return measure(fn, budget, scale=1e6)

        def add(impl, timing, **kw):
            rows.append(row(W, case, impl, timing, "us", kernel=name, size=size, dtype=ctx.dtype, **kw))

        t_np = us(make(twin(name)))
        if name == "linear_act":  # the faster of the twin and the plainest NumPy expression
            t_np = min(t_np, us(make(_linear_numpy)), key=lambda t: t["median"])
        add("numpy twin", t_np, speedup_goal=goals.kernel_speedup(name, size))
        add("kernel (compiled, outputs passed in)", us(raw(nb)), reference=True)
        add("wrapper (compiled, allocates)", us(make(wrapper(name))))
        with kernels_enabled(True):
            add("public function (checks + dispatch)", us(make(getattr(tm.kernels, name))))
    rows += cold_start()
    return rows


def cold_start():
    """Import + one call of each kernel in a fresh process: empty numba cache, the same
    cache warm, and the JIT off (one run each)."""
    rows = []
    cache = tempfile.mkdtemp(prefix="tinymeta-bench-kernels-")
    try:
        for case, extra in (("empty numba cache", {}), ("warm numba cache", {}),
                            ("TINYMETA_JIT=0", {"TINYMETA_JIT": "0"})):
            env = {"NUMBA_CACHE_DIR": cache, "TINYMETA_JIT": "1", **extra}
            rows.append(cold_row(W, f"cold start, {case}", "tinymeta.kernels (import + every kernel once)",
                                 [run_once("kernels", env)]))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return rows


def run_sweep(ctx):
    """Elementwise kernels through the public API, kernels off vs on, 1 to 4M elements."""
    budget = Budget.microseconds(ctx.quick)
    dt = np.dtype(ctx.dtype).type
    sizes = (1, 1000) if ctx.quick else (1, 10, 100, 1000, 10**4, 10**5, 10**6, 4 * 10**6)
    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        g, out = rng.standard_normal(n).astype(dt), rng.random(n).astype(dt)
        for name in ELEMENTWISE:
            f = getattr(tm.kernels, name)
            call = (lambda: f(g)) if name == "relu" else (lambda: f(g, out))
            for on in (False, True):
                with kernels_enabled(on):
                    rows.append(row(SWEEP, f"{name} n={n}, {ctx.dtype}", f"kernels {'on' if on else 'off'}",
                                    measure(call, budget, scale=1e6), "us", kernel=name, size=n,
                                    dtype=ctx.dtype, reference=on))
    return rows

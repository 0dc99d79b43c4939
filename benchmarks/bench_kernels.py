"""Time every tinymeta kernel compiled (numba) against its NumPy twin.

    python benchmarks/bench_kernels.py [--json PATH] [--quick] [--dtype float32] [--sweep]

Per kernel and size, the median over repeats of the per-call time of:
- numpy: the NumPy twin (the best NumPy expression we found; the reference);
- kernel: the compiled kernel writing into outputs passed in. This is how the
  issue that set the goals measured (NumPy time / kernel time), so the speed-up
  and goal columns use it;
- wrapper: the compiled path allocating its outputs, as the engine calls it;
- dispatch: the public ``tinymeta.kernels`` function (dtype/layout checks, then
  the wrapper), i.e. what a caller really pays.
Then the cold start of a fresh process calling every kernel once, with an
empty numba cache and again with that cache warm.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import tinymeta.kernels as K  # noqa: E402

# Lower ends of the speed-ups the kernels issue measured for a serial numba kernel on
# this machine (NumPy time / kernel time): each kernel must reach them at its size.
GOALS = {"relu": 3.0, "relu_backward": 2.0, "tanh_backward": 2.0, "sigmoid_backward": 2.0,
         "softmax_xent 128x10": 3.4, "softmax_xent 25x5": 7.6,
         "linear_act 10x1->40 relu": 3.3, "linear_act 25x40->40 relu": 1.5,
         "adam_update": 5.0, "sgd_update": 5.0, "rmsprop_update": 5.0, "adagrad_update": 5.0}


def goal_for(name, size):
    return GOALS.get(f"{name} {size}", GOALS.get(name))


def per_call_us(fn, repeat, target_s):
    """Median seconds per call, timeit-style: calibrate a loop count, then repeat."""
    fn()
    fn()  # warm-up: compile/load and touch the caches
    loops = 1
    while True:
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - t >= target_s / 5 or loops >= 1 << 20:
            break
        loops *= 2
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        runs.append((time.perf_counter() - t) / loops)
    return statistics.median(runs) * 1e6


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
        losses, d = np.empty(n, dt), np.empty((n, c), dt)
        return (lambda f: lambda: f(z, lab)), (lambda nb: lambda: nb.softmax_xent_into(z, lab, losses, d))

    def mse(shape, lead):
        p, t = arr(*shape), arr(*shape)
        g, out, res = arr(*shape[:lead]), np.empty(max(1, int(np.prod(shape[:lead]))), dt), np.empty(shape, dt)
        return ((lambda f: lambda: f(p, t, lead)), (lambda nb: lambda: nb._mse(p, t, out.size, out)),
                (lambda f: lambda: f(g, p, t, lead)), (lambda nb: lambda: nb._mse_backward(g, p, t, res)))

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
        raws = {"sgd_update": lambda nb, p, g, st: (nb._sgd, (p, g, st[0], 1e-3, 0.9, 0.0, False, 1e-4, False)),
                "adam_update": lambda nb, p, g, st: (nb._adam, (p, g, *st, 1e-3, 0.9, 0.999, 1e-8, 0.0, False,
                                                                1 - 0.9 ** 10, 1 - 0.999 ** 10)),
                "rmsprop_update": lambda nb, p, g, st: (nb._rmsprop, (p, g, st[0], p, 1e-3, 0.99, 1e-8, 0.0, 0.0)),
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


COLD = """
import time; t0 = time.perf_counter()
import numpy as np, tinymeta.kernels as K
x = np.linspace(-1, 1, 12).reshape(3, 4); p, g = x.copy(), x * 0.1
K.relu(x); K.relu_backward(g, x); K.tanh_backward(g, x); K.sigmoid_backward(g, x)
K.bias_act(x.copy(), x[0].copy(), "relu"); K.softmax_xent(x, np.array([0, 1, 3]))
K.linear_act(x, x, None, "relu"); K.mse(x, x * 2, 1); K.mse_backward(x[:, 0].copy(), x, x * 2, 1)
K.sgd_update(p, g, np.zeros_like(p), 0.1, 0.9, 0.0, False, 0.0, True)
K.adam_update(p, g, np.zeros_like(p), np.zeros_like(p), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1)
K.rmsprop_update(p, g, np.zeros_like(p), 1e-3, 0.99, 1e-8, 0.0, 0.0, None)
K.adagrad_update(p, g, np.zeros_like(p), 1e-2, 1e-10, 0.0)
assert len(K.info()["compiled"]) == len(K.NAMES) or not K.enabled(), K.info()
print(time.perf_counter() - t0)
"""


def cold_start():
    """Seconds for import + one call of every kernel in a fresh process."""
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT)
        for label, extra in (("empty_cache", {}), ("warm_cache", {}),
                             ("jit_off", {"TINYMETA_JIT": "0"})):
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", COLD], env=dict(env, **extra),
                               capture_output=True, text=True, check=True)
            res[label] = {"in_process_s": float(r.stdout.split()[-1]),
                          "wall_s": time.perf_counter() - t}
    return res


def sweep(dt, repeat, target):
    """Elementwise kernels through the public API, JIT on vs off, 1 to 4M elements:
    the evidence for (not) having size thresholds in tinymeta.kernels."""
    print(f"\nsize sweep, {np.dtype(dt).name}, public API, us per call: numpy / numba")
    print(f"{'n':>8}" + "".join(f"{n:>24}" for n in ("relu", "relu_backward", "tanh_backward",
                                                      "sigmoid_backward")))
    rng = np.random.default_rng(0)
    for n in (1, 10, 100, 1000, 10**4, 10**5, 10**6, 4 * 10**6):
        g, out = rng.standard_normal(n).astype(dt), rng.random(n).astype(dt)
        cells = []
        for name in ("relu", "relu_backward", "tanh_backward", "sigmoid_backward"):
            f = getattr(K, name)
            call = (lambda: f(g)) if name == "relu" else (lambda: f(g, out))
            times = []
            for on in (False, True):
                K.set_enabled(on)
                times.append(per_call_us(call, repeat, target))
            cells.append(f"{times[0]:10.2f} /{times[1]:10.2f}")
        print(f"{n:>8}" + "".join(f"{c:>24}" for c in cells))
    K.set_enabled(True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--json", metavar="PATH", help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    ap.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    ap.add_argument("--sweep", action="store_true", help="also sweep elementwise sizes 1..4M")
    args = ap.parse_args()
    repeat, target = (5, 0.02) if args.quick else (11, 0.1)
    dt = np.dtype(args.dtype).type

    K._impl("relu", True)  # fail early if numba is unusable
    from tinymeta.kernels import _numba as nb
    rows = []
    print(f"{args.dtype}, median of {repeat} repeats, microseconds per call; speed-up = numpy / kernel")
    print(f"{'kernel':<17}{'size':<15}{'numpy':>9}{'kernel':>9}{'speed-up':>9}{'goal':>10}"
          f"{'wrapper':>9}{'dispatch':>10}")
    missed = 0
    for name, size, make, raw in cases(dt):
        public, twin, wrapper = getattr(K, name), K._impl(name, False), K._impl(name, True)
        t_np = per_call_us(make(twin), repeat, target)
        if name == "linear_act":
            t_np = min(t_np, per_call_us(make(lambda x, w, b, act: np.maximum(x @ w.T + b, 0)),
                                         repeat, target))
        t_k = per_call_us(raw(nb), repeat, target)
        t_w = per_call_us(make(wrapper), repeat, target)
        t_dp = per_call_us(make(public), repeat, target)
        goal = goal_for(name, size)
        met = goal is None or t_np / t_k >= goal
        missed += not met
        rows.append(dict(kernel=name, size=size, numpy_us=t_np, kernel_us=t_k, speedup=t_np / t_k,
                         goal=goal, goal_met=met, wrapper_us=t_w, dispatch_us=t_dp))
        mark = "" if goal is None else f">={goal:g} " + ("ok" if met else "MISSED")
        print(f"{name:<17}{size:<15}{t_np:9.2f}{t_k:9.2f}{t_np / t_k:8.2f}x{mark:>10}{t_w:9.2f}{t_dp:10.2f}")
    print(f"goals: {len(rows) - missed} of {len(rows)} met")

    if args.sweep:
        sweep(dt, repeat, target)
    cold = cold_start()
    print("\ncold start (fresh process: import + one call of each kernel):")
    for label, r in cold.items():
        print(f"  {label:<12} {r['in_process_s']:.2f} s in process, {r['wall_s']:.2f} s wall")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dtype": args.dtype, "numba": K.info()["numba_version"],
                       "rows": rows, "cold_start": cold}, f, indent=1)


if __name__ == "__main__":
    main()

"""Time every tinymeta kernel compiled (numba) against its NumPy twin.

    python benchmarks/bench_kernels.py [--json PATH] [--quick] [--dtype float32] [--sweep]

Per kernel and size: median over repeats of the per-call time of the raw NumPy
twin, the raw numba wrapper, and the public dispatcher (which applies the size
thresholds in tinymeta.kernels, so "dispatch" shows what the engine gets).
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
    """(kernel, size label, make) where make(f) returns a no-arg callable running f."""
    rng = np.random.default_rng(0)

    def arr(*shape, pos=False):
        a = rng.standard_normal(shape).astype(dt)
        return np.abs(a) + dt(0.1) if pos else a

    def elementwise(name, shape):
        x = arr(*shape)
        out = {"relu_backward": np.maximum(x, 0), "tanh_backward": np.tanh(x),
               "sigmoid_backward": 1 / (1 + np.exp(-x))}.get(name)
        g = arr(*shape)
        return (lambda f: lambda: f(x)) if name == "relu" else (lambda f: lambda: f(g, out))

    def bias(shape):
        y, b = arr(*shape), arr(shape[-1])
        return lambda f: lambda: f(y, b, "relu")

    def xent(n, c):
        z, lab = arr(n, c), rng.integers(0, c, n)
        return lambda f: lambda: f(z, lab)

    def optim(name, shapes):
        # One "step" updates every parameter tensor of the model.
        params = []
        for s in shapes:
            p, g = arr(*s), arr(*s) * dt(0.01)
            state = {"sgd_update": lambda: (np.zeros_like(p),),
                     "adam_update": lambda: (np.zeros_like(p), np.zeros_like(p)),
                     "rmsprop_update": lambda: (np.zeros_like(p),),
                     "adagrad_update": lambda: (np.zeros_like(p),)}[name]()
            params.append((p, g, state))
        args = {"sgd_update": lambda p, g, st: (p, g, st[0], 1e-3, 0.9, 0.0, False, 1e-4, False),
                "adam_update": lambda p, g, st: (p, g, *st, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 10),
                "rmsprop_update": lambda p, g, st: (p, g, st[0], 1e-3, 0.99, 1e-8, 0.0, 0.0, None),
                "adagrad_update": lambda p, g, st: (p, g, st[0], 1e-2, 1e-10, 0.0)}[name]
        calls = [args(*t) for t in params]

        def make(f):
            def step():
                for a in calls:
                    f(*a)
            return step
        return make

    out = []
    for name in ("relu", "relu_backward", "tanh_backward", "sigmoid_backward"):
        for shape in ((25, 40), (128, 256)):
            out.append((name, "%dx%d" % shape, elementwise(name, shape)))
    for shape in ((25, 40), (128, 256)):
        out.append(("bias_act", "%dx%d relu" % shape, bias(shape)))
    for n, c in ((128, 10), (25, 5)):
        out.append(("softmax_xent", f"{n}x{c}", xent(n, c)))
    for name in ("adam_update", "sgd_update", "rmsprop_update", "adagrad_update"):
        out.append((name, "40x40+40", optim(name, [(40, 40), (40,)])))
        out.append((name, "784x256", optim(name, [(784, 256)])))
    return out


COLD = """
import time; t0 = time.perf_counter()
import numpy as np, tinymeta.kernels as K
x = np.linspace(-1, 1, 12).reshape(3, 4); p, g = x.copy(), x * 0.1
K.relu(x); K.relu_backward(g, x); K.tanh_backward(g, x); K.sigmoid_backward(g, x)
K.bias_act(x.copy(), x[0].copy(), "relu"); K.softmax_xent(x, np.array([0, 1, 3]))
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
    rows = []
    print(f"{args.dtype}, median of {repeat} repeats, microseconds per call")
    print(f"{'kernel':<17}{'size':<15}{'numpy':>9}{'numba':>9}{'speedup':>9}{'dispatch':>10}")
    for name, size, make in cases(dt):
        t_np = per_call_us(make(K._impl(name, False)), repeat, target)
        t_nb = per_call_us(make(K._impl(name, True)), repeat, target)
        t_dp = per_call_us(make(getattr(K, name)), repeat, target)
        rows.append(dict(kernel=name, size=size, numpy_us=t_np, numba_us=t_nb,
                         speedup=t_np / t_nb, dispatch_us=t_dp))
        print(f"{name:<17}{size:<15}{t_np:9.2f}{t_nb:9.2f}{t_np / t_nb:8.2f}x{t_dp:10.2f}")

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

"""Workload 5: cold start. A fresh Python process, timed inside it from just before
``import tinymeta`` (NumPy not yet imported) to the end of the first training step of a
small MLP (1-40-40-1 ReLU, MSE on 25 points, Adam), in seconds. Three ways:
- warm numba cache: NUMBA_CACHE_DIR points at a temp folder filled by a first run;
- empty numba cache: a fresh temp folder each time (every kernel compiles);
- TINYMETA_JIT=0: NumPy only, numba never imported.
The peers' rows (import + the same first step; JAX's includes its jit compile) sit beside
the warm-cache case. "wall" in the JSON is the whole process as seen from outside
(interpreter start-up and exit included). Check: the first loss.

The per-kernel workload (kernel_ops.py) times one more script here: import
``tinymeta.kernels`` and call every kernel once (its check: how many ran compiled)."""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import tinymeta as tm

from .harness import row, skipped

W = "cold"

_DATA = """
g = np.random.default_rng(0)
x = g.uniform(-5, 5, (25, 1)).astype(np.float32)
y = np.sin(x).astype(np.float32)
"""

SCRIPTS = {
    "tinymeta": """
import tinymeta as tm
from tinymeta import nn, optim
from tinymeta.nn import functional as F
import numpy as np
{data}
model = nn.MLP([1, 40, 40, 1], activation="relu", rng=0, dtype=np.float32)
opt = optim.Adam(model.parameters(), lr=1e-3)
loss = F.mse_loss(model(x), y)
opt.zero_grad()
loss.backward()
opt.step()
loss = float(loss.item())
""",
    "torch": """
import numpy as np
import torch
{data}
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(1, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40),
                            torch.nn.ReLU(), torch.nn.Linear(40, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss = torch.nn.functional.mse_loss(model(torch.from_numpy(x)), torch.from_numpy(y))
opt.zero_grad()
loss.backward()
opt.step()
loss = float(loss.item())
""",
    "jax": """
import numpy as np
import jax
import jax.numpy as jnp
{data}
k = jax.random.split(jax.random.PRNGKey(0), 3)
ps = []
for i, (a, b) in enumerate([(1, 40), (40, 40), (40, 1)]):
    bound = 1 / a ** 0.5
    ps += [jax.random.uniform(k[i], (b, a), minval=-bound, maxval=bound), jnp.zeros(b)]
def f(p, x, y):
    h = jnp.maximum(x @ p[0].T + p[1], 0)
    h = jnp.maximum(h @ p[2].T + p[3], 0)
    return jnp.mean((h @ p[4].T + p[5] - y) ** 2)
@jax.jit
def step(p, m, v, x, y):
    l, g = jax.value_and_grad(f)(p, x, y)
    m = [0.1 * gi for gi in g]
    v = [0.001 * gi * gi for gi in g]
    p = [pi - 1e-3 * (mi / 0.1) / (jnp.sqrt(vi / 0.001) + 1e-8) for pi, mi, vi in zip(p, m, v)]
    return p, m, v, l
ps, m, v, loss = step(ps, [jnp.zeros_like(p) for p in ps], [jnp.zeros_like(p) for p in ps], x, y)
loss = float(loss)
""",
    "autograd": """
import numpy as np
import autograd
import autograd.numpy as anp
{data}
g0 = np.random.default_rng(1)
ps = []
for a, b in [(1, 40), (40, 40), (40, 1)]:
    bound = 1 / a ** 0.5
    ps += [g0.uniform(-bound, bound, (b, a)).astype(np.float32), np.zeros(b, np.float32)]
def f(p):
    h = anp.maximum(anp.dot(x, p[0].T) + p[1], 0)
    h = anp.maximum(anp.dot(h, p[2].T) + p[3], 0)
    return anp.mean((anp.dot(h, p[4].T) + p[5] - y) ** 2)
loss, g = autograd.value_and_grad(f)(ps)
m = [0.1 * gi for gi in g]
v = [0.001 * gi * gi for gi in g]
ps = [p - 1e-3 * (mi / 0.1) / (np.sqrt(vi / 0.001) + 1e-8) for p, mi, vi in zip(ps, m, v)]
loss = float(loss)
""",
}

# Import + one call of every kernel (tiny inputs): what a cold start pays for the kernels alone.
SCRIPTS["kernels"] = """
import numpy as np
import tinymeta.kernels as K
x = np.linspace(-1, 1, 12).reshape(3, 4); p, g = x.copy(), x * 0.1
K.relu(x); K.relu_backward(g, x); K.tanh_backward(g, x); K.sigmoid_backward(g, x)
K.bias_act(x.copy(), x[0].copy(), "relu"); K.softmax_xent(x, np.array([0, 1, 3]))
K.linear_act(x, x, None, "relu"); K.mse(x, x * 2, (1,)); K.mse_backward(x[:, 0].copy(), x, x * 2, (1,))
K.sgd_update(p, g, np.zeros_like(p), 0.1, 0.9, 0.0, False, 0.0, True)
K.adam_update(p, g, np.zeros_like(p), np.zeros_like(p), 1e-3, 0.9, 0.999, 1e-8, 0.0, False, 1)
K.rmsprop_update(p, g, np.zeros_like(p), 1e-3, 0.99, 1e-8, 0.0, 0.0, None)
K.adagrad_update(p, g, np.zeros_like(p), 1e-2, 1e-10, 0.0)
assert len(K.info()["compiled"]) == len(K.NAMES) or not K.enabled(), K.info()
loss = float(len(K.info()["compiled"]))
"""

_WRAP = """import json, time
_c0, _t0 = time.process_time(), time.perf_counter()
{body}
_t1, _c1 = time.perf_counter(), time.process_time()
print("BENCH_RESULT " + json.dumps({{"seconds": _t1 - _t0, "cpu": _c1 - _c0, "loss": loss}}))
"""


def run_once(impl: str, env_extra: dict) -> dict:
    """Run SCRIPTS[impl] in a fresh Python; returns {seconds, cpu, loss} measured inside it
    and the process's whole "wall" time. The child imports the same tinymeta as this process."""
    code = _WRAP.format(body=SCRIPTS[impl].format(data=_DATA))
    env = dict(os.environ)
    source = os.path.dirname(os.path.dirname(os.path.abspath(tm.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([source] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(env_extra)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    wall = time.perf_counter() - t0
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if p.returncode != 0 or line is None:
        raise RuntimeError(f"cold start of {impl} failed (exit {p.returncode}): "
                           f"{p.stderr.strip()[-800:]}")
    out = json.loads(line[len("BENCH_RESULT "):])
    out["wall"] = wall
    return out


def _stats(results, key):
    xs = [r[key] for r in results]
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "reps": len(xs)}


def cold_row(workload: str, case: str, impl: str, results, **kw) -> dict:
    """A row from several cold starts: medians of the in-process time, CPU time and wall time."""
    t = _stats(results, "seconds")
    w = _stats(results, "wall")
    t["cpu_median"] = _stats(results, "cpu")["median"]
    return row(workload, case, impl, t, "s", check=[results[0]["loss"]], rtol=1e-5,
               wall_median=w["median"], wall_min=w["min"], wall_max=w["max"], **kw)


def run(ctx):
    reps = 1 if ctx.quick else 7
    reps_empty = 1 if ctx.quick else 5
    rows = []
    tmp = tempfile.mkdtemp(prefix="tinymeta-bench-cold-")
    try:
        warm_dir = os.path.join(tmp, "warm")
        if "TINYMETA_JIT" in os.environ:
            ctx.note("TINYMETA_JIT is set in the environment; cold-start rows override it")

        def tinymeta(n, cache, jit="1"):
            return [run_once("tinymeta", {"NUMBA_CACHE_DIR": cache, "TINYMETA_JIT": jit}) for _ in range(n)]
        # The first empty-cache run fills warm_dir; the others get fresh folders.
        empty = tinymeta(1, warm_dir)
        rows.append(cold_row(W, "warm numba cache", "tinymeta", tinymeta(reps, warm_dir)))
        for impl in ("torch", "jax", "autograd"):
            if impl not in ctx.peers:
                continue
            if ctx.peer(impl) is None:
                rows.append(skipped(W, "warm numba cache", impl, f"{impl} not installed"))
                continue
            res = [run_once(impl, {}) for _ in range(reps)]
            r = cold_row(W, "warm numba cache", f"{impl} (import + first step)", res,
                         note="its own init: loss not comparable")
            r.pop("check")
            rows.append(r)
        for i in range(1, reps_empty):
            empty += tinymeta(1, os.path.join(tmp, f"empty{i}"))
        rows.append(cold_row(W, "empty numba cache", "tinymeta", empty))
        off = tinymeta(reps, os.path.join(tmp, "unused"), jit="0")
        rows.append(cold_row(W, "TINYMETA_JIT=0", "tinymeta", off))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows

"""Where a fused kernel earns its call: a traced chain of elementwise ops (float32), replayed
unfused (one NumPy ufunc call per op) and fused (one numba loop, ``Program.fuse``), over
chain lengths and sizes; then the MAML meta-iteration compiled
with and without fusion, in interleaved rounds. Ratio = fused time / unfused time (below 1:
fusing pays). ``tinymeta/tape/fusion.py``'s rule (fuse every chain of two or more ops)
comes from this table."""

import numpy as np

import tinymeta as tm

from .common import mlp_init, sinusoid_batches
from .harness import row
from .maml import N_BATCHES, SIZES, tinymeta_compiled_maker
from .timing import measure_interleaved

W = "fusion"
LENGTHS = (2, 3, 5)
SIZES_QUICK = (100, 4096, 100_000)
SIZES_FULL = (10, 100, 1000, 4096, 10_000, 100_000, 1_000_000)


def chain(k):
    """k elementwise ops alternating * y and + 0.5, the shape of a derivative program's lines."""
    def fn(x, y):
        for i in range(k):
            x = x * y if i % 2 == 0 else x + 0.5
        return x
    return fn


def chain_programs(k, n):
    """(unfused replay, fused replay, their arrays) for the chain of k ops on n floats."""
    rng = np.random.default_rng(0)
    x, y = (tm.Tensor(rng.standard_normal(n).astype(np.float32)) for _ in range(2))
    unfused = tm.trace(chain(k), x, y)
    fused = tm.trace(chain(k), x, y)
    if fused.fuse(x, y) != 1:
        raise RuntimeError(f"the chain of {k} ops on {n} floats was not fused")
    arrays = unfused._leaf_arrays([x, y], check=True)
    return unfused._replay, fused._replay, arrays


def run(ctx):
    rows = []
    if not tm.kernels.enabled():
        ctx.note("numba is unavailable: nothing is fused, the fusion workload is skipped")
        return rows
    for k in LENGTHS:
        for n in (SIZES_QUICK if ctx.quick else SIZES_FULL):
            case = f"{k} ops, {n} floats"
            unfused, fused, arrays = chain_programs(k, n)
            check = [float(np.asarray(unfused(*arrays)[0]).sum())]
            t = measure_interleaved({"unfused": lambda: unfused(*arrays), "fused": lambda: fused(*arrays)},
                                    ctx.budget, scale=1e6)
            rows.append(row(W, case, "replay, unfused", t["unfused"], "us", check=check, reference=True))
            rows.append(row(W, case, "replay, fused", t["fused"], "us",
                            check=[float(np.asarray(fused(*arrays)[0]).sum())], rtol=1e-5))
    init = mlp_init(SIZES, seed=0, dtype=np.float32)
    batches = sinusoid_batches(N_BATCHES, 25, seed=3)
    on, _ = tinymeta_compiled_maker(init, batches, False, fuse=True)
    off, _ = tinymeta_compiled_maker(init, batches, False, fuse=False)
    checks = {"on": [on() for _ in range(3)], "off": [off() for _ in range(3)]}
    t = measure_interleaved({"on": on, "off": off}, ctx.budget, scale=1e3)
    kernels = sum(len(p.fused) for progs in on.jitted.cache.values() for p in progs if hasattr(p, "fused"))
    rows.append(row(W, "MAML second order (tm.jit)", "compiled, unfused", t["off"], "ms", check=checks["off"],
                    reference=True))
    rows.append(row(W, "MAML second order (tm.jit)", "compiled, fused", t["on"], "ms", check=checks["on"],
                    rtol=1e-4, note=f"{kernels} fused kernels"))
    return rows

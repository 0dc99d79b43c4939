"""Before and after, side by side: the same eager workloads timed on two source trees.

    python benchmarks/compare_versions.py /path/to/old/checkout [--rounds 5]

Each round runs this file's workloads once in a fresh process per tree (alternating, so a
busy machine slows both alike) with PYTHONPATH pointing at that tree; the table gives each
workload's median over the rounds and the ratio new/old. Only public API is used, so any
two versions that have it can be compared (a refactor must not make these slower).
"""
import argparse
import json
import os
import subprocess
import sys

WORKLOADS = r'''
import json, time, numpy as np
from threadpoolctl import threadpool_limits
threadpool_limits(1)
import tinymeta as tm
from tinymeta import meta, nn, optim
from tinymeta.nn import functional as F

def median_time(fn, n, warm=10):
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return float(np.median(ts))

out = {}
x = tm.tensor(np.random.default_rng(0).random(4), dtype="float64", requires_grad=True)
def chain():                                  # 150 small ops and their backward
    y = x
    for _ in range(50):
        y = (y * 1.0001 + 0.1).tanh()
    y.sum().backward()
out["per-op, us/op"] = median_time(chain, 300) / 150 * 1e6

model = nn.MLP([1, 40, 40, 1], rng=0)
maml = meta.MAML(model, inner_lr=0.01, inner_steps=1)
opt = optim.Adam(maml.parameters(), lr=1e-3)
batches = [meta.tasks.Sinusoid(k_support=10, k_query=10).sample(25, rng=i) for i in range(10)]
it = iter(range(10 ** 9))
def maml_step():
    loss = maml.meta_loss(batches[next(it) % 10]); opt.zero_grad(); loss.backward(); opt.step()
out["MAML 2nd order, ms"] = median_time(maml_step, 300) * 1e3

m2 = nn.MLP([1, 40, 40, 1], rng=1)
xs = np.random.default_rng(1).standard_normal((25, 1)).astype(np.float32)
ys = np.sin(xs)
ps = [p.data for p in m2.parameters()]
names = [n for n, _ in m2.named_parameters()]
vs = [np.ones_like(p) for p in ps]
def loss_of(*p):
    return F.mse_loss(nn.functional_call(m2, dict(zip(names, p)), xs), ys)
out["HVP, us"] = median_time(lambda: tm.func.hvp(loss_of, tuple(ps), tuple(vs)), 300) * 1e6

big = nn.MLP([784, 256, 256, 10], rng=0)
bopt = optim.Adam(big.parameters(), lr=1e-3)
X = np.random.default_rng(2).standard_normal((128, 784)).astype(np.float32)
Y = np.random.default_rng(3).integers(0, 10, 128)
def mlp_step():
    loss = F.cross_entropy(big(X), Y); bopt.zero_grad(); loss.backward(); bopt.step()
out["MLP 784-256-256-10 step, ms (1 BLAS thread)"] = median_time(mlp_step, 60) * 1e3
print(json.dumps(out))
'''


def run_once(tree):
    env = {**os.environ, "PYTHONPATH": os.path.abspath(tree), "TINYMETA_JIT": os.environ.get("TINYMETA_JIT", "1")}
    proc = subprocess.run([sys.executable, "-c", WORKLOADS], cwd=os.path.abspath(tree), env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"the workloads failed on {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="the source tree to compare against (a checkout of another commit)")
    ap.add_argument("--new", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."),
                    help="the source tree measured as 'new' (default: this checkout)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    args = ap.parse_args(argv)
    results = {"old": [], "new": []}
    for r in range(args.rounds):
        for which, tree in (("old", args.old), ("new", args.new)):
            results[which].append(run_once(tree))
            print(f"round {r + 1}/{args.rounds}: {which} done", file=sys.stderr, flush=True)
    import numpy as np
    print(f"{'workload':<46} {'old':>9} {'new':>9} {'new/old':>8}")
    for key in results["old"][0]:
        old = float(np.median([d[key] for d in results["old"]]))
        new = float(np.median([d[key] for d in results["new"]]))
        print(f"{key:<46} {old:>9.3f} {new:>9.3f} {new / old:>8.2f}")
    print(f"(medians of {args.rounds} alternating rounds; load average {os.getloadavg()})")


if __name__ == "__main__":
    main()

"""tinymeta's benchmarks, side by side with PyTorch, JAX and HIPS autograd when installed.

    python benchmarks/run.py                       every workload; writes results/bench.json
    python benchmarks/run.py --only maml --peers none
    python benchmarks/run.py --quick --peers none  a smoke test (seconds, not minutes)

Workloads run one after another, each implementation after the other, in one process
(cold starts run fresh subprocesses). Every row: median of many repetitions (after a
warm-up), min-max, and ratio = time / the reference's time in the same case (tinymeta's,
or for kernels the compiled one: > 1 means the reference is faster). The "check" column
holds each implementation's loss (and gradient norm) on identical data and
initialisation, so the table shows that the implementations agree. Goals: goals.py.
"""
import argparse
import importlib
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if __name__ == "__main__":
    # Run as a script: import this checkout's tinymeta and the benchmarks as a package (not
    # this folder's modules as top-level names, which could shadow others).
    sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

from benchmarks import goals  # noqa: E402
from benchmarks.harness import PEERS  # noqa: E402

# name -> (module, its run function): the order of a full run.
WORKLOADS = {"per_op": ("per_op", "run"), "mlp": ("mlp", "run"), "maml": ("maml", "run"),
             "hvp": ("hvp", "run"), "cold": ("cold", "run"), "kernels": ("kernels_on_off", "run"),
             "kernel_ops": ("kernel_ops", "run"), "fusion": ("fusion", "run"), "scaling": ("scaling", "run"),
             "kernel_sweep": ("kernel_ops", "run_sweep")}
DEFAULT = [w for w in WORKLOADS if w != "kernel_sweep"]  # the sweep takes long and is not in the README table
RESULTS = os.path.join(ROOT, "results", "bench.json")
_THREAD_MARK = "_TINYMETA_BENCH_THREADS"


def _list(choices, allow_none=False):
    def parse(text):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if allow_none and items == ["none"]:
            return []
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(bad) or 'empty list'}; choose from {','.join(choices)}"
                + ("|none" if allow_none else ""))
        return items
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0],
                                epilog=goals.describe())
    p.add_argument("--quick", action="store_true", help="short measurements and fewer sizes (smoke test)")
    p.add_argument("--json", metavar="PATH",
                   help="write every row and the environment header here (default: results/bench.json "
                        "for a full run of the default workloads; nothing for --quick or --only, so a "
                        "partial run never overwrites the full results)")
    p.add_argument("--only", type=_list(tuple(WORKLOADS)), default=DEFAULT,
                   help=f"comma-separated workloads, of {','.join(WORKLOADS)} "
                        "(default: all but kernel_sweep)")
    p.add_argument("--peers", type=_list(PEERS, allow_none=True), default=list(PEERS),
                   help="comma-separated peers to compare with, or none (default: every one installed; "
                        "a missing one is skipped with a note)")
    p.add_argument("--dtype", default="float64", choices=("float64", "float32"),
                   help="dtype of the kernel_ops and kernel_sweep workloads (default float64)")
    p.add_argument("--plots", metavar="DIR", help="write the scaling plots (PNG) here")
    p.add_argument("--threads", type=int, metavar="N",
                   help="set OPENBLAS/OMP/MKL_NUM_THREADS=N (re-running in a fresh process so NumPy "
                        "sees it) and torch.set_num_threads(N)")
    return p


def _reexec_with_threads(argv, n: int) -> int:
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(n)
    env[_THREAD_MARK] = str(n)
    print(f"benchmarks: re-running in a fresh process with OPENBLAS/OMP/MKL_NUM_THREADS={n}",
          file=sys.stderr, flush=True)
    return subprocess.call([sys.executable, os.path.abspath(__file__), *argv], env=env)


def run_workloads(ctx, names):
    """Run the named workloads in order; returns (rows, failed names, extra JSON data)."""
    from benchmarks import harness
    rows, failed, extra = [], [], {}
    for name in WORKLOADS:
        if name not in names:
            continue
        harness.log(f"== {name}")
        t0 = time.perf_counter()
        module, fn = WORKLOADS[name]
        try:
            out = getattr(importlib.import_module(f"benchmarks.{module}"), fn)(ctx)
        except Exception as e:  # keep going: one broken workload must not hide the rest
            import traceback
            traceback.print_exc()
            ctx.note(f"workload {name} failed: {type(e).__name__}: {e}")
            failed.append(name)
            continue
        if isinstance(out, tuple):  # (rows, extra data such as scaling curves)
            out, extra[name] = out
        rows.extend(harness.finish_group(out))
        harness.log(f"   {name} took {time.perf_counter() - t0:.1f} s; load {os.getloadavg()}")
    return rows, failed, extra


def main(argv=None) -> int:
    """Run the benchmarks; returns the exit code (0, 1 if a workload failed, 2 on bad arguments)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("benchmarks: --threads must be >= 1", file=sys.stderr)
            return 2
        if os.environ.get(_THREAD_MARK) != str(args.threads):
            return _reexec_with_threads(argv, args.threads)
    json_path = args.json
    if json_path is None and not args.quick and args.only == DEFAULT:
        json_path = RESULTS

    from benchmarks import harness, report
    ctx = harness.Context(args.quick, args.peers, threads=args.threads, plots=args.plots, dtype=args.dtype)
    header = harness.environment(dict(vars(args)))
    header["budget"] = ctx.budget.to_json()
    print(f"benchmarks ({'quick' if args.quick else 'full'}): workloads {','.join(args.only)}; "
          f"peers {','.join(args.peers) or 'none'}; load average {header['loadavg_start']}; "
          f"{os.cpu_count()} cores", flush=True)
    t_all = time.perf_counter()
    rows, failed, extra = run_workloads(ctx, args.only)
    header["loadavg_end"] = list(os.getloadavg())
    header["peer_versions"] = ctx.versions()
    header["seconds"] = round(time.perf_counter() - t_all, 1)

    print()
    print(report.everything(rows, extra))
    print()
    print(f"load average: start {header['loadavg_start']}, end {header['loadavg_end']} "
          f"({os.cpu_count()} cores); took {header['seconds']} s")
    for n in ctx.notes:
        print(f"note: {n}")
    if json_path:
        harness.write_json(json_path, header, rows, {"notes": ctx.notes, **extra})
        print(f"wrote {json_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

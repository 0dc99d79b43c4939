"""tinymeta's benchmarks, side by side with PyTorch, JAX and HIPS autograd when installed.

    tinymeta bench [--quick] [--json PATH] [--only per_op,mlp,maml,hvp,cold,kernels,scaling]
                   [--peers torch,jax,autograd|none] [--plots DIR] [--threads N]
    python benchmarks/run_all.py ...      (the same)

Workloads run one after another, each implementation after the other, in one process
(cold start runs fresh subprocesses). Every row: median of many repetitions (after a
warm-up), min-max, and ratio = time / tinymeta's time in the same case (> 1: tinymeta is
faster). The "check" column holds each implementation's loss (and gradient norm) on
identical data and initialisation, so the table shows that the implementations agree.
"""
import argparse
import importlib
import os
import subprocess
import sys
import time

WORKLOADS = ("per_op", "mlp", "maml", "hvp", "cold", "kernels", "scaling")
_MODULES = {"per_op": "per_op", "mlp": "mlp", "maml": "maml", "hvp": "hvp", "cold": "cold",
            "kernels": "jit_effect", "scaling": "scaling"}
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


def build_parser():
    from .common import PEERS
    p = argparse.ArgumentParser(
        prog="tinymeta bench", description=__doc__.split("\n\n")[0],
        epilog="Goals (from the issues): per-op <= 4 us, MLP step <= 1.5 ms, MAML <= 1.1 ms (2nd order) "
               "and <= 0.7 ms (1st), HVP <= 400 us, cold start <= 1 s warm cache / 4 s empty.")
    p.add_argument("--quick", action="store_true", help="short measurements and fewer sizes (smoke test)")
    p.add_argument("--json", metavar="PATH", help="write every row and the environment header here")
    p.add_argument("--only", type=_list(WORKLOADS), default=list(WORKLOADS),
                   help=f"comma-separated subset of {','.join(WORKLOADS)}")
    p.add_argument("--peers", type=_list(PEERS, allow_none=True), default=list(PEERS),
                   help="comma-separated peers to compare with, or none (default: all installed)")
    p.add_argument("--plots", metavar="DIR", help="write the scaling plots (PNG) here")
    p.add_argument("--threads", type=int, metavar="N",
                   help="set OPENBLAS/OMP/MKL_NUM_THREADS=N (re-running the harness in a fresh "
                        "process so NumPy sees it) and torch.set_num_threads(N)")
    return p


def _reexec_with_threads(argv, n):
    env = dict(os.environ)
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(n)
    env[_THREAD_MARK] = str(n)
    print(f"tinymeta bench: re-running in a fresh process with OPENBLAS/OMP/MKL_NUM_THREADS={n}",
          file=sys.stderr, flush=True)
    return subprocess.call([sys.executable, "-m", "tinymeta.bench", *argv], env=env)


def main(argv=None):
    """Run the benchmarks; returns the exit code (0, or 1 if a workload failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # `tinymeta bench -- --quick ...`
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            print("tinymeta bench: --threads must be >= 1", file=sys.stderr)
            return 2
        if os.environ.get(_THREAD_MARK) != str(args.threads):
            return _reexec_with_threads(argv, args.threads)

    from . import harness, report
    from .common import Context
    ctx = Context(args.quick, args.peers, threads=args.threads, plots=args.plots)
    header = harness.environment({k: v for k, v in vars(args).items()})
    header["budget"] = ctx.budget.to_json()
    print(f"tinymeta bench ({'quick' if args.quick else 'full'}): workloads {','.join(args.only)}; "
          f"peers {','.join(args.peers) or 'none'}; load average {header['loadavg_start']}; "
          f"{os.cpu_count()} cores", flush=True)
    rows, failed, extra = [], [], {}
    t_all = time.perf_counter()
    for name in WORKLOADS:
        if name not in args.only:
            continue
        harness.log(f"== {name}")
        t0 = time.perf_counter()
        try:
            mod = importlib.import_module(f".{_MODULES[name]}", __name__)
            out = mod.run(ctx)
        except Exception as e:  # keep going: one broken workload must not hide the rest
            import traceback
            traceback.print_exc()
            ctx.note(f"workload {name} failed: {type(e).__name__}: {e}")
            failed.append(name)
            continue
        if isinstance(out, tuple):  # (rows, extra data such as scaling curves)
            out, more = out
            extra[name] = more
        out = harness.finish_group(out)
        if name == "kernels":
            out = mod.speedup_goal(out)
        rows.extend(out)
        harness.log(f"   {name} took {time.perf_counter() - t0:.1f} s; load {os.getloadavg()}")
    header["loadavg_end"] = list(os.getloadavg())
    header["peer_versions"] = ctx.versions()
    header["seconds"] = round(time.perf_counter() - t_all, 1)

    print()
    print(harness.table([r for r in rows if r["workload"] != "scaling"]))
    if "scaling" in extra:
        print()
        print(report.scaling_text(extra["scaling"]))
    summary = report.summary(rows)
    if summary:
        print()
        print(summary)
    print()
    print(f"load average: start {header['loadavg_start']}, end {header['loadavg_end']} "
          f"({os.cpu_count()} cores); took {header['seconds']} s")
    for n in ctx.notes:
        print(f"note: {n}")
    if args.json:
        harness.write_json(args.json, header, rows, {"notes": ctx.notes, **extra})
        print(f"wrote {args.json}")
    return 1 if failed else 0

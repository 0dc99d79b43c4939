"""Timing, the environment header, agreement checks, the table and the JSON.

A measurement: warm-up calls first (compilation, caches), then one calibration call
decides how many timed repetitions fit in the time budget (clamped to [min_reps,
max_reps]); each repetition times one call with ``time.perf_counter``. We report the
median, the min and the max of those repetitions.
"""
import gc
import json
import math
import os
import platform
import statistics
import sys
import time

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "XLA_FLAGS", "NUMBA_NUM_THREADS", "NUMBA_CACHE_DIR",
               "TINYMETA_JIT", "OPENBLAS_CORETYPE")


class Budget:
    """How long to spend on one measurement."""

    def __init__(self, quick):
        self.quick = quick
        self.warmup_s = 0.03 if quick else 0.3
        self.target_s = 0.1 if quick else 1.0
        self.min_reps = 3 if quick else 20
        self.max_reps = 300 if quick else 20000

    def to_json(self):
        return {"warmup_s": self.warmup_s, "target_s": self.target_s, "min_reps": self.min_reps,
                "max_reps": self.max_reps}


def measure(fn, budget, per=1.0, scale=1.0):
    """Time ``fn()``; returns {median, min, max, reps} in seconds * scale / per.

    ``per`` divides each time (ops per call for microseconds per op); ``scale``
    converts the unit (1e3 for ms, 1e6 for us). ``cpu_median``: the median CPU time of
    the process (all its threads) per call: on a loaded machine wall time includes the
    time other processes held the core, CPU time does not (but it counts threads that
    spin while waiting)."""
    # Warm-up: at least 2 calls, at most ~warmup_s.
    t_end = time.perf_counter() + budget.warmup_s
    for i in range(1000):
        fn()
        if i >= 1 and time.perf_counter() > t_end:
            break
    gc.collect()
    t0 = time.perf_counter()
    fn()
    first = max(time.perf_counter() - t0, 1e-7)
    reps = int(min(budget.max_reps, max(budget.min_reps, budget.target_s / first)))
    times, cpus = [], []
    pc, cpu = time.perf_counter, time.process_time
    for _ in range(reps):
        c0 = cpu()
        t0 = pc()
        fn()
        t1 = pc()
        cpus.append(cpu() - c0)
        times.append(t1 - t0)
    k = scale / per
    return {"median": statistics.median(times) * k, "min": min(times) * k, "max": max(times) * k,
            "reps": reps, "cpu_median": statistics.median(cpus) * k}


# ----------------------------------------------------------------------------- environment

def environment(args_dict):
    import numpy as np
    env = {k: os.environ.get(k) for k in THREAD_VARS if k in os.environ}
    info = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "argv": args_dict,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env_threads": env,
        "numpy": np.__version__,
    }
    try:
        cfg = np.show_config(mode="dicts")
        info["numpy_blas"] = cfg.get("Build Dependencies", {}).get("blas")
    except Exception as e:  # older NumPy prints instead of returning
        info["numpy_blas"] = f"unavailable ({type(e).__name__})"
    try:
        import threadpoolctl
        info["threadpools"] = [{k: d.get(k) for k in ("user_api", "internal_api", "num_threads",
                                                     "version", "threading_layer")}
                               for d in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    import tinymeta
    from tinymeta import kernels
    info["tinymeta"] = tinymeta.__version__
    info["kernels"] = {k: v for k, v in kernels.info().items()}
    return info


# ----------------------------------------------------------------------------- agreement

def agree(a, b, rtol):
    """Whether two check vectors (lists of floats) agree within rtol (relative to scale)."""
    if a is None or b is None or len(a) != len(b):
        return None
    for x, y in zip(a, b):
        if not (math.isfinite(x) and math.isfinite(y)):
            return False
        if abs(x - y) > rtol * max(abs(x), abs(y), 1e-12) + 1e-12:
            return False
    return True


# ----------------------------------------------------------------------------- table

def _fmt(v):
    if v is None:
        return "-"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 10:
        return f"{v:.2f}"
    if a >= 1:
        return f"{v:.3f}"
    return f"{v:.3g}"


def _fmt_check(c):
    if not c:
        return "-"
    return " ".join(f"{x:.6g}" for x in c)


def table(rows):
    """The long table: one line per (workload, case, implementation)."""
    head = ["workload", "case", "implementation", "median", "min-max", "cpu", "unit", "ratio",
            "goal", "check (agrees?)"]
    lines = []
    for r in rows:
        if r.get("skipped"):
            lines.append([r["workload"], r.get("case", ""), r["impl"], "skipped", "", "", "", "",
                          "", r["skipped"]])
            continue
        goal = ""
        if r.get("goal") is not None:
            goal = f"<= {r['goal']:g} {'met' if r.get('goal_met') else 'MISSED'}"
        if r.get("goal_text"):
            goal = r["goal_text"]
        ag = r.get("agrees")
        chk = _fmt_check(r.get("check"))
        if ag is not None:
            chk += "  (yes)" if ag else "  (NO)"
        lines.append([r["workload"], r.get("case", ""), r["impl"], _fmt(r["median"]),
                      f"{_fmt(r['min'])}-{_fmt(r['max'])}", _fmt(r.get("cpu_median")), r["unit"],
                      "ref" if r.get("reference") else _fmt(r.get("ratio")), goal, chk])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)] if lines else []
    out = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    prev = None
    for ln in lines:
        key = (ln[0], ln[1])
        if prev is not None and key != prev:
            out.append("")
        prev = key
        out.append("  ".join(str(x).ljust(w) for x, w in zip(ln, widths)).rstrip())
    return "\n".join(out)


def finish_group(rows, ref_impl="tinymeta", rtol=1e-3):
    """Fill ratio (peer / reference: > 1 means the reference, tinymeta, is faster), goal
    status and agreement of the check values, within each (workload, case)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], r.get("case", "")), []).append(r)
    for grp in groups.values():
        ref = next((r for r in grp if r.get("reference")), None)
        if ref is None:
            ref = next((r for r in grp if r["impl"] == ref_impl and not r.get("skipped")), None)
            if ref is not None:
                ref["reference"] = True
        for r in grp:
            if r.get("skipped") or ref is None:
                continue
            r["ratio"] = r["median"] / ref["median"] if ref["median"] else None
            if r.get("goal") is not None:
                r["goal_met"] = bool(r["median"] <= r["goal"])
            tol = r.get("rtol", rtol)
            if r is not ref and r.get("check") is not None and ref.get("check") is not None:
                r["agrees"] = agree(r["check"], ref["check"], tol)
    return rows


def write_json(path, header, rows, extra):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump({"header": header, "rows": rows, **extra}, f, indent=1, default=_json_default)
        f.write("\n")


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def log(msg):
    print(msg, file=sys.stderr, flush=True)

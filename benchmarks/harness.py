"""What every workload shares: the run context (time budget, peers imported on demand with a
note when one is missing), the rows, the environment header, the agreement checks, the
ratios and goals of each group of rows, and the JSON."""
import importlib
import json
import math
import os
import platform
import sys
import time

from . import goals
from .timing import Budget

PEERS = ("torch", "jax", "autograd")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "XLA_FLAGS", "NUMBA_NUM_THREADS", "NUMBA_CACHE_DIR",
               "TINYMETA_JIT", "OPENBLAS_CORETYPE")


def log(msg: str) -> None:
    """Progress, on stderr (stdout carries the tables)."""
    print(msg, file=sys.stderr, flush=True)


class Context:
    """One run's settings (quick or full, peers wanted, BLAS threads, where plots go, the
    per-kernel dtype) and the notes collected on the way."""

    def __init__(self, quick: bool, peers, threads=None, plots=None, dtype="float64"):
        self.quick = quick
        self.budget = Budget.standard(quick)
        self.peers = list(peers)
        self.threads = threads
        self.plots = plots
        self.dtype = dtype
        self.notes = []
        self._mods = {}

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log(f"note: {text}")

    def peer(self, name: str):
        """The peer's module, or None (with a note) when it is not wanted or not installed."""
        if name not in self.peers:
            return None
        if name in self._mods:
            return self._mods[name]
        mod = None
        try:
            if name == "jax":
                os.environ.setdefault("JAX_PLATFORMS", "cpu")
                mod = importlib.import_module("jax")
                mod.config.update("jax_enable_x64", True)  # the per-op chain is float64
                importlib.import_module("jax.numpy")
            elif name == "torch":
                mod = importlib.import_module("torch")
                if self.threads:
                    mod.set_num_threads(self.threads)
            elif name == "autograd":
                mod = importlib.import_module("autograd")
                importlib.import_module("autograd.numpy")
        except Exception as e:  # ImportError, or a broken install
            self.note(f"{name} unavailable ({type(e).__name__}: {e}); its column is skipped "
                      "(pip install -e '.[bench]')")
            mod = None
        self._mods[name] = mod
        return mod

    def skip_missing(self, rows, workload, case, impl, name):
        """Add a 'skipped' row for peer ``name`` if it was wanted (and is missing)."""
        if name in self.peers:
            rows.append(skipped(workload, case, impl, f"{name} not installed"))

    def versions(self) -> dict:
        out = {}
        for name in self.peers:
            m = self._mods.get(name)
            if m is not None:
                out[name] = getattr(m, "__version__", "?")
                if name == "torch":
                    out["torch_threads"] = m.get_num_threads()
                    out["torch_interop_threads"] = m.get_num_interop_threads()
        return out


def row(workload: str, case: str, impl: str, timing: dict, unit: str, check=None, **kw) -> dict:
    """One table row: an implementation's timing in one case, its check values, and
    tinymeta's goal for the case (from goals.py) when it is tinymeta's row."""
    r = {"workload": workload, "case": case, "impl": impl, "unit": unit, **timing}
    if check is not None:
        r["check"] = [float(c) for c in check]
    goal = goals.limit(workload, case)
    if impl == "tinymeta" and goal is not None and "goal" not in kw:
        r["goal"] = goal
    r.update(kw)
    return r


def skipped(workload: str, case: str, impl: str, why: str) -> dict:
    return {"workload": workload, "case": case, "impl": impl, "skipped": why}


# ----------------------------------------------------------------------------- environment

def environment(args_dict: dict) -> dict:
    """The header of the JSON: versions, BLAS, thread settings, load, the kernels' state."""
    import numpy as np
    import tinymeta as tm
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
        keys = ("user_api", "internal_api", "num_threads", "version", "threading_layer")
        info["threadpools"] = [{k: d.get(k) for k in keys} for d in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    info["tinymeta"] = tm.__version__
    info["kernels"] = dict(tm.kernels.info())
    return info


# ----------------------------------------------------------------------------- agreement, ratios, goals

def agree(a, b, rtol: float):
    """Whether two check vectors (lists of floats) agree within rtol (relative to scale);
    None when they cannot be compared."""
    if a is None or b is None or len(a) != len(b):
        return None
    for x, y in zip(a, b):
        if not (math.isfinite(x) and math.isfinite(y)):
            return False
        if abs(x - y) > rtol * max(abs(x), abs(y), 1e-12) + 1e-12:
            return False
    return True


def finish_group(rows, ref_impl: str = "tinymeta", rtol: float = 1e-3):
    """Within each (workload, case): pick the reference row (marked ``reference``, else
    tinymeta's), then fill each row's ratio (its time / the reference's: > 1 means the
    reference is faster), whether it met its goal (a limit on tinymeta's median, or a
    speed-up the non-reference row must show) and whether its check values agree with
    the reference's."""
    groups = {}
    for r in rows:
        groups.setdefault((r["workload"], r.get("case", "")), []).append(r)
    for (workload, case), grp in groups.items():
        _compiled_goal(workload, case, grp)
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
            least = r.get("speedup_goal", goals.speedup(workload, case))
            if r is not ref and least is not None and r["ratio"]:
                r["speedup_goal"] = least
                r["goal_met"] = bool(r["ratio"] >= least)
                r["goal_text"] = f"speed-up >= {least:g}x {'met' if r['goal_met'] else 'MISSED'}"
            tol = r.get("rtol", rtol)
            if r is not ref and r.get("check") is not None and ref.get("check") is not None:
                r["agrees"] = agree(r["check"], ref["check"], tol)
    return rows


def _compiled_goal(workload, case, grp):
    """The tape's goal: the compiled row's median over its peer's (goals.COMPILED_RATIOS)."""
    goal = goals.compiled_ratio(workload, case)
    if goal is None:
        return
    peer_impl, most = goal
    mine = next((r for r in grp if r["impl"] == goals.COMPILED and not r.get("skipped")), None)
    peers = [r for r in grp if r["impl"].startswith(peer_impl) and not r.get("skipped")]
    if mine is None:
        return
    if not peers:
        mine["goal_text"] = f"<= {most:g}x {peer_impl.split(' (')[0]}: no peer row"
        return
    peer = min(peers, key=lambda r: r["median"])
    peer_impl = peer["impl"]
    ratio = mine["median"] / peer["median"]
    mine.update(versus=peer_impl, versus_ratio=ratio, ratio_goal=most, goal_met=bool(ratio <= most))
    mine["goal_text"] = f"{ratio:.2f}x {peer_impl} (<= {most:g}x {'met' if ratio <= most else 'MISSED'})"


# ----------------------------------------------------------------------------- JSON

def write_json(path: str, header: dict, rows, extra: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"header": header, "rows": rows, **extra}, f, indent=1, default=_json_default)
        f.write("\n")


def _json_default(o):
    import numpy as np
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)

"""Compiling generated kernels: the loops ``tinymeta.tape.fusion`` writes for a chain of
elementwise ops.

numba caches a compiled function on disk only when it comes from a file, so each kernel's
source is written to a file named by its hash in the kernel cache folder and imported from
there: the first process compiles it (a few tenths of a second), later ones load it. A
kernel that cannot be written, imported or compiled is reported as None with the reason,
and the replay runs the chain unfused.
"""
import collections
import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

from . import _cache_choice, enabled

HEADER = ("import numpy as np\n"
          "from numba import njit\n\n"
          "from tinymeta.kernels._fusedlib import value\n\n"
          "# Written by tinymeta.tape.fusion: one loop for a chain of elementwise ops.\n"
          "# fastmath off and numpy's error model: each element rounds as NumPy's ufuncs do.\n")
JIT = "@njit(cache=True, error_model='numpy', fastmath=False, nogil=True)"

_loaded = {}      # digest -> function (this process)
failures = collections.deque(maxlen=100)  # why kernels were refused, newest last


def _folder():
    path = os.path.join(_cache_choice()[0], "fused")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        pass
    if os.access(path, os.W_OK):
        return path
    return tempfile.mkdtemp(prefix="tinymeta-fused-")  # a read-only install or cache


def compile_kernel(body: str, name: str = "kernel"):
    """The njit function ``name`` defined by ``body`` (Python source using ``np``), compiled
    or loaded from the cache; None when the JIT is off or compiling fails."""
    if not enabled():
        return None
    text = HEADER + "\n\n" + JIT + "\n" + body
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    fn = _loaded.get(digest)
    if fn is not None:
        return fn
    try:
        from . import _load, _jit
        if _jit is None:
            _load()  # sets NUMBA_CACHE_DIR before numba's import, as every kernel needs
        folder = _folder()
        path = os.path.join(folder, f"fused_{digest}.py")
        if not os.path.exists(path):
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)  # atomic: a concurrent process sees all of it or nothing
        modname = f"_tinymeta_fused_{digest}"
        spec = importlib.util.spec_from_file_location(modname, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module  # numba's cache locates functions through their module
        spec.loader.exec_module(module)
        fn = getattr(module, name)
    except Exception as exc:  # an unwritable folder, a numba that refuses the code
        failures.append(f"{name}: {type(exc).__name__}: {exc}")
        return None
    _loaded[digest] = fn
    return fn

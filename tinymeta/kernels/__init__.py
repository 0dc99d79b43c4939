"""Fused numba kernels for tinymeta's hot paths, each with a NumPy twin.

Every public function runs the compiled kernel when the JIT is enabled, numba
works and the inputs suit it (plain ndarrays of one float32/float64 dtype and
shape, C-contiguous); otherwise it runs the NumPy twin from ``_numpy.py``,
which is also the reference the tests hold the kernels to.

Importing this module does not import numba: importing it and loading the cached
kernels costs a good part of a second (the README's cold-start benchmark row), which
scripts that never train should not pay. numba is imported on the first kernel call, and
each kernel compiles (or loads from cache) on its own first call.

``TINYMETA_JIT=0`` in the environment turns the JIT off; ``set_enabled`` toggles
it at runtime. If numba is missing or a kernel fails to compile, the NumPy twin
takes over and one RuntimeWarning per process says why.
"""
import importlib.util
import os
import tempfile
import warnings

import numpy as np

from . import _numpy as _twin

NAMES = ("relu", "relu_backward", "tanh_backward", "sigmoid_backward", "bias_act",
         "linear_act", "softmax_xent", "mse", "mse_backward",
         "sgd_update", "adam_update", "rmsprop_update", "adagrad_update")

# Kernels compute forwards (of the op table's primitives, including the derivative
# primitives such as relu_backward and mse_grad, whose own rules stay in the table) and
# fused optimizer updates (whose rules are written once, in updates.py). None computes a
# derivative the op table also computes. Measured speed-ups, and the two size thresholds
# inside _numba.py (XENT_SPLIT, LINEAR_LOOPS), are in the README's "Kernels" section and
# come from `python benchmarks/run.py --only kernel_ops` (and `--only kernel_sweep`).

_HERE = os.path.dirname(os.path.abspath(__file__))
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_INTS = (np.dtype(np.int64), np.dtype(np.int32))

_want = os.environ.get("TINYMETA_JIT", "").strip().lower() not in ("0", "false", "no", "off")
_nb = None            # the _numba module once loaded
_jit = None           # name -> compiled wrapper; None = numba not tried yet, {} = unavailable
_numba_version = None
_reason = None        # why something fell back to NumPy, for info()
_warned = False
_compiled = set()     # kernels that have run compiled in this process
_cache = None         # (cache folder, must set NUMBA_CACHE_DIR), chosen once per process


class _Info(dict):
    def __str__(self):
        return "\n".join(f"{k:>16}: {v}" for k, v in self.items())


def set_enabled(flag):
    """Turn the compiled kernels on or off for this process."""
    global _want
    _want = bool(flag)


def enabled():
    """Whether calls will run compiled: wanted and numba usable.

    Before the first kernel call numba is only looked for, not imported, so
    asking stays cheap; a numba that is found but then fails to import turns
    this False from that call on.
    """
    if not _want:
        return False
    if _jit is None:
        try:
            return importlib.util.find_spec("numba") is not None
        except (ImportError, ValueError):
            return False
    return bool(_jit)


def info():
    """State of the JIT as a dict (its str() is a readable table)."""
    return _Info(
        numba_available=None if _jit is None else _nb is not None,
        numba_version=_numba_version,
        enabled=enabled(),
        compiled=sorted(_compiled),
        cache_dir=_cache_choice()[0],
        fallback_reason=_reason,
    )


def _writable(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


def _cache_dir():
    """(folder numba caches kernels in, whether we must point NUMBA_CACHE_DIR at it).

    numba's default is __pycache__ beside _numba.py; in a read-only install it
    finds no writable locator and fails with "no locator available", so we
    pick a per-user folder instead (or a temp one when HOME is read-only too).
    """
    env = os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return env, False
    default = os.path.join(_HERE, "__pycache__")
    if os.access(default if os.path.isdir(default) else _HERE, os.W_OK):
        return default, False
    for cand in (os.path.join(os.path.expanduser("~"), ".cache", "tinymeta", "numba"),
                 os.path.join(tempfile.gettempdir(), "tinymeta-numba")):
        if _writable(cand):
            return cand, True
    return tempfile.mkdtemp(prefix="tinymeta-numba-"), True


def _cache_choice():
    global _cache
    if _cache is None:
        _cache = _cache_dir()
    return _cache


def _fall_back(reason, name=None, stacklevel=4):
    global _reason, _warned
    _reason = reason
    if name is not None:
        _jit.pop(name, None)
    if not _warned:  # once per process, whatever the warnings filters say
        _warned = True
        warnings.warn(f"tinymeta.kernels: numba unavailable, using NumPy instead: {reason}",
                      RuntimeWarning, stacklevel=stacklevel)  # at the caller of a kernel


def _load():
    global _nb, _jit, _numba_version
    _jit = {}
    try:
        path, must_set = _cache_choice()
        if must_set:
            os.environ["NUMBA_CACHE_DIR"] = path
        import numba
        if must_set:  # numba reads the env var at its import; it may have come first
            numba.config.CACHE_DIR = path
        from . import _numba
    except Exception as e:  # ImportError, but a broken llvmlite can raise anything
        _fall_back(f"import failed ({type(e).__name__}: {e})", stacklevel=5)
        return
    _nb, _numba_version = _numba, numba.__version__
    _jit = {name: getattr(_numba, name) for name in NAMES}


def _kernel(name):
    """The compiled wrapper of kernel ``name``, or None (JIT off, numba missing, or retired)."""
    if not _want:
        return None
    if _jit is None:
        _load()
    return _jit.get(name)


def _run(name, fn, args):
    """``fn`` (kernel ``name`` compiled, or None) on ``args``; the twin when there is no
    compiled kernel or it refuses the arrays (it returns UNSUITED)."""
    if fn is not None:
        try:
            res = fn(*args)
        except Exception as e:
            # The twin decides whose fault it was: if it raises too (a label out of
            # range, say), that is the caller's error and the kernel stays; if it
            # succeeds, the kernel is broken (typing, lowering, cache) and retires.
            res = getattr(_twin, name)(*args)
            _fall_back(f"kernel {name!r} failed ({type(e).__name__}: {e})", name, stacklevel=5)
            return res
        if res is not _twin.UNSUITED:
            _compiled.add(name)
            return res
    return getattr(_twin, name)(*args)


def _dispatch(name, suits, *args):
    """Run kernel ``name`` compiled if wanted, possible and ``suits``; else its twin."""
    fn = None
    if suits and _want:  # _kernel(name), written out: this runs for every kernel call
        if _jit is None:
            _load()
        fn = _jit.get(name)
    return _run(name, fn, args)


def _impl(name, use_numba):
    """The raw NumPy twin or numba wrapper of one kernel, bypassing dispatch (tests, benchmarks)."""
    if not use_numba:
        return getattr(_twin, name)
    if _jit is None:
        _load()
    if _nb is None:
        raise RuntimeError(f"numba unavailable: {_reason}")
    return getattr(_nb, name)


def _same(a, *rest):
    """All plain ndarrays of one float32/float64 dtype and one shape, all C-contiguous."""
    # Written for speed: with four arrays (Adam) such checks were a third of a call on a
    # small tensor.
    if not _floats(a, *rest) or not a.flags.c_contiguous:
        return False
    shape = a.shape
    for r in rest:
        if r.shape != shape or not r.flags.c_contiguous:
            return False
    return True


def _floats(p, *rest):
    """All plain ndarrays of one float32/float64 dtype. Dtypes are compared by identity
    first (the usual case) and only then by value: an unpickled array's dtype is equal
    but a distinct object."""
    if type(p) is not np.ndarray:
        return False
    dt = p.dtype
    if not (dt is _F64 or dt is _F32 or dt == _F64 or dt == _F32):
        return False
    for r in rest:
        if type(r) is not np.ndarray or (r.dtype is not dt and r.dtype != dt):
            return False
    return True


# ---- public API ----

def relu(x):
    """max(x, 0) as a new array of x's dtype (NaN stays NaN)."""
    return _dispatch("relu", _same(x), x)


def relu_backward(g, out):
    """g * (out > 0), where out is relu's output."""
    return _dispatch("relu_backward", _same(g, out), g, out)


def tanh_backward(g, out):
    """g * (1 - out*out), where out is tanh's output."""
    return _dispatch("tanh_backward", _same(g, out), g, out)


def sigmoid_backward(g, out):
    """g * out * (1 - out), where out is sigmoid's output."""
    return _dispatch("sigmoid_backward", _same(g, out), g, out)


def bias_act(y, b, act):
    """In place on y (..., n): y += b along the last axis (b (n,) or None), then act
    ("none" or "relu"). Returns y."""
    # size > 0 keeps the (-1, n) reshape of an empty y off the compiled path.
    suits = (_same(y) and y.ndim >= 1 and y.size > 0
             and (b is None or (isinstance(b, np.ndarray) and b.dtype == y.dtype
                                and b.shape == y.shape[-1:])))
    return _dispatch("bias_act", suits, y, b, act)


def linear_act(x, w, b, act):
    """act(x @ w.T + b) as a new (n, m) array: x (n, k), w (m, k), b (m,) or None, act
    "none" or "relu". Small layers run as one compiled loop (no BLAS call), larger ones
    as np.dot followed by bias_act."""
    suits = (_same(x) and x.ndim == 2 and type(w) is np.ndarray and w.dtype == x.dtype
             and w.ndim == 2 and w.flags.c_contiguous and w.shape[1] == x.shape[1]
             and (b is None or (type(b) is np.ndarray and b.dtype == x.dtype
                                and b.shape == w.shape[:1])))
    return _dispatch("linear_act", suits, x, w, b, act)


def _trailing(pred, target, axis):
    """k when mse reduces same-shape operands over axes k.. (the whole loss: 0, one per
    task: 1), which is what the compiled kernels do; else None (the twin does the rest)."""
    if type(pred) is not np.ndarray or type(target) is not np.ndarray or pred.shape != target.shape:
        return None
    if axis is None:
        return 0
    axes = sorted(axis)
    if axes and axes[0] > 0 and axes == list(range(axes[0], pred.ndim)):
        return axes[0]
    return None


def mse(pred, target, axis=None):
    """Mean of (pred - target)**2 over ``axis`` (None: all axes; else a tuple of
    non-negative axes); pred and target broadcast."""
    lead = _trailing(pred, target, axis)
    suits = lead is not None and _same(pred, target) and pred.size > 0
    return _dispatch("mse", suits, pred, target, axis)


def mse_backward(g, pred, target, axis=None):
    """The derivative of mse w.r.t. pred for upstream gradient g (mse's output shape):
    (g * 2/n) * (pred - target), n the number of elements each loss averages."""
    lead = _trailing(pred, target, axis)
    suits = (lead is not None and _same(pred, target) and pred.size > 0 and _floats(pred, g)
             and g.shape == pred.shape[:lead])
    return _dispatch("mse_backward", suits, g, pred, target, axis)


def softmax_xent(logits, labels):
    """Per-row cross-entropy of softmax(logits) against integer labels: losses (N,),
    stable for large logits (max-shifted). Its derivative is the op table's business."""
    suits = (_same(logits) and logits.ndim == 2 and isinstance(labels, np.ndarray)
             and labels.dtype in _INTS and labels.shape == logits.shape[:1])
    return _dispatch("softmax_xent", suits, logits, labels)


# The optimizer kernels check layout and shapes themselves, while numba types the
# call (free at run time, where four arrays' full checks in Python cost ~0.5 us); a
# refusal comes back as UNSUITED and runs the twin. Here only what numba could not
# even type (_floats): not an ndarray, or not one float32/float64 dtype (byte-swapped,
# float16).

def sgd_update(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first_step):
    """In-place SGD step on p (and buf, which may be None when momentum == 0), PyTorch rules."""
    suits = _floats(p, g, buf) if buf is not None else (momentum == 0 and _floats(p, g))
    return _dispatch("sgd_update", suits, p, g, buf, lr, momentum, dampening, nesterov,
                     weight_decay, first_step)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """In-place Adam (decoupled=False) or AdamW step; step counts from 1."""
    return _dispatch("adam_update", _floats(p, g, m, v), p, g, m, v, lr, beta1, beta2, eps,
                     weight_decay, decoupled, step)


def adam_update_many(items, lr, beta1, beta2, eps, weight_decay, decoupled):
    """adam_update on each (p, g, m, v, step) tuple of ``items``, in one call: what Adam.step
    runs. On small models the per-call dispatch cost as much as the arithmetic, so the
    compiled kernel is looked up once for all the tensors."""
    fn = _kernel("adam_update")
    for p, g, m, v, step in items:
        _run("adam_update", fn if _floats(p, g, m, v) else None,
             (p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step))


def rmsprop_update(p, g, sq, lr, alpha, eps, weight_decay, momentum, buf):
    """In-place RMSprop step on p, sq (and buf when momentum > 0)."""
    suits = _floats(p, g, sq, buf) if buf is not None else (not momentum > 0 and _floats(p, g, sq))
    return _dispatch("rmsprop_update", suits, p, g, sq, lr, alpha, eps, weight_decay,
                     momentum, buf)


def adagrad_update(p, g, s, lr, eps, weight_decay):
    """In-place Adagrad step on p and s."""
    return _dispatch("adagrad_update", _floats(p, g, s), p, g, s, lr, eps, weight_decay)


__all__ = list(NAMES) + ["adam_update_many", "NAMES", "set_enabled", "enabled", "info"]

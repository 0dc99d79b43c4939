"""Making tensors: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``randn``...

Random functions take ``rng``: an int seed or a ``np.random.Generator``; without one they
draw from tinymeta's global generator, reseeded by ``tm.manual_seed``.
"""
import numpy as np

from .checks import as_rng, manual_seed  # noqa: F401  (re-exported: tm.manual_seed)
from .engine import Tensor, _mode
from .errors import ArgumentError, DTypeError
from .errors import guard

def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ArgumentError(f"shape entries must be non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _dt(dtype):
    return _mode.default_dtype if dtype is None else np.dtype(dtype)


def _float_dt(dtype, where):
    dt = _dt(dtype)
    if dt.kind != "f":
        raise DTypeError(f"{where}: random samples need a floating dtype, got {dt} (casting would "
                         "truncate them); cast afterwards if you want integers")
    return dt


@guard
def tensor(data, dtype=None, requires_grad=False, name=None):
    """A new tensor; Python floats get the default dtype (float32 unless set)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)


@guard
def zeros(*shape, dtype=None, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), _dt(dtype)), requires_grad=requires_grad)


@guard
def ones(*shape, dtype=None, requires_grad=False):
    return Tensor(np.ones(_shape(shape), _dt(dtype)), requires_grad=requires_grad)


@guard
def full(shape, fill_value, dtype=None, requires_grad=False):
    shape = _shape((shape,) if isinstance(shape, (int, np.integer)) else (tuple(shape),))
    return Tensor(np.full(shape, fill_value, _dt(dtype)), requires_grad=requires_grad)


@guard
def zeros_like(t, dtype=None, requires_grad=False):
    d = np.asarray(t.data if isinstance(t, Tensor) else t)
    return Tensor(np.zeros(d.shape, dtype or d.dtype), requires_grad=requires_grad)


@guard
def ones_like(t, dtype=None, requires_grad=False):
    d = np.asarray(t.data if isinstance(t, Tensor) else t)
    return Tensor(np.ones(d.shape, dtype or d.dtype), requires_grad=requires_grad)


@guard
def arange(start, stop=None, step=1, dtype=None, requires_grad=False):
    if step == 0:
        raise ArgumentError("arange: step must not be 0")
    data = np.arange(start, stop, step) if stop is not None else np.arange(0, start, step)
    if dtype is not None or data.dtype.kind == "f":
        data = data.astype(_dt(dtype))
    return Tensor(data, requires_grad=requires_grad)


@guard
def linspace(start, stop, num=50, dtype=None, requires_grad=False):
    return Tensor(np.linspace(start, stop, num).astype(_dt(dtype)), requires_grad=requires_grad)


@guard
def eye(n, m=None, dtype=None, requires_grad=False):
    return Tensor(np.eye(n, m, dtype=_dt(dtype)), requires_grad=requires_grad)


@guard
def randn(*shape, rng=None, dtype=None, requires_grad=False):
    """Standard normal samples."""
    data = as_rng(rng).standard_normal(_shape(shape)).astype(_float_dt(dtype, "randn"))
    return Tensor(data, requires_grad=requires_grad)


@guard
def rand(*shape, rng=None, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    data = as_rng(rng).random(_shape(shape)).astype(_float_dt(dtype, "rand"))
    return Tensor(data, requires_grad=requires_grad)

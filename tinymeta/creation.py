"""Making tensors: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``randn``...

Random functions take ``rng``: an int seed or a ``np.random.Generator``; without one they
draw from tinymeta's global generator, reseeded by ``tm.manual_seed``.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

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
def tensor(data: ArrayLike | Tensor, dtype: DTypeLike | None = None, requires_grad: bool = False,
           name: str | None = None) -> Tensor:
    """A new tensor holding ``data``; Python floats get the default dtype (float32 unless set).

    Args:
        data: a number, nested list, NumPy array or Tensor (its data is taken, its graph is not).
        dtype: the NumPy dtype; ``None`` keeps an array's own dtype and gives Python floats the
            default dtype (``tm.get_default_dtype()``).
        requires_grad: make it a leaf whose gradient ``backward()`` fills in (float dtypes only).
        name: a label shown by ``tm.viz`` and in error messages.

    Returns:
        The new leaf tensor.

    Example:
        >>> x = tm.tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward(); x.grad
        tensor([2., 4.], dtype=float32)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)


@guard
def zeros(*shape: int | tuple[int, ...], dtype: DTypeLike | None = None,
          requires_grad: bool = False) -> Tensor:
    """A tensor of zeros: ``tm.zeros(2, 3)`` or ``tm.zeros((2, 3))``.

    Args:
        shape: the sizes, as separate ints or one tuple.
        dtype: the dtype (default: ``tm.get_default_dtype()``).
        requires_grad: make it a leaf that collects gradients.

    Returns:
        A new tensor of the given shape, filled with 0.
    """
    return Tensor(np.zeros(_shape(shape), _dt(dtype)), requires_grad=requires_grad)


@guard
def ones(*shape: int | tuple[int, ...], dtype: DTypeLike | None = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of ones: ``tm.ones(2, 3)`` or ``tm.ones((2, 3))``.

    Args:
        shape: the sizes, as separate ints or one tuple.
        dtype: the dtype (default: ``tm.get_default_dtype()``).
        requires_grad: make it a leaf that collects gradients.

    Returns:
        A new tensor of the given shape, filled with 1.
    """
    return Tensor(np.ones(_shape(shape), _dt(dtype)), requires_grad=requires_grad)


@guard
def full(shape: int | tuple[int, ...], fill_value: float, dtype: DTypeLike | None = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of the given shape with every entry ``fill_value``.

    Args:
        shape: an int or a tuple of sizes.
        fill_value: the value of every entry.
        dtype: the dtype (default: ``tm.get_default_dtype()``).
        requires_grad: make it a leaf that collects gradients.

    Returns:
        The new tensor, e.g. ``tm.full((2, 2), 0.5)``.
    """
    shape = _shape((shape,) if isinstance(shape, (int, np.integer)) else (tuple(shape),))
    return Tensor(np.full(shape, fill_value, _dt(dtype)), requires_grad=requires_grad)


@guard
def zeros_like(t: Tensor | ArrayLike, dtype: DTypeLike | None = None,
               requires_grad: bool = False) -> Tensor:
    """Zeros with the shape of ``t`` (a Tensor or array) and, unless ``dtype`` is given, its dtype.

    Returns:
        A new leaf tensor; it shares nothing with ``t`` and has no graph.
    """
    d = np.asarray(t.data if isinstance(t, Tensor) else t)
    return Tensor(np.zeros(d.shape, dtype or d.dtype), requires_grad=requires_grad)


@guard
def ones_like(t: Tensor | ArrayLike, dtype: DTypeLike | None = None,
              requires_grad: bool = False) -> Tensor:
    """Ones with the shape of ``t`` (a Tensor or array) and, unless ``dtype`` is given, its dtype.

    Returns:
        A new leaf tensor; it shares nothing with ``t`` and has no graph.
    """
    d = np.asarray(t.data if isinstance(t, Tensor) else t)
    return Tensor(np.ones(d.shape, dtype or d.dtype), requires_grad=requires_grad)


@guard
def arange(start: float, stop: float | None = None, step: float = 1,
           dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in ``[start, stop)``, as ``np.arange``; ``arange(n)`` is ``0 .. n-1``.

    Args:
        start: the first value (or, without ``stop``, the end, starting from 0).
        stop: the end, excluded.
        step: the spacing; must not be 0.
        dtype: the dtype; integer ranges stay integer unless a dtype is given, float ranges get
            the default dtype.
        requires_grad: make it a leaf that collects gradients (float dtypes only).

    Returns:
        A 1-d tensor, e.g. ``tm.arange(3)`` holds ``[0, 1, 2]``.
    """
    if step == 0:
        raise ArgumentError("arange: step must not be 0")
    data = np.arange(start, stop, step) if stop is not None else np.arange(0, start, step)
    if dtype is not None or data.dtype.kind == "f":
        data = data.astype(_dt(dtype))
    return Tensor(data, requires_grad=requires_grad)


@guard
def linspace(start: float, stop: float, num: int = 50, dtype: DTypeLike | None = None,
             requires_grad: bool = False) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop``, both included, as ``np.linspace``.

    Returns:
        A 1-d tensor of the default dtype unless ``dtype`` is given, e.g.
        ``tm.linspace(-5, 5, 100)`` for a plot's x axis.
    """
    return Tensor(np.linspace(start, stop, num).astype(_dt(dtype)), requires_grad=requires_grad)


@guard
def eye(n: int, m: int | None = None, dtype: DTypeLike | None = None,
        requires_grad: bool = False) -> Tensor:
    """The identity matrix: ones on the diagonal of an ``n`` x ``m`` matrix (``m`` defaults to ``n``).

    Returns:
        A 2-d tensor of the default dtype unless ``dtype`` is given.
    """
    return Tensor(np.eye(n, m, dtype=_dt(dtype)), requires_grad=requires_grad)


@guard
def randn(*shape: int | tuple[int, ...], rng: int | np.random.Generator | None = None,
          dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Samples of the standard normal distribution N(0, 1).

    Args:
        shape: the sizes, as separate ints or one tuple.
        rng: an int seed or a ``np.random.Generator``; ``None`` draws from tinymeta's global
            generator (reseeded by ``tm.manual_seed``).
        dtype: a floating dtype (default: ``tm.get_default_dtype()``).
        requires_grad: make it a leaf that collects gradients.

    Returns:
        A new tensor, e.g. ``tm.randn(3, 2, rng=0)``.
    """
    data = as_rng(rng).standard_normal(_shape(shape)).astype(_float_dt(dtype, "randn"))
    return Tensor(data, requires_grad=requires_grad)


@guard
def rand(*shape: int | tuple[int, ...], rng: int | np.random.Generator | None = None,
         dtype: DTypeLike | None = None, requires_grad: bool = False) -> Tensor:
    """Samples of the uniform distribution on [0, 1).

    Args:
        shape: the sizes, as separate ints or one tuple.
        rng: an int seed or a ``np.random.Generator``; ``None`` draws from tinymeta's global
            generator (reseeded by ``tm.manual_seed``).
        dtype: a floating dtype (default: ``tm.get_default_dtype()``).
        requires_grad: make it a leaf that collects gradients.

    Returns:
        A new tensor, e.g. ``tm.rand(4, rng=0)``.
    """
    data = as_rng(rng).random(_shape(shape)).astype(_float_dt(dtype, "rand"))
    return Tensor(data, requires_grad=requires_grad)

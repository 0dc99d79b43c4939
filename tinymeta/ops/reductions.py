"""Reductions: sum, max, min, logsumexp, and the softmax family along an axis.

A reduction's rule spreads the output gradient back over the reduced axes (reshape it to
keepdims form, then broadcast). ``mean`` and ``var`` are derived from ``sum``. Every
``axis`` is normalised once, by ``_reduce_args``: an int, a tuple or list of ints, or None
(all axes); out-of-range axes are refused, never wrapped.
"""
import numpy as np

from ..errors import ShapeError, guard
from ..engine import Tensor
from .core import Axis, TensorLike, as_tensor, astype, broadcast_to, count, defop, keepdims_shape, ndim, norm_axis
from .elementwise import equal, exp, isfinite, where
from .shape import reshape


def _reduce_args(x, axis: Axis = None, keepdims: bool = False):
    return (x,), {"axis": None if axis is None else norm_axis(axis, ndim(x), "reduction"),
                  "keepdims": keepdims is True or bool(keepdims)}


def _spread(g, a, axis, keepdims):
    """The output gradient of a reduction of ``a`` over ``axis``, in keepdims form."""
    if keepdims or axis is None:  # a total (0-d) broadcasts over any shape as it is
        return g
    return reshape.call(g, shape=keepdims_shape(a.shape, axis))


sum = defop("sum", lambda x, axis=None, keepdims=False: np.add.reduce(x, axis=axis, keepdims=keepdims),  # noqa: A001
            lambda g, o, a, axis=None, keepdims=False: broadcast_to.call(_spread(g, a, axis, keepdims), shape=a.shape),
            args=_reduce_args,
            doc="Sum over ``axis`` (an int, a tuple, or None for all axes).",
            src="np.sum({0}, axis={axis}, keepdims={keepdims})")


def _extreme_vjp(g, o, a, axis=None, keepdims=False):
    mask = astype(equal(a, reshape(o, keepdims_shape(a.shape, axis))), a.dtype)
    share = mask / sum(mask, axis=axis, keepdims=True)  # ties split the gradient evenly
    return _spread(g, a, axis, keepdims) * share


def _nonempty(reduce, what):
    def fwd(x, axis=None, keepdims=False):
        if x.size == 0:
            raise ShapeError(f"{what}: the tensor is empty, so it has no {what}imum")
        return reduce(x, axis=axis, keepdims=keepdims)
    return fwd


max = defop("max", _nonempty(np.max, "max"), _extreme_vjp, args=_reduce_args,  # noqa: A001
            doc="Largest value over ``axis``; ties share the gradient evenly.",
            src="np.max({0}, axis={axis}, keepdims={keepdims})")
min = defop("min", _nonempty(np.min, "min"), _extreme_vjp, args=_reduce_args,  # noqa: A001
            doc="Smallest value over ``axis``; ties share the gradient evenly.",
            src="np.min({0}, axis={axis}, keepdims={keepdims})")


@guard
def mean(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``. Derived: the sum divided by the number of elements summed."""
    x = as_tensor(x)
    axis = norm_axis(axis, x.ndim, "mean", scalar_ok=False)
    n = count(x.shape, axis)
    return sum(x, axis=axis, keepdims=keepdims) * (1.0 / n if n else np.nan)


@guard
def var(x: TensorLike, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance over ``axis``. Derived: the mean squared deviation (``ddof`` as in NumPy)."""
    x = as_tensor(x)
    axis = norm_axis(axis, x.ndim, "var", scalar_ok=False)
    n = count(x.shape, axis)
    d = x - mean(x, axis=axis, keepdims=True)
    # No degrees of freedom left (ddof >= n, or no values): NaN, as NumPy gives.
    return sum(d * d, axis=axis, keepdims=keepdims) * (1.0 / (n - ddof) if n - ddof > 0 else np.nan)


# ----------------------------------------------------------------------------- logsumexp and softmax


def _lse_fwd(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf row: lse is -inf, not NaN
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


def _lse_vjp(g, o, a, axis=None, keepdims=False):
    shape = keepdims_shape(a.shape, axis)
    return _spread(g, a, axis, keepdims) * exp(a - reshape(where(isfinite(o), o, 0.0), shape))


logsumexp = defop("logsumexp", _lse_fwd, _lse_vjp, args=_reduce_args,
                  doc="log(sum(exp(x))) over ``axis``, computed stably (max-shifted).",
            src="logsumexp({0}, axis={axis}, keepdims={keepdims})")


def _softmax_fwd(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _one_axis(x, axis: int = -1):
    return (x,), {"axis": norm_axis(axis, ndim(x), "softmax")}


softmax = defop("softmax", _softmax_fwd,
                lambda g, o, a, axis: o * (g - sum.call(g * o, axis=axis, keepdims=True)),
                args=_one_axis,
                doc="exp(x) / sum(exp(x)) along ``axis`` (default the last), max-shifted for stability.",
            src="softmax({0}, axis={axis})")
log_softmax = defop("log_softmax", lambda x, axis: x - _lse_fwd(x, axis=axis, keepdims=True),
                    lambda g, o, a, axis: g - exp(o) * sum.call(g, axis=axis, keepdims=True),
                    args=_one_axis,
                    doc="x - logsumexp(x) along ``axis`` (default the last): stable log-probabilities.",
            src="log_softmax({0}, axis={axis})")

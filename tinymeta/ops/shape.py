"""Shape and indexing ops: they move numbers around without changing them, so each rule
moves the gradient back (reshape undoes reshape, transpose the inverse permutation, an
index scatters into zeros, a concatenation slices).

``broadcast_to`` and ``sum_to``, each other's rule, live in ``core.py``: the machinery
itself uses them to undo broadcasting.
"""
import operator
from typing import Sequence

import numpy as np

from ..engine import Tensor
from ..errors import ShapeError, guard
from .core import Axis, Op, TensorLike, as_tensor, broadcast_to, check_axis, data, defop, norm_axis, norm_shape

# ----------------------------------------------------------------------------- reshape family

reshape = defop("reshape", np.reshape, lambda g, o, a, shape: reshape(g, a.shape), view=True,
                args=lambda x, *shape: ((x,), {"shape": norm_shape(shape)}),
                doc="``x`` with a new shape of the same size (a view when NumPy can make one); "
                    "the shape as ints or one tuple, -1 for one inferred size.",
            src="np.reshape({0}, {shape})")


def _transpose_args(x, *dims, axes=None):
    nd = np.ndim(data(x))
    if dims:
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            axes = tuple(dims[0])
        elif len(dims) == 2:
            d0, d1 = (check_axis(d, nd, "transpose") for d in dims)
            perm = list(range(nd))
            perm[d0], perm[d1] = perm[d1], perm[d0]
            axes = tuple(perm)
        else:
            raise ShapeError(f"transpose: give two axes to swap or one permutation, got {dims}")
    if axes is not None:
        axes = tuple(check_axis(a, nd, "transpose") for a in axes)
        if sorted(axes) != list(range(nd)):
            raise ShapeError(f"transpose: {axes} is not a permutation of the {nd} axes of a tensor "
                             f"of shape {np.shape(data(x))}")
    return (x,), {"axes": axes}


def _inverse(axes):
    return None if axes is None else tuple(int(i) for i in np.argsort(axes))


transpose = defop("transpose", np.transpose,
                  lambda g, o, a, axes=None: transpose(g, axes=_inverse(axes)),
                  view=True, args=_transpose_args,
                  doc="``transpose(x)`` reverses the axes; ``transpose(x, d0, d1)`` swaps two axes, "
                      "as in PyTorch; ``transpose(x, axes=perm)`` permutes them, as in NumPy.",
            src="np.transpose({0}, {axes})")


def swap_last2(x: TensorLike) -> Tensor:
    """``x`` with its last two axes swapped (a matrix transpose, batched)."""
    nd = np.ndim(data(x))
    axes = list(range(nd))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(x, axes=tuple(axes))


@guard
def expand(x: TensorLike, *shape: int) -> Tensor:
    """PyTorch's expand: ``broadcast_to`` where -1 keeps a dimension's size."""
    shape = norm_shape(shape)
    lead = len(shape) - np.ndim(data(x))
    shape = tuple(np.shape(data(x))[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    return broadcast_to(x, shape)


@guard
def squeeze(x: TensorLike, axis: Axis = None) -> Tensor:
    """Drop axes of size 1 (all of them, or those in ``axis``). Derived from reshape."""
    x = as_tensor(x)
    if axis is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    axes = norm_axis(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


@guard
def unsqueeze(x: TensorLike, axis: int) -> Tensor:
    """Insert an axis of size 1 at ``axis``. Derived from reshape."""
    x = as_tensor(x)
    axis = operator.index(axis)
    shape = list(x.shape)
    ax = axis if axis >= 0 else len(shape) + 1 + axis
    if not 0 <= ax <= len(shape):
        raise ShapeError(f"unsqueeze: axis {axis} is out of range for a tensor of shape {x.shape}")
    shape.insert(ax, 1)
    return reshape(x, shape)


@guard
def flatten(x: TensorLike, start_dim: int = 0) -> Tensor:
    """Merge the axes from ``start_dim`` on into one. Derived from reshape."""
    x = as_tensor(x)
    start = check_axis(start_dim, x.ndim or 1, "flatten")
    return reshape(x, x.shape[:start] + (-1,))


# ----------------------------------------------------------------------------- indexing


def _index_part(i):
    if type(i) is Tensor:
        return i.data
    if type(i) is list:
        return np.asarray(i)
    return i


def _index_key(idx):
    """Index parts as NumPy sees them; lists become arrays so scatter knows to add."""
    if type(idx) is tuple:
        return tuple(_index_part(i) for i in idx)
    return _index_part(idx)


def _has_array_index(idx):
    parts = idx if type(idx) is tuple else (idx,)
    return any(isinstance(i, np.ndarray) and i.dtype != bool for i in parts)


def _scatter_fwd(g, idx, shape):
    out = np.zeros(shape, dtype=g.dtype)
    if _has_array_index(idx):
        np.add.at(out, idx, g)  # repeated indices must add up, not overwrite
    else:
        out[idx] = g
    return out


getitem = defop("getitem", lambda x, idx: x[idx],
                lambda g, o, a, idx: scatter(g, idx, a.shape), view=True,
                args=lambda x, idx: ((x,), {"idx": _index_key(idx)}),
                doc="``x[idx]``: basic and integer-array indexing; repeated indices add up in the gradient.",
            src="{0}[{idx}]")
scatter = defop("scatter", _scatter_fwd,
                lambda gg, o, g, idx, shape: getitem(gg, idx),
                args=lambda g, idx, shape: ((g,), {"idx": idx, "shape": shape}),
                doc="Zeros of ``shape`` with ``g`` added at ``idx``: the rule of ``getitem``.",
            src="scatter({0}, {idx}, {shape})")


# ----------------------------------------------------------------------------- joining


class _Concat(Op):
    """Variadic: one gradient slice per input along ``axis``."""

    def vjp(self, g, out, inputs, need, kwargs):
        axis, grads, start = kwargs["axis"], [], 0
        for t, n in zip(inputs, need):
            size = np.shape(data(t))[axis]
            if n:
                sl = [slice(None)] * g.ndim
                sl[axis] = slice(start, start + size)
                grads.append(getitem(g, tuple(sl)))
            else:
                grads.append(None)
            start += size
        return grads


def _concat_args(tensors, axis=0):
    tensors = tuple(tensors)
    if not tensors:
        raise ShapeError("concatenate: needs at least one tensor")
    return tensors, {"axis": operator.index(axis)}


concatenate = defop("concatenate", None,
                    op=_Concat("concatenate", lambda *xs, axis=0: np.concatenate(xs, axis=axis), None,
                       src=lambda names, axis: f"np.concatenate([{', '.join(names)}], axis={axis})"),
                    args=_concat_args,
                    doc="Join tensors along an existing ``axis``.")


@guard
def stack(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new ``axis``. Derived: concatenate, each given a new axis."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)

"""Tensor's operators and methods, bound to the op table.

The engine defines ``Tensor`` without knowing any op (ops are built on the engine, so the
engine cannot import them); this module, loaded with the op table, gives Tensor its
``+``, ``@``, ``.sum()``, ``.T``... as HIPS autograd gives its ArrayBox its methods.
"""
import numpy as np

from ..engine import Tensor
from ..errors import ShapeError
from . import elementwise as E
from . import reductions as R
from . import shape as S
from .core import astype, broadcast_to
from .linalg import matmul


def _reflected(fn):
    return lambda a, b: fn(b, a)


def _mT(a):
    if a.ndim < 2:
        raise ShapeError(f".mT swaps the last two axes, but this tensor has shape {a.shape}; use .T or reshape")
    return S.swap_last2(a)


def _permute(a, *axes):
    return S.transpose(a, axes=tuple(axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes))


_OPERATORS = {
    "__add__": E.add, "__radd__": _reflected(E.add), "__sub__": E.sub, "__rsub__": _reflected(E.sub),
    "__mul__": E.mul, "__rmul__": _reflected(E.mul), "__truediv__": E.div, "__rtruediv__": _reflected(E.div),
    "__pow__": E.pow, "__rpow__": _reflected(E.pow), "__matmul__": matmul, "__rmatmul__": _reflected(matmul),
    "__neg__": E.neg, "__pos__": lambda a: a, "__abs__": E.abs, "__getitem__": S.getitem,
    "__lt__": E.less, "__le__": E.less_equal, "__gt__": E.greater, "__ge__": E.greater_equal,
    "__eq__": E.equal, "__ne__": E.not_equal,
}

_METHODS = (E.exp, E.log, E.sqrt, E.sin, E.cos, E.tanh, E.sigmoid, E.relu, E.softplus, E.leaky_relu,
            E.clip, E.abs, E.maximum, E.minimum, R.sum, R.mean, R.var, R.max, R.min, R.logsumexp,
            R.softmax, R.log_softmax, S.reshape, S.transpose, S.expand, broadcast_to, S.squeeze,
            S.unsqueeze, S.flatten, astype)

for _name, _fn in _OPERATORS.items():
    setattr(Tensor, _name, _fn)
for _fn in _METHODS:
    setattr(Tensor, _fn.__name__, _fn)  # a function in a class binds: t.sum(0) is sum(t, 0)

# NumPy ufuncs meeting a Tensor. Two cases matter:
# * ``array - tensor``, ``np.exp(tensor)``: run tinymeta's op, so the graph is kept;
# * ``p.data -= lr * p.grad`` (the micrograd/PyTorch idiom): NumPy asks the Tensor to
#   write into the array ``out``; doing it on plain arrays keeps ``p.data`` an ndarray
#   updated in place (Python's fallback would otherwise rebind it to a Tensor).
_UFUNC_OPS = {
    np.add: E.add, np.subtract: E.sub, np.multiply: E.mul, np.true_divide: E.div, np.power: E.pow,
    np.matmul: matmul, np.negative: E.neg, np.exp: E.exp, np.log: E.log, np.sqrt: E.sqrt,
    np.sin: E.sin, np.cos: E.cos, np.tanh: E.tanh, np.absolute: E.abs, np.maximum: E.maximum,
    np.minimum: E.minimum, np.less: E.less, np.less_equal: E.less_equal, np.greater: E.greater,
    np.greater_equal: E.greater_equal, np.equal: E.equal, np.not_equal: E.not_equal,
}


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    op = _UFUNC_OPS.get(ufunc)
    if op is not None and method == "__call__" and not kwargs:
        return op(*inputs)
    arrays = [x.data if type(x) is Tensor else x for x in inputs]
    if "out" in kwargs:
        kwargs["out"] = tuple(o.data if type(o) is Tensor else o for o in kwargs["out"])
    return getattr(ufunc, method)(*arrays, **kwargs)


Tensor.__array_ufunc__ = _array_ufunc
Tensor.T = property(lambda a: S.transpose(a), doc="The tensor with its axes reversed.")
Tensor.mT = property(_mT, doc="The tensor with its last two axes swapped.")
Tensor.permute = _permute
Tensor.view = Tensor.reshape
Tensor.float = lambda a: astype(a, np.float32) if a.dtype != np.float32 else a
Tensor.double = lambda a: astype(a, np.float64) if a.dtype != np.float64 else a

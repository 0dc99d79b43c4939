"""Tensors and the graph they leave behind: ``Tensor``, ``Node``, and the modes (``no_grad``,
the default dtype, ``detect_anomaly``).

Every op returns a ``Tensor`` and, when gradients are wanted, attaches a ``Node`` that
remembers the op and its inputs. The pass that walks those nodes backwards is in
``engine.py``.
"""
from __future__ import annotations


import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .errors import DTypeError, GraphError, InplaceError, ShapeError, translate

# ----------------------------------------------------------------------------- modes


class _Mode:
    grad_enabled = True
    anomaly = False
    default_dtype = np.dtype(np.float32)
    seq = 0           # creation counter: a node's inputs always have smaller numbers
    last_inplace = -1  # seq value at the latest in-place write anywhere
    tape = None       # the recorder of tm.trace while one runs (see tape.py), else None


_mode = _Mode()


class no_grad:
    """Context manager (and decorator) in which ops record no graph."""

    _enable = False

    def __enter__(self):
        self._prev = _mode.grad_enabled
        _mode.grad_enabled = self._enable

    def __exit__(self, *exc):
        _mode.grad_enabled = self._prev

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
        return wrapped


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside ``no_grad``."""

    _enable = True


def is_grad_enabled() -> bool:
    """Whether ops record a graph right now (``False`` inside ``tm.no_grad()``)."""
    return _mode.grad_enabled


class detect_anomaly:
    """Within this context, backward raises ``AnomalyError`` at the first op whose
    backward produces NaN or inf, naming the op and the input."""

    def __enter__(self):
        self._prev = _mode.anomaly
        _mode.anomaly = True

    def __exit__(self, *exc):
        _mode.anomaly = self._prev


def set_default_dtype(dtype: DTypeLike) -> None:
    """Set the dtype Python floats and new float tensors get (``'float32'`` unless set).

    Args:
        dtype: a floating dtype, e.g. ``'float64'`` for gradient checks.

    Raises:
        DTypeError: when ``dtype`` is not a floating dtype; the default is then unchanged.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"set_default_dtype: {dtype!r} is not a dtype; use 'float32' or 'float64'") from exc
    if dt.kind != "f":
        raise DTypeError(f"set_default_dtype: the default dtype must be a float dtype, got {dt}; "
                         "use 'float32' or 'float64'")
    _mode.default_dtype = dt


def get_default_dtype() -> np.dtype:
    """The dtype Python floats and new float tensors get (``float32`` unless set)."""
    return _mode.default_dtype


# ----------------------------------------------------------------------------- tensor


class Node:
    """How a tensor was made: the op, its inputs (tensors or constants), the op's keyword
    arguments, which inputs need a gradient, and when it was made.

    ``seq`` orders the graph: inputs are always older than the node that uses them, so
    sorting by ``seq`` is a topological sort, and an input written in place after ``seq``
    means the saved value is stale."""

    __slots__ = ("op", "inputs", "kwargs", "need", "seq")

    def __init__(self, op, inputs, kwargs, need):
        self.op = op
        self.inputs = inputs
        self.kwargs = kwargs
        self.need = need
        _mode.seq += 1
        self.seq = _mode.seq

    def __repr__(self):
        return f"<{self.op.name}Backward>"


def _check_float(data, where):
    if data.dtype.kind != "f":
        raise DTypeError(
            f"{where}: only floating-point tensors can require gradients, got dtype {data.dtype}; "
            f"convert first, e.g. tm.tensor(x, dtype='float32', requires_grad=True)")


class Tensor:
    """An n-dimensional array that can remember how it was computed.

    ``data`` is the ``np.ndarray``; ``grad`` is filled by ``backward()`` on leaves that
    require gradients (and accumulates across calls until ``zero_grad``). An op on tensors
    returns a tensor whose ``grad_fn`` (a ``Node``) remembers the op and its inputs, so the
    chain rule can run backwards through them: for ``y = f(x)`` and a scalar ``L``,
    ``dL/dx = (dL/dy) (dy/dx)``, one vector-Jacobian product per op.

    Args:
        data: a number, nested list, NumPy array or Tensor (its data is taken, not its graph).
        requires_grad: make this a leaf whose gradient ``backward()`` fills in (float dtypes only).
        dtype: the NumPy dtype; ``None`` keeps an array's dtype and gives Python floats the
            default dtype.
        name: a label shown by ``tm.viz`` and in error messages.

    Example:
        >>> a = tm.Tensor(2.0, requires_grad=True)
        >>> (a * a + a).backward(); a.grad.item()
        5.0
    """

    __slots__ = ("data", "requires_grad", "grad", "_node", "_vc", "name", "__weakref__")
    __array_priority__ = 1000  # make ndarray <op> Tensor call our reflected operators

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: DTypeLike | None = None,
                 name: str | None = None):
        if type(data) is Tensor:
            data = data.data
        arr = _to_array(data, dtype)
        self.data = arr
        self.grad = None
        self._node = None
        self._vc = [0, -1]  # [version, seq of last in-place write], shared with views
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)
        if _mode.tape is not None and arr is not data and isinstance(data, np.ndarray):
            _mode.tape.converted(data, self)  # a dtype conversion of a traced array: replayed too

    # -- properties users know from PyTorch
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._node is None)
    grad_fn = property(lambda self: self._node)
    _version = property(lambda self: self._vc[0])

    def __len__(self):
        if self.data.ndim == 0:
            raise DTypeError("len() of a 0-d tensor: it has no first axis; use .item()")
        return len(self.data)

    def __iter__(self):
        if self.data.ndim == 0:
            raise DTypeError("iteration over a 0-d tensor: it has no first axis; use .item()")
        return (self[i] for i in range(len(self.data)))

    def numel(self) -> int:
        """The number of elements."""
        return self.data.size

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Make this leaf collect gradients (or stop), in place; returns ``self``.

        Raises ``GraphError`` for ``flag=False`` on a non-leaf (use ``detach()``) and
        ``DTypeError`` for a non-float tensor."""
        if flag:
            _check_float(self.data, "requires_grad")
        if self._node is not None and not flag:
            raise GraphError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = bool(flag)
        return self

    def detach(self) -> Tensor:
        """A tensor sharing this one's data but cut from the graph."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t._node, t._vc, t.name, t.requires_grad = self.data, None, None, self._vc, None, False
        return t

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared, not copied)."""
        return self.data

    def item(self) -> int | float | bool:
        """The value of a one-element tensor as a Python number."""
        if _mode.tape is not None:
            _mode.tape.refuse_python_value(self, "item()")
        if self.data.size != 1:
            raise GraphError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self) -> list | int | float | bool:
        """The data as (nested) Python lists."""
        return self.data.tolist()

    def __repr__(self):
        extra = f", grad_fn={self._node!r}" if self._node is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20, prefix="tensor(")
        return f"tensor({body}{extra}, dtype={self.dtype})"

    def __bool__(self):
        if _mode.tape is not None:
            _mode.tape.refuse_python_value(self, "bool()")
        if self.data.size != 1:
            raise ShapeError(f"the truth value of a tensor with {self.data.size} elements (shape "
                             f"{self.shape}) is ambiguous; use (t > 0).any() or .all() style "
                             "reductions, or .item() for one element")
        return bool(self.data)

    def __float__(self):
        if _mode.tape is not None:
            _mode.tape.refuse_python_value(self, "float()")
        return float(self.item())

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__  # comparisons are elementwise, identity hashing stays

    # -- the public entry points to the backward pass
    # backward() is given to Tensor by engine.py, where the backward pass lives (this module
    # is below it: the graph's data structures, not the pass over them).

    # -- in-place updates: allowed only where no gradient can be corrupted
    def _write(self, what, fn, value):
        """Run an in-place NumPy write; its errors become tinymeta's, naming the method."""
        if _mode.tape is not None:
            _mode.tape.refuse_inplace(what)
        self._inplace(what, value)
        try:
            fn(self.data, _data(value))
        except Exception as exc:
            raise translate(what, (self, value), exc) from exc
        return self

    def _inplace(self, what, value=None):
        if _mode.grad_enabled and type(value) is Tensor and value.requires_grad:
            raise InplaceError(
                f"{what}: writing a tensor that requires grad into another in place records no "
                "graph, so its gradient would be silently lost; build the result out of place "
                "(tm.where, tm.concatenate, tm.stack), or detach() the value if no gradient is meant")
        if _mode.grad_enabled and self.requires_grad:
            raise InplaceError(
                f"{what}: in-place change of a tensor that requires grad would corrupt its "
                "gradient; write it out of place (x = x + y), or wrap parameter updates in "
                "`with tm.no_grad():`")
        self._bump_version()

    def _bump_version(self):
        """Record an in-place write (optimizers call this after updating ``data``)."""
        vc = self._vc
        vc[0] += 1
        vc[1] = _mode.last_inplace = _mode.seq

    def zero_(self) -> Tensor:
        """Set every entry to 0 in place (refused on tensors that require grad while grad is on)."""
        return self._write("zero_", _assign, 0)

    def fill_(self, value: float) -> Tensor:
        """Set every entry to ``value`` in place."""
        return self._write("fill_", _assign, value)

    def copy_(self, other: Tensor | ArrayLike) -> Tensor:
        """Copy ``other`` (broadcast to this shape) into this tensor in place."""
        return self._write("copy_", _assign, other)

    def add_(self, other: Tensor | ArrayLike, alpha: float = 1.0) -> Tensor:
        """``self += alpha * other`` in place; returns ``self``."""
        if alpha == 1.0:
            return self._write("add_", np.ndarray.__iadd__, other)
        return self._write("add_", lambda d, v: d.__iadd__(alpha * np.asarray(v)), other)

    def sub_(self, other: Tensor | ArrayLike, alpha: float = 1.0) -> Tensor:
        """``self -= alpha * other`` in place; returns ``self``."""
        if alpha == 1.0:
            return self._write("sub_", np.ndarray.__isub__, other)
        return self._write("sub_", lambda d, v: d.__isub__(alpha * np.asarray(v)), other)

    def mul_(self, other: Tensor | ArrayLike) -> Tensor:
        """``self *= other`` in place; returns ``self``."""
        return self._write("mul_", np.ndarray.__imul__, other)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self._write("div_", np.ndarray.__itruediv__, other)

    def __setitem__(self, idx, value):
        key = _data(idx) if type(idx) is Tensor else idx
        self._write("__setitem__", lambda d, v: d.__setitem__(key, v), value)


def _data(x):
    return x.data if type(x) is Tensor else x


def _assign(d, v):
    d[...] = v


_FORBIDDEN_KINDS = {"c": "complex", "O": "object", "U": "string", "S": "bytes", "V": "void",
                    "M": "datetime", "m": "timedelta"}


def _to_array(data, dtype=None):
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError as exc:
            raise DTypeError(f"tensor: {dtype!r} is not a dtype NumPy understands; use e.g. "
                             "'float32', 'float64' or 'int64'") from exc
    if isinstance(data, np.ndarray):
        arr = data if dtype is None or data.dtype == dtype else data.astype(dtype)
    else:
        try:
            arr = np.asarray(data)
        except ValueError as exc:  # NumPy >= 1.24 refuses ragged nesting outright
            raise ShapeError(f"tensor: cannot make a tensor from a ragged nested list (rows of "
                             f"different lengths): {exc}; pad the rows to one length") from exc
        if arr.dtype.kind == "O" and dtype is None:
            raise DTypeError(f"tensor: cannot make a numeric tensor from {type(data).__name__} "
                             "(ragged nested lists, or non-numbers); pass a rectangular list of numbers")
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":  # Python floats take the default dtype, as in PyTorch
            arr = arr.astype(_mode.default_dtype)
    if arr.dtype.kind in _FORBIDDEN_KINDS:
        raise DTypeError(f"tensor: {_FORBIDDEN_KINDS[arr.dtype.kind]} dtype {arr.dtype} is not supported; "
                         "tinymeta tensors hold bool, integer or floating-point numbers")
    return arr


def _wrap(data, node=None, vc=None):
    """Fast constructor used by ops: no checks, data already an ndarray."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t._node = node
    t._vc = [0, -1] if vc is None else vc
    t.name = None
    t.requires_grad = node is not None
    return t

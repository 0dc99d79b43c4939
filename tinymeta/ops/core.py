"""The machinery of the op table: ``Op``, ``defop`` and ``apply``.

A primitive is ``defop(name, forward, *vjps)``:

* ``forward(*arrays, **options)`` computes the result on plain NumPy arrays;
* ``vjps[i](g, out, *inputs, **options)`` returns the gradient for input ``i`` given the
  gradient ``g`` of the output. ``g``, ``out`` and the tensor inputs are Tensors and every
  rule is written with tinymeta's own ops, so the rules are themselves differentiable:
  that is all higher-order gradients need.

A rule may return its gradient in the broadcast shape: ``Op.backward`` sums it back to
the input's shape (``sum_to``) and dtype, here and nowhere else. Options such as ``axis``
are normalised once by the op's ``args`` function, so each op has one public name.

The families of ops live beside this file, each read top to bottom: ``elementwise.py``,
``reductions.py``, ``shape.py``, ``linalg.py`` and ``fused.py`` (the kernel-backed primitives).
"""
import functools
import inspect
import operator
from typing import Tuple, Union

import numpy as np

from ..engine import Node, Tensor, _mode, _to_array, _wrap
from ..errors import DTypeError, ShapeError, TinymetaError, translate


class Op:
    """A primitive: a forward on arrays and one vector-Jacobian product per input."""

    __slots__ = ("name", "forward", "vjps", "view", "reads_inputs", "src", "scalar")

    def __init__(self, name, forward, vjps, view=False, reads_inputs=True, src=None, scalar=None):
        self.name, self.forward, self.vjps, self.view = name, forward, vjps, view
        # How tm.trace prints this op as NumPy: a format string over the inputs ({0}, {1}...)
        # and options ({axis}...), or a function (input names, options) -> expression.
        self.src = src
        # Elementwise ops only: the forward on one element of each input, a format string
        # over scalar operands that numba compiles. A replay fuses chains of such ops into
        # one loop (tinymeta.tape.fusion). None: not fused.
        self.scalar = scalar
        # False when no rule reads the operands' values (add, sub): then a node keeps no
        # reference to operands that need no gradient, so p - lr * g does not pin g.
        self.reads_inputs = reads_inputs

    def vjp(self, g, out, inputs, need, kwargs):
        """The rules' raw results, one per input (None where ``need`` is False). Ops with a
        rule of their own (variadic, fused) override this."""
        return [vjp(g, out, *inputs, **kwargs) if n else None for vjp, n in zip(self.vjps, need)]

    def backward(self, g, out, inputs, need, kwargs):
        """Gradients for the inputs, each in its input's shape and dtype (None where not needed).

        Written out for one and two inputs, the shapes of most of a graph: on small networks
        each call saved here is a measurable part of a backward pass. (An op with a ``vjp`` of
        its own gets ``backward_from_vjp`` as its ``backward``.)"""
        vjps = self.vjps
        if len(inputs) == 1:
            p = inputs[0]
            gi = vjps[0](g, out, p, **kwargs)
            if type(gi) is Tensor and gi.data.shape == p.data.shape and gi.data.dtype is p.data.dtype:
                return (gi,)
            return (None if gi is None else fit_gradient(self.name, 0, gi, p),)
        if len(inputs) == 2 and not kwargs:
            a, b = inputs
            ga = vjps[0](g, out, a, b) if need[0] else None
            gb = vjps[1](g, out, a, b) if need[1] else None
            if ga is not None and not (type(ga) is Tensor and ga.data.shape == a.data.shape
                                       and ga.data.dtype is a.data.dtype):
                ga = fit_gradient(self.name, 0, ga, a)
            if gb is not None and not (type(gb) is Tensor and gb.data.shape == b.data.shape
                                       and gb.data.dtype is b.data.dtype):
                gb = fit_gradient(self.name, 1, gb, b)
            return ga, gb
        return self._fitted(self.vjp(g, out, inputs, need, kwargs), inputs, need)

    def backward_from_vjp(self, g, out, inputs, need, kwargs):
        """``backward`` for ops that override ``vjp``: their rule's results, fitted."""
        return self._fitted(self.vjp(g, out, inputs, need, kwargs), inputs, need)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "vjp" in cls.__dict__ and "backward" not in cls.__dict__:
            cls.backward = Op.backward_from_vjp

    def _fitted(self, grads, inputs, need):
        """Each rule's result fitted to its input (``fit_gradient``), None where not needed."""
        return [None if gi is None or not n else fit_gradient(self.name, i, gi, p)
                for i, (gi, p, n) in enumerate(zip(grads, inputs, need))]

    def __repr__(self):
        return f"<op {self.name}>"


def fit_gradient(where, i, gi, p):
    """Gradient ``gi`` for input ``i`` of ``where``, as a Tensor in ``p``'s shape and dtype.

    Broadcasting in the forward means the rule's result can be wider than the input: it is
    summed back here, the one place broadcasting is undone. (``Op.backward`` and Linear's
    test the usual case, a gradient that already fits, inline before calling this.)"""
    if type(gi) is Tensor and gi.data.shape == p.data.shape and gi.data.dtype is p.data.dtype:
        return gi
    if type(gi) is not Tensor:
        gi = _wrap(np.asarray(gi, dtype=p.data.dtype))
    gd, pd = gi.data, p.data
    if gd.shape != pd.shape:
        # The gradient must have a shape the input broadcasts to (written out: np.broadcast_shapes
        # costs microseconds, and this runs for every broadcast in a backward pass).
        lead = gd.ndim - pd.ndim
        ok = lead >= 0 and all(s == 1 or s == t for s, t in zip(pd.shape, gd.shape[lead:]))
        if not ok:
            raise ShapeError(f"{where}: the backward rule returned a gradient of shape {gd.shape} for "
                             f"input {i}, which has shape {pd.shape}; a gradient must have its input's "
                             "shape (or a shape that input was broadcast to)")
        gi = sum_to.call(gi, shape=pd.shape)
    if gi.data.dtype is not pd.dtype and gi.data.dtype != pd.dtype:
        gi = astype.call(gi, dtype=pd.dtype)
    return gi


# ----------------------------------------------------------------------------- running an op


_NOKW = {}
_NEED1 = (True,)
_BAD_KINDS = frozenset("cOUSVMm")


def _check_result(op, out, args):
    """Constants (raw NumPy arrays) can carry complex/object/string dtypes into an op."""
    if out.dtype.kind in _BAD_KINDS:
        shapes = ", ".join(str(np.shape(data(a))) for a in args)
        raise DTypeError(f"{op.name}: the result would have dtype {out.dtype}; tinymeta tensors hold "
                         f"bool, integer or floating-point numbers (input shapes {shapes})")


def apply(op, *args, **kwargs):
    """Run primitive ``op`` on tensors or constants, recording a node when needed."""
    datas, track = [], False
    for a in args:
        if type(a) is Tensor:
            datas.append(a.data)
            track = track or a.requires_grad
        else:
            datas.append(a)
    try:
        out = op.forward(*datas, **kwargs)
    except Exception as exc:
        raise translate(op.name, args, exc) from exc
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    _check_result(op, out, args)
    first = args[0] if args else None
    vc = None
    if op.view and type(first) is Tensor and np.may_share_memory(out, first.data):
        vc = first._vc  # a view: in-place changes to either are changes to both
    if track and _mode.grad_enabled:
        need = tuple(type(a) is Tensor and a.requires_grad for a in args)
        res = _wrap(out, Node(op, args, kwargs, need), vc)
    else:
        res = _wrap(out, None, vc)
    if _mode.tape is not None:
        _mode.tape.record(op, args, kwargs, res)
    return res


def _binary(op):
    """Fast path for two-argument ops (most of a graph): no lists, no loops."""
    fwd, light, mode = op.forward, not op.reads_inputs, _mode  # locals of the closure: faster than globals

    def run(a, b):
        ta, tb = type(a) is Tensor, type(b) is Tensor
        try:
            out = fwd(a.data if ta else a, b.data if tb else b)
        except Exception as exc:
            raise translate(op.name, (a, b), exc) from exc
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if not (ta and tb):
            _check_result(op, out, (a, b))
        na, nb = ta and a.requires_grad, tb and b.requires_grad
        if (na or nb) and mode.grad_enabled:
            # A node keeps an operand only when it needs it (see Op.reads_inputs).
            keep = (a if na else None, b if nb else None) if light else (a, b)
            res = _wrap(out, Node(op, keep, _NOKW, (na, nb)))
        else:
            res = _wrap(out)
        if mode.tape is not None:
            mode.tape.record(op, (a, b), _NOKW, res)
        return res
    return run


def _unary(op):
    """Fast path for one-tensor ops (exp, tanh, sum, reshape, ...)."""
    fwd, view, mode = op.forward, op.view, _mode

    def run(a, **kwargs):
        if type(a) is not Tensor:
            a = as_tensor(a)
        try:
            out = fwd(a.data, **kwargs)
        except Exception as exc:
            raise translate(op.name, (a,), exc) from exc
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        # A view shares its input's version counter: in-place changes to either are changes to both.
        vc = a._vc if view and np.may_share_memory(out, a.data) else None
        if mode.grad_enabled and a.requires_grad:
            res = _wrap(out, Node(op, (a,), kwargs, _NEED1), vc)
        else:
            res = _wrap(out, None, vc)
        if mode.tape is not None:
            mode.tape.record(op, (a,), kwargs, res)
        return res
    return run


def defop(name, forward, *vjps, view=False, reads_inputs=True, args=None, op=None, doc=None, src=None,
          scalar=None):
    """Define a primitive and return the function users call.

    ``args(*call_args, **call_kwargs) -> (tensors, options)`` normalises a call (an ``axis``
    list to a tuple, a shape given as several ints to one tuple...) and checks it; ops
    without options need none. ``view`` marks ops whose result may share memory with their
    first input; ``reads_inputs=False`` marks ops whose rules never read the operands' values.
    ``op`` passes a ready ``Op`` (a subclass with its own ``vjp``). ``src`` says how the op
    reads as NumPy in a traced program (``tm.trace``); ``scalar`` how it computes one element
    in a fused loop (True: ``src`` itself, which must then be valid on numbers)."""
    op = op or Op(name, forward, vjps, view, reads_inputs)
    if src is not None:
        op.src = src
    if scalar is not None:
        op.scalar = src if scalar is True else scalar
    fast = None
    if args is None and len(vjps) == 2 and not view:
        run = _binary(op)
    elif args is None and len(vjps) == 1:
        run = _unary(op)
    else:
        fast = _unary(op) if len(op.vjps or ()) == 1 else None

        def run(*call_args, **call_kwargs):
            if args is not None:
                try:
                    call_args, call_kwargs = args(*call_args, **call_kwargs)
                except TinymetaError:
                    raise
                except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
                    raise translate(name, call_args, exc) from exc
            if fast is not None:
                return fast(*call_args, **call_kwargs)
            return apply(op, *call_args, **call_kwargs)
    run.op = op
    # ``call``: the op with options already in canonical form (keyword, normalised), for the
    # derivative rules, which always pass them so: it skips ``args`` (a measurable cost in
    # a backward pass of a small network). Users call the op itself.
    run.call = fast if args is not None and fast is not None else (run if args is None else
                                                                   functools.partial(apply, op))
    run.__name__ = run.__qualname__ = name
    run.__module__ = "tinymeta.ops"
    run.__doc__ = doc
    run.__signature__ = _signature(args, len(op.vjps or ()) or 1)
    run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
    run.__annotations__["return"] = Tensor
    return run


_TENSORISH = "Tensor | np.ndarray | float"
TensorLike = Union[Tensor, np.ndarray, float]  # what every op accepts: constants become tensors
Axis = Union[int, Tuple[int, ...], None]


def _signature(args, n_inputs):
    """The signature users see in help(): the ``args`` normaliser's, else one tensor per input,
    inputs annotated as tensor-like and the result as a Tensor."""
    if args is not None:
        sig = inspect.signature(args)
        params = [p.replace(annotation=_TENSORISH) if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD
                  else p for p in sig.parameters.values()]
    else:
        names = ("x",) if n_inputs == 1 else ("a", "b", "c", "d")[:n_inputs]
        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_TENSORISH)
                  for n in names]
    return inspect.Signature(params, return_annotation=Tensor)


def defop_nondiff(name, forward, src=None, doc=None, scalar=None):
    """An op with no derivative (comparisons, sign): it records no graph node, but the tape
    still records it, so a mask computed from tensors follows new inputs on replay."""
    op = Op(name, forward, None, src=src, scalar=src if scalar is True else scalar)

    def run(*args):
        try:
            out = np.asarray(forward(*[data(a) for a in args]))
        except Exception as exc:
            raise translate(name, args, exc) from exc
        res = _wrap(out)
        if _mode.tape is not None:
            _mode.tape.record(op, args, _NOKW, res)
        return res
    run.op = op
    run.__name__ = run.__qualname__ = name
    run.__module__ = "tinymeta.ops"
    run.__doc__ = doc
    return run


# ----------------------------------------------------------------------------- helpers


def data(x):
    """The array inside a Tensor, or ``x`` itself."""
    return x.data if type(x) is Tensor else x


def ndim(x):
    """How many axes ``x`` has (a Tensor, an array, a number or a list)."""
    return x.data.ndim if type(x) is Tensor else np.ndim(x)


def as_tensor(x):
    """``x`` as a Tensor (no copy for a Tensor; constants get the default float dtype)."""
    return x if type(x) is Tensor else _wrap(_to_array(x))


def zeros_like(t):
    return _wrap(np.zeros(np.shape(data(t)), dtype=t.dtype))


def check_axis(axis, ndim, where):
    """A non-negative axis, or a ShapeError (never NumPy's modulo wrap-around)."""
    if isinstance(axis, (bool, np.bool_)):
        raise DTypeError(f"{where}: axis must be an int, got {axis!r}")
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{where}: axis {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim if ndim else axis


def norm_axis(axis, ndim, where, scalar_ok=True):
    """``axis`` as None or a tuple of non-negative ints, each checked against ``ndim``.
    As NumPy's reductions do, a single int axis 0 (or -1) reduces a 0-d array (meaning all
    axes) unless ``scalar_ok`` is False (NumPy's mean and var refuse it)."""
    if axis is None:
        return None
    if ndim == 0 and scalar_ok and isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) \
            and axis in (0, -1):
        return None
    if isinstance(axis, (int, np.integer)):
        return (check_axis(axis, ndim, where),)
    return tuple(check_axis(a, ndim, where) for a in axis)


def count(shape, axis):
    """How many elements a reduction over ``axis`` (None: all) combines."""
    if axis is None:
        return int(np.prod(shape))
    return int(np.prod([shape[a] for a in axis]))


def keepdims_shape(shape, axis):
    """The shape a reduction over ``axis`` has with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


def norm_shape(shape):
    """A shape given as several ints or as one tuple/list -> a tuple of ints (2.5 is no size)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
        if type(shape) is tuple and all(type(s) is int for s in shape):
            return shape  # the common case, from the rules: nothing to convert
    return tuple(operator.index(s) for s in shape)


# ----------------------------------------------------------------------------- undoing broadcasting
# The machinery's own primitives: fit_gradient sums a broadcast gradient back with sum_to
# and casts it with astype; broadcast_to and sum_to are each other's rule.


def _sum_to_fwd(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    out = np.add.reduce(x, axis=axes, keepdims=True) if axes else x
    return out.reshape(shape)


def _shape_args(x, shape: "int | Tuple[int, ...]"):
    if type(shape) is not tuple:  # a tuple passes as it is: the rules call this with shapes
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(operator.index(s) for s in shape)
    return (x,), {"shape": shape}


broadcast_to = defop("broadcast_to", np.broadcast_to,
                     lambda g, o, a, shape: sum_to.call(g, shape=a.shape),
                     view=True, args=_shape_args,
                     doc="``x`` broadcast to ``shape`` (a read-only view); its rule sums back.",
            src="np.broadcast_to({0}, {shape})")

sum_to = defop("sum_to", _sum_to_fwd,
               lambda g, o, a, shape: broadcast_to.call(g, shape=a.shape),
               args=_shape_args,
               doc="Sum ``x`` over the axes broadcasting added or stretched, down to ``shape``.",
            src="sum_to({0}, {shape})")


def _astype_fwd(x, dtype):
    if dtype.kind in _BAD_KINDS:
        raise DTypeError(f"astype: tinymeta tensors hold bool, integer or floating-point numbers, "
                         f"not {dtype}")
    return x.astype(dtype)


def _astype_args(x, dtype: "str | np.dtype"):
    return (x,), {"dtype": np.dtype(dtype)}


astype = defop("astype", _astype_fwd, lambda g, o, a, dtype: astype.call(g, dtype=a.dtype),
               args=_astype_args,
               doc="``x`` converted to ``dtype``; the gradient is converted back.",
            src="{0}.astype(np.{dtype})")

"""The op table: every differentiable op, its forward beside its derivative.

A primitive is ``defop(name, forward, *vjps)``:

* ``forward(*arrays, **kwargs)`` computes the result on plain NumPy arrays;
* ``vjps[i](g, out, *inputs, **kwargs)`` returns the gradient for input ``i`` given the
  gradient ``g`` of the output. ``g``, ``out`` and the tensor inputs are Tensors, and every
  rule is written with the ops of this file, so the rules are themselves differentiable:
  that is all higher-order gradients need.

Rules may return gradients in the broadcast shape; the engine sums them back to each
input's shape in one place (``sum_to``). Derived ops (``mean``, ``stack``, ``squeeze``...)
are plain compositions of primitives and need no rule at all.
"""

import functools
import operator

import numpy as np

from . import kernels
from .engine import Node, Tensor, _mode, _wrap
from .errors import ArgumentError, DTypeError, IndexError_, ShapeError, TinymetaError

# ----------------------------------------------------------------------------- machinery


class Op:
    """A primitive: a forward on arrays and one vector-Jacobian product per input."""

    __slots__ = ("name", "forward", "vjps", "view", "reads_inputs")

    def __init__(self, name, forward, vjps, view=False, reads_inputs=True):
        self.name, self.forward, self.vjps, self.view = name, forward, vjps, view
        # False when no rule reads the operands' values (add, sub): then a node keeps no
        # reference to operands that need no gradient, so p - lr * g does not pin g.
        self.reads_inputs = reads_inputs

    def backward(self, g, out, inputs, need, kwargs):
        vjps = self.vjps
        if len(inputs) == 1:
            return (vjps[0](g, out, inputs[0], **kwargs),)
        if len(inputs) == 2 and not kwargs:
            a, b = inputs
            return (vjps[0](g, out, a, b) if need[0] else None,
                    vjps[1](g, out, a, b) if need[1] else None)
        return [vjp(g, out, *inputs, **kwargs) if n else None for vjp, n in zip(vjps, need)]

    def __repr__(self):
        return f"<op {self.name}>"


_NOKW = {}
_NEED1 = (True,)


def _shapes(args):
    def one(a):
        try:
            return str(np.shape(a.data if type(a) is Tensor else a))
        except Exception:  # a ragged list has no shape; say what it is instead
            return type(a).__name__
    return ", ".join(one(a) for a in args)


def _op_error(op, args, exc):
    """Turn a NumPy exception inside ``op`` into a tinymeta error naming op and shapes."""
    if isinstance(exc, TinymetaError):
        return exc
    shapes, msg = _shapes(args), str(exc)
    if isinstance(exc, np.exceptions.AxisError):
        return ShapeError(f"{op.name}: {msg} (input shape {shapes}); axes count from 0, or from -1 "
                          "at the end")
    if isinstance(exc, ValueError) and "broadcast" in msg:
        return ShapeError(f"{op.name}: shapes {shapes} cannot be broadcast together (NumPy rules: "
                          "aligned from the right, each dimension equal or 1); reshape or unsqueeze "
                          "one operand so they line up")
    if isinstance(exc, ValueError):
        return ShapeError(f"{op.name}: {msg} (input shapes {shapes})")
    if isinstance(exc, IndexError):
        return IndexError_(f"{op.name}: {msg} (tensor shape {shapes})")
    if isinstance(exc, (TypeError, AttributeError)):
        dtypes = ", ".join(str(getattr(a, "dtype", type(a).__name__)) for a in args)
        return DTypeError(f"{op.name}: {msg} (argument types/dtypes {dtypes})")
    if isinstance(exc, (ZeroDivisionError, OverflowError)):
        return ArgumentError(f"{op.name}: {msg} (input shapes {shapes})")
    return TinymetaError(f"{op.name}: {type(exc).__name__}: {msg} (input shapes {shapes})")


class _Named:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def guard(fn):
    """For public entry points whose argument handling runs before an op's own guarded
    forward: a bare NumPy/Python error becomes the matching tinymeta error, naming the
    function and its inputs. (The hot binary/unary paths need no wrapper.)"""
    named = _Named(fn.__name__)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TinymetaError:
            raise
        except (ValueError, TypeError, IndexError, AttributeError, KeyError, ZeroDivisionError,
                OverflowError) as exc:
            raise _op_error(named, args, exc) from exc
    return run


_BAD_KINDS = frozenset("cOUSVMm")


def _check_result(op, out, args):
    """Constants (raw NumPy arrays) can carry complex/object/string dtypes into an op."""
    if out.dtype.kind in _BAD_KINDS:
        raise DTypeError(f"{op.name}: the result would have dtype {out.dtype}; tinymeta tensors hold "
                         f"bool, integer or floating-point numbers (input shapes {_shapes(args)})")


def _finish(op, out, args, kwargs, track, first):
    vc = None
    if op.view and type(first) is Tensor and np.may_share_memory(out, first.data):
        vc = first._vc  # a view: in-place changes to either are changes to both
    if track and _mode.grad_enabled:
        need = tuple(type(a) is Tensor and a.requires_grad for a in args)
        return _wrap(out, Node(op, args, kwargs, need), vc)
    return _wrap(out, None, vc)


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
        raise _op_error(op, args, exc) from exc
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    _check_result(op, out, args)
    return _finish(op, out, args, kwargs, track, args[0] if args else None)


def _binary(op):
    """Fast path for two-argument ops (most of a graph): no lists, no loops."""
    fwd, light = op.forward, not op.reads_inputs

    def run(a, b):
        ta, tb = type(a) is Tensor, type(b) is Tensor
        try:
            out = fwd(a.data if ta else a, b.data if tb else b)
        except Exception as exc:
            raise _op_error(op, (a, b), exc) from exc
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if not (ta and tb):
            _check_result(op, out, (a, b))
        na, nb = ta and a.requires_grad, tb and b.requires_grad
        if (na or nb) and _mode.grad_enabled:
            if light:
                a, b = (a if na else None), (b if nb else None)
            return _wrap(out, Node(op, (a, b), _NOKW, (na, nb)))
        return _wrap(out)
    run.op = op
    return run


def _unary(op):
    fwd = op.forward

    def run(a, **kwargs):
        if type(a) is not Tensor:
            a = _wrap(_as_array(a))
        try:
            out = fwd(a.data, **kwargs)
        except Exception as exc:
            raise _op_error(op, (a,), exc) from exc
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if op.view:
            return _finish(op, out, (a,), kwargs, a.requires_grad, a)
        if _mode.grad_enabled and a.requires_grad:
            return _wrap(out, Node(op, (a,), kwargs, _NEED1))
        return _wrap(out)
    run.op = op
    return run


def _as_array(x):
    from .engine import _to_array
    return _to_array(x)


def defop(name, forward, *vjps, view=False, arity=None, reads_inputs=True):
    op = Op(name, forward, vjps, view, reads_inputs)
    # The fast paths take no keyword arguments; an explicit arity asks for the general one.
    n = len(vjps)
    if arity is None and n == 1:
        return _unary(op)
    if arity is None and n == 2 and not view:
        return _binary(op)
    fn = lambda *args, **kwargs: apply(op, *args, **kwargs)  # noqa: E731
    fn.op = op
    return fn


def _zeros_like(t):
    return _wrap(np.zeros(np.shape(t.data if type(t) is Tensor else t), dtype=t.dtype))


def _keepdims_shape(shape, axis):
    """The shape a reduction over ``axis`` has with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    axes = {ax % len(shape) for ax in axes} if len(shape) else set()
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


# ----------------------------------------------------------------------------- arithmetic

add = defop("add", np.add, lambda g, o, a, b: g, lambda g, o, a, b: g, reads_inputs=False)
sub = defop("sub", np.subtract, lambda g, o, a, b: g, lambda g, o, a, b: -g, reads_inputs=False)
mul = defop("mul", np.multiply, lambda g, o, a, b: g * b, lambda g, o, a, b: g * a)
div = defop("div", np.true_divide, lambda g, o, a, b: g / b, lambda g, o, a, b: -g * o / b)
neg = defop("neg", np.negative, lambda g, o, a: -g)


def _pow_vjp_a(g, o, a, b):
    if type(b) is not Tensor and np.ndim(b) == 0:
        # Exact small exponents get exact rules: b * a**(b-1) would compute 0 * inf = NaN
        # at a = 0 for b = 0, and its own derivative would for b = 1.
        if b == 0:
            return _zeros_like(a)
        if b == 1:
            return g
        if b == 2:
            return g * 2.0 * a
    return g * b * a ** (b - 1)


def _pow_vjp_b(g, o, a, b):
    # d(a^b)/db = a^b log a; where a == 0 the limit of that product is 0.
    la = log(where(_data(a) > 0, a, 1.0)) if type(a) is Tensor else np.log(np.where(a > 0, a, 1.0))
    return g * o * la


pow = defop("pow", np.power, _pow_vjp_a, _pow_vjp_b)  # noqa: A001 (shadows builtin on purpose)


def _data(x):
    return x.data if type(x) is Tensor else x


def _swap(x):
    return _transpose(x, axes=_last2(x.ndim))


def _last2(ndim):
    axes = list(range(ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return tuple(axes)


def _shared_matrix(b):
    """b itself if 2-D, or its one matrix if b only broadcasts it over leading axes
    (stride 0: every task's weights are the same view of theta), else None."""
    if b.ndim == 2:
        return b
    if b.ndim > 2 and not any(b.strides[:-2]):
        return b[(0,) * (b.ndim - 2)]
    return None


def _matmul_fwd(a, b):
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1 and b.shape[-2] == 1:
        # An outer product: a broadcast multiply is 5x faster than batched matmul here
        # (the 1 -> 40 input layer of the sinusoid MLP and its gradients).
        return np.multiply(a, b)
    if a.ndim > 2 and b.ndim >= 2 and a.ndim >= b.ndim and a.shape[-1] == b.shape[-2]:
        b2 = _shared_matrix(b)
        if b2 is not None and (b.ndim == 2 or np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) == a.shape[:-2]):
            # One BLAS call on (batch*n, k) @ (k, m) instead of a loop of small ones: 3.4x
            # faster for a meta-batch of 25 tasks sharing theta (NumPy does not collapse it).
            return (a.reshape(-1, a.shape[-1]) @ b2).reshape(a.shape[:-1] + (b2.shape[-1],))
    try:
        return np.matmul(a, b)
    except ValueError as exc:
        sa, sb = np.shape(a), np.shape(b)
        if len(sa) and len(sb) and sa[-1] != sb[-2 if len(sb) > 1 else 0]:
            hint = " (did you mean x @ W.T?)" if len(sb) > 1 and sa[-1] == sb[-1] else ""
            raise ShapeError(f"matmul: shapes {sa} and {sb} do not fit: the last dimension of the "
                             f"left ({sa[-1]}) must equal the {'first' if len(sb) == 1 else 'second-to-last'} "
                             f"of the right ({sb[-2 if len(sb) > 1 else 0]}){hint}") from exc
        raise
    except TypeError as exc:
        raise ShapeError(f"matmul: cannot multiply shapes {np.shape(a)} and {np.shape(b)}: "
                         "matmul needs at least one dimension on each side; use * for scalars") from exc


def _matmul_vjp_a(g, o, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    if b.ndim == 1:
        return unsqueeze(g, -1) * b
    if a.ndim == 1:
        return squeeze(matmul_nt(unsqueeze(g, -2), b), -2)
    return matmul_nt(g, b)


def _matmul_vjp_b(g, o, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    if b.ndim == 1:
        return squeeze(matmul_tn(a, unsqueeze(g, -1)), -1)
    if a.ndim == 1:
        return unsqueeze(a, -1) * unsqueeze(g, -2)
    return matmul_tn(a, g)


matmul = defop("matmul", _matmul_fwd, _matmul_vjp_a, _matmul_vjp_b)

# a @ b^T and a^T @ b (transposes of the last two axes) as primitives: every matmul and
# linear rule needs one, and a separate transpose node each time cost more than the math.
# Their rules are written in each other, so they are differentiable to any order too.
matmul_nt = defop("matmul_nt", lambda a, b: _matmul_fwd(a, np.swapaxes(b, -1, -2)),
                  lambda g, o, a, b: g @ b,
                  lambda g, o, a, b: matmul_tn(g, a))
matmul_tn = defop("matmul_tn", lambda a, b: _matmul_fwd(np.swapaxes(a, -1, -2), b),
                  lambda g, o, a, b: matmul_nt(b, g),
                  lambda g, o, a, b: a @ g)


def _linear_fwd(x, w, b=None):
    if w.ndim == 2 and x.ndim == 2 and x.flags.c_contiguous and w.dtype == x.dtype:
        return kernels.linear_act(x, w, b, "none")
    y = _matmul_fwd(x, np.swapaxes(w, -1, -2))
    if b is not None:
        y = y + (b if b.ndim == 1 else np.expand_dims(b, -2))
    return y


def _linear_vjp_b(g, o, x, w, b=None):
    return g if w.ndim == 2 else sum(g, axis=-2)


# linear(x, W, b) = x @ W^T + b, PyTorch's layout: W is (out, in). Leading batch/task
# dimensions broadcast, so one call runs a whole meta-batch of per-task weights.
_linear = defop("linear", _linear_fwd,
               lambda g, o, x, w, b=None: g @ w,
               lambda g, o, x, w, b=None: unsqueeze(g, -1) * x if x.ndim == 1 else matmul_tn(g, x),
               _linear_vjp_b, arity=3)


def _linear_relu_fwd(x, w, b=None):
    if w.ndim == 2 and x.ndim == 2 and x.flags.c_contiguous and w.dtype == x.dtype:
        return kernels.linear_act(x, w, b, "relu")  # bias and relu fused into one pass
    return kernels.relu(_linear_fwd(x, w, b))


class _LinearReLU(Op):
    """relu(x @ W^T + b) as one node; its backward is relu's rule then linear's rules."""

    def backward(self, g, out, inputs, need, kwargs):
        gp = relu_backward(g, out)
        return [vjp(gp, out, *inputs) if n else None for vjp, n in zip(_linear.op.vjps, need)]


_linear_relu_op = _LinearReLU("linear_relu", _linear_relu_fwd, None)


@guard
def linear(x, weight, bias=None, activation=None):
    """x @ W^T + b (W: (out, in)); ``activation="relu"`` fuses the relu into the same node
    and, for 2-D input, into the same pass over memory as the bias add."""
    args = (x, weight) if bias is None else (x, weight, bias)
    if activation is None:
        return _linear(*args)
    if activation == "relu":
        return apply(_linear_relu_op, *args)
    raise ArgumentError(f"linear: activation must be None or 'relu', got {activation!r}")

# ----------------------------------------------------------------------------- elementwise math

exp = defop("exp", np.exp, lambda g, o, a: g * o)
log = defop("log", np.log, lambda g, o, a: g / a)
sqrt = defop("sqrt", np.sqrt, lambda g, o, a: g * 0.5 / o)
abs = defop("abs", np.abs, lambda g, o, a: g * np.sign(a.data))  # noqa: A001
sin = defop("sin", np.sin, lambda g, o, a: g * cos(a))
cos = defop("cos", np.cos, lambda g, o, a: -g * sin(a))

# The activations' derivatives are written from their outputs, as primitives of their own
# so a numba kernel can compute them; each has a (differentiable) rule in turn.
tanh_backward = defop("tanh_backward", kernels.tanh_backward,
                      lambda gg, o, g, y: tanh_backward(gg, y),
                      lambda gg, o, g, y: -2.0 * gg * g * y)
tanh = defop("tanh", np.tanh, lambda g, o, a: tanh_backward(g, o))


def _float_like(result, x):
    """Keep a float input's dtype (float32 stays float32); integers promote as in NumPy."""
    return result.astype(x.dtype, copy=False) if x.dtype.kind == "f" else result


def _sigmoid_fwd(x):
    if x.dtype.kind != "f":
        x = x.astype(np.float64)  # -abs(x) of unsigned integers would wrap around
    # exp of a non-positive number only: no overflow for logits of +-1e4.
    e = np.exp(-np.abs(x))
    return _float_like(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), x)


sigmoid_backward = defop("sigmoid_backward", kernels.sigmoid_backward,
                         lambda gg, o, g, y: sigmoid_backward(gg, y),
                         lambda gg, o, g, y: gg * g * (1.0 - 2.0 * y))
sigmoid = defop("sigmoid", _sigmoid_fwd, lambda g, o, a: sigmoid_backward(g, o))

# relu'' is zero almost everywhere: the rule for y is an explicit zero, not "unused".
relu_backward = defop("relu_backward", kernels.relu_backward,
                      lambda gg, o, g, y: relu_backward(gg, y),
                      lambda gg, o, g, y: _zeros_like(y))
relu = defop("relu", kernels.relu, lambda g, o, a: relu_backward(g, o))


def _leaky_fwd(x, negative_slope=0.01):
    return _float_like(np.where(x > 0, x, x * negative_slope), x)


_leaky_relu = defop("leaky_relu", _leaky_fwd,
                   lambda g, o, a, negative_slope=0.01:
                   g * np.where(a.data > 0, 1.0, negative_slope).astype(a.dtype))


def _softplus_fwd(x):
    return _float_like(np.logaddexp(0.0, x), x)


@guard
def leaky_relu(x, negative_slope=0.01):
    return _leaky_relu(x, negative_slope=float(negative_slope))


softplus = defop("softplus", _softplus_fwd, lambda g, o, a: g * sigmoid(a))


def _clip_fwd(x, min=None, max=None):  # noqa: A002
    return np.clip(x, min, max)


_clip = defop("clip", _clip_fwd,
             lambda g, o, a, min=None, max=None:  # noqa: A002
             g * ((a.data >= (-np.inf if min is None else min))
                  & (a.data <= (np.inf if max is None else max))).astype(a.dtype))

@guard
def clip(x, min=None, max=None):  # noqa: A002
    return _clip(x, min=min, max=max)


# Ties send the whole gradient to the first argument (a choice; the derivative is undefined there).
maximum = defop("maximum", np.maximum,
                lambda g, o, a, b: g * (_data(a) >= _data(b)),
                lambda g, o, a, b: g * (_data(a) < _data(b)))
minimum = defop("minimum", np.minimum,
                lambda g, o, a, b: g * (_data(a) <= _data(b)),
                lambda g, o, a, b: g * (_data(a) > _data(b)))


def _astype_fwd(x, dtype):
    if np.dtype(dtype).kind in _BAD_KINDS:
        raise DTypeError(f"astype: tinymeta tensors hold bool, integer or floating-point numbers, "
                         f"not {np.dtype(dtype)}")
    return x.astype(dtype)


_astype = defop("astype", _astype_fwd, lambda g, o, a, dtype: _astype(g, dtype=a.dtype))


@guard
def astype(x, dtype):
    return _astype(x, dtype=np.dtype(dtype))


@guard
def where(condition, x, y):
    """``x`` where ``condition`` holds, else ``y``; the condition is not differentiated."""
    return _where(np.asarray(_data(condition), dtype=bool), x, y)


_where = defop("where", np.where,
               lambda g, o, c, a, b: None,
               lambda g, o, c, a, b: where(c, g, 0.0),
               lambda g, o, c, a, b: where(c, 0.0, g))

# ----------------------------------------------------------------------------- reductions


def _sum_vjp(g, o, a, axis=None, keepdims=False):
    if not keepdims and axis is not None:
        g = reshape(g, _keepdims_shape(a.shape, axis))
    return broadcast_to(g, a.shape)


def _sum_fwd(x, axis=None, keepdims=False):
    return np.add.reduce(x, axis=axis, keepdims=keepdims)  # np.sum minus its Python wrapper


_sum = defop("sum", _sum_fwd, _sum_vjp)


def _norm_axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


@guard
def sum(x, axis=None, keepdims=False):  # noqa: A001
    return _sum(x, axis=_norm_axis(axis), keepdims=keepdims)


def _extreme_vjp(g, o, a, axis=None, keepdims=False):
    shape = _keepdims_shape(a.shape, axis)
    mask = a.data == np.reshape(o.data, shape)
    share = mask / np.sum(mask, axis=axis, keepdims=True)  # ties split the gradient evenly
    return reshape(g, shape) * share.astype(a.dtype)


def _max_fwd(x, axis=None, keepdims=False):
    if x.size == 0:
        raise ShapeError("max: the tensor is empty, so it has no maximum")
    return np.max(x, axis=axis, keepdims=keepdims)


def _min_fwd(x, axis=None, keepdims=False):
    if x.size == 0:
        raise ShapeError("min: the tensor is empty, so it has no minimum")
    return np.min(x, axis=axis, keepdims=keepdims)


_max = defop("max", _max_fwd, _extreme_vjp)
_min = defop("min", _min_fwd, _extreme_vjp)


@guard
def max(x, axis=None, keepdims=False):  # noqa: A001
    return _max(x, axis=_norm_axis(axis), keepdims=keepdims)


@guard
def min(x, axis=None, keepdims=False):  # noqa: A001
    return _min(x, axis=_norm_axis(axis), keepdims=keepdims)


@guard
def mean(x, axis=None, keepdims=False):
    """Derived: the sum divided by the number of elements summed."""
    x = x if type(x) is Tensor else _wrap(_as_array(x))
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in _axes(axis, x.ndim)]))
    return sum(x, axis=axis, keepdims=keepdims) * (1.0 / n if n else np.nan)


@guard
def var(x, axis=None, keepdims=False, ddof=0):
    """Derived: mean squared deviation."""
    axis = _norm_axis(axis)
    x = x if type(x) is Tensor else _wrap(_as_array(x))
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in _axes(axis, x.ndim)]))
    d = x - mean(x, axis=axis, keepdims=True)
    # No degrees of freedom left (ddof >= n, or no values): NaN, as NumPy gives.
    return sum(d * d, axis=axis, keepdims=keepdims) * (1.0 / (n - ddof) if n - ddof > 0 else np.nan)


def _axes(axis, ndim):
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ShapeError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
    return axes


def _lse_fwd(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf row: lse is -inf, not NaN
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


_logsumexp = defop("logsumexp", _lse_fwd,
                  lambda g, o, a, axis=None, keepdims=False:
                  reshape(g, _keepdims_shape(a.shape, axis))
                  * exp(a - where(np.isfinite(o.data), o, 0.0).reshape(_keepdims_shape(a.shape, axis))))


def _softmax_fwd(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_fwd(x, axis=-1):
    return x - _lse_fwd(x, axis=axis, keepdims=True)


@guard
def logsumexp(x, axis=None, keepdims=False):
    return _logsumexp(x, axis=_norm_axis(axis), keepdims=keepdims)


_softmax = defop("softmax", _softmax_fwd,
                lambda g, o, a, axis=-1: o * (g - sum(g * o, axis=axis, keepdims=True)))
_log_softmax = defop("log_softmax", _log_softmax_fwd,
                     lambda g, o, a, axis=-1: g - exp(o) * sum(g, axis=axis, keepdims=True))


@guard
def softmax(x, axis=-1):
    return _softmax(x, axis=axis)


@guard
def log_softmax(x, axis=-1):
    return _log_softmax(x, axis=axis)


def _mse_lead(pred, target, axis):
    """k when mse reduces over axes k.. of same-shape operands (what the kernels do:
    the whole loss, or one per task), else None."""
    if pred.shape != target.shape:
        return None
    if axis is None:
        return 0
    nd = pred.ndim
    if not nd or not all(-nd <= a < nd for a in axis):
        return None  # NumPy's mean then names the bad axis
    axes = sorted(a % nd for a in axis)
    if axes == list(range(axes[0], nd)) and axes[0] > 0:
        return axes[0]
    return None


def _mse_fwd(pred, target, axis=None):
    lead = _mse_lead(pred, target, axis)
    if lead is not None:
        return kernels.mse(pred, target, lead)
    d = pred - target
    return np.mean(d * d, axis=axis)


def _mse_count(shape, axis):
    return int(np.prod(shape)) if axis is None else int(np.prod([shape[a] for a in axis]))


def _mse_grad_fwd(g, pred, target, axis=None):
    lead = _mse_lead(pred, target, axis)
    if lead is not None:
        return kernels.mse_backward(g, pred, target, lead)
    d = pred - target
    n = _mse_count(d.shape, axis)
    return np.reshape(g, _keepdims_shape(d.shape, axis)) * (2.0 / n if n else 0.0) * d  # empty: empty


# pred and target may broadcast against each other: counts and shapes are the
# broadcast shape's (the engine then sums each gradient back to its input's shape).
def _mse_grad_vjp_g(gg, o, g, pred, target, axis=None):
    n = _mse_count(o.shape, axis)
    return sum(gg * (pred - target), axis=axis) * (2.0 / n if n else 0.0)


def _mse_grad_vjp_pred(gg, o, g, pred, target, axis=None):
    n = _mse_count(o.shape, axis)
    return reshape(g, _keepdims_shape(o.shape, axis)) * (2.0 / n if n else 0.0) * gg


# mse's derivative w.r.t. pred, g * 2/n * (pred - target), as a primitive of its own so
# the mse_backward kernel computes it in one pass; its rules (linear in each input) make
# every higher order.
mse_grad = defop("mse_grad", _mse_grad_fwd, _mse_grad_vjp_g, _mse_grad_vjp_pred,
                 lambda gg, o, g, p, t, axis=None: -_mse_grad_vjp_pred(gg, o, g, p, t, axis), arity=3)

# Mean squared error over ``axis`` (all axes by default) in one node: the loss of every
# regression task, computed once per inner step of a meta-learner.
_mse = defop("mse", _mse_fwd,
             lambda g, o, p, t, axis=None: mse_grad(g, p, t, axis=axis),
             lambda g, o, p, t, axis=None: -mse_grad(g, p, t, axis=axis), arity=2)


@guard
def mse(pred, target, axis=None):
    axis = (axis,) if isinstance(axis, (int, np.integer)) else _norm_axis(axis)
    return _mse(pred, target, axis=axis)


def _sub_scaled_fwd(p, lr, d):
    return p - lr * d


# p - lr * d, the SGD update, in one node; lr may be a tensor (a learned or tuned rate).
sub_scaled = defop("sub_scaled", _sub_scaled_fwd,
                   lambda g, o, p, lr, d: g,
                   lambda g, o, p, lr, d: -(g * d),
                   lambda g, o, p, lr, d: -(g * lr))


def _xent_fwd(logits, labels):
    return kernels.softmax_xent(logits, np.asarray(labels))[0]


def _xent_vjp(g, o, logits, labels):
    onehot = np.zeros(logits.shape, dtype=logits.dtype)
    np.put_along_axis(onehot, np.asarray(_data(labels))[:, None], 1.0, axis=1)
    return unsqueeze(g, -1) * (softmax(logits, axis=-1) - onehot)


# Per-example softmax cross-entropy, -log softmax(logits)[label], fused (one pass, stable).
softmax_cross_entropy = defop("softmax_cross_entropy", _xent_fwd, _xent_vjp, lambda *a: None, arity=2)

# ----------------------------------------------------------------------------- shapes


def _reshape_fwd(x, shape):
    return np.reshape(x, shape)


_reshape = defop("reshape", _reshape_fwd, lambda g, o, a, shape: reshape(g, a.shape), view=True)


@guard
def reshape(x, *shape):
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return _reshape(x, shape=tuple(operator.index(s) for s in shape))  # 2.5 is no size


def _transpose_fwd(x, axes=None):
    return np.transpose(x, axes)


_transpose = defop("transpose", _transpose_fwd,
                   lambda g, o, a, axes=None:
                   _transpose(g, axes=None if axes is None else tuple(int(i) for i in np.argsort(axes))),
                   view=True)


@guard
def transpose(x, *dims, axes=None):
    """``transpose(x)`` reverses the axes; ``transpose(x, d0, d1)`` swaps two axes, as in
    PyTorch; ``transpose(x, axes=perm)`` permutes them, as in NumPy."""
    if dims:
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            axes = tuple(dims[0])
        elif len(dims) == 2:
            nd = np.ndim(_data(x))
            d0, d1 = (_check_axis(d, nd, "transpose") for d in dims)
            perm = list(range(nd))
            perm[d0], perm[d1] = perm[d1], perm[d0]
            axes = tuple(perm)
        else:
            raise ShapeError(f"transpose: give two axes to swap or one permutation, got {dims}")
    if axes is not None:
        nd = np.ndim(_data(x))
        axes = tuple(_check_axis(a, nd, "transpose") for a in axes)
        if sorted(axes) != list(range(nd)):
            raise ShapeError(f"transpose: {axes} is not a permutation of the {nd} axes of a tensor "
                             f"of shape {np.shape(_data(x))}")
    return _transpose(x, axes=axes)


def _check_axis(axis, ndim, where):
    """A non-negative axis, or a ShapeError (never NumPy's modulo wrap-around)."""
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{where}: axis {axis} is out of range for a tensor with {ndim} dimensions")
    return int(axis) % ndim


def _broadcast_fwd(x, shape):
    return np.broadcast_to(x, shape)


def _sum_to_fwd(x, shape):
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
    out = np.add.reduce(x, axis=axes, keepdims=True) if axes else x
    return out.reshape(shape)


_broadcast_to = defop("broadcast_to", _broadcast_fwd,
                      lambda g, o, a, shape: sum_to(g, shape=a.shape), view=True)


@guard
def broadcast_to(x, shape):
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    return _broadcast_to(x, shape=tuple(operator.index(s) for s in shape))
# sum_to undoes broadcasting: the engine calls it wherever a gradient is wider than its input.
sum_to = defop("sum_to", _sum_to_fwd, lambda g, o, a, shape: _broadcast_to(g, shape=a.shape))


@guard
def expand(x, *shape):
    """PyTorch's expand: -1 keeps a dimension's size."""
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    lead = len(shape) - np.ndim(_data(x))
    shape = tuple(np.shape(_data(x))[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    return broadcast_to(x, shape)


@guard
def squeeze(x, axis=None):
    """Derived from reshape."""
    x = x if type(x) is Tensor else _wrap(_as_array(x))
    if axis is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    axes = {a % x.ndim for a in _axes(axis, x.ndim)}
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


@guard
def unsqueeze(x, axis):
    """Derived from reshape."""
    x = x if type(x) is Tensor else _wrap(_as_array(x))
    axis = operator.index(axis)
    shape = list(x.shape)
    ax = axis if axis >= 0 else len(shape) + 1 + axis
    if not 0 <= ax <= len(shape):
        raise ShapeError(f"unsqueeze: axis {axis} is out of range for a tensor of shape {x.shape}")
    shape.insert(ax, 1)
    return reshape(x, shape)


@guard
def flatten(x, start_dim=0):
    x = x if type(x) is Tensor else _wrap(_as_array(x))
    start = _check_axis(operator.index(start_dim), x.ndim or 1, "flatten")
    return reshape(x, x.shape[:start] + (-1,))


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


def _getitem_fwd(x, idx):
    return x[idx]


def _scatter_fwd(g, idx, shape):
    out = np.zeros(shape, dtype=g.dtype)
    if _has_array_index(idx):
        np.add.at(out, idx, g)  # repeated indices must add up, not overwrite
    else:
        out[idx] = g
    return out


getitem = defop("getitem", _getitem_fwd,
                lambda g, o, a, idx: scatter(g, idx=idx, shape=a.shape), view=True)
scatter = defop("scatter", _scatter_fwd,
                lambda gg, o, g, idx, shape: getitem(gg, idx=idx))


@guard
def index(x, idx):
    return getitem(x, idx=_index_key(idx))


class _Concat(Op):
    """Variadic: one gradient slice per input along ``axis``."""

    def backward(self, g, out, inputs, need, kwargs):
        axis, grads, start = kwargs["axis"], [], 0
        for t, n in zip(inputs, need):
            size = np.shape(_data(t))[axis]
            if n:
                sl = [slice(None)] * g.ndim
                sl[axis] = slice(start, start + size)
                grads.append(getitem(g, idx=tuple(sl)))
            else:
                grads.append(None)
            start += size
        return grads


_concat_op = _Concat("concatenate", lambda *xs, axis=0: np.concatenate(xs, axis=axis), None)


@guard
def concatenate(tensors, axis=0):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError("concatenate: needs at least one tensor")
    return apply(_concat_op, *tensors, axis=axis)


@guard
def stack(tensors, axis=0):
    """Derived: concatenate the tensors, each given a new axis."""
    tensors = [t if type(t) is Tensor else _wrap(_as_array(t)) for t in tensors]
    if not tensors:
        raise ShapeError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ShapeError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


# ----------------------------------------------------------------------------- comparisons


def _compare(fn):
    named = _Named(fn.__name__)

    def run(a, b):
        try:
            return _wrap(np.asarray(fn(_data(a), _data(b))))
        except Exception as exc:
            raise _op_error(named, (a, b), exc) from exc
    return run


# ----------------------------------------------------------------------------- Tensor methods


def _to_tensor_op(fn):
    return lambda self, *a, **k: fn(self, *a, **k)


def _raise(exc):
    raise exc


def _install():
    T = Tensor
    T.__add__, T.__radd__ = add, lambda a, b: add(b, a)
    T.__sub__, T.__rsub__ = sub, lambda a, b: sub(b, a)
    T.__mul__, T.__rmul__ = mul, lambda a, b: mul(b, a)
    T.__truediv__, T.__rtruediv__ = div, lambda a, b: div(b, a)
    T.__pow__, T.__rpow__ = pow, lambda a, b: pow(b, a)
    T.__matmul__, T.__rmatmul__ = matmul, lambda a, b: matmul(b, a)
    T.__neg__ = neg
    T.__pos__ = lambda a: a
    T.__abs__ = abs
    T.__getitem__ = index
    for name, fn in (("__lt__", np.less), ("__le__", np.less_equal), ("__gt__", np.greater),
                     ("__ge__", np.greater_equal), ("__eq__", np.equal), ("__ne__", np.not_equal)):
        setattr(T, name, _compare(fn))
    for fn in (exp, log, sqrt, sin, cos, tanh, sigmoid, relu, softplus, leaky_relu, clip,
               sum, mean, var, max, min, logsumexp, softmax, log_softmax, reshape, transpose,
               expand, broadcast_to, squeeze, unsqueeze, flatten, astype, abs, maximum, minimum):
        name = fn.__name__ if fn.__name__ != "run" else fn.op.name
        setattr(T, name, _to_tensor_op(fn))
    T.T = property(lambda a: transpose(a))
    T.mT = property(lambda a: _swap(a) if a.ndim >= 2 else _raise(ShapeError(
        f".mT swaps the last two axes, but this tensor has shape {a.shape}; use .T or reshape")))
    T.permute = lambda a, *axes: transpose(a, axes=tuple(axes[0] if len(axes) == 1 and
                                                         isinstance(axes[0], (tuple, list)) else axes))
    T.float = lambda a: astype(a, dtype=np.float32) if a.dtype != np.float32 else a
    T.double = lambda a: astype(a, dtype=np.float64) if a.dtype != np.float64 else a
    T.view = T.reshape


_install()

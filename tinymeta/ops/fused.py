"""Fused primitives: several steps as one node, forward run by a compiled kernel.

Each exists because a profile of a meta-learning step said so: fewer nodes means less
Python per step, and one kernel pass means less memory traffic. Their rules are written,
like every other rule, with differentiable ops, so fusion never costs a derivative order.

* ``linear(x, W, b, activation)``: x @ W^T + b, optionally relu'd, in one node;
* ``mse`` and ``mse_grad``: the regression loss and its derivative, each one pass;
* ``sub_scaled``: the SGD update p - lr * d of every inner loop;
* ``softmax_cross_entropy``: -log softmax(logits)[label], stable, one pass.
"""
import numpy as np

from .. import kernels
from ..errors import ArgumentError, ShapeError
from ..engine import Tensor
from .core import Axis, Op, TensorLike, astype, count, defop, fit_gradient, keepdims_shape, ndim, norm_axis
from .elementwise import equal, relu_backward
from .linalg import matmul_arrays, matmul_tn
from .reductions import softmax, sum
from .shape import reshape, unsqueeze

# ----------------------------------------------------------------------------- linear


def _linear_fwd(x, w, b=None, activation=None):
    act = "relu" if activation == "relu" else "none"
    if x.ndim == 2 and w.ndim == 2:
        return kernels.linear_act(x, w, b, act)  # bias and relu in the same pass as the product
    # Leading batch/task axes: per-task weights (tasks, out, in) and biases (tasks, out).
    y = matmul_arrays(x, np.swapaxes(w, -1, -2))
    if b is not None:
        y = y + (b if b.ndim == 1 else np.expand_dims(b, -2))
    return kernels.relu(y) if act == "relu" else y


_LINEAR_RULES = (
    lambda g, x, w, b: g @ w,
    lambda g, x, w, b: unsqueeze(g, -1) * x if x.ndim == 1 else matmul_tn(g, x),
    lambda g, x, w, b: g if w.ndim == 2 else sum(g, axis=-2),
)


class _Linear(Op):
    """With activation="relu" the node's rule is relu's rule, then linear's. The most common
    node of a network, so its backward fits each gradient inline (see ``Op.backward``)."""

    def backward(self, g, out, inputs, need, kwargs):
        if kwargs["activation"] == "relu":
            g = relu_backward(g, out)
        x, w = inputs[0], inputs[1]
        b = inputs[2] if len(inputs) > 2 else None
        res = []
        for i, (rule, n) in enumerate(zip(_LINEAR_RULES, need)):
            if not n:
                res.append(None)
                continue
            gi, p = rule(g, x, w, b), inputs[i]
            if not (type(gi) is Tensor and gi.data.shape == p.data.shape and gi.data.dtype is p.data.dtype):
                gi = fit_gradient(self.name, i, gi, p)
            res.append(gi)
        return res


def _linear_args(x, weight, bias: "TensorLike | None" = None, activation: "str | None" = None):
    if activation not in (None, "relu"):
        raise ArgumentError(f"linear: activation must be None or 'relu', got {activation!r}")
    xs = x.data.shape if type(x) is Tensor else np.shape(x)
    ws = weight.data.shape if type(weight) is Tensor else np.shape(weight)
    if len(ws) < 2 or not xs or xs[-1] != ws[-1]:
        raise ShapeError(f"linear: the input has shape {xs} and the weight (out_features, in_features) "
                         f"has shape {ws}; the input's last dimension must equal in_features"
                         + (f" ({ws[-1]})" if len(ws) >= 2 else ""))
    args = (x, weight) if bias is None else (x, weight, bias)
    return args, {"activation": activation}


linear = defop("linear", None, op=_Linear("linear", _linear_fwd, _LINEAR_RULES,
                                          src="linear({0}, {1}, {2}, activation={activation})"),
               args=_linear_args,
               doc="x @ W^T + b (W: (out, in), PyTorch's layout), and with activation='relu' the relu "
                   "too, in one node. Leading axes broadcast, so one call runs a whole meta-batch of "
                   "per-task weights.")

# ----------------------------------------------------------------------------- mse


def _mse_args(pred, target, axis: Axis = None):
    if axis is None:
        return (pred, target), _ALL_AXES
    return (pred, target), {"axis": norm_axis(axis, max(ndim(pred), ndim(target)), "mse")}


def _mse_grad_args(g, pred, target, axis: Axis = None):
    if axis is None:
        return (g, pred, target), _ALL_AXES
    return (g, pred, target), {"axis": norm_axis(axis, max(ndim(pred), ndim(target)), "mse_grad")}


_ALL_AXES = {"axis": None}  # shared, read-only: the options of a whole-array mse


# pred and target may broadcast against each other: counts and shapes are the broadcast
# shape's (the machinery then sums each gradient back to its input's shape).
def _mse_grad_vjp_g(gg, o, g, pred, target, axis=None):
    n = count(o.shape, axis)
    return sum.call(gg * (pred - target), axis=axis, keepdims=False) * (2.0 / n if n else 0.0)


def _mse_grad_vjp_pred(gg, o, g, pred, target, axis=None):
    n = count(o.shape, axis)
    return reshape.call(g, shape=keepdims_shape(o.shape, axis)) * (2.0 / n if n else 0.0) * gg


# mse's derivative w.r.t. pred, g * 2/n * (pred - target), as a primitive of its own so a
# kernel computes it in one pass; its rules (linear in each input) make every higher order.
mse_grad = defop("mse_grad", kernels.mse_backward, _mse_grad_vjp_g, _mse_grad_vjp_pred,
                 lambda gg, o, g, p, t, axis=None: -_mse_grad_vjp_pred(gg, o, g, p, t, axis),
                 args=_mse_grad_args,
                 doc="g * 2/n * (pred - target): the derivative of mse w.r.t. pred, as one primitive.",
            src="mse_grad({0}, {1}, {2}, axis={axis})")

mse = defop("mse", kernels.mse,
            lambda g, o, p, t, axis=None: mse_grad.call(g, p, t, axis=axis),
            lambda g, o, p, t, axis=None: -mse_grad.call(g, p, t, axis=axis),
            args=_mse_args,
            doc="Mean squared error over ``axis`` (all axes by default) in one node: the loss of "
                "every regression task, one per task with ``axis`` covering the trailing axes.",
            src="mse({0}, {1}, axis={axis})")

# ----------------------------------------------------------------------------- sub_scaled

sub_scaled = defop("sub_scaled", lambda p, lr, d: p - lr * d,
                   lambda g, o, p, lr, d: g,
                   lambda g, o, p, lr, d: -(g * d),
                   lambda g, o, p, lr, d: -(g * lr),
                   doc="p - lr * d, the SGD update, in one node; lr may be a tensor (a learned rate).",
            src="{0} - {1} * {2}", scalar=True)

# ----------------------------------------------------------------------------- cross-entropy


def _xent_vjp(g, o, logits, labels):
    classes = np.arange(logits.shape[-1])
    onehot = astype(equal(unsqueeze(labels, -1), classes), logits.dtype)
    return unsqueeze(g, -1) * (softmax(logits, axis=-1) - onehot)


softmax_cross_entropy = defop(
    "softmax_cross_entropy", lambda logits, labels: kernels.softmax_xent(logits, np.asarray(labels)),
    _xent_vjp, lambda *a: None,
    doc="Per-example -log softmax(logits)[label] for logits (N, C) and integer labels (N,); "
        "stable for extreme logits.",
            src="softmax_cross_entropy({0}, {1})")

"""NumPy twins of the compiled kernels: the reference implementations.

They run whenever numba is off, missing, or the inputs do not suit a kernel
(other dtypes, non-contiguous views, sizes where NumPy measured faster), and the
tests hold every numba kernel to them. Each twin has the same signature and the
same in-place contract as its kernel and does the arithmetic in the same order,
so the two paths differ only by rounding.

Python scalars (lr, betas, ...) are cast to the array dtype first: NumPy keeps
float32 for Python floats anyway, but a caller's np.float64 scalar would
otherwise upcast every float32 temporary.
"""
import numpy as np

from tinymeta.errors import ArgumentError, DTypeError, IndexingError, ShapeError

from . import updates
from .updates import ARRAYS


# Returned by a compiled optimizer kernel that refused its arrays (wrong layout,
# mixed dtypes, mismatched shapes): the dispatcher runs the twin instead.
UNSUITED = type("Unsuited", (), {"__repr__": lambda self: "UNSUITED", "__slots__": ()})()


def _nd(r):
    # A ufunc on a 0-d array returns a NumPy scalar; callers expect an ndarray.
    return r if isinstance(r, np.ndarray) else np.asarray(r)


def relu(x):
    return _nd(np.maximum(x, 0))


def relu_backward(g, out):
    return _nd(g * (out > 0))


def tanh_backward(g, out):
    return _nd(g * (1 - out * out))


def sigmoid_backward(g, out):
    return _nd(g * out * (1 - out))


def check_act(act):
    """Return True for "relu", False for "none"; reject anything else."""
    if act == "relu":
        return True
    if act == "none":
        return False
    raise ArgumentError(f"bias_act: act must be 'none' or 'relu', got {act!r}")


def bias_act(y, b, act):
    relu_on = check_act(act)
    if b is not None:
        y += b
    if relu_on:
        np.maximum(y, 0, out=y)
    return y


def linear_act(x, w, b, act):
    return bias_act(np.dot(x, w.T), b, act)


def _count(shape, axis):
    return int(np.prod(shape)) if axis is None else int(np.prod([shape[a] for a in axis]))


def mse(pred, target, axis=None):
    d = pred - target
    return _nd(np.mean(d * d, axis=axis))


def mse_backward(g, pred, target, axis=None):
    d = pred - target
    n = _count(d.shape, axis)
    keep = tuple(1 if axis is None or i in axis else s for i, s in enumerate(d.shape))
    return (np.reshape(g, keep) * (2.0 / n if n else 0.0)) * d  # empty: empty


def check_xent(logits, labels):
    """Shape/dtype/range checks shared by both softmax_xent paths."""
    if logits.ndim != 2:
        raise ShapeError(f"softmax_xent: logits must be (N, C), got shape {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ShapeError(f"softmax_xent: labels must have shape ({logits.shape[0]},) "
                         f"to match logits {logits.shape}, got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"softmax_xent: labels must be integers, got {labels.dtype}")


def label_error(labels, row, c):
    return IndexingError(f"softmax_xent: label {int(labels[row])} at row {row} is outside [0, {c})")


def softmax_xent(logits, labels):
    check_xent(logits, labels)
    n, c = logits.shape
    if n:
        bad = np.flatnonzero((labels < 0) | (labels >= c))
        if bad.size:
            raise label_error(labels, bad[0], c)
    if logits.size == 0:
        return np.empty(n, logits.dtype)
    # Shift by the row max so exp never overflows; the loss is then
    # log(sum exp(x - m)) - (x_label - m), both terms of moderate size.
    m = logits.max(axis=1, keepdims=True)
    s = np.exp(logits - m).sum(axis=1)
    return np.log(s) - (logits[np.arange(n), labels] - m[:, 0])


def typed(p, *scalars):
    """The scalars cast to p's dtype (shared with the numba wrappers)."""
    t = p.dtype.type
    return [t(s) for s in scalars]


# The optimizer twins run the one rule of each optimizer (updates.py) on arrays and write
# the results in place. Scalars are cast to p's dtype first, as the compiled kernels do.

def _store(*pairs):
    for dst, value in pairs:
        if dst is not None and value is not None and value is not dst:
            dst[...] = value


def sgd_update(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first_step):
    lr, mom, damp, wd = typed(p, lr, momentum, dampening, weight_decay)
    new_p, new_buf = updates.sgd(p, g, None if first_step else buf, lr, mom, damp, nesterov, wd, ARRAYS)
    _store((p, new_p), (buf, new_buf))


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    lr, b1, b2, eps, wd = typed(p, lr, beta1, beta2, eps, weight_decay)
    new_p, new_m, new_v = updates.adam(p, g, m, v, step, lr, b1, b2, eps, wd, decoupled, ARRAYS)
    _store((p, new_p), (m, new_m), (v, new_v))


def rmsprop_update(p, g, sq, lr, alpha, eps, weight_decay, momentum, buf):
    lr, alpha, eps, wd, mom = typed(p, lr, alpha, eps, weight_decay, momentum)
    new_p, new_sq, new_buf = updates.rmsprop(p, g, sq, buf, lr, alpha, eps, wd, mom, ARRAYS)
    _store((p, new_p), (sq, new_sq), (buf, new_buf))


def adagrad_update(p, g, s, lr, eps, weight_decay):
    lr, eps, wd = typed(p, lr, eps, weight_decay)
    new_p, new_s = updates.adagrad(p, g, s, lr, eps, wd, ARRAYS)
    _store((p, new_p), (s, new_s))

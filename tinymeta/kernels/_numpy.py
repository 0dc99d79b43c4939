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

from tinymeta.errors import ArgumentError, DTypeError, IndexError_, ShapeError


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


def mse(pred, target, lead):
    d = pred - target
    return _nd(np.mean(d * d, axis=tuple(range(lead, d.ndim))))


def mse_backward(g, pred, target, lead):
    n = int(np.prod(pred.shape[lead:]))
    return (np.reshape(g, g.shape + (1,) * (pred.ndim - lead)) * (2.0 / n if n else 0.0)) * (pred - target)


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
    return IndexError_(f"softmax_xent: label {int(labels[row])} at row {row} is outside [0, {c})")


def softmax_xent(logits, labels):
    check_xent(logits, labels)
    n, c = logits.shape
    if n:
        bad = np.flatnonzero((labels < 0) | (labels >= c))
        if bad.size:
            raise label_error(labels, bad[0], c)
    if logits.size == 0:
        return np.empty(n, logits.dtype), np.empty_like(logits)
    # Shift by the row max so exp never overflows; the loss is then
    # log(sum exp(x - m)) - (x_label - m), both terms of moderate size.
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    losses = np.log(s[:, 0]) - (logits[rows, labels] - m[:, 0])
    d = e / s
    d[rows, labels] -= 1
    return losses, d


def typed(p, *scalars):
    """The scalars cast to p's dtype (shared with the numba wrappers)."""
    t = p.dtype.type
    return [t(s) for s in scalars]


def sgd_update(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first_step):
    lr, mom, damp1, wd = typed(p, lr, momentum, 1 - dampening, weight_decay)
    d = g + wd * p if wd != 0 else g
    if mom != 0:
        if first_step:
            buf[...] = d
        else:
            buf *= mom
            buf += damp1 * d
        d = d + mom * buf if nesterov else buf
    p -= lr * d


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
    lr, b1, b2, omb1, omb2, eps, wd, bc1, bc2 = typed(
        p, lr, beta1, beta2, 1 - beta1, 1 - beta2, eps, weight_decay, bc1, bc2)
    if wd != 0:
        if decoupled:
            p *= 1 - lr * wd
        else:
            g = g + wd * p
    m *= b1
    m += omb1 * g
    v *= b2
    v += omb2 * g * g
    p -= lr * (m / bc1) / (np.sqrt(v / bc2) + eps)


def rmsprop_update(p, g, sq, lr, alpha, eps, weight_decay, momentum, buf):
    lr, alpha, oma, eps, wd, mom = typed(p, lr, alpha, 1 - alpha, eps, weight_decay, momentum)
    if wd != 0:
        g = g + wd * p
    sq *= alpha
    sq += oma * g * g
    if mom > 0:
        buf *= mom
        buf += g / (np.sqrt(sq) + eps)
        p -= lr * buf
    else:
        p -= lr * g / (np.sqrt(sq) + eps)


def adagrad_update(p, g, s, lr, eps, weight_decay):
    lr, eps, wd = typed(p, lr, eps, weight_decay)
    if wd != 0:
        g = g + wd * p
    s += g * g
    p -= lr * g / (np.sqrt(s) + eps)

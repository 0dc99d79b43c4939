"""The compiled kernels. Imported only by ``tinymeta.kernels`` on first use.

Choices measured on the 2-core target machine:
- serial loops: parallel=True collapses when the other core is busy;
- error_model="numpy": the "python" model (ZeroDivisionError checks) made
  Adam 12x slower;
- fastmath=False: results must match the NumPy twins to rounding;
- cache=True: the first process compiles, later ones load from disk.

Each njit kernel writes into arrays passed in; the plain-Python wrapper named
like the twin allocates outputs. On small tensors the Python-side overhead is
most of the cost (a NumPy ufunc on 1000 floats takes ~1.3 us), so:
- kernels take arrays of any rank and ravel them inside (a free view for the
  C-contiguous arrays the dispatcher guarantees) instead of paying ~0.1 us per
  reshape in Python; numba compiles once per (dtype, rank);
- kernels cast scalars with ``p.dtype.type(...)`` themselves instead of the
  wrapper doing it in Python, so float32 arithmetic stays float32 and rounds
  as in the twin (a float64 scalar would promote every float32 expression).
Wrappers assume what the dispatcher checks: one float dtype, C-contiguous
(a non-contiguous array would be raveled into a copy and in-place updates lost).
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from . import _numpy as _twin
from ._numpy import UNSUITED

_jit = njit(cache=True, error_model="numpy", fastmath=False)


def _fits(p, g, m, v):
    """Whether an optimizer kernel may update p in place with g, m, v (see the overload)."""


@overload(_fits)
def _fits_typed(p, g, m, v):
    # Decided while numba types a call, so a call with suitable arrays pays nothing
    # for the check, where four arrays' dtype/layout checks in Python cost ~0.5 us.
    # Non-contiguous arrays must be refused: ravel() would copy them and the
    # in-place update would be lost.
    arrays = (p, g, m, v)
    if not (isinstance(p, types.Array) and p.dtype in (types.float32, types.float64) and all(
            isinstance(a, types.Array) and a.layout == "C" and a.dtype == p.dtype
            and a.ndim == p.ndim for a in arrays)):
        return lambda p, g, m, v: False
    return lambda p, g, m, v: p.shape == g.shape and p.shape == m.shape and p.shape == v.shape


@_jit
def _relu(x, out):
    a, r = x.ravel(), out.ravel()
    for i in range(a.size):
        v = a[i]
        # "v <= 0" is False for NaN, so NaN passes through like np.maximum.
        if v <= 0:
            r[i] = 0
        else:
            r[i] = v


@_jit
def _relu_backward(g, out, res):
    a, o, r = g.ravel(), out.ravel(), res.ravel()
    for i in range(a.size):
        # g * 0 rather than 0: an inf/NaN gradient still gives NaN, as g * (out > 0) does.
        r[i] = a[i] if o[i] > 0 else a[i] * 0


@_jit
def _tanh_backward(g, out, res):
    a, o, r = g.ravel(), out.ravel(), res.ravel()
    one = g.dtype.type(1)
    for i in range(a.size):
        r[i] = a[i] * (one - o[i] * o[i])


@_jit
def _sigmoid_backward(g, out, res):
    a, o, r = g.ravel(), out.ravel(), res.ravel()
    one = g.dtype.type(1)
    for i in range(a.size):
        r[i] = a[i] * o[i] * (one - o[i])


@_jit
def _bias_act(y, b, relu):
    rows, n = y.shape
    for i in range(rows):
        for j in range(n):
            v = y[i, j] + b[j]
            if relu and v <= 0:
                y[i, j] = 0
            else:
                y[i, j] = v


@_jit
def _linear_act(x, w, b, y, has_b, relu):
    n, k = x.shape
    m = w.shape[0]
    for i in range(n):
        for j in range(m):
            acc = b[j] if has_b else x.dtype.type(0)
            for q in range(k):
                acc += x[i, q] * w[j, q]
            if relu and acc <= 0:
                acc = 0
            y[i, j] = acc


# Up to this many multiply-adds (n * in * out) the plain loops of _linear_act beat
# np.dot's call overhead: 10x1->40 0.69 us against 1.18 for np.dot + bias_act, even at
# 25x1->40 (1000); at 25x10->40 (10,000) BLAS is 2x faster. The measurement
# agrees: BLAS wins from 25x40 up, so larger layers keep np.dot.
LINEAR_LOOPS = 1024


@_jit
def _row_max(x, i):
    m = x[i, 0]
    for j in range(1, x.shape[1]):
        if x[i, j] > m:
            m = x[i, j]
    return m


@_jit
def _softmax_xent(x, labels, losses):
    n, c = x.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return i  # the wrapper raises; numba cannot build our exception types
        m = _row_max(x, i)
        s = np.exp(x[i, 0] - m)  # typed like x: float32 sums as the twin does
        for j in range(1, c):
            s += np.exp(x[i, j] - m)
        losses[i] = np.log(s) - (x[i, lab] - m)
    return -1


# The split form of _softmax_xent for larger inputs: numba's exp is scalar libm,
# NumPy's is SIMD, so exp runs in NumPy between two compiled passes over a workspace.
# The row max waits in `losses` until the second pass overwrites it with the loss.
@_jit
def _xent_shift(x, labels, losses, work):
    n, c = x.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return i
        m = _row_max(x, i)
        losses[i] = m
        for j in range(c):
            work[i, j] = x[i, j] - m
    return -1


@_jit
def _xent_finish(x, labels, losses, work):
    n, c = x.shape
    for i in range(n):
        s = work[i, 0]
        for j in range(1, c):
            s += work[i, j]
        losses[i] = np.log(s) - (x[i, labels[i]] - losses[i])


# From this many logits on, the split form wins: measured crossover 250 (float64)
# to 350 (float32) elements; 128x10 float64 6.3 -> 3.0 us, 25x5 stays fused (0.95 us).
XENT_SPLIT = 300


def softmax_xent_into(x, labels, losses):
    """The kernel proper: fills losses (N,); returns the first bad label's row or -1."""
    if x.size < XENT_SPLIT:
        return _softmax_xent(x, labels, losses)
    work = np.empty(x.shape, x.dtype)
    bad = _xent_shift(x, labels, losses, work)
    if bad < 0:
        np.exp(work, out=work)
        _xent_finish(x, labels, losses, work)
    return bad


@_jit
def _mse(pred, target, rows, out):
    # Mean over each row of the (rows, n) view: the trailing axes of a per-task loss.
    # The sum runs in float64 whatever the dtype: a float32 running sum loses digits
    # on long rows (4e6 elements: 3e-3 relative), where NumPy's pairwise sum does not.
    pf, tf = pred.ravel(), target.ravel()
    n = pf.size // rows
    for r in range(rows):
        acc = 0.0
        for i in range(r * n, (r + 1) * n):
            d = np.float64(pf[i] - tf[i])
            acc += d * d
        out[r] = acc / n


@_jit
def _mse_backward(g, pred, target, res):
    # (g_r * 2/n) * (pred - target), in the twin's order of rounding.
    pf, tf, rf = pred.ravel(), target.ravel(), res.ravel()
    rows = g.size
    n = pf.size // rows
    c = pf.dtype.type(2.0 / n)
    for r in range(rows):
        gc = g.flat[r] * c
        for i in range(r * n, (r + 1) * n):
            rf[i] = gc * (pf[i] - tf[i])


@_jit
def _sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    if not _fits(p, g, buf, p):
        return False
    t = p.dtype.type
    lr, mom, damp1, wd = t(lr), t(momentum), t(1.0 - dampening), t(weight_decay)
    pf, gf, bf = p.ravel(), g.ravel(), buf.ravel()
    for i in range(pf.size):
        d = gf[i]
        if wd != 0:
            d = d + wd * pf[i]
        if mom != 0:
            b = d if first else mom * bf[i] + damp1 * d
            bf[i] = b
            d = d + mom * b if nesterov else b
        pf[i] -= lr * d
    return True


@_jit
def _adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2):
    if not _fits(p, g, m, v):
        return False
    t = p.dtype.type
    # The two scalars of updates.adam, formed in float64 and then rounded, as there.
    step_size, bc2_sqrt = t(lr / bc1), t(np.sqrt(bc2))
    lr, b1, b2, eps, wd = t(lr), t(beta1), t(beta2), t(eps), t(weight_decay)
    omb1, omb2 = t(1.0 - beta1), t(1.0 - beta2)
    # AdamW shrinks p and leaves g alone; Adam adds wd*p to g. The factor is
    # formed from dtype scalars so it rounds exactly as in the twin.
    decay = t(1) - lr * wd if decoupled else t(1)
    if decoupled:
        wd = t(0)
    pf, gf, mf, vf = p.ravel(), g.ravel(), m.ravel(), v.ravel()
    for i in range(pf.size):
        pi = pf[i] * decay
        gi = gf[i]
        if wd != 0:
            gi = gi + wd * pi
        mi = b1 * mf[i] + omb1 * gi
        vi = b2 * vf[i] + omb2 * gi * gi
        mf[i] = mi
        vf[i] = vi
        pf[i] = pi - step_size * mi / (np.sqrt(vi) / bc2_sqrt + eps)
    return True


@_jit
def _rmsprop(p, g, sq, buf, lr, alpha, eps, weight_decay, momentum):
    if not _fits(p, g, sq, buf):
        return False
    t = p.dtype.type
    lr, a, oma, eps, wd, mom = t(lr), t(alpha), t(1.0 - alpha), t(eps), t(weight_decay), t(momentum)
    pf, gf, sf, bf = p.ravel(), g.ravel(), sq.ravel(), buf.ravel()
    for i in range(pf.size):
        gi = gf[i]
        if wd != 0:
            gi = gi + wd * pf[i]
        s = a * sf[i] + oma * gi * gi
        sf[i] = s
        if mom > 0:
            b = mom * bf[i] + gi / (np.sqrt(s) + eps)
            bf[i] = b
            pf[i] -= lr * b
        else:
            pf[i] -= lr * gi / (np.sqrt(s) + eps)
    return True


@_jit
def _adagrad(p, g, s, lr, eps, weight_decay):
    if not _fits(p, g, s, p):
        return False
    t = p.dtype.type
    lr, eps, wd = t(lr), t(eps), t(weight_decay)
    pf, gf, sf = p.ravel(), g.ravel(), s.ravel()
    for i in range(pf.size):
        gi = gf[i]
        if wd != 0:
            gi = gi + wd * pf[i]
        si = sf[i] + gi * gi
        sf[i] = si
        pf[i] -= lr * gi / (np.sqrt(si) + eps)
    return True


# ---- wrappers: same signatures and contracts as the twins ----

def relu(x):
    res = np.empty(x.shape, x.dtype)
    _relu(x, res)
    return res


def relu_backward(g, out):
    res = np.empty(g.shape, g.dtype)
    _relu_backward(g, out, res)
    return res


def tanh_backward(g, out):
    res = np.empty(g.shape, g.dtype)
    _tanh_backward(g, out, res)
    return res


def sigmoid_backward(g, out):
    res = np.empty(g.shape, g.dtype)
    _sigmoid_backward(g, out, res)
    return res


def bias_act(y, b, act):
    relu_on = _twin.check_act(act)
    if b is not None:
        _bias_act(y if y.ndim == 2 else y.reshape(-1, y.shape[-1]), b, relu_on)
    elif relu_on:
        _relu(y, y)  # reading and writing the same index is safe
    return y


def linear_act(x, w, b, act):
    relu_on = _twin.check_act(act)
    n, k = x.shape
    m = w.shape[0]
    if 0 < n * k * m <= LINEAR_LOOPS:
        y = np.empty((n, m), x.dtype)
        _linear_act(x, w, w[0] if b is None else b, y, b is not None, relu_on)  # w[0]: unread
        return y
    return bias_act(np.dot(x, w.T), b, act)


def softmax_xent(logits, labels):
    _twin.check_xent(logits, labels)
    losses = np.empty(logits.shape[0], logits.dtype)
    bad = softmax_xent_into(logits, labels, losses)
    if bad >= 0:
        raise _twin.label_error(labels, bad, logits.shape[1])
    return losses


def _lead(axis):
    return 0 if axis is None else min(axis)


def mse(pred, target, axis=None):
    lead = _lead(axis)
    out = np.empty(pred.shape[:lead], pred.dtype)
    _mse(pred, target, max(out.size, 1), out.reshape(-1) if lead else out.reshape(1))
    return out


def mse_backward(g, pred, target, axis=None):
    res = np.empty(pred.shape, pred.dtype)
    _mse_backward(g, pred, target, res)
    return res


# The optimizer wrappers return UNSUITED when the kernel refused the arrays (see
# _fits): the dispatcher then runs the twin.

def sgd_update(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first_step):
    # With no momentum buf is never touched; p stands in so the types line up.
    if not _sgd(p, g, p if buf is None else buf, lr, momentum, dampening, nesterov,
                weight_decay, first_step):
        return UNSUITED


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    # Bias corrections in Python float64, exactly as the twin forms them.
    if not _adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled,
                 1 - beta1 ** step, 1 - beta2 ** step):
        return UNSUITED


def rmsprop_update(p, g, sq, lr, alpha, eps, weight_decay, momentum, buf):
    if not _rmsprop(p, g, sq, p if buf is None else buf, lr, alpha, eps, weight_decay, momentum):
        return UNSUITED


def adagrad_update(p, g, s, lr, eps, weight_decay):
    if not _adagrad(p, g, s, lr, eps, weight_decay):
        return UNSUITED

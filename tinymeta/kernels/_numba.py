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
from numba import njit

from . import _numpy as _twin

_jit = njit(cache=True, error_model="numpy", fastmath=False)


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
def _softmax_xent(x, labels, losses, d):
    n, c = x.shape
    for i in range(n):
        lab = labels[i]
        if lab < 0 or lab >= c:
            return i  # the wrapper raises; numba cannot build our exception types
        m = x[i, 0]
        for j in range(1, c):
            if x[i, j] > m:
                m = x[i, j]
        # Park exp(x - m) in d so exp runs once per entry.
        s = np.exp(x[i, 0] - m)
        d[i, 0] = s
        for j in range(1, c):
            e = np.exp(x[i, j] - m)
            d[i, j] = e
            s += e
        for j in range(c):
            d[i, j] = d[i, j] / s
        d[i, lab] -= 1
        losses[i] = np.log(s) - (x[i, lab] - m)
    return -1


@_jit
def _sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
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


@_jit
def _adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, bc1, bc2):
    t = p.dtype.type
    lr, b1, b2, eps, wd = t(lr), t(beta1), t(beta2), t(eps), t(weight_decay)
    omb1, omb2, bc1, bc2 = t(1.0 - beta1), t(1.0 - beta2), t(bc1), t(bc2)
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
        pf[i] = pi - lr * (mi / bc1) / (np.sqrt(vi / bc2) + eps)


@_jit
def _rmsprop(p, g, sq, buf, lr, alpha, eps, weight_decay, momentum):
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


@_jit
def _adagrad(p, g, s, lr, eps, weight_decay):
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


def softmax_xent(logits, labels):
    _twin.check_xent(logits, labels)
    losses = np.empty(logits.shape[0], logits.dtype)
    d = np.empty(logits.shape, logits.dtype)
    bad = _softmax_xent(logits, labels, losses, d)
    if bad >= 0:
        raise _twin.label_error(labels, bad, logits.shape[1])
    return losses, d


def sgd_update(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, first_step):
    # With no momentum buf is never touched; p stands in so the types line up.
    _sgd(p, g, p if buf is None else buf, lr, momentum, dampening, nesterov, weight_decay,
         first_step)


def adam_update(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    # Bias corrections in Python float64, exactly as the twin forms them.
    _adam(p, g, m, v, lr, beta1, beta2, eps, weight_decay, decoupled,
          1 - beta1 ** step, 1 - beta2 ** step)


def rmsprop_update(p, g, sq, lr, alpha, eps, weight_decay, momentum, buf):
    _rmsprop(p, g, sq, p if buf is None else buf, lr, alpha, eps, weight_decay, momentum)


def adagrad_update(p, g, s, lr, eps, weight_decay):
    _adagrad(p, g, s, lr, eps, weight_decay)

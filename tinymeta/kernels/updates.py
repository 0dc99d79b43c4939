"""The optimizers' update rules, each written once, for one tensor.

They use only ``+ - * /`` and the two functions of ``ops`` (``sqrt`` and ``sub_scaled``,
p - lr * d), so the same lines run on two backends:

* NumPy arrays (``ARRAYS``): the NumPy twins of the fused optimizer kernels run them and
  write the results in place; the compiled kernels are held to them by the tests;
* tinymeta Tensors (``tinymeta.optim.functional`` passes tinymeta's ops): the same update,
  differentiable, for meta-learners that backpropagate through an optimizer step.

Each returns the new parameter and the new state; ``None`` state means "first step".
A hyperparameter that is exactly 0 as a plain number skips its term; a Tensor never does
(its hypergradient is wanted even at 0).
"""
import numpy as np


class _ArrayOps:
    sqrt = staticmethod(np.sqrt)

    @staticmethod
    def sub_scaled(p, lr, d):
        return p - lr * d


ARRAYS = _ArrayOps()


def off(value):
    """Whether a hyperparameter is a plain number equal to 0 (its term can be skipped)."""
    return isinstance(value, (int, float, np.number)) and value == 0


def sgd(p, g, buf, lr, momentum, dampening, nesterov, weight_decay, ops):
    """d = g + wd p;  b <- mu b + (1 - dampening) d  (b = d at the first step);
    p <- p - lr (d + mu b if nesterov else b)   (plain p - lr d when mu = 0)."""
    d = g if off(weight_decay) else g + weight_decay * p
    if not off(momentum):
        buf = d if buf is None else momentum * buf + (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return ops.sub_scaled(p, lr, d), buf


def adam(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled, ops):
    """Kingma & Ba (2015); with ``decoupled`` the weight decay of AdamW (Loshchilov & Hutter
    2019); ``step`` counts from 1:
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  p <- p - (lr/(1-b1^t)) m / (sqrt(v)/sqrt(1-b2^t) + eps).

    Written in PyTorch's order of operations (the step size and sqrt(1-b2^t) are scalars
    formed first): two divisions per element, not three, and the compiled kernel's time
    is mostly those divisions (146 us, was 167 us, for the 784-256-256-10 MLP's Adam step)."""
    if not off(weight_decay):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = (1 - beta1) * g if m is None else beta1 * m + (1 - beta1) * g
    v = (1 - beta2) * g * g if v is None else beta2 * v + (1 - beta2) * g * g
    bc1, bc2 = 1 - beta1 ** step, 1 - beta2 ** step
    return p - (lr / bc1) * m / (ops.sqrt(v) / bc2 ** 0.5 + eps), m, v


def rmsprop(p, g, sq, buf, lr, alpha, eps, weight_decay, momentum, ops):
    """Tieleman & Hinton (2012), PyTorch's form: s <- alpha s + (1-alpha) g^2;
    p <- p - lr g / (sqrt(s) + eps)  (with momentum: b <- mu b + g/(sqrt(s)+eps); p <- p - lr b)."""
    if not off(weight_decay):
        g = g + weight_decay * p
    sq = (1 - alpha) * g * g if sq is None else alpha * sq + (1 - alpha) * g * g
    d = g / (ops.sqrt(sq) + eps)
    if not off(momentum):
        buf = d if buf is None else momentum * buf + d
        d = buf
    return ops.sub_scaled(p, lr, d), sq, buf


def adagrad(p, g, s, lr, eps, weight_decay, ops):
    """Duchi et al. (2011): s <- s + g^2;  p <- p - lr g / (sqrt(s) + eps)."""
    if not off(weight_decay):
        g = g + weight_decay * p
    s = g * g if s is None else s + g * g
    return ops.sub_scaled(p, lr, g / (ops.sqrt(s) + eps)), s

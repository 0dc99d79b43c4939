"""Update rules as pure functions: (params, grads, state) -> (new params, new state).

Written with tinymeta ops, so they are differentiable: a meta-learner can run them inside
its inner loop with ``create_graph=True`` and backpropagate through the update itself
(MAML through SGD, Meta-SGD through a learned per-parameter ``lr``, hypergradients
through ``lr`` and ``weight_decay``). ``lr`` may be a float, a Tensor, or a list with one
per parameter. The stateful optimizers in ``optimizers.py`` run the same rules in place
through fused kernels; the tests hold the two to each other.
"""
from ..engine import Tensor
from ..ops import sqrt, sub_scaled


def _off(value):
    """A hyperparameter that is exactly zero and not a Tensor: its term can be skipped.
    A Tensor stays in the graph even at 0, so its hypergradient is still computed."""
    return type(value) is not Tensor and value == 0


def _per_param(value, n):
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def sgd(params, grads, state=None, lr=0.01, momentum=0.0, dampening=0.0, nesterov=False,
        weight_decay=0.0):
    """d = g + wd p;  b <- mu b + (1 - dampening) d  (b = d at the first step);
    p <- p - lr (d + mu b if nesterov else b)   (plain p - lr d when mu = 0)."""
    state = state or {}
    lrs = _per_param(lr, len(params))
    bufs = state.get("momentum_buffer")
    new_params, new_bufs = [], []
    for i, (p, g) in enumerate(zip(params, grads)):
        d = g if _off(weight_decay) else g + weight_decay * p
        if not _off(momentum):
            b = d if bufs is None else momentum * bufs[i] + (1 - dampening) * d
            new_bufs.append(b)
            d = d + momentum * b if nesterov else b
        new_params.append(sub_scaled(p, lrs[i], d))
    return new_params, ({"momentum_buffer": new_bufs} if not _off(momentum) else {})


def adam(params, grads, state=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
         decoupled=False):
    """Kingma & Ba (2015); with ``decoupled`` the weight decay of AdamW (Loshchilov & Hutter 2019):
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  p <- p - lr m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps)."""
    state = state or {}
    b1, b2 = betas
    t = state.get("step", 0) + 1
    lrs = _per_param(lr, len(params))
    ms, vs = state.get("exp_avg"), state.get("exp_avg_sq")
    new_params, new_m, new_v = [], [], []
    for i, (p, g) in enumerate(zip(params, grads)):
        if decoupled and not _off(weight_decay):
            p = p * (1 - lrs[i] * weight_decay)
        elif not _off(weight_decay):
            g = g + weight_decay * p
        m = (1 - b1) * g if ms is None else b1 * ms[i] + (1 - b1) * g
        v = (1 - b2) * g * g if vs is None else b2 * vs[i] + (1 - b2) * g * g
        mhat, vhat = m * (1.0 / (1 - b1 ** t)), v * (1.0 / (1 - b2 ** t))
        new_params.append(p - lrs[i] * mhat / (sqrt(vhat) + eps))
        new_m.append(m)
        new_v.append(v)
    return new_params, {"step": t, "exp_avg": new_m, "exp_avg_sq": new_v}


def adamw(params, grads, state=None, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return adam(params, grads, state, lr, betas, eps, weight_decay, decoupled=True)


def rmsprop(params, grads, state=None, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
            momentum=0.0):
    """Tieleman & Hinton (2012), PyTorch's form: s <- alpha s + (1-alpha) g^2;
    p <- p - lr g / (sqrt(s) + eps)  (with momentum: b <- mu b + g/(sqrt(s)+eps); p <- p - lr b)."""
    state = state or {}
    lrs = _per_param(lr, len(params))
    sqs, bufs = state.get("square_avg"), state.get("momentum_buffer")
    new_params, new_sq, new_buf = [], [], []
    for i, (p, g) in enumerate(zip(params, grads)):
        if not _off(weight_decay):
            g = g + weight_decay * p
        s = (1 - alpha) * g * g if sqs is None else alpha * sqs[i] + (1 - alpha) * g * g
        step = g / (sqrt(s) + eps)
        if momentum > 0:
            step = step if bufs is None else momentum * bufs[i] + step
            new_buf.append(step)
        new_params.append(p - lrs[i] * step)
        new_sq.append(s)
    out = {"square_avg": new_sq}
    if momentum > 0:
        out["momentum_buffer"] = new_buf
    return new_params, out


def adagrad(params, grads, state=None, lr=1e-2, eps=1e-10, weight_decay=0.0):
    """Duchi et al. (2011): s <- s + g^2;  p <- p - lr g / (sqrt(s) + eps)."""
    state = state or {}
    lrs = _per_param(lr, len(params))
    sums = state.get("sum")
    new_params, new_sum = [], []
    for i, (p, g) in enumerate(zip(params, grads)):
        if not _off(weight_decay):
            g = g + weight_decay * p
        s = g * g if sums is None else sums[i] + g * g
        new_params.append(p - lrs[i] * g / (sqrt(s) + eps))
        new_sum.append(s)
    return new_params, {"sum": new_sum}

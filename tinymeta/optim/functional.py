"""Update rules as pure functions: (params, grads, state) -> (new params, new state).

Each optimizer's rule is written once, in ``tinymeta/kernels/updates.py``, for one tensor
over ``+ - * /``, ``sqrt`` and ``sub_scaled``. Here it runs on Tensors with tinymeta's
ops, so it is differentiable: a meta-learner can run it inside its inner loop with
``create_graph=True`` and backpropagate through the update itself (MAML through SGD,
Meta-SGD through a learned per-parameter ``lr``, hypergradients through ``lr`` and
``weight_decay``). The stateful optimizers in ``optimizers.py`` run the same rule in place,
through the fused kernels. ``lr`` may be a float, a Tensor, or a list with one per parameter.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..engine import Tensor
from ..kernels import updates
from ..ops import sqrt, sub_scaled


class _TensorOps:
    """What the rules need, as tinymeta's differentiable ops."""
    sqrt = staticmethod(sqrt)
    sub_scaled = staticmethod(sub_scaled)


OPS = _TensorOps()


# lr may be one value for every parameter or one per parameter; a Tensor lr is differentiable.
LR = float | Tensor | Sequence[float | Tensor]


def _per_param(value, n):
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


def _column(state, key, n):
    values = state.get(key)
    return [None] * n if values is None else list(values)


def sgd(params: Sequence[Tensor], grads: Sequence[Tensor], state: dict | None = None, lr: LR = 0.01,
        momentum: float = 0.0, dampening: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0) -> tuple[list[Tensor], dict]:
    """SGD with momentum, as in PyTorch (the rule: ``tinymeta.kernels.updates.sgd``):
    d = g + wd p;  b <- mu b + (1 - dampening) d  (b = d at the first step);
    p <- p - lr (d + mu b if nesterov else b)   (plain p - lr d when mu = 0).

    Args:
        params: the parameters (Tensors; with a graph when the update is differentiated).
        grads: their gradients, in the same order.
        state: the state returned by the previous call (``None`` at the first step).
        lr: the learning rate: a float, a Tensor (differentiable), or one per parameter.
        momentum: mu.
        dampening: the dampening of the momentum buffer.
        nesterov: use Nesterov momentum.
        weight_decay: wd, the L2 penalty added to the gradient.

    Returns:
        The new parameters (new tensors; the inputs are unchanged) and the new state.

    Example:
        >>> # one differentiable inner step of MAML: theta' = theta - alpha grad L(theta)
        >>> grads = tm.grad(loss, params, create_graph=True)
        >>> fast, _ = optim.functional.sgd(params, grads, lr=0.01)
    """
    state, n = state or {}, len(params)
    lrs, bufs = _per_param(lr, n), _column(state, "momentum_buffer", n)
    out = [updates.sgd(p, g, bufs[i], lrs[i], momentum, dampening, nesterov, weight_decay, OPS)
           for i, (p, g) in enumerate(zip(params, grads))]
    new_params = [p for p, _ in out]
    return new_params, ({} if updates.off(momentum) else {"momentum_buffer": [b for _, b in out]})


def adam(params: Sequence[Tensor], grads: Sequence[Tensor], state: dict | None = None, lr: LR = 1e-3,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         decoupled: bool = False) -> tuple[list[Tensor], dict]:
    """Adam (Kingma & Ba 2015); with ``decoupled`` the weight decay of AdamW (the rule:
    ``tinymeta.kernels.updates.adam``):
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  p <- p - (lr/(1-b1^t)) m / (sqrt(v)/sqrt(1-b2^t) + eps).

    Args:
        params: the parameters (Tensors; with a graph when the update is differentiated).
        grads: their gradients, in the same order.
        state: the state returned by the previous call (``None`` at the first step).
        lr: the learning rate: a float, a Tensor (differentiable), or one per parameter.
        betas: (b1, b2), the decay rates of the two moment estimates.
        eps: added to the denominator.
        weight_decay: the L2 penalty (added to g, or decoupled).
        decoupled: AdamW's decay, p <- p (1 - lr wd), instead of adding wd p to g.

    Returns:
        The new parameters and the new state (``step``, ``exp_avg``, ``exp_avg_sq``).
    """
    state, n = state or {}, len(params)
    b1, b2 = betas
    t = state.get("step", 0) + 1
    lrs, ms, vs = _per_param(lr, n), _column(state, "exp_avg", n), _column(state, "exp_avg_sq", n)
    out = [updates.adam(p, g, ms[i], vs[i], t, lrs[i], b1, b2, eps, weight_decay, decoupled, OPS)
           for i, (p, g) in enumerate(zip(params, grads))]
    return [o[0] for o in out], {"step": t, "exp_avg": [o[1] for o in out], "exp_avg_sq": [o[2] for o in out]}


def adamw(params: Sequence[Tensor], grads: Sequence[Tensor], state: dict | None = None, lr: LR = 1e-3,
          betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          weight_decay: float = 1e-2) -> tuple[list[Tensor], dict]:
    """AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, p <- p (1 - lr wd) first.

    The arguments and the result are those of ``adam`` (with ``decoupled=True``).
    """
    return adam(params, grads, state, lr, betas, eps, weight_decay, decoupled=True)


def rmsprop(params: Sequence[Tensor], grads: Sequence[Tensor], state: dict | None = None, lr: LR = 1e-2,
            alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
            momentum: float = 0.0) -> tuple[list[Tensor], dict]:
    """RMSprop (Tieleman & Hinton 2012), PyTorch's form (the rule: ``tinymeta.kernels.updates.rmsprop``):
    s <- alpha s + (1-alpha) g^2;  p <- p - lr g / (sqrt(s) + eps)
    (with momentum: b <- mu b + g/(sqrt(s)+eps); p <- p - lr b).

    Args:
        params: the parameters (Tensors; with a graph when the update is differentiated).
        grads: their gradients, in the same order.
        state: the state returned by the previous call (``None`` at the first step).
        lr: the learning rate: a float, a Tensor (differentiable), or one per parameter.
        alpha: the decay rate of the squared-gradient average s.
        eps: added to the denominator.
        weight_decay: the L2 penalty added to the gradient.
        momentum: mu (0: none).

    Returns:
        The new parameters and the new state (``square_avg``, and ``momentum_buffer``).
    """
    state, n = state or {}, len(params)
    lrs, sqs, bufs = _per_param(lr, n), _column(state, "square_avg", n), _column(state, "momentum_buffer", n)
    out = [updates.rmsprop(p, g, sqs[i], bufs[i], lrs[i], alpha, eps, weight_decay, momentum, OPS)
           for i, (p, g) in enumerate(zip(params, grads))]
    new_state = {"square_avg": [o[1] for o in out]}
    if not updates.off(momentum):
        new_state["momentum_buffer"] = [o[2] for o in out]
    return [o[0] for o in out], new_state


def adagrad(params: Sequence[Tensor], grads: Sequence[Tensor], state: dict | None = None, lr: LR = 1e-2,
            eps: float = 1e-10, weight_decay: float = 0.0) -> tuple[list[Tensor], dict]:
    """Adagrad (Duchi et al. 2011; the rule: ``tinymeta.kernels.updates.adagrad``):
    s <- s + g^2;  p <- p - lr g / (sqrt(s) + eps).

    Args:
        params: the parameters (Tensors; with a graph when the update is differentiated).
        grads: their gradients, in the same order.
        state: the state returned by the previous call (``None`` at the first step).
        lr: the learning rate: a float, a Tensor (differentiable), or one per parameter.
        eps: added to the denominator.
        weight_decay: the L2 penalty added to the gradient.

    Returns:
        The new parameters and the new state (``sum``).
    """
    state, n = state or {}, len(params)
    lrs, sums = _per_param(lr, n), _column(state, "sum", n)
    out = [updates.adagrad(p, g, sums[i], lrs[i], eps, weight_decay, OPS)
           for i, (p, g) in enumerate(zip(params, grads))]
    return [o[0] for o in out], {"sum": [o[1] for o in out]}

"""Stateful optimizers with PyTorch's interface: ``zero_grad()``, ``step()``,
``state_dict()``, ``load_state_dict()``. Each step runs its optimizer's one rule
(``tinymeta/kernels/updates.py``, the same rule ``functional.py`` runs differentiably) in
place, through a fused kernel: compiled by numba when enabled, else the NumPy twin, which
runs that rule on arrays. One call per parameter, or for Adam/AdamW one per group.

Gradient accumulation needs nothing special: ``.grad`` adds up over ``backward()`` calls
until ``zero_grad()``; ``step()`` uses whatever has accumulated.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import kernels
from ..engine import Tensor, _mode, no_grad
from ..checks import number
from ..errors import ArgumentError, CheckpointError, ShapeError, TraceError


def _check(name, value, low=0.0, high=None, open_low=False, where="optimizer"):
    """A hyperparameter in [low, high) ((low, high) with ``open_low``): tinymeta.checks.number."""
    number(where, name, value, low=low, high=high, strict_low=open_low)


# model.parameters(), or parameter groups: dicts with "params" and their own hyperparameters
Params = Iterable[Tensor] | Iterable[dict]


def _is_state_array(v):
    return np.ndim(v) > 0 or (isinstance(v, np.ndarray) and v.dtype.kind == "f")


class Optimizer:
    """Holds ``param_groups`` (dicts of params + hyperparameters) and per-parameter ``state``.

    The base class of every optimizer: ``step()`` checks every gradient first, then updates
    each parameter with a gradient in place by the subclass's rule; ``zero_grad()`` forgets
    the gradients; ``state_dict()``/``load_state_dict()`` save and restore the state.

    Args:
        params: ``model.parameters()``, or a list of dicts (parameter groups), each with
            ``"params"`` and its own hyperparameters.
        defaults: the hyperparameters a group gets unless it names its own.
    """

    def __init__(self, params: Params, defaults: dict):
        if params is None or isinstance(params, Tensor):
            raise ArgumentError(f"{type(self).__name__}: params must be an iterable of parameters "
                                f"(e.g. model.parameters()), got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ArgumentError(f"{type(self).__name__}: got an empty parameter list; pass "
                                "model.parameters()")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for i, g in enumerate(groups):
            if not isinstance(g, dict) or "params" not in g:
                raise ArgumentError(f"{type(self).__name__}: parameter group {i} must be a dict with a "
                                    "'params' entry")
            group = {**defaults, **g, "params": list(g["params"])}
            for p in group["params"]:
                if type(p) is not Tensor or not p.requires_grad:
                    raise ArgumentError(f"{type(self).__name__}: every parameter must be a Tensor "
                                        "with requires_grad=True")
            self._validate(group)
            self.param_groups.append(group)
        self.state = {}  # id(param) -> dict of arrays

    def _validate(self, group):
        _check("lr", group["lr"])

    def _params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the accumulated gradients: ``.grad = None`` (the default, as in PyTorch), or
        with ``set_to_none=False`` a fresh array of zeros for each parameter that had one."""
        if _mode.tape is not None:
            if not set_to_none:
                raise TraceError("zero_grad(set_to_none=False) inside a function being traced: the zeros "
                                 "would be frozen; use zero_grad() (the default)")
            _mode.tape.zeroed_grads(self._params())
        for p in self._params():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(np.zeros_like(p.grad.data))

    @no_grad()
    def step(self) -> None:
        """One update of every parameter with a gradient, from its ``.grad``."""
        if _mode.tape is not None:
            # Traced (tm.trace, tm.jit): a replay calls step() itself, after writing the
            # gradients, so the step count and state stay this object's own.
            _mode.tape.optimizer_step(self)
        # Every gradient is checked before anything changes (parameters, state, even a
        # learning rate), so a bad one leaves the optimizer and the model as they were.
        batches = [(group, self._gather(group)) for group in self.param_groups]
        for group, items in batches:
            self._prepare_group(group, items)
        for group, items in batches:
            try:
                self._update_group(group, items)
            finally:
                for p, _, _ in items:
                    p._bump_version()  # graphs that saved p now know it changed

    def _gather(self, group):
        """(param, data, gradient array) for each parameter of ``group`` with a gradient;
        the gradient C-contiguous and of the parameter's dtype, as the kernels want."""
        items = []
        for p in group["params"]:
            if p.grad is None:
                continue
            data, g = p.data, p.grad.data
            if g.shape != data.shape:
                raise ShapeError(f"{type(self).__name__}.step: a parameter of shape {data.shape} has "
                                 f"a gradient of shape {g.shape}; they must match")
            if not g.flags.c_contiguous or g.dtype != data.dtype:
                g = np.array(g, dtype=data.dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
            items.append((p, data, g))
        return items

    def _prepare_group(self, group, items):
        """Called for every group, after every gradient was checked and before any update."""

    def _update_group(self, group, items):
        for p, data, g in items:
            self._update(data, g, self.state.setdefault(id(p), {}), group)

    def _update(self, p, g, state, group):
        raise NotImplementedError

    def state_dict(self) -> dict:
        """{'state': {index: {name: array}}, 'param_groups': [hyperparameters]}: arrays and
        numbers only, so it can be saved to .npz."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[k]: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                 for k, s in self.state.items() if k in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "n_params": len(g["params"])}
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, sd: dict) -> None:
        """Restore the state and hyperparameters saved by ``state_dict()``; everything is
        checked against this optimizer's parameters before anything changes."""
        params = self._params()
        if len(sd["param_groups"]) != len(self.param_groups):
            raise CheckpointError(f"load_state_dict: {len(sd['param_groups'])} parameter groups in "
                                  f"the state, {len(self.param_groups)} in this optimizer")
        for i, (group, saved) in enumerate(zip(self.param_groups, sd["param_groups"])):
            n = saved.get("n_params")
            if n is not None and int(n) != len(group["params"]):
                raise CheckpointError(f"load_state_dict: group {i} had {int(n)} parameters when "
                                      f"saved, this optimizer's has {len(group['params'])}")
        new_state = {}
        for k, s in sd["state"].items():
            i = int(k)
            if not 0 <= i < len(params):
                raise CheckpointError(f"load_state_dict: state for parameter {i}, but the "
                                      f"optimizer has {len(params)}")
            for n, v in s.items():
                if isinstance(v, np.ndarray) and v.ndim and v.shape != params[i].shape:
                    raise CheckpointError(f"load_state_dict: state '{n}' of parameter {i} has "
                                          f"shape {v.shape}, the parameter {params[i].shape}")
            # Arrays stay arrays (a 0-d parameter's moments too: as Python floats they
            # would no longer update in place); counters such as "step" become numbers.
            new_state[id(params[i])] = {n: (np.array(v, dtype=params[i].dtype) if _is_state_array(v) else
                                            (v.item() if isinstance(v, np.ndarray) else v))
                                        for n, v in s.items()}
        for group, saved in zip(self.param_groups, sd["param_groups"]):
            group.update({k: (v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else
                              tuple(v) if isinstance(v, np.ndarray) else v)
                          for k, v in saved.items() if k != "n_params"})
        self.state = new_state


class SGD(Optimizer):
    """SGD with momentum, Nesterov momentum and (L2) weight decay, as in PyTorch.

    ``hypergrad_lr > 0`` adapts the learning rate online by hypergradient descent
    (Baydin et al. 2018): since p_t = p_{t-1} - lr g_{t-1}, dL/dlr = -g_t . g_{t-1}, so
    lr <- lr + hypergrad_lr * g_t . g_{t-1} (summed over all parameters of the group).

    The update, with d = g + wd p and momentum buffer b (b = d at the first step)::

        b <- mu b + (1 - dampening) d
        p <- p - lr b                 (Nesterov: p <- p - lr (d + mu b); mu = 0: p <- p - lr d)

    Args:
        params: ``model.parameters()``, or a list of dicts (parameter groups), each with
            ``"params"`` and its own hyperparameters.
        lr: the learning rate.
        momentum: mu (0: plain SGD).
        dampening: the dampening of the momentum buffer.
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        weight_decay: wd, the L2 penalty added to the gradient.
        hypergrad_lr: the step size of the online learning-rate adaptation (0: off).

    Example:
        >>> opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params: Params, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, hypergrad_lr: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay,
                                      hypergrad_lr=hypergrad_lr))

    def _validate(self, g):
        _check("lr", g["lr"])
        _check("momentum", g["momentum"])
        _check("weight_decay", g["weight_decay"])
        _check("hypergrad_lr", g["hypergrad_lr"])
        if g["nesterov"] and (g["momentum"] <= 0 or g["dampening"] != 0):
            raise ArgumentError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")

    def _prepare_group(self, group, items):
        if group["hypergrad_lr"] <= 0:
            return
        dot, seen = 0.0, False
        for p, _, g in items:
            prev = self.state.get(id(p), {}).get("prev_grad")
            if prev is not None:
                dot += float(np.vdot(g, prev))
                seen = True
        if seen:
            group["lr"] = max(0.0, group["lr"] + group["hypergrad_lr"] * dot)
        for p, _, g in items:
            self.state.setdefault(id(p), {})["prev_grad"] = np.array(g)

    def _update(self, p, g, state, group):
        mu = group["momentum"]
        first = "momentum_buffer" not in state
        if mu != 0 and first:
            state["momentum_buffer"] = np.zeros_like(p)
        kernels.sgd_update(p, g, state.get("momentum_buffer"), group["lr"], mu,
                           group["dampening"], group["nesterov"], group["weight_decay"], first)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient, as PyTorch's Adam.

    With g the gradient (plus wd p) at step t::

        m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
        p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    Args:
        params: ``model.parameters()``, or a list of dicts (parameter groups), each with
            ``"params"`` and its own hyperparameters.
        lr: the learning rate.
        betas: (b1, b2), the decay rates of the moment estimates m and v.
        eps: added to the denominator.
        weight_decay: wd, the L2 penalty added to the gradient.

    Example:
        >>> opt = optim.Adam(model.parameters(), lr=1e-3)
    """

    decoupled = False

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        betas = tuple(betas) if isinstance(betas, (tuple, list)) else betas
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, g):
        _check("lr", g["lr"])
        _check("eps", g["eps"], open_low=True)
        _check("weight_decay", g["weight_decay"])
        betas = g["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ArgumentError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for b in betas:
            _check("betas", b, 0.0, 1.0)

    def _update_group(self, group, items):
        # All of a group's tensors go to the kernel in one call: on a small model (the six
        # tensors of a 1-40-40-1 MLP) the per-parameter Python around the fused kernel cost
        # more than the kernel itself (`python benchmarks/run.py --only kernels`).
        batch = []
        for p, data, g in items:
            st = self.state.get(id(p))
            if st is None or "step" not in st:
                st = self.state[id(p)] = dict(step=0, exp_avg=np.zeros_like(data),
                                              exp_avg_sq=np.zeros_like(data))
            st["step"] += 1
            batch.append((data, g, st["exp_avg"], st["exp_avg_sq"], st["step"]))
        b1, b2 = group["betas"]
        kernels.adam_update_many(batch, group["lr"], b1, b2, group["eps"], group["weight_decay"],
                                 self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): p <- p (1 - lr wd) first.

    Then Adam's update without the decay in the gradient (see ``Adam``); the arguments are
    Adam's, with ``weight_decay`` defaulting to 0.01.
    """

    decoupled = True

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton 2012), in PyTorch's form.

    With g the gradient (plus wd p)::

        s <- alpha s + (1 - alpha) g^2
        p <- p - lr g / (sqrt(s) + eps)
        (with momentum mu: b <- mu b + g / (sqrt(s) + eps);  p <- p - lr b)

    Args:
        params: ``model.parameters()``, or a list of dicts (parameter groups), each with
            ``"params"`` and its own hyperparameters.
        lr: the learning rate.
        alpha: the decay rate of the squared-gradient average s.
        eps: added to the denominator.
        weight_decay: wd, the L2 penalty added to the gradient.
        momentum: mu (0: none).
    """

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum))

    def _validate(self, g):
        _check("lr", g["lr"])
        _check("alpha", g["alpha"], 0.0, 1.0 + 1e-12)
        _check("eps", g["eps"], open_low=True)
        _check("momentum", g["momentum"])
        _check("weight_decay", g["weight_decay"])

    def _update(self, p, g, state, group):
        if "square_avg" not in state:
            state["square_avg"] = np.zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(p)
        kernels.rmsprop_update(p, g, state["square_avg"], group["lr"], group["alpha"], group["eps"],
                               group["weight_decay"], group["momentum"], state.get("momentum_buffer"))


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011): each coordinate's step shrinks with its summed squared gradients.

    With g the gradient (plus wd p)::

        s <- s + g^2
        p <- p - lr g / (sqrt(s) + eps)

    Args:
        params: ``model.parameters()``, or a list of dicts (parameter groups), each with
            ``"params"`` and its own hyperparameters.
        lr: the learning rate.
        eps: added to the denominator.
        weight_decay: wd, the L2 penalty added to the gradient.
    """

    def __init__(self, params: Params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def _validate(self, g):
        _check("lr", g["lr"])
        _check("eps", g["eps"], open_low=True)
        _check("weight_decay", g["weight_decay"])

    def _update(self, p, g, state, group):
        if "sum" not in state:
            state["sum"] = np.zeros_like(p)
        kernels.adagrad_update(p, g, state["sum"], group["lr"], group["eps"], group["weight_decay"])


def clip_grad_norm_(params: Iterable[Tensor], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so their global norm is at most ``max_norm``; returns
    the norm before clipping. Gradients are replaced, never written in place (a .grad may
    share memory with another tensor's).

    Args:
        params: the parameters (those without a gradient are skipped).
        max_norm: the largest norm allowed.
        norm_type: p of the p-norm over all gradient entries together (``float("inf")``: max).

    Returns:
        The total norm before clipping (0.0 when no parameter has a gradient).

    Example:
        >>> loss.backward()
        >>> optim.clip_grad_norm_(model.parameters(), 1.0)
        >>> opt.step()
    """
    _check("max_norm", max_norm)
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    if norm_type == float("inf"):
        total = max(float(np.max(np.abs(p.grad.data))) for p in params)
    else:
        total = float(sum(float(np.sum(np.abs(p.grad.data) ** norm_type)) for p in params)
                      ** (1.0 / norm_type))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for p in params:
            p.grad = Tensor(p.grad.data * np.asarray(coef, dtype=p.grad.dtype))
    return total

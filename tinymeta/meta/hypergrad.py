"""Hyperparameters by gradient descent: differentiate the validation loss through a
whole (unrolled) training run.

Maclaurin, Duvenaud & Adams (2015), "Gradient-based Hyperparameter Optimization through
Reversible Learning": with w_{t+1} = w_t - lr (grad L_train(w_t) + wd w_t) for t < k,
the validation loss L_val(w_k) is a differentiable function of (lr, wd); its gradient
(the hypergradient) is one backward pass through the k steps (second order: it involves
the training loss's Hessian). ``hypergradient`` computes it; ``tune`` descends on
log(lr) and log(wd) with it. For the online form, which adapts lr during a single run
(Baydin et al. 2018, "Online Learning Rate Adaptation with Hypergradient Descent"), see
``optim.SGD(..., hypergrad_lr=beta)``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..checks import as_rng
from ..engine import Tensor, grad
from ..errors import ArgumentError
from ..nn.module import Module, functional_call
from ..optim import functional as optim_f


# (X, y): inputs and targets, as arrays or tensors
Data = tuple[Any, Any]
LossFn = Callable[[Tensor, Any], Tensor]


def _batches(X, y, batch_size, steps, rng):
    n = len(X)
    if batch_size is None or batch_size >= n:
        return [(X, y)] * steps
    out = []
    while len(out) < steps:
        order = rng.permutation(n)
        out.extend((X[order[i:i + batch_size]], y[order[i:i + batch_size]])
                   for i in range(0, n - batch_size + 1, batch_size))
    return out[:steps]


def unrolled_validation_loss(model: Module, loss_fn: LossFn, train: Data, val: Data,
                             lr: float | Tensor, weight_decay: float | Tensor = 0.0, steps: int = 20,
                             batch_size: int | None = None,
                             rng: int | np.random.Generator | None = 0) -> Tensor:
    """L_val after ``steps`` of SGD from the model's current parameters (the model is not
    changed). ``lr`` and ``weight_decay`` may be Tensors: the result depends on them
    differentiably.

    The run is w_{t+1} = w_t - lr (grad L_train(w_t) + wd w_t), t < k, recorded with
    ``create_graph=True``; the result is L_val(w_k).

    Args:
        model: the model (its current parameters are the starting point w_0; it is not changed).
        loss_fn: ``(model output, targets) -> scalar loss``, e.g. ``F.mse_loss``.
        train: (X, y) training arrays.
        val: (X, y) validation arrays.
        lr: the learning rate (a Tensor to differentiate with respect to it).
        weight_decay: the L2 coefficient wd (likewise).
        steps: k, the number of SGD steps.
        batch_size: minibatch size (``None``: full batch).
        rng: the seed or Generator of the minibatch order.

    Returns:
        The scalar validation loss, with a graph back to ``lr`` and ``weight_decay``.
    """
    X, y = train
    rng = as_rng(rng)
    names = [n for n, _ in model.named_parameters()]
    params = [p.detach().requires_grad_() for _, p in model.named_parameters()]
    for xb, yb in _batches(X, y, batch_size, steps, rng):
        loss = loss_fn(functional_call(model, dict(zip(names, params)), xb), yb)
        grads = grad(loss, params, create_graph=True)
        params, _ = optim_f.sgd(params, grads, lr=lr, weight_decay=weight_decay)
    Xv, yv = val
    return loss_fn(functional_call(model, dict(zip(names, params)), Xv), yv)


def hypergradient(model: Module, loss_fn: LossFn, train: Data, val: Data, lr: float,
                  weight_decay: float = 0.0, steps: int = 20, batch_size: int | None = None,
                  rng: int | np.random.Generator | None = 0) -> tuple[float, float, float]:
    """(L_val, dL_val/dlr, dL_val/dwd) for an unrolled SGD run of ``steps`` steps.

    Maclaurin, Duvenaud & Adams (2015): one backward pass through the whole training run
    (second order: it involves the training loss's Hessian).

    Args:
        model: the model (its current parameters are the starting point w_0; it is not changed).
        loss_fn: ``(model output, targets) -> scalar loss``, e.g. ``F.mse_loss``.
        train: (X, y) training arrays.
        val: (X, y) validation arrays.
        lr: the learning rate (> 0).
        weight_decay: the L2 coefficient (>= 0).
        steps: the number of SGD steps unrolled.
        batch_size: minibatch size (``None``: full batch).
        rng: the seed or Generator of the minibatch order.

    Returns:
        The validation loss and its derivatives with respect to lr and weight_decay.

    Example:
        >>> val_loss, d_lr, d_wd = meta.hypergradient(model, F.mse_loss, (X, y), (Xv, yv), lr=0.05)
    """
    if lr <= 0 or weight_decay < 0 or steps < 1:
        raise ArgumentError(f"hypergradient: need lr > 0, weight_decay >= 0, steps >= 1; got "
                            f"{lr}, {weight_decay}, {steps}")
    dtype = model.parameters()[0].dtype
    lr_t = Tensor(np.array(lr, dtype=dtype), requires_grad=True)
    wd_t = Tensor(np.array(weight_decay, dtype=dtype), requires_grad=True)
    loss = unrolled_validation_loss(model, loss_fn, train, val, lr_t, wd_t, steps, batch_size, rng)
    g_lr, g_wd = grad(loss, [lr_t, wd_t])
    return float(loss.item()), float(g_lr.item()), float(g_wd.item())


def tune(model: Module, loss_fn: LossFn, train: Data, val: Data, lr: float = 1e-4,
         weight_decay: float | None = None, steps: int = 20, runs: int = 15, step_size: float = 0.5,
         batch_size: int | None = None, rng: int | np.random.Generator | None = 0,
         verbose: bool = False) -> list[dict]:
    """Gradient descent on log(lr) (and log(wd) when ``weight_decay`` is given), one
    unrolled training run per update, with Rprop's step rule (Riedmiller & Braun 1993):
    only the hypergradient's sign is used; the step grows by 1.5x while the sign holds and
    halves when it flips. Scale-free, so a poor start (1e-4 or 1.0) is fixed in a few runs.
    Safeguard: where a run ends worse than no training at all (or not finite), SGD is
    diverging and the local hypergradient means nothing; the lr is too large, so it goes down.
    Returns a list of dicts (run, lr, weight_decay, val_loss); the best is min by val_loss.

    Args:
        model: the model (its current parameters are the starting point w_0; it is not changed).
        loss_fn: ``(model output, targets) -> scalar loss``, e.g. ``F.mse_loss``.
        train: (X, y) training arrays.
        val: (X, y) validation arrays.
        lr: the starting learning rate.
        weight_decay: the starting weight decay, or ``None`` to tune lr only.
        steps: the SGD steps of each unrolled run.
        runs: the number of runs (hypergradient updates).
        step_size: the initial step on log(lr) and log(wd).
        batch_size: minibatch size (``None``: full batch).
        rng: the seed or Generator of the minibatch order.
        verbose: print one line per run.

    Example:
        >>> history = meta.tune(model, F.mse_loss, (X, y), (Xv, yv), lr=1e-4, runs=15)
        >>> best = min(history, key=lambda h: h["val_loss"])
    """
    baseline = float(unrolled_validation_loss(model, loss_fn, train, val, 0.0, 0.0, 1, batch_size, rng).item())
    logs = {"lr": math.log(lr)}
    if weight_decay is not None:
        logs["weight_decay"] = math.log(max(weight_decay, 1e-8))
    steps_size = {k: step_size for k in logs}
    last_sign = {k: 0.0 for k in logs}
    history = []
    for run in range(runs):
        vals = {k: math.exp(v) for k, v in logs.items()}
        wd = vals.get("weight_decay", 0.0)
        loss, g_lr, g_wd = hypergradient(model, loss_fn, train, val, vals["lr"], wd, steps, batch_size, rng)
        history.append({"run": run + 1, "lr": vals["lr"], "weight_decay": wd, "val_loss": loss})
        if verbose:
            print(f"run {run + 1:>2}: lr {vals['lr']:.3g}  wd {wd:.3g}  val loss {loss:.5g}")
        diverged = not np.isfinite(loss) or loss > baseline
        for k, g in (("lr", g_lr), ("weight_decay", g_wd)):
            if k not in logs or (diverged and k != "lr"):
                continue
            sign = 1.0 if diverged else float(np.sign(vals[k] * g))  # dL/dlog(x) = x dL/dx
            if sign * last_sign[k] > 0:
                steps_size[k] *= 1.5
            elif sign * last_sign[k] < 0:
                steps_size[k] *= 0.5
            logs[k] -= sign * steps_size[k]
            last_sign[k] = sign
    return history

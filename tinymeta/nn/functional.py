"""Losses and layer functions on tensors (``import tinymeta.nn.functional as F``).

Every loss accepts leading batch axes (for example a task axis) and reduces over all
of them with ``reduction="mean"``; ``reduction="none"`` keeps them."""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .. import ops
from ..engine import Tensor
from ..errors import ArgumentError, DTypeError, ShapeError
from ..errors import guard
from ..ops import (leaky_relu, linear, log_softmax, logsumexp, relu, sigmoid, softmax,  # noqa: F401
                   softplus, tanh)
from .module import check_same_shape

# What this module offers (the losses, and the layer functions it re-exports from tinymeta.ops);
# the helpers it imports (guard, ops, ...) are not part of it.
__all__ = ["mse_loss", "l1_loss", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "check_same_shape", "leaky_relu", "linear",
           "log_softmax", "logsumexp", "relu", "sigmoid", "softmax", "softplus", "tanh"]


def _t(x, like=None):
    if type(x) is Tensor:
        return x
    # Targets take a float input's dtype; never cast to an integer one (that truncates).
    dtype = like.dtype if like is not None and like.dtype.kind == "f" else None
    return Tensor(np.asarray(x), dtype=dtype)


def _reduce(loss, reduction, where):
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ArgumentError(f"{where}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


@guard
def mse_loss(input: Tensor | ArrayLike, target: Tensor | ArrayLike,  # noqa: A002
             reduction: str = "mean") -> Tensor:
    """Mean squared error; shapes must match exactly (no silent broadcasting).

    ``loss = mean((input - target)^2)`` over every element (``"sum"``: the sum; ``"none"``:
    the elementwise squares).

    Args:
        input: the predictions.
        target: the targets, of exactly the same shape (it takes ``input``'s float dtype).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor (or the elementwise losses for ``"none"``).

    Example:
        >>> F.mse_loss(tm.tensor([1.0, 2.0]), [0.0, 0.0]).item()
        2.5
    """
    input, target = _t(input), _t(target, _t(input))
    check_same_shape(input, target, "mse_loss")
    if reduction == "mean":
        return ops.mse(input, target)  # one fused node
    d = input - target
    return _reduce(d * d, reduction, "mse_loss")


@guard
def l1_loss(input: Tensor | ArrayLike, target: Tensor | ArrayLike,  # noqa: A002
            reduction: str = "mean") -> Tensor:
    """Mean absolute error ``mean(|input - target|)``; shapes must match exactly.

    Args:
        input: the predictions.
        target: the targets, of exactly the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor (or the elementwise losses for ``"none"``).
    """
    input, target = _t(input), _t(target, _t(input))
    check_same_shape(input, target, "l1_loss")
    return _reduce(ops.abs(input - target), reduction, "l1_loss")


def _class_labels(labels, scores, where):
    """Integer labels of shape scores.shape[:-1], each in [0, C): checked, as an int64 array."""
    labels = np.asarray(labels.data if type(labels) is Tensor else labels)
    if labels.dtype.kind not in "iu":
        raise DTypeError(f"{where}: labels must be integer class indices, got dtype "
                         f"{labels.dtype}; for probabilities/one-hot targets use "
                         "-(target * F.log_softmax(logits)).sum(-1)")
    if scores.shape[:-1] != labels.shape:
        raise ShapeError(f"{where}: scores {scores.shape} need labels of shape "
                         f"{scores.shape[:-1]}, got {labels.shape}")
    c = scores.shape[-1]
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise ArgumentError(f"{where}: labels must lie in [0, {c}) for {c} classes, got "
                            f"range [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64, copy=False)


@guard
def cross_entropy(logits: Tensor | ArrayLike, labels: Tensor | ArrayLike,
                  weight: Tensor | ArrayLike | None = None, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy with integer class labels: logits (..., C), labels (...).

    Fused and stable (finite for logits of +-1e4). ``weight`` (C,) weighs each class; the
    weighted mean divides by the summed weights, as PyTorch does.

    For one example, ``loss = logsumexp(z) - z[y]``; its gradient is ``softmax(z) - onehot(y)``.

    Args:
        logits: unnormalised scores, shape (..., C).
        labels: integer class indices in [0, C), shape (...).
        weight: optional per-class weights, shape (C,).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor (or the per-example losses for ``"none"``).

    Example:
        >>> F.cross_entropy(tm.tensor([[2.0, 0.0]]), [0])   # log(1 + e^-2)
        tensor(0.1269, dtype=float32)
    """
    logits = _t(logits)
    labels = _class_labels(labels, logits, "cross_entropy")
    c = logits.shape[-1]
    flat = ops.reshape(logits, (-1, c)) if logits.ndim != 2 else logits
    # Labels stay the array given (or go through ops): tm.trace must see them to replay them.
    flat_labels = labels if labels.ndim == 1 else ops.reshape(labels, (-1,))
    losses = ops.softmax_cross_entropy(flat, flat_labels)
    losses = ops.reshape(losses, labels.shape) if logits.ndim != 2 else losses
    if weight is not None:
        w = np.asarray(weight.data if type(weight) is Tensor else weight, dtype=logits.dtype)
        if w.shape != (c,):
            raise ShapeError(f"cross_entropy: weight must have shape ({c},), got {w.shape}")
        onehot = ops.astype(ops.equal(ops.unsqueeze(labels, -1), np.arange(c)), logits.dtype)
        wl = ops.sum(onehot * w, axis=-1)  # each example's class weight
        if reduction == "mean":
            return ops.sum(losses * wl) / ops.sum(wl)
        losses = losses * wl
    return _reduce(losses, reduction, "cross_entropy")


@guard
def nll_loss(log_probs: Tensor | ArrayLike, labels: Tensor | ArrayLike, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer labels under log-probabilities (..., C).

    ``loss = -log_probs[..., y]``; with ``F.log_softmax`` before it, this is cross-entropy.

    Args:
        log_probs: log-probabilities, shape (..., C).
        labels: integer class indices in [0, C), shape (...).
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor (or the per-example losses for ``"none"``).
    """
    log_probs = _t(log_probs)
    labels = _class_labels(labels, log_probs, "nll_loss")
    c = log_probs.shape[-1]
    onehot = ops.astype(ops.equal(ops.unsqueeze(labels, -1), np.arange(c)), log_probs.dtype)
    picked = ops.sum(log_probs * onehot, axis=-1)  # each example's log-probability of its label
    return _reduce(-picked, reduction, "nll_loss")


@guard
def binary_cross_entropy(probs: Tensor | ArrayLike, target: Tensor | ArrayLike,
                         reduction: str = "mean") -> Tensor:
    """BCE on probabilities; logs are clamped at -100 as PyTorch does, so p = 0 or 1
    gives a large finite loss. Prefer ``binary_cross_entropy_with_logits``.

    ``loss = -(t log p + (1 - t) log(1 - p))``.

    Args:
        probs: probabilities in [0, 1] (values outside raise ``ArgumentError``).
        target: targets in [0, 1], of the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor (or the elementwise losses for ``"none"``).
    """
    probs = _t(probs)
    if probs.dtype.kind != "f":  # 0/1 integer probabilities are fine, as numbers
        probs = ops.astype(probs, np.float64)
    outside = ~((probs.data >= 0) & (probs.data <= 1))  # NaN is outside too
    if outside.any():
        raise ArgumentError(f"binary_cross_entropy: probabilities must lie in [0, 1], got values in "
                            f"[{np.nanmin(probs.data)}, {np.nanmax(probs.data)}]; for unbounded scores "
                            "use binary_cross_entropy_with_logits")
    target = _t(target, probs)
    check_same_shape(probs, target, "binary_cross_entropy")
    logp, log1mp = _clamped_log(probs), _clamped_log(1.0 - probs)
    return _reduce(-(target * logp + (1.0 - target) * log1mp), reduction, "binary_cross_entropy")


def _clamped_log(p):
    """max(log p, -100) as PyTorch's BCE, at p = 0 too, in any float dtype; the log sees only
    positive values (log(0) = -inf would make 0 * inf = NaN gradients)."""
    positive = ops.greater(p, 0)
    safe = ops.where(positive, p, 1.0)
    return ops.where(positive, ops.maximum(ops.log(safe), -100.0), -100.0)


@guard
def binary_cross_entropy_with_logits(logits: Tensor | ArrayLike, target: Tensor | ArrayLike,
                                     reduction: str = "mean") -> Tensor:
    """Stable BCE on logits: softplus(z) - z*t, finite for logits of +-1e4 (its gradient
    is sigmoid(z) - t).

    Args:
        logits: unbounded scores z.
        target: targets t in [0, 1], of the same shape.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        A scalar tensor (or the elementwise losses for ``"none"``).
    """
    logits = _t(logits)
    target = _t(target, logits)
    check_same_shape(logits, target, "binary_cross_entropy_with_logits")
    return _reduce(ops.softplus(logits) - logits * target, reduction,
                   "binary_cross_entropy_with_logits")

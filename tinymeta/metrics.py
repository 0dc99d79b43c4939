"""Evaluation metrics on NumPy arrays (or lists), following scikit-learn's conventions.

Classification scores that would divide by zero (no predicted or no true
positives) are 0.0, like scikit-learn's default ``zero_division`` apart from its
warning. Every function returns plain Python floats (or NumPy arrays for
per-class results and confusion matrices).
"""

from __future__ import annotations

import math
from typing import Any
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike

from .errors import ArgumentError, ShapeError


def _pair(y_true, y_pred, fn, one_d=True):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    # Column vectors (n, 1) are common model outputs; comparing them with (n,)
    # labels would silently broadcast to (n, n), so flatten them first.
    if y_true.ndim == 2 and y_true.shape[1] == 1:
        y_true = y_true[:, 0]
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred[:, 0]
    if y_true.shape != y_pred.shape:
        raise ShapeError(f"{fn}: y_true and y_pred must have the same length/shape, "
                         f"got {y_true.shape} and {y_pred.shape}")
    if one_d and y_true.ndim != 1:
        raise ShapeError(f"{fn}: expected 1-D label arrays, got shape {y_true.shape}")
    if y_true.ndim == 0 or y_true.shape[0] == 0:
        raise ArgumentError(f"{fn}: needs at least one sample, got shape {y_true.shape}")
    return y_true, y_pred


def _div(num, den):
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den != 0)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of exact matches between ``y_true`` and ``y_pred`` (1-D, same length).

    Example: ``accuracy([0, 1, 2], [0, 2, 2])`` is 2/3."""
    y_true, y_pred = _pair(y_true, y_pred, "accuracy")
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, labels: ArrayLike | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of samples with true label ``labels[i]`` predicted as ``labels[j]``.

    ``labels`` defaults to the sorted union of both arrays; samples whose true or
    predicted label is not in ``labels`` are ignored (as in scikit-learn).
    """
    y_true, y_pred = _pair(y_true, y_pred, "confusion_matrix")
    if labels is None:
        labels = np.unique(np.concatenate([y_true, y_pred]))
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ArgumentError(f"confusion_matrix: labels must be a non-empty 1-D list, got shape {labels.shape}")
    if len(np.unique(labels)) != len(labels):
        raise ArgumentError("confusion_matrix: labels contains duplicates")
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]

    def position(v):
        i = np.clip(np.searchsorted(sorted_labels, v), 0, len(labels) - 1)
        return order[i], sorted_labels[i] == v

    ti, t_ok = position(y_true)
    pi, p_ok = position(y_pred)
    keep = t_ok & p_ok
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(cm, (ti[keep], pi[keep]), 1)
    return cm


_AVERAGES = ("binary", "macro", "micro", None)


def _counts(y_true, y_pred, average, pos_label, fn):
    """True-positive, false-positive and false-negative counts, per class or pooled."""
    if average not in _AVERAGES:
        raise ArgumentError(f"{fn}: average must be one of 'binary', 'macro', 'micro' or None, got {average!r}")
    y_true, y_pred = _pair(y_true, y_pred, fn)
    if average == "binary":
        present = np.unique(np.concatenate([y_true, y_pred]))
        if len(present) > 2:
            raise ArgumentError(f"{fn}: average='binary' but the data has {len(present)} labels "
                                f"{present.tolist()}; use average='macro' or 'micro'")
        if len(present) == 2 and pos_label not in present:
            raise ArgumentError(f"{fn}: pos_label={pos_label!r} is not one of the labels {present.tolist()}; "
                                f"pass the positive class as pos_label")
        t, p = y_true == pos_label, y_pred == pos_label
        return np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm)
    fp, fn_ = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp
    if average == "micro":
        return tp.sum(), fp.sum(), fn_.sum()
    return tp, fp, fn_


def _score(values, average):
    return values if average is None else float(np.mean(values))


def precision(y_true: ArrayLike, y_pred: ArrayLike, average: str | None = "binary",
              pos_label: Any = 1) -> float | np.ndarray:
    """tp / (tp + fp). ``average``: 'binary' (class ``pos_label``), 'macro' (unweighted
    mean over labels), 'micro' (pooled counts) or None (per-class array, sorted labels)."""
    tp, fp, _ = _counts(y_true, y_pred, average, pos_label, "precision")
    return _score(_div(tp, tp + fp), average)


def recall(y_true: ArrayLike, y_pred: ArrayLike, average: str | None = "binary",
           pos_label: Any = 1) -> float | np.ndarray:
    """tp / (tp + fn); ``average`` as in :func:`precision`."""
    tp, _, fn = _counts(y_true, y_pred, average, pos_label, "recall")
    return _score(_div(tp, tp + fn), average)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, average: str | None = "binary",
             pos_label: Any = 1) -> float | np.ndarray:
    """Harmonic mean of precision and recall, 2tp / (2tp + fp + fn); macro averages per-class F1."""
    tp, fp, fn = _counts(y_true, y_pred, average, pos_label, "f1_score")
    return _score(_div(2 * tp, 2 * tp + fp + fn), average)


def mse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean squared error over all elements, mean((y_true - y_pred)^2); shapes must match."""
    y_true, y_pred = _pair(y_true, y_pred, "mse", one_d=False)
    return float(np.mean((y_true.astype(np.float64) - y_pred) ** 2))


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination, 1 - SS_res / SS_tot (uniform mean over output columns).

    A constant target gives 1.0 for a perfect prediction and 0.0 otherwise, as in
    scikit-learn, instead of a division by zero.
    """
    y_true, y_pred = _pair(y_true, y_pred, "r2_score", one_d=False)
    y_true = y_true.astype(np.float64)
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    r2 = np.where(ss_tot != 0, 1 - _div(ss_res, ss_tot), np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(r2))


def mean_confidence_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """``(mean, half_width)`` of a normal-approximation confidence interval.

    ``half_width = z * std(values, ddof=1) / sqrt(n)`` with ``z`` the two-sided
    normal quantile (1.95996... for 95%, the "± 1.96 * std / sqrt(n)" reported in
    few-shot papers). It is not a Student-t interval, so it is too narrow for very
    small ``n``; a single value gives half_width 0.0.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ArgumentError("mean_confidence_interval: needs at least one value")
    if not 0 < confidence < 1:
        raise ArgumentError(f"mean_confidence_interval: confidence must be in (0, 1), got {confidence!r}")
    mean = float(values.mean())
    if values.size == 1:
        return mean, 0.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    return mean, float(z * values.std(ddof=1) / math.sqrt(values.size))


__all__ = [
    "accuracy", "precision", "recall", "f1_score", "confusion_matrix", "mse", "r2_score",
    "mean_confidence_interval",
]

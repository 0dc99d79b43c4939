import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinymeta.errors import ArgumentError, ShapeError
from tinymeta.metrics import (accuracy, confusion_matrix, f1_score, mean_confidence_interval, mse,
                              precision, r2_score, recall)

# Hand-worked example: 3 classes, 8 samples.
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0]
# confusion: rows true 0,1,2 ; cols pred 0,1,2
CM = [[2, 1, 0],
      [0, 1, 1],
      [1, 0, 2]]


def test_accuracy():
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(5 / 8)
    assert accuracy(np.array([1, 2]), np.array([1, 2])) == 1.0
    assert isinstance(accuracy([0], [0]), float)


def test_accuracy_column_vector_not_broadcast():
    assert accuracy(np.array([[0], [1], [1]]), np.array([0, 1, 0])) == pytest.approx(2 / 3)


def test_confusion_matrix():
    cm = confusion_matrix(Y_TRUE, Y_PRED)
    np.testing.assert_array_equal(cm, CM)
    assert cm.dtype == np.int64


def test_confusion_matrix_labels_order_and_unknown_ignored():
    cm = confusion_matrix(Y_TRUE, Y_PRED, labels=[2, 0])
    np.testing.assert_array_equal(cm, [[2, 1], [0, 2]])
    cm = confusion_matrix(["a", "b", "b"], ["a", "a", "b"])
    np.testing.assert_array_equal(cm, [[1, 0], [1, 1]])
    assert confusion_matrix([0, 1], [0, 1], labels=[0, 1, 5]).shape == (3, 3)
    with pytest.raises(ArgumentError):
        confusion_matrix([0], [0], labels=[1, 1])


def test_macro_and_micro_by_hand():
    # per class precision: 2/3, 1/2, 2/3 ; recall: 2/3, 1/2, 2/3
    p = [2 / 3, 1 / 2, 2 / 3]
    assert precision(Y_TRUE, Y_PRED, average="macro") == pytest.approx(np.mean(p))
    assert recall(Y_TRUE, Y_PRED, average="macro") == pytest.approx(np.mean(p))
    assert f1_score(Y_TRUE, Y_PRED, average="macro") == pytest.approx(np.mean(p))
    for fn in (precision, recall, f1_score):
        assert fn(Y_TRUE, Y_PRED, average="micro") == pytest.approx(5 / 8)
    np.testing.assert_allclose(precision(Y_TRUE, Y_PRED, average=None), p)


def test_binary_by_hand():
    y_true = [1, 1, 1, 0, 0, 0, 0]
    y_pred = [1, 0, 0, 1, 0, 0, 0]  # tp=1, fn=2, fp=1
    assert precision(y_true, y_pred) == pytest.approx(0.5)
    assert recall(y_true, y_pred) == pytest.approx(1 / 3)
    assert f1_score(y_true, y_pred) == pytest.approx(2 * 0.5 / 3 / (0.5 + 1 / 3))
    # pos_label=0: tp=3, fp=2, fn=1
    assert precision(y_true, y_pred, pos_label=0) == pytest.approx(3 / 5)
    assert recall(y_true, y_pred, pos_label=0) == pytest.approx(3 / 4)


def test_zero_division_is_zero():
    assert precision([1, 1], [0, 0]) == 0.0  # nothing predicted positive
    assert recall([0, 0], [0, 0]) == 0.0  # no positives at all
    assert f1_score([0, 0], [0, 0]) == 0.0
    assert precision([0, 1], [1, 1], average="macro") == pytest.approx(0.25)


def test_binary_rejects_multiclass_and_bad_pos_label():
    with pytest.raises(ArgumentError, match="macro"):
        precision(Y_TRUE, Y_PRED)
    with pytest.raises(ArgumentError, match="pos_label"):
        recall([2, 3], [3, 2])
    with pytest.raises(ArgumentError, match="average"):
        f1_score([0, 1], [0, 1], average="weighted")


@pytest.mark.parametrize("fn", [accuracy, precision, recall, f1_score, confusion_matrix, mse, r2_score])
def test_length_mismatch(fn):
    with pytest.raises(ShapeError, match=r"\(3,\).*\(2,\)"):
        fn([0, 1, 1], [0, 1])


@pytest.mark.parametrize("fn", [accuracy, precision, mse])
def test_empty_inputs(fn):
    with pytest.raises(ArgumentError):
        fn([], [])


def test_mse_and_r2_by_hand():
    y, p = [1.0, 2.0, 3.0], [1.0, 2.0, 5.0]
    assert mse(y, p) == pytest.approx(4 / 3)
    assert r2_score(y, p) == pytest.approx(1 - 4 / 2)
    assert r2_score(y, y) == 1.0
    assert r2_score([2, 2, 2], [2, 2, 2]) == 1.0
    assert r2_score([2, 2, 2], [2, 2, 3]) == 0.0
    assert mse(np.array([[1.0], [2.0]]), np.array([1.0, 4.0])) == pytest.approx(2.0)


def test_mean_confidence_interval():
    values = [1.0, 2.0, 3.0, 4.0]
    mean, hw = mean_confidence_interval(values)
    assert mean == pytest.approx(2.5)
    assert hw == pytest.approx(1.96 * np.std(values, ddof=1) / 2, rel=1e-4)
    assert mean_confidence_interval([3.0]) == (3.0, 0.0)
    _, hw99 = mean_confidence_interval(values, confidence=0.99)
    assert hw99 == pytest.approx(2.5758 * np.std(values, ddof=1) / 2, rel=1e-4)
    with pytest.raises(ArgumentError):
        mean_confidence_interval([])
    with pytest.raises(ArgumentError):
        mean_confidence_interval(values, confidence=1.0)


# ----------------------------------------------------------------------------- properties / sklearn

labels = st.lists(st.integers(0, 3), min_size=1, max_size=40)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_metric_properties(data):
    y_true = data.draw(labels)
    y_pred = data.draw(st.lists(st.integers(0, 3), min_size=len(y_true), max_size=len(y_true)))
    cm = confusion_matrix(y_true, y_pred)
    assert cm.sum() == len(y_true)
    assert accuracy(y_true, y_pred) == pytest.approx(np.trace(cm) / len(y_true))
    for avg in ("macro", "micro"):
        scores = [fn(y_true, y_pred, average=avg) for fn in (precision, recall, f1_score)]
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert f1_score(y_true, y_pred, average="micro") == pytest.approx(accuracy(y_true, y_pred))
    assert accuracy(y_true, y_true) == 1.0


@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=60, deadline=None)
@given(data=st.data(), average=st.sampled_from(["binary", "macro", "micro"]))
def test_matches_sklearn(data, average):
    skm = pytest.importorskip("sklearn.metrics")
    hi = 1 if average == "binary" else 4
    y_true = data.draw(st.lists(st.integers(0, hi), min_size=1, max_size=30))
    y_pred = data.draw(st.lists(st.integers(0, hi), min_size=len(y_true), max_size=len(y_true)))
    for ours, theirs in ((precision, skm.precision_score), (recall, skm.recall_score), (f1_score, skm.f1_score)):
        assert ours(y_true, y_pred, average=average) == pytest.approx(
            theirs(y_true, y_pred, average=average, zero_division=0.0))
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred),
                                  skm.confusion_matrix(y_true, y_pred, labels=np.unique(y_true + y_pred)))
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_regression_matches_sklearn(data):
    skm = pytest.importorskip("sklearn.metrics")
    floats = st.floats(-100, 100, allow_nan=False)
    n = data.draw(st.integers(2, 20))
    y = np.array(data.draw(st.lists(floats, min_size=n, max_size=n)))
    p = np.array(data.draw(st.lists(floats, min_size=n, max_size=n)))
    assert mse(y, p) == pytest.approx(skm.mean_squared_error(y, p))
    assert r2_score(y, p) == pytest.approx(skm.r2_score(y, p), abs=1e-9)
    y2 = np.stack([y, p[::-1]], axis=1)
    p2 = np.stack([p, y], axis=1)
    assert r2_score(y2, p2) == pytest.approx(skm.r2_score(y2, p2), abs=1e-9)
    assert math.isfinite(r2_score(y, p))

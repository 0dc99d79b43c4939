import numpy as np
import pytest

from tinymeta.errors import ArgumentError, DTypeError, IndexingError, ShapeError
from tinymeta.meta.tasks import FewShotClassification, LinearFunctions, Sinusoid, TaskBatch, split_classes


def _same(a, b):
    return all(np.array_equal(getattr(a, k), getattr(b, k))
               for k in ("x_support", "y_support", "x_query", "y_query"))


# ----------------------------------------------------------------------------- TaskBatch

def _batch(n=4):
    x = np.arange(n * 3 * 2, dtype=np.float32).reshape(n, 3, 2)
    return TaskBatch(x, x[..., :1], x + 100, x[..., :1] + 100, {"w": np.arange(n)})


def test_taskbatch_len_index_slice_task():
    b = _batch()
    assert len(b) == 4
    one = b[2]
    assert isinstance(one, TaskBatch) and len(one) == 1
    assert one.x_support.shape == (1, 3, 2) and one.params["w"].tolist() == [2]
    np.testing.assert_array_equal(b[-1].x_query, b.x_query[3:])
    sl = b[1:3]
    assert len(sl) == 2 and sl.params["w"].tolist() == [1, 2]
    assert b[[0, 3]].params["w"].tolist() == [0, 3]
    xs, ys, xq, yq = b.task(1)
    assert xs.shape == (3, 2) and ys.shape == (3, 1)
    np.testing.assert_array_equal(xq, b.x_query[1])
    assert [t.params["w"][0] for t in b] == [0, 1, 2, 3]


def test_taskbatch_errors():
    b = _batch()
    with pytest.raises(IndexingError):
        b[4]
    with pytest.raises(IndexError):
        b[-5]
    with pytest.raises(ShapeError, match="task axis"):
        TaskBatch(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ShapeError):
        TaskBatch(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), {"w": np.zeros(5)})


# ----------------------------------------------------------------------------- Sinusoid

def test_sinusoid_shapes_dtypes_and_ranges():
    b = Sinusoid().sample(500, rng=0)
    assert b.x_support.shape == b.y_support.shape == (500, 10, 1)
    assert b.x_query.shape == b.y_query.shape == (500, 10, 1)
    assert b.x_support.dtype == b.y_query.dtype == np.float32
    amp, phase = b.params["amplitude"], b.params["phase"]
    assert amp.shape == phase.shape == (500,)
    assert amp.min() >= 0.1 and amp.max() <= 5.0
    assert phase.min() >= 0 and phase.max() <= np.float32(np.pi)
    x = np.concatenate([b.x_support, b.x_query], axis=1)
    assert x.min() >= -5 and x.max() <= 5
    # spread over the whole ranges, not a constant
    assert amp.min() < 0.5 and amp.max() > 4.5 and x.min() < -4.9 and x.max() > 4.9
    for xs, ys in ((b.x_support, b.y_support), (b.x_query, b.y_query)):
        expected = amp[:, None, None] * np.sin(xs - phase[:, None, None])
        np.testing.assert_allclose(ys, expected, atol=1e-5)


def test_sinusoid_evaluate_and_query_override():
    s = Sinusoid(k_support=5, dtype=np.float64)
    assert s.evaluate(2.0, 0.5, 1.0) == pytest.approx(2 * np.sin(0.5))
    b = s.sample(3, rng=1, k_query=100)
    assert b.x_support.shape == (3, 5, 1) and b.x_query.shape == (3, 100, 1)
    assert b.x_query.dtype == np.float64
    np.testing.assert_allclose(s.evaluate(b.params["amplitude"], b.params["phase"], b.x_query), b.y_query)
    assert s.sample(2, rng=1, k_support=1).x_support.shape == (2, 1, 1)


def test_sinusoid_seeded():
    s = Sinusoid()
    assert _same(s.sample(5, rng=3), s.sample(5, rng=3))
    assert not _same(s.sample(5, rng=3), s.sample(5, rng=4))
    g = np.random.default_rng(7)
    first, second = s.sample(5, rng=g), s.sample(5, rng=g)
    assert not _same(first, second)
    g = np.random.default_rng(7)
    assert _same(first, s.sample(5, rng=g)) and _same(second, s.sample(5, rng=g))


def test_sinusoid_custom_ranges():
    b = Sinusoid(amp_range=(1, 1), phase_range=(0, 0), x_range=(0, 1)).sample(10, rng=0)
    np.testing.assert_allclose(b.y_support, np.sin(b.x_support), atol=1e-6)
    assert b.x_support.min() >= 0 and b.x_support.max() <= 1


@pytest.mark.parametrize("kwargs,name", [
    ({"k_support": 0}, "k_support"), ({"k_query": -1}, "k_query"), ({"k_support": 2.0}, "k_support"),
    ({"amp_range": (5, 1)}, "amp_range"), ({"phase_range": (0,)}, "phase_range"),
    ({"x_range": (0, np.inf)}, "x_range"),
])
def test_sinusoid_bad_args(kwargs, name):
    with pytest.raises(ArgumentError, match=name):
        Sinusoid(**kwargs)


def test_sinusoid_bad_sample_args():
    with pytest.raises(ArgumentError, match="n_tasks"):
        Sinusoid().sample(0)
    with pytest.raises(ArgumentError, match="k_query"):
        Sinusoid().sample(2, k_query=0)
    with pytest.raises(DTypeError):
        Sinusoid().sample(2, rng="x")


# ----------------------------------------------------------------------------- LinearFunctions

def test_linear_shapes_and_relation():
    lr = LinearFunctions(dim=3, k_support=6, k_query=4, noise=0.0)
    b = lr.sample(8, rng=0)
    assert b.x_support.shape == (8, 6, 3) and b.y_support.shape == (8, 6, 1)
    assert b.x_query.shape == (8, 4, 3) and b.y_query.shape == (8, 4, 1)
    assert b.params["w"].shape == (8, 3) and b.x_support.dtype == np.float32
    np.testing.assert_allclose(b.y_query, b.x_query @ b.params["w"][:, :, None], atol=1e-5)


def test_linear_noise_level():
    b = LinearFunctions(dim=2, k_support=2000, noise=0.5).sample(4, rng=0)
    resid = b.y_support - b.x_support @ b.params["w"][:, :, None]
    assert np.std(resid) == pytest.approx(0.5, rel=0.05)


def test_linear_optimal_params_match_lstsq():
    lr = LinearFunctions(dim=4, k_support=12, noise=0.3, dtype=np.float64)
    b = lr.sample(5, rng=1)
    w = lr.optimal_params(b.x_support, b.y_support)
    assert w.shape == (5, 4, 1)
    for t in range(5):
        ref = np.linalg.lstsq(b.x_support[t], b.y_support[t], rcond=None)[0]
        np.testing.assert_allclose(w[t], ref, atol=1e-10)
    # 2-D y is accepted too
    np.testing.assert_allclose(lr.optimal_params(b.x_support, b.y_support[..., 0]), w)


def test_linear_noiseless_recovers_w():
    lr = LinearFunctions(dim=5, k_support=10, noise=0.0)
    b = lr.sample(6, rng=2)
    np.testing.assert_allclose(lr.optimal_params(b.x_support, b.y_support)[..., 0], b.params["w"], atol=1e-4)


def test_linear_underdetermined_is_min_norm_lstsq():
    lr = LinearFunctions(dim=6, k_support=3, noise=0.0, dtype=np.float64)
    b = lr.sample(2, rng=0)
    w = lr.optimal_params(b.x_support, b.y_support)
    for t in range(2):
        np.testing.assert_allclose(w[t], np.linalg.lstsq(b.x_support[t], b.y_support[t], rcond=None)[0],
                                   atol=1e-10)


def test_linear_bias():
    lr = LinearFunctions(dim=3, k_support=8, noise=0.0, bias=True, dtype=np.float64)
    b = lr.sample(4, rng=3)
    assert b.params["b"].shape == (4,)
    np.testing.assert_allclose(b.y_support[..., 0],
                               np.einsum("nkd,nd->nk", b.x_support, b.params["w"]) + b.params["b"][:, None])
    w = lr.optimal_params(b.x_support, b.y_support)
    assert w.shape == (4, 4, 1)
    np.testing.assert_allclose(w[:, :3, 0], b.params["w"], atol=1e-8)
    np.testing.assert_allclose(w[:, 3, 0], b.params["b"], atol=1e-8)


def test_linear_ridge():
    lr = LinearFunctions(dim=3, k_support=10, dtype=np.float64)
    b = lr.sample(3, rng=4)
    x, y = b.x_support, b.y_support
    w = lr.optimal_params(x, y, ridge=2.0)
    for t in range(3):
        ref = np.linalg.solve(x[t].T @ x[t] + 2.0 * np.eye(3), x[t].T @ y[t])
        np.testing.assert_allclose(w[t], ref, atol=1e-10)
    small = lr.optimal_params(x, y, ridge=1e-10)
    np.testing.assert_allclose(small, lr.optimal_params(x, y), atol=1e-6)
    big = lr.optimal_params(x, y, ridge=1e6)
    assert np.abs(big).max() < 1e-3  # shrinks towards zero


def test_linear_seeded_and_errors():
    lr = LinearFunctions()
    assert _same(lr.sample(3, rng=0), lr.sample(3, rng=0))
    assert not _same(lr.sample(3, rng=0), lr.sample(3, rng=1))
    for kwargs, name in (({"dim": 0}, "dim"), ({"noise": -1}, "noise"), ({"k_support": 0}, "k_support"),
                         ({"weight_scale": np.nan}, "weight_scale")):
        with pytest.raises(ArgumentError, match=name):
            LinearFunctions(**kwargs)
    b = lr.sample(2, rng=0)
    with pytest.raises(ArgumentError, match="ridge"):
        lr.optimal_params(b.x_support, b.y_support, ridge=-1)
    with pytest.raises(ShapeError):
        lr.optimal_params(b.x_support[..., :3], b.y_support)


# ----------------------------------------------------------------------------- FewShotClassification

def _dataset(n_classes=10, per_class=20, features=3):
    # Feature 0 is the example's row index, so episodes can be traced back to rows.
    y = np.repeat(np.arange(n_classes), per_class)
    X = np.zeros((len(y), features))
    X[:, 0] = np.arange(len(y))
    return X, y


def test_fewshot_episode_structure():
    X, y = _dataset()
    fs = FewShotClassification(X, y, n_way=5, k_shot=2, k_query=3)
    b = fs.sample(20, rng=0)
    assert b.x_support.shape == (20, 10, 3) and b.x_query.shape == (20, 15, 3)
    assert b.y_support.shape == (20, 10) and b.y_query.shape == (20, 15)
    assert b.y_support.dtype == b.y_query.dtype == np.int64 and b.x_support.dtype == np.float32
    for t in range(20):
        xs, ys, xq, yq = b.task(t)
        assert np.bincount(ys, minlength=5).tolist() == [2] * 5
        assert np.bincount(yq, minlength=5).tolist() == [3] * 5
        rows_s, rows_q = xs[:, 0].astype(int), xq[:, 0].astype(int)
        assert len(set(rows_s) | set(rows_q)) == 10 + 15  # all distinct, support/query disjoint
        classes = b.params["classes"][t]
        assert len(set(classes)) == 5
        # new label j must mean original class classes[j] for every example
        np.testing.assert_array_equal(y[rows_s], classes[ys])
        np.testing.assert_array_equal(y[rows_q], classes[yq])


def test_fewshot_relabelling_is_random():
    X, y = _dataset()
    b = FewShotClassification(X, y, n_way=3, k_shot=1, k_query=1).sample(30, rng=0)
    classes = b.params["classes"]
    assert not all(np.all(np.diff(c) > 0) for c in classes)  # not always sorted
    assert len(np.unique(classes[:, 0])) > 3  # label 0 is not always the same class


def test_fewshot_keeps_feature_shape():
    X = np.arange(40 * 2 * 2).reshape(40, 2, 2)
    y = np.repeat(np.arange(4), 10)
    b = FewShotClassification(X, y, n_way=2, k_shot=1, k_query=2, dtype=np.float64).sample(3, rng=0)
    assert b.x_support.shape == (3, 2, 2, 2) and b.x_query.dtype == np.float64


def test_fewshot_seeded():
    X, y = _dataset()
    fs = FewShotClassification(X, y)
    assert _same(fs.sample(4, rng=5), fs.sample(4, rng=5))
    assert not _same(fs.sample(4, rng=5), fs.sample(4, rng=6))


def test_fewshot_classes_subset_and_split():
    X, y = _dataset()
    fs = FewShotClassification(X, y, n_way=3, classes=[1, 4, 7])
    assert set(np.unique(fs.sample(10, rng=0).params["classes"])) <= {1, 4, 7}

    train, test = FewShotClassification.split(X, y, test_classes=4, rng=0, n_way=3, k_shot=1, k_query=2)
    assert len(train.classes) == 6 and len(test.classes) == 4
    assert not set(train.classes) & set(test.classes)
    assert set(train.classes) | set(test.classes) == set(range(10))
    seen_train = set(np.unique(train.sample(50, rng=1).params["classes"]))
    seen_test = set(np.unique(test.sample(50, rng=1).params["classes"]))
    assert seen_train <= set(train.classes) and seen_test <= set(test.classes)

    train, test = FewShotClassification.split(X, y, test_classes=[0, 9], n_way=2)
    assert test.classes.tolist() == [0, 9] and 0 not in train.classes

    tr1, te1 = split_classes(y, 3, rng=1)
    tr2, te2 = split_classes(y, 3, rng=1)
    assert tr1.tolist() == tr2.tolist() and te1.tolist() == te2.tolist()
    assert len(te1) == 3 and not set(tr1) & set(te1)
    with pytest.raises(ArgumentError, match="n_test_classes"):
        split_classes(y, 10)


def test_fewshot_errors():
    X, y = _dataset(n_classes=4, per_class=5)
    with pytest.raises(ArgumentError, match=r"n_way=5 but only 4 classes"):
        FewShotClassification(X, y, n_way=5, k_query=1)
    with pytest.raises(ArgumentError, match=r"\{3: 3\}"):
        FewShotClassification(X[:-2], y[:-2], n_way=2, k_shot=1, k_query=3)
    with pytest.raises(ArgumentError, match="k_shot"):
        FewShotClassification(X, y, n_way=2, k_shot=0)
    with pytest.raises(ArgumentError, match="n_way"):
        FewShotClassification(X, y, n_way=0)
    with pytest.raises(ArgumentError, match=r"\[7\]"):
        FewShotClassification(X, y, n_way=2, k_query=1, classes=[0, 7])
    with pytest.raises(ShapeError):
        FewShotClassification(X, y[:-1], n_way=2, k_query=1)
    with pytest.raises(ArgumentError, match="n_tasks"):
        FewShotClassification(X, y, n_way=2, k_query=1).sample(0)


def test_fewshot_on_digits():
    from tinymeta.data import load_digits
    pytest.importorskip("sklearn")
    X, y = load_digits()
    train, test = FewShotClassification.split(X, y, test_classes=5, rng=0, n_way=5, k_shot=1, k_query=15)
    b = test.sample(2, rng=0)
    assert b.x_support.shape == (2, 5, 64) and b.x_query.shape == (2, 75, 64)

import gzip
import io

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinymeta.data import (DataLoader, DatasetError, MissingDependencyError, load_digits, load_mnist,
                           one_hot, train_val_test_split)
from tinymeta.errors import ArgumentError, CheckpointError, DTypeError, ShapeError, TinymetaError


# ----------------------------------------------------------------------------- DataLoader

@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70), shuffle=st.booleans(), seed=st.integers(0, 2**31))
def test_loader_covers_every_sample_once_per_epoch(n, batch_size, shuffle, seed):
    X = np.arange(n) * 10
    y = np.arange(n)
    loader = DataLoader(X, y, batch_size=batch_size, shuffle=shuffle, rng=seed)
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == -(-n // batch_size)
        assert all(len(b) == 2 for b in batches)
        assert all(len(xb) == batch_size for xb, _ in batches[:-1])
        assert len(batches[-1][0]) == n - batch_size * (len(batches) - 1)
        seen_x = np.concatenate([xb for xb, _ in batches])
        seen_y = np.concatenate([yb for _, yb in batches])
        np.testing.assert_array_equal(np.sort(seen_y), np.arange(n))
        np.testing.assert_array_equal(seen_x, seen_y * 10)  # rows stay aligned across arrays


def test_loader_partial_last_batch_and_drop_last():
    X = np.arange(10)
    assert [len(b[0]) for b in DataLoader(X, batch_size=4)] == [4, 4, 2]
    loader = DataLoader(X, batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader(X, batch_size=11, drop_last=True)) == 0
    assert list(DataLoader(X, batch_size=11, drop_last=True)) == []


def test_loader_single_array_yields_tuples_and_keeps_trailing_shape():
    X = np.zeros((7, 3, 2), dtype=np.float32)
    (xb,), *_ = list(DataLoader(X, batch_size=5))
    assert xb.shape == (5, 3, 2) and xb.dtype == np.float32


def test_loader_no_shuffle_is_in_order():
    assert np.concatenate([b[0] for b in DataLoader(np.arange(9), batch_size=2)]).tolist() == list(range(9))


def _epoch(loader):
    return np.concatenate([b[0] for b in loader])


def test_loader_shuffle_seeded_reproducible_and_epochs_differ():
    X = np.arange(100)
    a, b, c = (DataLoader(X, batch_size=16, shuffle=True, rng=s) for s in (3, 3, 4))
    ea1, ea2 = _epoch(a), _epoch(a)
    np.testing.assert_array_equal(ea1, _epoch(b))
    np.testing.assert_array_equal(ea2, _epoch(b))
    assert not np.array_equal(ea1, ea2)
    assert not np.array_equal(ea1, _epoch(c))
    assert not np.array_equal(ea1, X)


def test_loader_accepts_generator():
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(_epoch(DataLoader(np.arange(30), shuffle=True, rng=g1)),
                                  _epoch(DataLoader(np.arange(30), shuffle=True, rng=g2)))


def test_loader_length_mismatch_names_lengths():
    with pytest.raises(ShapeError, match=r"\[5, 4\]"):
        DataLoader(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError):  # ShapeError is also a ValueError
        DataLoader(np.zeros((3, 2)), np.zeros(2))


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -1}, {"batch_size": 2.5}])
def test_loader_bad_batch_size(kwargs):
    with pytest.raises(ArgumentError, match="batch_size"):
        DataLoader(np.zeros(4), **kwargs)


def test_loader_bad_inputs():
    with pytest.raises(ArgumentError):
        DataLoader()
    with pytest.raises(ShapeError):
        DataLoader(np.float64(3.0))
    with pytest.raises(DTypeError):
        DataLoader(np.zeros(3), rng="seed")


def test_loader_state_dict_roundtrip_through_npz():
    X = np.arange(50)
    loader = DataLoader(X, batch_size=8, shuffle=True, rng=11)
    _epoch(loader)
    state = loader.state_dict()
    buf = io.BytesIO()
    np.savez(buf, **state)  # must be storable without pickle
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        restored_state = {k: f[k] for k in f.files}
    expected_next = _epoch(loader)

    resumed = DataLoader(X, batch_size=8, shuffle=True, rng=999)
    resumed.load_state_dict(restored_state)
    np.testing.assert_array_equal(_epoch(resumed), expected_next)
    np.testing.assert_array_equal(_epoch(resumed), _epoch(loader))


def test_loader_state_dict_values_are_numpy():
    state = DataLoader(np.arange(3), rng=0).state_dict()
    assert all(isinstance(v, np.ndarray) and v.dtype.kind == "U" for v in state.values())


def test_loader_state_dict_other_bit_generator():
    def make():
        return DataLoader(np.arange(40), shuffle=True, rng=np.random.Generator(np.random.MT19937(1)))
    loader = make()
    state = loader.state_dict()
    first = _epoch(loader)
    other = make()
    _epoch(other)
    other.load_state_dict(state)
    np.testing.assert_array_equal(_epoch(other), first)


def test_loader_load_state_dict_errors():
    loader = DataLoader(np.arange(3), rng=0)
    with pytest.raises(CheckpointError, match="rng_state"):
        loader.load_state_dict({})
    with pytest.raises(CheckpointError):
        loader.load_state_dict({"rng_state": np.array("not json")})
    mt = DataLoader(np.arange(3), rng=np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(CheckpointError, match="MT19937"):
        loader.load_state_dict(mt.state_dict())


# ----------------------------------------------------------------------------- splits

def test_split_sizes_disjoint_and_aligned():
    X = np.arange(100)[:, None] * np.ones((1, 3))
    y = np.arange(100)
    X_tr, y_tr, X_val, y_val, X_te, y_te = train_val_test_split(X, y, val=0.1, test=0.25, rng=0)
    assert (len(y_tr), len(y_val), len(y_te)) == (65, 10, 25)
    assert X_tr.shape == (65, 3)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_val, y_te])), y)
    for Xs, ys in ((X_tr, y_tr), (X_val, y_val), (X_te, y_te)):
        np.testing.assert_array_equal(Xs[:, 0], ys)


def test_split_seeded():
    X, y = np.arange(50), np.arange(50)
    a = train_val_test_split(X, y, rng=1)
    b = train_val_test_split(X, y, rng=1)
    c = train_val_test_split(X, y, rng=2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    d = train_val_test_split(X, y, rng=np.random.default_rng(1))
    assert all(np.array_equal(u, v) for u, v in zip(a, d))


def test_split_stratified_keeps_proportions():
    y = np.repeat([0, 1, 2], [100, 50, 10])
    X = np.arange(len(y))
    _, y_tr, _, y_val, _, y_te = train_val_test_split(X, y, val=0.2, test=0.3, rng=0, stratify=True)
    assert np.bincount(y_te).tolist() == [30, 15, 3]
    assert np.bincount(y_val).tolist() == [20, 10, 2]
    assert np.bincount(y_tr).tolist() == [50, 25, 5]
    assert not np.all(np.diff(y_te) >= 0)  # shuffled, not grouped by class


def test_split_zero_val():
    _, _, X_val, y_val, _, _ = train_val_test_split(np.arange(10), np.arange(10), val=0, test=0.5)
    assert X_val.shape == (0,) and y_val.shape == (0,)


@pytest.mark.parametrize("val,test", [(-0.1, 0.2), (0.2, 1.0), (0.6, 0.5), (0.5, 0.5), ("a", 0.1)])
def test_split_bad_fractions(val, test):
    with pytest.raises(ArgumentError):
        train_val_test_split(np.arange(10), np.arange(10), val=val, test=test)


def test_split_length_mismatch():
    with pytest.raises(ShapeError):
        train_val_test_split(np.arange(10), np.arange(9))


def test_split_empty_train():
    with pytest.raises(ArgumentError, match="empty training"):
        train_val_test_split(np.arange(2), np.arange(2), val=0.4, test=0.4)


# ----------------------------------------------------------------------------- one_hot

def test_one_hot():
    out = one_hot([2, 0, 1], 4)
    np.testing.assert_array_equal(out, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    assert out.dtype == np.float32
    assert one_hot(np.zeros((2, 3), dtype=np.int64), 5, dtype=np.float64).shape == (2, 3, 5)


def test_one_hot_errors():
    with pytest.raises(ArgumentError, match="n_classes"):
        one_hot([0, 3], 3)
    with pytest.raises(ArgumentError):
        one_hot([-1], 3)
    with pytest.raises(DTypeError):
        one_hot([0.0, 1.0], 2)
    with pytest.raises(ArgumentError):
        one_hot([0], 0)


# ----------------------------------------------------------------------------- load_digits

def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert sorted(np.unique(y).tolist()) == list(range(10))
    d = load_digits(return_X_y=False)
    assert d["images"].shape == (1797, 8, 8)
    np.testing.assert_array_equal(d["data"], X)


def test_load_digits_without_sklearn(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match=r"tinymeta\[digits\]") as info:
        load_digits()
    assert isinstance(info.value, ImportError) and isinstance(info.value, TinymetaError)
    assert "pip install scikit-learn" in str(info.value)


# ----------------------------------------------------------------------------- load_mnist

def _idx_images(images):
    n, r, c = images.shape
    return (0x803).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in (n, r, c)) + images.tobytes()


def _idx_labels(labels):
    return (0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.tobytes()


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=6, dtype=np.uint8))


def _write(folder, prefix, images_bytes, labels_bytes, gz=False):
    for kind, data in (("images-idx3", images_bytes), ("labels-idx1", labels_bytes)):
        name = folder / f"{prefix}-{kind}-ubyte{'.gz' if gz else ''}"
        name.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_valid(tmp_path, mnist_arrays, gz):
    images, labels = mnist_arrays
    _write(tmp_path, "train", _idx_images(images), _idx_labels(labels), gz=gz)
    X, y = load_mnist(tmp_path)
    assert X.shape == (6, 784) and X.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_allclose(X, images.reshape(6, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    assert 0.0 <= X.min() and X.max() <= 1.0


def test_load_mnist_test_kind(tmp_path, mnist_arrays):
    images, labels = mnist_arrays
    _write(tmp_path, "t10k", _idx_images(images[:2]), _idx_labels(labels[:2]))
    X, y = load_mnist(str(tmp_path), kind="test")
    assert X.shape == (2, 784)
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, kind="train")
    with pytest.raises(ArgumentError, match="kind"):
        load_mnist(tmp_path, kind="validation")


def test_load_mnist_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte") as info:
        load_mnist(tmp_path / "nope")
    assert "does not exist" in str(info.value)
    assert isinstance(info.value, TinymetaError) and isinstance(info.value, ValueError)


def test_load_mnist_missing_labels_file(tmp_path, mnist_arrays):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_images(mnist_arrays[0]))
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte \(or train-labels-idx1-ubyte.gz\) not found"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_magic(tmp_path, mnist_arrays):
    images, labels = mnist_arrays
    # Labels file where the images file should be.
    _write(tmp_path, "train", _idx_labels(labels), _idx_labels(labels))
    with pytest.raises(DatasetError, match="0x00000801.*expected 0x00000803"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_truncated(tmp_path, mnist_arrays, gz):
    images, labels = mnist_arrays
    data = _idx_images(images)
    _write(tmp_path, "train", data[:-100], _idx_labels(labels), gz=gz)
    with pytest.raises(DatasetError, match=f"expected {len(data)} bytes, found {len(data) - 100}"):
        load_mnist(tmp_path)


def test_load_mnist_truncated_header(tmp_path, mnist_arrays):
    _write(tmp_path, "train", _idx_images(mnist_arrays[0]), b"\x00\x00\x08")
    with pytest.raises(DatasetError, match="truncated"):
        load_mnist(tmp_path)


def test_load_mnist_truncated_gzip_stream(tmp_path, mnist_arrays):
    images, labels = mnist_arrays
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_images(images))[:-20])
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_labels(labels))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)


def test_load_mnist_count_mismatch(tmp_path, mnist_arrays):
    images, labels = mnist_arrays
    _write(tmp_path, "train", _idx_images(images), _idx_labels(labels[:5]))
    with pytest.raises(DatasetError, match="6 images.*5 labels"):
        load_mnist(tmp_path)

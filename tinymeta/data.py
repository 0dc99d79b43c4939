"""Datasets, splits and mini-batching on plain NumPy arrays.

This module sits below the autodiff engine: it only hands out ``np.ndarray``
batches, so it can be used (and tested) without the rest of tinymeta.
"""

import gzip
import json
import math
import os

import numpy as np

from .checks import as_rng
from .errors import (ArgumentError, CheckpointError, DatasetError, DTypeError, MissingDependencyError,  # noqa: F401
                     ShapeError, TinymetaError)


def _check_same_length(arrays, what):
    lengths = [a.shape[0] if a.ndim else None for a in arrays]
    if None in lengths:
        raise ShapeError(f"{what}: every array needs a leading sample axis, got a 0-d array "
                         f"(shapes {[a.shape for a in arrays]})")
    if len(set(lengths)) > 1:
        raise ShapeError(f"{what}: arrays must have the same number of samples (leading length), "
                         f"got lengths {lengths}")
    return lengths[0]


# ---------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------

class DataLoader:
    """Iterate over mini-batches of one or more equally long arrays.

    Each batch is a tuple with one slice per array, even when only one array is
    given, so ``for (xb,) in loader`` and ``for xb, yb in loader`` both read the
    same way. With ``shuffle=True`` every call to ``iter()`` (every epoch) draws
    a fresh permutation from ``self.rng``: epochs differ, while a seeded run is
    reproducible. ``state_dict``/``load_state_dict`` save and restore that
    generator so a resumed run sees the same future permutations.
    """

    def __init__(self, *arrays, batch_size=32, shuffle=False, rng=None, drop_last=False):
        if not arrays:
            raise ArgumentError("DataLoader needs at least one array, e.g. DataLoader(X, y)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ArgumentError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        self.n = _check_same_length(self.arrays, "DataLoader")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.rng = as_rng(rng)

    def __len__(self):
        if self.drop_last:
            return self.n // self.batch_size
        return math.ceil(self.n / self.batch_size)

    def __iter__(self):
        # The permutation is drawn here rather than lazily so the generator
        # advances exactly once per epoch, whatever the consumer does.
        order = self.rng.permutation(self.n) if self.shuffle else np.arange(self.n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield tuple(a[idx] for a in self.arrays)

    def state_dict(self):
        """Generator state as ``{"rng_state": 0-d unicode array holding JSON}`` (np.savez-safe, no pickle)."""
        return {"rng_state": np.array(json.dumps(self.rng.bit_generator.state, default=_json_default))}

    def load_state_dict(self, state):
        try:
            raw = state["rng_state"]
            decoded = json.loads(str(np.asarray(raw)[()]), object_hook=_json_object_hook)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"DataLoader.load_state_dict: expected a dict with a JSON 'rng_state' "
                                  f"entry as written by state_dict(), could not read it ({exc})") from None
        ours = type(self.rng.bit_generator).__name__
        if decoded.get("bit_generator") != ours:
            raise CheckpointError(f"DataLoader.load_state_dict: state is for bit generator "
                                  f"{decoded.get('bit_generator')!r} but this loader uses {ours!r}")
        self.rng.bit_generator.state = decoded


# Some bit generators (MT19937) keep arrays in their state; JSON needs them as lists.
def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.integer):
        return int(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def _json_object_hook(d):
    if "__ndarray__" in d:
        return np.array(d["__ndarray__"], dtype=d["dtype"])
    return d


# ---------------------------------------------------------------------------
# Splits and encodings
# ---------------------------------------------------------------------------

def train_val_test_split(X, y, val=0.2, test=0.2, rng=0, stratify=False):
    """Shuffle and split into ``(X_tr, y_tr, X_val, y_val, X_te, y_te)``.

    Split sizes are ``round(fraction * n)``; with ``stratify=True`` the rounding
    is done per class, so every class keeps its proportion in each split (up to
    one sample per class).
    """
    for name, frac in (("val", val), ("test", test)):
        if not isinstance(frac, (int, float, np.floating, np.integer)) or not 0 <= frac < 1:
            raise ArgumentError(f"train_val_test_split: {name} must be a fraction in [0, 1), got {frac!r}")
    if val + test >= 1:
        raise ArgumentError(f"train_val_test_split: val + test must be < 1 to leave training data, "
                            f"got val={val} + test={test} = {val + test}")
    X, y = np.asarray(X), np.asarray(y)
    n = _check_same_length((X, y), "train_val_test_split")
    gen = as_rng(rng)

    if stratify:
        groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    else:
        groups = [np.arange(n)]
    parts = ([], [], [])
    for idx in groups:
        idx = gen.permutation(idx)
        n_te, n_val = round(test * len(idx)), round(val * len(idx))
        parts[2].append(idx[:n_te])
        parts[1].append(idx[n_te:n_te + n_val])
        parts[0].append(idx[n_te + n_val:])
    # Re-shuffle so stratified splits are not ordered by class.
    tr, va, te = (gen.permutation(np.concatenate(p)) for p in parts)
    if len(tr) == 0:
        raise ArgumentError(f"train_val_test_split: {n} samples leave an empty training set with "
                            f"val={val}, test={test}; use smaller fractions or more data")
    return X[tr], y[tr], X[va], y[va], X[te], y[te]


def one_hot(y, n_classes, dtype=np.float32):
    """Encode integer labels of any shape as ``(*y.shape, n_classes)``."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise DTypeError(f"one_hot: labels must be integers, got dtype {y.dtype}; "
                         f"cast with y.astype(np.int64)")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ArgumentError(f"one_hot: n_classes must be a positive int, got {n_classes!r}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ArgumentError(f"one_hot: labels must lie in [0, {n_classes - 1}], "
                            f"found values in [{y.min()}, {y.max()}]; raise n_classes")
    return (y[..., None] == np.arange(n_classes)).astype(dtype)


# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------

def load_digits(return_X_y=True):
    """The 8x8 handwritten digits (1797 x 64) from scikit-learn's bundled copy (offline).

    Returns ``(X, y)`` with ``X`` float64 scaled to [0, 1] (pixels / 16) and ``y``
    int64 in 0..9; with ``return_X_y=False`` a dict with ``data``, ``target``,
    ``images`` (N, 8, 8) and ``target_names``.
    """
    try:
        from sklearn import datasets
    except ImportError:
        raise MissingDependencyError(
            "load_digits needs scikit-learn, which is not installed; install it with "
            "pip install 'tinymeta[digits]'  or  pip install scikit-learn") from None
    bunch = datasets.load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    if return_X_y:
        return X, y
    return {"data": X, "target": y, "images": X.reshape(-1, 8, 8), "target_names": np.arange(10)}


_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801


def _read_idx(filename, magic, ndim):
    """Parse an unsigned-byte IDX file: big-endian magic, ``ndim`` uint32 sizes, then the data."""
    try:
        opener = gzip.open if filename.endswith(".gz") else open
        with opener(filename, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DatasetError(f"load_mnist: cannot read {filename}: {exc} (truncated or corrupt file?)") from None
    header = 4 + 4 * ndim
    # Check the magic first: a wrong file type is the likelier mistake and its
    # header length differs, which would otherwise be reported as truncation.
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found is not None and found != magic:
        raise DatasetError(f"load_mnist: {filename} has magic number 0x{found:08X}, expected 0x{magic:08X} "
                           f"({'images' if magic == _IDX_IMAGES else 'labels'} IDX file)")
    if len(data) < header:
        raise DatasetError(f"load_mnist: {filename} is truncated: expected at least {header} header bytes, "
                           f"found {len(data)}")
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetError(f"load_mnist: {filename} is {problem}: header dims {tuple(dims.tolist())} mean "
                           f"expected {expected} bytes, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(tuple(dims))


def load_mnist(path, kind="train"):
    """Read MNIST-format IDX files from folder ``path``.

    ``kind="train"`` reads ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte``,
    ``kind="test"`` (or ``"t10k"``) the ``t10k-*`` pair; each may also carry a ``.gz``
    suffix. Returns ``X`` float32 in [0, 1] of shape (N, rows*cols) and ``y`` int64.
    """
    prefixes = {"train": "train", "test": "t10k", "t10k": "t10k"}
    if kind not in prefixes:
        raise ArgumentError(f"load_mnist: kind must be 'train' or 'test', got {kind!r}")
    names = [f"{prefixes[kind]}-images-idx3-ubyte", f"{prefixes[kind]}-labels-idx1-ubyte"]
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DatasetError(f"load_mnist: folder {path!r} does not exist; it should contain "
                           f"{names[0]} and {names[1]} (optionally with a .gz suffix)")
    files = []
    for name in names:
        for candidate in (name, name + ".gz"):
            if os.path.isfile(os.path.join(path, candidate)):
                files.append(os.path.join(path, candidate))
                break
        else:
            raise DatasetError(f"load_mnist: {name} (or {name}.gz) not found in {path!r}; "
                               f"kind={kind!r} expects {names[0]} and {names[1]}")
    images = _read_idx(files[0], _IDX_IMAGES, 3)
    labels = _read_idx(files[1], _IDX_LABELS, 1)
    if len(images) != len(labels):
        raise DatasetError(f"load_mnist: {len(images)} images in {files[0]} but {len(labels)} labels "
                           f"in {files[1]}; the two files must come from the same split")
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return X, labels.astype(np.int64)


__all__ = [
    "DataLoader", "train_val_test_split", "one_hot", "load_digits", "load_mnist",
    "MissingDependencyError", "DatasetError",
]

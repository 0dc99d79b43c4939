"""Datasets, splits and mini-batching on plain NumPy arrays.

This module sits below the autodiff engine: it only hands out ``np.ndarray``
batches, so it can be used (and tested) without the rest of tinymeta.
"""

import functools
import gzip
import json
import math
import os
import random
import shutil
import subprocess

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
_IDX_PREFIXES = {"train": "train", "test": "t10k", "t10k": "t10k"}


def _read_idx(filename, magic, ndim, owner="load_mnist"):
    """Parse an unsigned-byte IDX file: big-endian magic, ``ndim`` uint32 sizes, then the data."""
    try:
        opener = gzip.open if filename.endswith(".gz") else open
        with opener(filename, "rb") as f:
            data = f.read()
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise DatasetError(f"{owner}: cannot read {filename}: {exc} (truncated or corrupt file?)") from None
    header = 4 + 4 * ndim
    # Check the magic first: a wrong file type is the likelier mistake and its
    # header length differs, which would otherwise be reported as truncation.
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found is not None and found != magic:
        raise DatasetError(f"{owner}: {filename} has magic number 0x{found:08X}, expected 0x{magic:08X} "
                           f"({'images' if magic == _IDX_IMAGES else 'labels'} IDX file)")
    if len(data) < header:
        raise DatasetError(f"{owner}: {filename} is truncated: expected at least {header} header bytes, "
                           f"found {len(data)}")
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetError(f"{owner}: {filename} is {problem}: header dims {tuple(dims.tolist())} mean "
                           f"expected {expected} bytes, found {len(data)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(tuple(dims))


def load_mnist(path, kind="train"):
    """Read MNIST-format IDX files from folder ``path``.

    ``kind="train"`` reads ``train-images-idx3-ubyte`` / ``train-labels-idx1-ubyte``,
    ``kind="test"`` (or ``"t10k"``) the ``t10k-*`` pair; each may also carry a ``.gz``
    suffix. Returns ``X`` float32 in [0, 1] of shape (N, rows*cols) and ``y`` int64.
    """
    return _load_idx_pair(path, kind, "load_mnist")


def _check_kind(kind, owner):
    if kind not in _IDX_PREFIXES:
        raise ArgumentError(f"{owner}: kind must be 'train' or 'test', got {kind!r}")


def _load_idx_pair(path, kind, owner):
    """The images/labels IDX pair of split ``kind`` in folder ``path``; errors name ``owner``."""
    _check_kind(kind, owner)
    prefix = _IDX_PREFIXES[kind]
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise DatasetError(f"{owner}: folder {path!r} does not exist; it should contain "
                           f"{names[0]} and {names[1]} (optionally with a .gz suffix)")
    files = []
    for name in names:
        for candidate in (name, name + ".gz"):
            if os.path.isfile(os.path.join(path, candidate)):
                files.append(os.path.join(path, candidate))
                break
        else:
            raise DatasetError(f"{owner}: {name} (or {name}.gz) not found in {path!r}; "
                               f"kind={kind!r} expects {names[0]} and {names[1]}")
    images = _read_idx(files[0], _IDX_IMAGES, 3, owner)
    labels = _read_idx(files[1], _IDX_LABELS, 1, owner)
    if len(images) != len(labels):
        raise DatasetError(f"{owner}: {len(images)} images in {files[0]} but {len(labels)} labels "
                           f"in {files[1]}; the two files must come from the same split")
    X = images.reshape(len(images), -1).astype(np.float32) / np.float32(255)
    return X, labels.astype(np.int64)


# Debian's dataset-fashion-mnist puts the four gzipped IDX files here; `dpkg -L` is
# asked first so a relocated install is found too. Module constants, so tests can
# point them at a package that is not installed.
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def fashion_mnist_dir() -> "str | None":
    """The folder holding Debian's Fashion-MNIST IDX files, or None when the package is absent.

    Asks ``dpkg -L dataset-fashion-mnist`` for the folder of ``train-images-idx3-ubyte.gz``;
    without dpkg (not a Debian system) falls back to ``/usr/share/datasets/fashion-mnist``.
    """
    if shutil.which("dpkg"):
        try:
            listing = subprocess.run(["dpkg", "-L", FASHION_MNIST_PACKAGE], capture_output=True,
                                     text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            listing = None
        if listing is not None and listing.returncode == 0:
            for line in listing.stdout.splitlines():
                if os.path.basename(line) == "train-images-idx3-ubyte.gz" and os.path.isfile(line):
                    return os.path.dirname(line)
    if os.path.isfile(os.path.join(FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")):
        return FASHION_MNIST_DIR
    return None


def load_fashion_mnist(kind: str = "train", path: "str | os.PathLike | None" = None
                       ) -> "tuple[np.ndarray, np.ndarray]":
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28x28 grey images of 10 kinds of clothing.

    ``kind="train"`` gives the 60,000 training images, ``kind="test"`` the 10,000 test
    images (6,000 and 1,000 per class). The files come from Debian's package
    ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``), found with
    ``dpkg -L``, or from ``path``, a folder with the four IDX files in MNIST's format.
    Returns ``X`` float32 in [0, 1] of shape (N, 784) and ``y`` int64 in 0..9; class
    names are in ``FASHION_MNIST_CLASSES``.
    """
    owner = "load_fashion_mnist"
    _check_kind(kind, owner)
    if path is None:
        path = fashion_mnist_dir()
        if path is None:
            raise MissingDependencyError(
                f"{owner}: Debian's package {FASHION_MNIST_PACKAGE} is not installed (dpkg -L "
                f"{FASHION_MNIST_PACKAGE} lists no IDX files and {FASHION_MNIST_DIR} has none); "
                f"install it with  sudo apt-get install {FASHION_MNIST_PACKAGE}  or pass path= a "
                f"folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz")
    X, y = _load_idx_pair(path, kind, owner)
    if X.shape[1] != 28 * 28 or (y.size and y.max() > 9):
        raise DatasetError(f"{owner}: expected 28x28 images with labels 0..9 in {os.fspath(path)!r}, "
                           f"got {X.shape[1]} pixels per image and labels up to {y.max()}; "
                           f"is this folder another data set?")
    return X, y


# ---------------------------------------------------------------------------
# MNIST-1D (Greydanus 2020), generated locally by the optional `mnist1d` package
# ---------------------------------------------------------------------------

MNIST1D_LENGTH = 40     # samples per signal in the published data set
_TEMPLATE_LENGTH = 12   # points per template curve in mnist1d's generator


def _mnist1d_module(owner):
    try:
        # make_dataset lives in mnist1d.data (the package root does not export it).
        from mnist1d import data as mnist1d_data
    except ImportError as exc:
        raise MissingDependencyError(
            f"{owner} needs the optional package mnist1d (Greydanus 2020's generator), which could "
            f"not be imported ({exc}); install it with  pip install 'tinymeta[mnist1d]'  or  "
            f"pip install mnist1d") from None
    return mnist1d_data


_TEMPLATE_MIN_DISTANCE = 0.2   # Euclidean, between normalised curves (the digits' closest pair: 0.38)


def mnist1d_templates(n_classes: int, rng=None) -> np.ndarray:
    """``n_classes`` new random template curves, shape (n_classes, 12), for many-class episodes.

    MNIST-1D draws every example by transforming one of ten hand-made 12-point curves
    (padding, dilation, scaling, translation, correlated and white noise, shear, then
    resampling to 40 points). Feeding other curves through the same transformations
    makes new classes of the same kind. Like the digit curves, each new curve is smooth
    and starts and ends at the baseline: ``c(s) = sum_k a_k sin(pi k s)`` for k = 1..6
    on 12 points s in [0, 1], with ``a_k ~ N(0, 1/k^2)`` (a few bumps, larger ones
    first), normalised exactly like the digit templates (zero mean, unit standard
    deviation, first point shifted to 0, divided by 6). A curve closer than 0.2 to one
    already drawn is redrawn, so no two classes are near copies (the closest pair of digit
    curves is 0.38 apart). Measured: 1-nearest-neighbour on 5-way 5-shot episodes scores
    0.32-0.33 on these classes and 0.34 on the ten digits, so the new classes are about as
    hard to tell apart.
    """
    n = n_classes
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ArgumentError(f"mnist1d_templates: n_classes must be a positive int, got {n_classes!r}")
    n = int(n)
    gen = as_rng(rng)
    s = np.linspace(0.0, 1.0, _TEMPLATE_LENGTH)
    k = np.arange(1, 7)
    basis = np.sin(np.pi * k[:, None] * s[None, :])
    out = np.empty((n, _TEMPLATE_LENGTH))
    count, tries = 0, 0
    while count < n:
        if tries >= 50 * n + 1000:   # about 2,000 classes fit comfortably
            raise ArgumentError(f"mnist1d_templates: could place only {count} curves at least "
                                f"{_TEMPLATE_MIN_DISTANCE} apart after {tries} draws; ask for fewer classes")
        tries += 1
        c = _normalise_templates((gen.normal(size=(1, len(k))) / k) @ basis)[0]
        if count == 0 or np.min(np.linalg.norm(out[:count] - c, axis=1)) >= _TEMPLATE_MIN_DISTANCE:
            out[count] = c
            count += 1
    return out


def _normalise_templates(x):
    # The normalisation mnist1d's get_templates applies to its ten digit curves.
    x = x - x.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    return (x - x[:, :1]) / 6.0


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(n_samples, seed, templates_bytes, n_templates):
    mnist1d_data = _mnist1d_module("load_mnist1d")
    args = mnist1d_data.get_dataset_args()   # the published settings (a plain namespace, no I/O)
    args.num_samples, args.seed = n_samples, seed
    digits = mnist1d_data.get_templates()
    if templates_bytes is not None:
        x = np.frombuffer(templates_bytes, dtype=np.float64).reshape(n_templates, _TEMPLATE_LENGTH)
        digits = {"x": x, "t": digits["t"], "y": np.arange(n_templates)}
    # make_dataset seeds Python's and NumPy's global generators (its own reproducibility);
    # put them back so loading data does not change the caller's random streams.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        # make_dataset, never get_dataset: the latter downloads a pickle from GitHub.
        data = mnist1d_data.make_dataset(args, template=digits)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    out = {}
    for split, (xs, ys) in {"train": (data["x"], data["y"]), "test": (data["x_test"], data["y_test"])}.items():
        xs, ys = np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.int64)
        xs.flags.writeable = ys.flags.writeable = False   # cached: callers get copies
        out[split] = (xs, ys)
    return out


def load_mnist1d(kind: str = "train", n_samples: int = 5000, seed: int = 42,
                 templates: "np.ndarray | None" = None) -> "tuple[np.ndarray, np.ndarray]":
    """MNIST-1D (Greydanus 2020, "Scaling down deep learning"): 1-D signals of 40 points, 10 classes.

    Generated locally by the optional ``mnist1d`` package (``pip install
    'tinymeta[mnist1d]'``) with its published settings: ``n_samples=5000`` split 80/20,
    so ``kind="train"`` gives 4,000 signals and ``kind="test"`` 1,000 (``kind="all"``
    both, train first); ``seed=42`` is the published data set's seed. Nothing is
    downloaded. ``templates``: an (n_classes, 12) array of template curves (for
    example ``mnist1d_templates(n)``) to generate new classes 0..n_classes-1 instead of
    the ten digits; ``n_samples // n_classes`` signals are made per class.
    Returns ``X`` float32 (N, 40), standardised over the whole set, and ``y`` int64.
    The first call for a setting takes about a second per 2,500 signals; repeats are cached.
    """
    owner = "load_mnist1d"
    if kind not in ("train", "test", "all"):
        raise ArgumentError(f"{owner}: kind must be 'train', 'test' or 'all', got {kind!r}")
    for name, value in (("n_samples", n_samples), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ArgumentError(f"{owner}: {name} must be a non-negative int, got {value!r}")
    key, n_classes = None, 10
    if templates is not None:
        t = np.asarray(templates, dtype=np.float64)
        if t.ndim != 2 or t.shape[1] != _TEMPLATE_LENGTH or len(t) < 1:
            raise ShapeError(f"{owner}: templates must have shape (n_classes, {_TEMPLATE_LENGTH}), got "
                             f"{np.shape(templates)}; make them with mnist1d_templates(n_classes)")
        if not np.all(np.isfinite(t)):
            raise ArgumentError(f"{owner}: templates contain NaN or inf")
        key, n_classes = np.ascontiguousarray(t).tobytes(), len(t)
    if n_samples < n_classes:
        raise ArgumentError(f"{owner}: n_samples={n_samples} gives no signal per class for {n_classes} "
                            f"classes; use n_samples >= {n_classes}")
    splits = _generate_mnist1d(int(n_samples), int(seed), key, n_classes)
    if kind == "all":
        return (np.concatenate([splits["train"][0], splits["test"][0]]),
                np.concatenate([splits["train"][1], splits["test"][1]]))
    X, y = splits[kind]
    return X.copy(), y.copy()


__all__ = [
    "DataLoader", "train_val_test_split", "one_hot", "load_digits", "load_mnist",
    "load_fashion_mnist", "fashion_mnist_dir", "FASHION_MNIST_CLASSES",
    "load_mnist1d", "mnist1d_templates",
    "MissingDependencyError", "DatasetError",
]

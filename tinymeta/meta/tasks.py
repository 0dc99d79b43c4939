"""Task families for meta-learning, as plain NumPy arrays.

Every sampler returns a :class:`TaskBatch` whose arrays carry a leading task
axis ``[tasks, shots, ...]``. ``rng`` arguments take an int seed or a
``np.random.Generator``; pass one Generator to successive ``sample`` calls to
get different but reproducible batches (``None`` draws fresh OS entropy).
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..checks import as_rng, integer, low_high, number
from ..errors import ArgumentError, IndexingError, ShapeError


def _non_negative(owner, name, value):
    return number(owner, name, value, low=0)


@dataclass(eq=False)
class TaskBatch:
    """Support and query sets of several tasks, stacked on a leading task axis.

    ``batch[i]`` and ``batch[a:b]`` return TaskBatches that keep the task axis
    (``batch[i]`` has length 1); ``batch.task(i)`` returns the unbatched tuple
    ``(x_support, y_support, x_query, y_query)``. ``params`` holds the ground
    truth that generated each task (one array per key, task axis first).
    """

    x_support: np.ndarray
    y_support: np.ndarray
    x_query: np.ndarray
    y_query: np.ndarray
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        arrays = {"x_support": self.x_support, "y_support": self.y_support,
                  "x_query": self.x_query, "y_query": self.y_query,
                  **{f"params[{k!r}]": v for k, v in self.params.items()}}
        lengths = {k: np.shape(v)[0] if np.ndim(v) else None for k, v in arrays.items()}
        if len(set(lengths.values())) != 1 or None in lengths.values():
            raise ShapeError(f"TaskBatch: every array needs the same leading task axis, got lengths {lengths}")

    def __len__(self):
        return self.x_support.shape[0]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            n = len(self)
            if not -n <= index < n:
                raise IndexingError(f"TaskBatch index {index} out of range for {n} tasks")
            index = slice(index % n, index % n + 1)  # keep the task axis
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.ndim != 1 or index.dtype.kind not in "iub":
                raise IndexingError(f"TaskBatch: index with an int, a slice or a 1-D int/bool array, got {index!r}")
        return TaskBatch(self.x_support[index], self.y_support[index], self.x_query[index],
                         self.y_query[index], {k: v[index] for k, v in self.params.items()})

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def task(self, i):
        t = self[i]
        return t.x_support[0], t.y_support[0], t.x_query[0], t.y_query[0]


class Sinusoid:
    """Sine regression of Finn et al. 2017 (MAML): ``y = amplitude * sin(x - phase)``.

    Amplitude ~ U(amp_range), phase ~ U(phase_range), x ~ U(x_range) per point,
    with the paper's defaults (0.1..5, 0..pi, -5..5) and no noise.
    """

    def __init__(self, k_support=10, k_query=10, amp_range=(0.1, 5.0), phase_range=(0, np.pi),
                 x_range=(-5, 5), dtype=np.float32):
        self.k_support = integer("Sinusoid", "k_support", k_support)
        self.k_query = integer("Sinusoid", "k_query", k_query)
        self.amp_range = low_high("Sinusoid", "amp_range", amp_range)
        self.phase_range = low_high("Sinusoid", "phase_range", phase_range)
        self.x_range = low_high("Sinusoid", "x_range", x_range)
        self.dtype = np.dtype(dtype)

    @staticmethod
    def evaluate(amplitude, phase, x):
        """``amplitude * sin(x - phase)``; per-task amplitude/phase of shape (n,) broadcast over x's trailing axes."""
        a, p, x = np.asarray(amplitude), np.asarray(phase), np.asarray(x)
        if a.ndim == 1 and x.ndim > 1:
            a = a.reshape(a.shape + (1,) * (x.ndim - 1))
        if p.ndim == 1 and x.ndim > 1:
            p = p.reshape(p.shape + (1,) * (x.ndim - 1))
        return a * np.sin(x - p)

    def sample(self, n_tasks, rng=None, k_support=None, k_query=None):
        """``n_tasks`` tasks; ``k_support``/``k_query`` override the defaults (e.g. k_query=100 to evaluate)."""
        n = integer("Sinusoid.sample", "n_tasks", n_tasks)
        ks = self.k_support if k_support is None else integer("Sinusoid.sample", "k_support", k_support)
        kq = self.k_query if k_query is None else integer("Sinusoid.sample", "k_query", k_query)
        gen = as_rng(rng)
        amp = gen.uniform(*self.amp_range, size=n)
        phase = gen.uniform(*self.phase_range, size=n)
        x = gen.uniform(*self.x_range, size=(n, ks + kq, 1))
        y = self.evaluate(amp, phase, x)
        x, y = x.astype(self.dtype), y.astype(self.dtype)
        return TaskBatch(x[:, :ks], y[:, :ks], x[:, ks:], y[:, ks:],
                         {"amplitude": amp.astype(self.dtype), "phase": phase.astype(self.dtype)})


class LinearFunctions:
    """The task family of linear functions (``learners.LinearRegression`` is the learner that
    fits one): tasks ``y = x @ w (+ b) + noise * eps`` with x ~ N(0, I), w ~ N(0, weight_scale^2 I).

    With ``bias=True`` each task also draws ``b ~ N(0, weight_scale^2)``
    (``params["b"]``, shape (n,)). y has shape (n, k, 1).
    """

    def __init__(self, dim=5, k_support=10, k_query=10, noise=0.1, weight_scale=1.0, bias=False,
                 dtype=np.float32):
        self.dim = integer("LinearFunctions", "dim", dim)
        self.k_support = integer("LinearFunctions", "k_support", k_support)
        self.k_query = integer("LinearFunctions", "k_query", k_query)
        self.noise = _non_negative("LinearFunctions", "noise", noise)
        self.weight_scale = _non_negative("LinearFunctions", "weight_scale", weight_scale)
        self.bias = bool(bias)
        self.dtype = np.dtype(dtype)

    def sample(self, n_tasks, rng=None, k_support=None, k_query=None):
        n = integer("LinearFunctions.sample", "n_tasks", n_tasks)
        ks = self.k_support if k_support is None else integer("LinearFunctions.sample", "k_support", k_support)
        kq = self.k_query if k_query is None else integer("LinearFunctions.sample", "k_query", k_query)
        gen = as_rng(rng)
        w = gen.normal(0.0, self.weight_scale, size=(n, self.dim))
        x = gen.normal(size=(n, ks + kq, self.dim))
        y = x @ w[:, :, None] + self.noise * gen.normal(size=(n, ks + kq, 1))
        params = {"w": w.astype(self.dtype)}
        if self.bias:
            b = gen.normal(0.0, self.weight_scale, size=n)
            y += b[:, None, None]
            params["b"] = b.astype(self.dtype)
        x, y = x.astype(self.dtype), y.astype(self.dtype)
        return TaskBatch(x[:, :ks], y[:, :ks], x[:, ks:], y[:, ks:], params)

    def optimal_params(self, x_support, y_support, ridge=0.0):
        """Closed-form least-squares weights per task, shape (n, dim, 1) (or (n, dim + 1, 1) with bias).

        With ``bias=True`` a ones column is appended to x, so the last row is the
        bias. ``ridge=0`` uses the pseudo-inverse (minimum-norm solution when
        under-determined); ``ridge > 0`` solves (X^T X + ridge I) w = X^T y and
        leaves the bias unpenalised.
        """
        ridge = _non_negative("LinearFunctions.optimal_params", "ridge", ridge)
        x = np.asarray(x_support, dtype=np.float64)
        y = np.asarray(y_support, dtype=np.float64)
        if y.ndim == 2:
            y = y[..., None]
        if x.ndim != 3 or x.shape[-1] != self.dim or y.shape != x.shape[:2] + (1,):
            raise ShapeError(f"LinearFunctions.optimal_params: expected x (n, k, {self.dim}) and y (n, k, 1), "
                             f"got {x.shape} and {np.shape(y_support)}")
        if self.bias:
            x = np.concatenate([x, np.ones(x.shape[:2] + (1,))], axis=-1)
        if ridge == 0:
            w = np.linalg.pinv(x) @ y
        else:
            penalty = np.eye(x.shape[-1])
            if self.bias:
                penalty[-1, -1] = 0.0
            xt = np.swapaxes(x, -1, -2)
            w = np.linalg.solve(xt @ x + ridge * penalty, xt @ y)
        return w.astype(self.dtype)


def split_classes(y, n_test_classes, rng=None):
    """Randomly partition the labels of ``y`` into disjoint ``(train_classes, test_classes)`` (sorted)."""
    classes = np.unique(np.asarray(y))
    n_test = integer("split_classes", "n_test_classes", n_test_classes)
    if n_test >= len(classes):
        raise ArgumentError(f"split_classes: n_test_classes={n_test} must be smaller than the number of "
                            f"classes ({len(classes)}) to leave classes for meta-training")
    perm = as_rng(rng).permutation(len(classes))
    return np.sort(classes[perm[n_test:]]), np.sort(classes[perm[:n_test]])


class FewShotClassification:
    """N-way K-shot episodes drawn from a labelled dataset.

    Each episode picks ``n_way`` of ``classes`` without replacement, relabels them
    0..n_way-1 in random order and draws ``k_shot + k_query`` distinct examples of
    each, so support and query never share an example. Support and query are
    ordered by new label (``y_support[t] == repeat(arange(n_way), k_shot)``);
    ``params["classes"]`` gives the original label of each new label.
    """

    def __init__(self, X, y, n_way=5, k_shot=1, k_query=15, classes=None, dtype=np.float32):
        owner = "FewShotClassification"
        self.n_way = integer(owner, "n_way", n_way)
        self.k_shot = integer(owner, "k_shot", k_shot)
        self.k_query = integer(owner, "k_query", k_query)
        self.X, self.y = np.asarray(X), np.asarray(y)
        if self.y.ndim != 1 or self.X.ndim < 1 or self.X.shape[0] != self.y.shape[0]:
            raise ShapeError(f"{owner}: X needs one row per label in the 1-D y, got X {self.X.shape} and "
                             f"y {self.y.shape}")
        present = np.unique(self.y)
        self.classes = present if classes is None else np.unique(np.asarray(classes))
        missing = np.setdiff1d(self.classes, present)
        if missing.size:
            raise ArgumentError(f"{owner}: classes {missing.tolist()} do not occur in y")
        if self.n_way > len(self.classes):
            raise ArgumentError(f"{owner}: n_way={self.n_way} but only {len(self.classes)} classes are "
                                f"available; lower n_way or use more classes")
        self._indices = [np.flatnonzero(self.y == c) for c in self.classes]
        need = self.k_shot + self.k_query
        short = {c.item(): len(i) for c, i in zip(self.classes, self._indices) if len(i) < need}
        if short:
            raise ArgumentError(f"{owner}: each class needs k_shot + k_query = {need} examples, but these "
                                f"have fewer (class: count) {short}; lower k_shot/k_query or drop them")
        self.dtype = np.dtype(dtype)

    @classmethod
    def split(cls, X, y, test_classes, rng=None, **kwargs):
        """``(train_sampler, test_sampler)`` over disjoint classes.

        ``test_classes`` is either a number of classes to hold out at random
        (using ``rng``) or an explicit list of labels; ``kwargs`` go to both samplers.
        """
        if isinstance(test_classes, (int, np.integer)) and not isinstance(test_classes, bool):
            train, test = split_classes(y, test_classes, rng)
        else:
            test = np.unique(np.asarray(test_classes))
            train = np.setdiff1d(np.unique(np.asarray(y)), test)
        return cls(X, y, classes=train, **kwargs), cls(X, y, classes=test, **kwargs)

    def sample(self, n_tasks, rng=None):
        n = integer("FewShotClassification.sample", "n_tasks", n_tasks)
        gen = as_rng(rng)
        ks, kq = self.k_shot, self.k_query
        support = np.empty((n, self.n_way, ks), dtype=np.int64)
        query = np.empty((n, self.n_way, kq), dtype=np.int64)
        chosen = np.empty((n, self.n_way), dtype=np.int64)
        for t in range(n):
            # The permutation's order is the random relabelling.
            chosen[t] = gen.choice(len(self.classes), self.n_way, replace=False)
            for j, c in enumerate(chosen[t]):
                picks = gen.choice(self._indices[c], ks + kq, replace=False)
                support[t, j], query[t, j] = picks[:ks], picks[ks:]
        labels = np.arange(self.n_way, dtype=np.int64)
        return TaskBatch(
            self.X[support.reshape(n, -1)].astype(self.dtype), np.tile(np.repeat(labels, ks), (n, 1)),
            self.X[query.reshape(n, -1)].astype(self.dtype), np.tile(np.repeat(labels, kq), (n, 1)),
            {"classes": self.classes[chosen]})


__all__ = ["TaskBatch", "Sinusoid", "LinearFunctions", "FewShotClassification", "split_classes"]


def __getattr__(name):
    # Old name, kept working for one release: it read like learners.LinearRegression.
    if name == "LinearRegression":
        warnings.warn("meta.tasks.LinearRegression is renamed meta.tasks.LinearFunctions (the task "
                      "family; learners.LinearRegression is the learner); the old name goes in the next "
                      "release", DeprecationWarning, stacklevel=2)
        return LinearFunctions
    raise AttributeError(f"module 'tinymeta.meta.tasks' has no attribute {name!r}")

"""Base learners with scikit-learn's conventions: ``fit(X, y)`` returns self, ``predict``,
``score``; NumPy arrays in, NumPy arrays out.

Every model except ``RidgeRegression`` is trained by tinymeta's own autograd, optimizers
and ``tinymeta.train.fit``. Linear and logistic regression train in float64 on internally
standardized features (like glmnet: gradient descent then converges at the same rate
whatever the feature scales; coefficients are reported on the original scale, and a
penalty applies to the standardized coefficients). The MLPs train in float32.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import metrics, optim
from .checks import as_rng, integer as integer_, number
from .creation import tensor
from .engine import Tensor, no_grad
from .errors import ArgumentError, DTypeError, NotFittedError, ShapeError  # noqa: F401  (NotFittedError: learners.NotFittedError)
from .linalg import pinv, solve
from .nn import ACTIVATIONS, MLP, Linear
from .nn import functional as F
from .ops import sigmoid, squeeze, sum as tsum, unsqueeze
from .train import fit as _fit

OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW, "rmsprop": optim.RMSprop,
              "adagrad": optim.Adagrad}


def check_X(X, where, n_features=None):
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DTypeError(f"{where}: X must be numeric, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ShapeError(f"{where}: X must be 2-D (n_samples, n_features), got shape {X.shape}; "
                         "use X.reshape(-1, 1) for a single feature")
    if len(X) == 0:
        raise ShapeError(f"{where}: X has no samples (shape {X.shape})")
    if not np.isfinite(X).all():
        raise ArgumentError(f"{where}: X contains NaN or infinity ({int(np.sum(~np.isfinite(X)))} "
                            "entries); impute or drop them first")
    if n_features is not None and X.shape[1] != n_features:
        raise ShapeError(f"{where}: X has {X.shape[1]} features but the model was fitted on {n_features}")
    return X


def check_Xy(X, y, where, y_numeric=True):
    X, y = check_X(X, where), np.asarray(y)
    if y.ndim not in (1, 2):
        raise ShapeError(f"{where}: y must be 1-D (or 2-D for several targets), got shape {y.shape}")
    if len(X) != len(y):
        raise ShapeError(f"{where}: X has {len(X)} samples (shape {X.shape}) but y has {len(y)} "
                         f"(shape {y.shape}); they must match")
    if y_numeric:
        if y.dtype.kind not in "biuf":
            raise DTypeError(f"{where}: y must be numeric, got dtype {y.dtype}")
        if not np.isfinite(y).all():
            raise ArgumentError(f"{where}: y contains NaN or infinity")
    return X, y


def _positive(name, value, where, strict=True, integer=False):
    """A positive (or, not ``strict``, non-negative) number or int: tinymeta.checks."""
    if integer:
        integer_(where, name, value, minimum=1 if strict else 0)
    else:
        number(where, name, value, low=0, strict_low=strict)


class _Base:
    """get_params/set_params/repr from the constructor's arguments, as scikit-learn does."""

    _params = ()

    def get_params(self, deep=True):
        return {k: getattr(self, k) for k in self._params}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self._params:
                raise ArgumentError(f"{type(self).__name__}: unknown parameter {k!r}; "
                                    f"parameters are {list(self._params)}")
            setattr(self, k, v)
        self._validate()
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params)
        return f"{type(self).__name__}({args})"

    def _validate(self):
        where = type(self).__name__
        for name in ("lr", "alpha", "C", "weight_decay", "epochs", "batch_size", "validation_fraction"):
            if not hasattr(self, name) or getattr(self, name) is None:
                continue
            value = getattr(self, name)
            if name in ("epochs", "batch_size"):
                _positive(name, value, where, integer=True)
            elif name == "validation_fraction":
                _positive(name, value, where)
                if value >= 1:
                    raise ArgumentError(f"{where}: validation_fraction must be in (0, 1), got {value}")
            else:
                _positive(name, value, where, strict=name in ("lr", "C"))
        if getattr(self, "optimizer", None) is not None and self.optimizer not in OPTIMIZERS:
            raise ArgumentError(f"{where}: unknown optimizer {self.optimizer!r}; choose one of "
                                f"{sorted(OPTIMIZERS)}")

    def _check_fitted(self, attr):
        if not hasattr(self, attr):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first")

    def _train(self, model, loss_fn, X, y, validation_data=None, early_stopping=None):
        """Run tinymeta.train.fit with this learner's optimizer, lr, epochs and batch size."""
        kwargs = {"lr": self.lr}
        if getattr(self, "weight_decay", 0):
            kwargs["weight_decay"] = self.weight_decay
        opt = OPTIMIZERS[self.optimizer](model.parameters(), **kwargs)
        batch = len(X) if self.batch_size is None else min(self.batch_size, len(X))
        return _fit(model, loss_fn, opt, (X, y), val=validation_data, epochs=self.epochs,
                    batch_size=batch, early_stopping=early_stopping, progress=self.verbose,
                    rng=self.random_state)


# ----------------------------------------------------------------------------- linear models

class _Standardizer:
    """z = (x - mean) / scale; constant columns keep scale 1 (they carry no information)."""

    def __init__(self, X, center=True):
        self.mean = X.mean(0) if center else np.zeros(X.shape[1])
        scale = X.std(0)
        self.scale = np.where(scale > 1e-12 * max(1.0, np.abs(X).max()), scale, 1.0)

    def __call__(self, X):
        return (X - self.mean) / self.scale

    def unscale(self, w, b):
        """Coefficients (k, d) and intercepts (k,) on z -> on the original x."""
        w = w / self.scale
        return w, b - w @ self.mean


def _zero_linear(d, k, bias):
    layer = Linear(d, k, bias=bias, rng=0, dtype=np.float64)
    with no_grad():  # a convex problem: start from zero, so results do not depend on a seed
        for p in layer.parameters():
            p.data[...] = 0.0
    return layer


class LinearRegression(_Base):
    """Least squares by gradient descent on the mean squared error (+ ``alpha`` ||w||^2 on the
    standardized coefficients). ``coef_`` (d,) or (k, d) for 2-D y, ``intercept_``.

    Minimises (1/N) sum_i ||w^T x_i + b - y_i||^2 + alpha ||w||^2 over standardized x
    with tinymeta's own training loop; ``RidgeRegression`` solves the same kind of problem
    in closed form.

    Args:
        lr: the learning rate.
        epochs: passes over the data.
        batch_size: minibatch size (``None``: the whole data set per step).
        optimizer: ``"sgd"``, ``"adam"``, ... (a name from ``tinymeta.learners.OPTIMIZERS``).
        fit_intercept: learn b (the data are centered).
        alpha: the L2 penalty on the standardized coefficients.
        random_state: the seed of the minibatch order.
        verbose: show training progress.

    Example:
        >>> reg = LinearRegression().fit(X, y)
        >>> reg.coef_, reg.intercept_, reg.score(X, y)
    """

    _params = ("lr", "epochs", "batch_size", "optimizer", "fit_intercept", "alpha", "random_state",
               "verbose")

    def __init__(self, lr: float = 0.1, epochs: int = 500, batch_size: int | None = None,
                 optimizer: str = "sgd", fit_intercept: bool = True, alpha: float = 0.0,
                 random_state: int | np.random.Generator | None = 0, verbose: bool = False):
        self.lr, self.epochs, self.batch_size, self.optimizer = lr, epochs, batch_size, optimizer
        self.fit_intercept, self.alpha = fit_intercept, alpha
        self.random_state, self.verbose = random_state, verbose
        self._validate()

    def fit(self, X: ArrayLike, y: ArrayLike) -> LinearRegression:
        """Fit on X (n, d) and y (n,) or (n, k); returns ``self`` (``coef_``, ``intercept_``, ``history_``)."""
        self._validate()
        X, y = check_Xy(X, y, "LinearRegression.fit")
        Y = y.reshape(len(y), -1).astype(np.float64)
        scaler = _Standardizer(X.astype(np.float64), center=self.fit_intercept)
        model = _zero_linear(X.shape[1], Y.shape[1], self.fit_intercept)
        alpha = float(self.alpha)

        def loss(out, target):
            mse = F.mse_loss(out, target)
            return mse + alpha * tsum(model.weight * model.weight) if alpha else mse

        self.history_ = self._train(model, loss, scaler(X), Y)
        w, b = scaler.unscale(model.weight.data, model.bias.data if self.fit_intercept else 0.0)
        self.coef_ = w[0] if y.ndim == 1 else w
        self.intercept_ = (float(b[0]) if y.ndim == 1 else b) if self.fit_intercept else 0.0
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """X w^T + b: (n,) or (n, k)."""
        self._check_fitted("coef_")
        X = check_X(X, "LinearRegression.predict", self.n_features_in_)
        return X @ np.asarray(self.coef_).T + self.intercept_

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """R^2 of the prediction."""
        return metrics.r2_score(y, self.predict(X))


def logistic_gradient(theta: ArrayLike, X: ArrayLike, y: ArrayLike) -> np.ndarray:
    """The seed derivation in NumPy: the gradient of the mean binary cross-entropy
    L(theta) = -(1/N) sum [y log s + (1-y) log(1-s)], s = sigmoid(theta^T x), is::

        dL/dtheta = -(1/N) sum_i (y_i - sigmoid(theta^T x_i)) x_i.

    (d/dz of the per-sample loss is s - y, and z = theta^T x.) Put a column of ones in X
    for an intercept. ``LogisticRegression.loss_and_grad`` checks autograd against it.

    Args:
        theta: the weights (d,).
        X: the inputs (N, d).
        y: 0/1 labels (N,).

    Returns:
        dL/dtheta, shape (d,), in float64.
    """
    theta, X, y = np.asarray(theta, np.float64), np.asarray(X, np.float64), np.asarray(y, np.float64)
    s = 1.0 / (1.0 + np.exp(-(X @ theta)))
    return -(X.T @ (y - s)) / len(y)


class LogisticRegression(_Base):
    """Binary logistic regression: sigmoid + cross-entropy (the stable form on logits),
    minimising mean BCE + ||w||^2 / (2 C N) on standardized features, i.e. scikit-learn's
    objective ||w||^2/2 + C sum(BCE) divided by C N (``C=None`` or ``penalty=None``: none).
    Labels may be any two values; ``classes_`` holds them sorted.

    p(y = 1 | x) = sigmoid(w^T x + b); the gradient of the mean BCE is
    -(1/N) sum_i (y_i - p_i) x_i (see ``logistic_gradient``).

    Args:
        lr: the learning rate.
        epochs: passes over the data.
        batch_size: minibatch size (``None``: the whole data set per step).
        optimizer: ``"sgd"``, ``"adam"``, ... (a name from ``tinymeta.learners.OPTIMIZERS``).
        C: the inverse regularisation strength (``None``: no penalty).
        penalty: ``"l2"`` or ``None``.
        fit_intercept: learn b.
        random_state: the seed of the minibatch order.
        verbose: show training progress.

    Example:
        >>> clf = LogisticRegression(C=1.0).fit(X, y)
        >>> clf.predict_proba(X[:3]), clf.score(X, y)
    """

    _params = ("lr", "epochs", "batch_size", "optimizer", "C", "penalty", "fit_intercept",
               "random_state", "verbose")

    def __init__(self, lr: float = 0.5, epochs: int = 1000, batch_size: int | None = None,
                 optimizer: str = "sgd", C: float | None = 1.0, penalty: str | None = "l2",
                 fit_intercept: bool = True, random_state: int | np.random.Generator | None = 0,
                 verbose: bool = False):
        self.lr, self.epochs, self.batch_size, self.optimizer = lr, epochs, batch_size, optimizer
        self.C, self.penalty, self.fit_intercept = C, penalty, fit_intercept
        self.random_state, self.verbose = random_state, verbose
        self._validate()

    def _validate(self):
        super()._validate()
        if self.penalty not in ("l2", None):
            raise ArgumentError(f"LogisticRegression: penalty must be 'l2' or None, got {self.penalty!r}")

    def _loss(self, model, n):
        strength = 0.0 if self.penalty is None or self.C is None else 1.0 / (2.0 * self.C * n)

        def loss(out, target):
            bce = F.binary_cross_entropy_with_logits(out[:, 0], target)
            return bce + strength * tsum(model.weight * model.weight) if strength else bce
        return loss

    def fit(self, X: ArrayLike, y: ArrayLike) -> LogisticRegression:
        """Fit on X (n, d) and labels y (n,) of exactly two classes; returns ``self``."""
        self._validate()
        X, y = check_Xy(X, y, "LogisticRegression.fit", y_numeric=False)
        if y.ndim != 1:
            raise ShapeError(f"LogisticRegression.fit: y must be 1-D labels, got shape {y.shape}")
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ArgumentError(f"LogisticRegression is binary: y needs exactly 2 classes, got "
                                f"{len(self.classes_)} ({self.classes_[:10].tolist()}); use "
                                "MLPClassifier for more")
        target = (y == self.classes_[1]).astype(np.float64)
        self._scaler = _Standardizer(X.astype(np.float64), center=self.fit_intercept)
        self.model_ = _zero_linear(X.shape[1], 1, self.fit_intercept)
        loss = self._loss(self.model_, len(X))
        self.history_ = self._train(self.model_, loss, self._scaler(X), target)
        bias = self.model_.bias.data if self.fit_intercept else 0.0
        w, b = self._scaler.unscale(self.model_.weight.data, bias)
        self.coef_, self.intercept_ = w[0], (float(b[0]) if self.fit_intercept else 0.0)
        self.n_features_in_ = X.shape[1]
        return self

    def loss_and_grad(self, X: ArrayLike, y: ArrayLike) -> tuple[float, np.ndarray, np.ndarray]:
        """(loss, gradient w.r.t. [w, b] by autograd, the same gradient by the seed
        formula ``logistic_gradient``) at the fitted standardized parameters, unpenalised;
        the two gradients agree to rounding."""
        self._check_fitted("coef_")
        Z = self._scaler(check_X(X, "loss_and_grad", self.n_features_in_))
        t = (np.asarray(y) == self.classes_[1]).astype(np.float64)
        theta = np.append(self.model_.weight.data[0], self.model_.bias.data if self.fit_intercept else [])
        th = tensor(theta, dtype=np.float64, requires_grad=True)
        Za = np.hstack([Z, np.ones((len(Z), 1))]) if self.fit_intercept else Z
        loss = F.binary_cross_entropy_with_logits(tensor(Za) @ th, t)
        loss.backward()
        return loss.item(), th.grad.data, logistic_gradient(theta, Za, t)

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """The logits w^T x + b, shape (n,); positive means ``classes_[1]``."""
        self._check_fitted("coef_")
        return check_X(X, "LogisticRegression.predict", self.n_features_in_) @ self.coef_ + self.intercept_

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """(n, 2): probabilities of classes_[0] and classes_[1]."""
        with no_grad():
            p1 = sigmoid(tensor(self.decision_function(X), dtype=np.float64)).data
        return np.stack([1.0 - p1, p1], axis=1)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The predicted labels (values from ``classes_``), shape (n,)."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Accuracy."""
        return metrics.accuracy(y, self.predict(X))


# ----------------------------------------------------------------------------- MLPs

class _MLPBase(_Base):
    _params = ("hidden_layer_sizes", "activation", "lr", "epochs", "batch_size", "optimizer",
               "weight_decay", "early_stopping", "validation_fraction", "patience", "random_state",
               "verbose")

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (64,), activation: str = "relu",
                 lr: float = 1e-3, epochs: int = 200, batch_size: int | None = 32, optimizer: str = "adam",
                 weight_decay: float = 0.0, early_stopping: bool = False, validation_fraction: float = 0.1,
                 patience: int = 10, random_state: int | np.random.Generator | None = 0,
                 verbose: bool = False):
        self.hidden_layer_sizes, self.activation = hidden_layer_sizes, activation
        self.lr, self.epochs, self.batch_size, self.optimizer = lr, epochs, batch_size, optimizer
        self.weight_decay, self.early_stopping = weight_decay, early_stopping
        self.validation_fraction, self.patience = validation_fraction, patience
        self.random_state, self.verbose = random_state, verbose
        self._validate()

    def _validate(self):
        super()._validate()
        where = type(self).__name__
        for s in self._sizes():
            _positive("hidden_layer_sizes entries", s, where, integer=True)
        _positive("patience", self.patience, where, integer=True)
        if self.activation not in ACTIVATIONS or self.activation is None:
            raise ArgumentError(f"{where}: unknown activation {self.activation!r}; choose one of "
                                f"{sorted(k for k in ACTIVATIONS if k)}")

    def _sizes(self):
        h = self.hidden_layer_sizes
        return (h,) if np.isscalar(h) else tuple(h)

    def _fit(self, X, y_enc, n_out, loss_fn, validation_data, stratify):
        sizes = self._sizes()
        rng = as_rng(self.random_state)
        X = X.astype(np.float32)
        if validation_data is None and self.early_stopping:
            X, y_enc, validation_data = _holdout(X, y_enc, self.validation_fraction, rng, stratify)
        self.model_ = MLP([X.shape[1], *sizes, n_out], activation=self.activation, rng=rng,
                          dtype=np.float32)
        stopper = {"patience": self.patience, "monitor": "val_loss"} if self.early_stopping else None
        self.history_ = self._train(self.model_, loss_fn, X, y_enc, validation_data, stopper)
        self.n_features_in_ = X.shape[1]
        return self

    def _forward(self, X):
        self._check_fitted("model_")
        X = check_X(X, f"{type(self).__name__}.predict", self.n_features_in_).astype(np.float32)
        with no_grad():
            return self.model_(X).data


def _holdout(X, y, fraction, rng, stratify):
    """Split off a validation set (per class when ``stratify``), keeping at least one training sample."""
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    val = np.concatenate([rng.permutation(g)[:int(round(fraction * len(g)))] for g in groups])
    train = np.setdiff1d(np.arange(len(y)), val)
    if len(val) == 0 or len(train) == 0:
        raise ArgumentError(f"early_stopping: validation_fraction={fraction} of {len(y)} samples leaves "
                            "an empty training or validation set")
    return X[train], y[train], (X[val], y[val])


class MLPClassifier(_MLPBase):
    """A multilayer perceptron trained on softmax cross-entropy. Labels may be any values
    (``classes_``); ``fit(X, y, validation_data=(X_val, y_val))`` records validation
    curves in ``history_`` and, with ``early_stopping=True``, stops on them (otherwise
    ``validation_fraction`` of the training data is held out for that)."""

    def fit(self, X: ArrayLike, y: ArrayLike, validation_data: tuple | None = None) -> MLPClassifier:
        """Fit on X (n, d) and labels y (n,); ``validation_data=(X_val, y_val)`` is measured each epoch.
        Returns ``self`` (``classes_``, ``model_``, ``history_``)."""
        self._validate()
        X, y = check_Xy(X, y, "MLPClassifier.fit", y_numeric=False)
        if y.ndim != 1:
            raise ShapeError(f"MLPClassifier.fit: y must be 1-D labels, got shape {y.shape}")
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ArgumentError(f"MLPClassifier.fit: y has a single class {self.classes_.tolist()}; "
                                "a classifier needs at least 2")
        if validation_data is not None:
            Xv, yv = check_Xy(*validation_data, "MLPClassifier.fit validation_data", y_numeric=False)
            unknown = np.setdiff1d(yv, self.classes_)
            if unknown.size:
                raise ArgumentError(f"MLPClassifier.fit: validation labels {unknown[:10].tolist()} do "
                                    "not occur in the training labels")
            validation_data = (Xv.astype(np.float32), np.searchsorted(self.classes_, yv))
        return self._fit(X, np.searchsorted(self.classes_, y), len(self.classes_), F.cross_entropy,
                         validation_data, stratify=True)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Softmax class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        with no_grad():
            return F.softmax(tensor(self._forward(X)), axis=-1).data

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable labels (values from ``classes_``), shape (n,)."""
        out = self._forward(X)
        return self.classes_[out.argmax(1)]

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Accuracy."""
        return metrics.accuracy(y, self.predict(X))


class MLPRegressor(_MLPBase):
    """A multilayer perceptron trained on the mean squared error; ``score`` is R^2.
    Targets of very different scales train better standardized."""

    def fit(self, X: ArrayLike, y: ArrayLike, validation_data: tuple | None = None) -> MLPRegressor:
        """Fit on X (n, d) and y (n,) or (n, k) by mean squared error; ``validation_data=(X_val, y_val)``
        is measured each epoch. Returns ``self``."""
        self._validate()
        X, y = check_Xy(X, y, "MLPRegressor.fit")
        self._y_1d = y.ndim == 1
        Y = y.reshape(len(y), -1).astype(np.float32)
        if validation_data is not None:
            Xv, yv = check_Xy(*validation_data, "MLPRegressor.fit validation_data")
            validation_data = (Xv.astype(np.float32), yv.reshape(len(yv), -1).astype(np.float32))
        return self._fit(X, Y, Y.shape[1], F.mse_loss, validation_data, stratify=False)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions, (n,) or (n, k) like the y it was fitted on."""
        out = self._forward(X)
        return out[:, 0] if self._y_1d else out

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """R^2 of the prediction."""
        return metrics.r2_score(y, self.predict(X))


# ----------------------------------------------------------------------------- ridge

def ridge_solve(X: Tensor | ArrayLike, y: Tensor | ArrayLike, alpha: float | Tensor) -> Tensor:
    """Differentiable ridge weights w = argmin ||X w - y||^2 + alpha ||w||^2, batched over
    leading axes. The one ridge solver: RidgeRegression and meta.RidgeHead (R2-D2) use it.

        w = (X^T X + alpha I)^-1 X^T y       (d x d system)
          = X^T (X X^T + alpha I)^-1 y       (the dual, n x n: used when n < d)

    With alpha > 0 (or a Tensor) the system is positive definite and ``tm.linalg.solve``
    answers it; with alpha == 0 (least squares, possibly rank-deficient) ``tm.linalg.pinv``
    does. No intercept: center the data or add a column of ones.

    X (..., n, d), y (..., n) or (..., n, k), alpha a number or a scalar Tensor: gradients
    flow to all three. NumPy inputs become Tensors of the default dtype (X's dtype for y);
    returns a Tensor (..., d) or (..., d, k)."""
    X = X if type(X) is Tensor else tensor(np.asarray(X, dtype=float))
    y = y if type(y) is Tensor else tensor(np.asarray(y, dtype=float), dtype=X.dtype)
    vector = y.ndim == X.ndim - 1
    if X.ndim < 2 or not (vector or y.ndim == X.ndim) or y.shape[:X.ndim - 1] != X.shape[:-1]:
        raise ShapeError(f"ridge_solve: needs X (..., n, d) and y (..., n) or (..., n, k) with the same "
                         f"leading axes and n, got X {X.shape} and y {y.shape}")
    if type(alpha) is not Tensor and not alpha >= 0:
        raise ArgumentError(f"ridge_solve: alpha must be >= 0, got {alpha}")
    if vector:
        y = unsqueeze(y, -1)
    n, d = X.shape[-2], X.shape[-1]
    Xt = X.mT
    exact = type(alpha) is not Tensor and alpha == 0

    def solve_spd(A, B):
        return pinv(A) @ B if exact else solve(A, B)

    if n >= d:
        w = solve_spd(Xt @ X + alpha * np.eye(d, dtype=X.dtype), Xt @ y)
    else:
        w = Xt @ solve_spd(X @ Xt + alpha * np.eye(n, dtype=X.dtype), y)
    return squeeze(w, -1) if vector else w


class RidgeRegression(_Base):
    """Closed-form ridge regression, ||y - X w - b||^2 + alpha ||w||^2 (scikit-learn's
    objective): the intercept is not penalised (the data are centered first).

    w = (Xc^T Xc + alpha I)^-1 Xc^T yc on the centered data (by ``ridge_solve``), and
    b = mean(y) - mean(X) w.

    Args:
        alpha: the L2 penalty (0: ordinary least squares, through the pseudo-inverse).
        fit_intercept: learn b (center the data first).

    Example:
        >>> reg = RidgeRegression(alpha=1.0).fit(X, y)
        >>> reg.predict(X[:3])
    """

    _params = ("alpha", "fit_intercept")

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True):
        self.alpha, self.fit_intercept = alpha, fit_intercept
        self._validate()

    def fit(self, X: ArrayLike, y: ArrayLike) -> RidgeRegression:
        """Solve for ``coef_`` and ``intercept_`` on X (n, d) and y (n,) or (n, k); returns ``self``."""
        self._validate()
        X, y = check_Xy(X, y, "RidgeRegression.fit")
        X, y = X.astype(np.float64), y.astype(np.float64)
        x_mean = X.mean(0) if self.fit_intercept else np.zeros(X.shape[1])
        y_mean = y.mean(0) if self.fit_intercept else np.zeros(y.shape[1:])
        with no_grad():
            w = ridge_solve(tensor(X - x_mean, dtype=np.float64), y - y_mean, float(self.alpha)).data
        self.coef_ = w.T
        b = y_mean - x_mean @ w  # zeros without an intercept
        self.intercept_ = float(b) if y.ndim == 1 else b
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        """X w^T + b: (n,) or (n, k)."""
        self._check_fitted("coef_")
        X = check_X(X, "RidgeRegression.predict", self.n_features_in_)
        return X @ self.coef_.T + self.intercept_

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """R^2 of the prediction."""
        return metrics.r2_score(y, self.predict(X))


__all__ = ["LinearRegression", "LogisticRegression", "MLPClassifier", "MLPRegressor",
           "RidgeRegression", "ridge_solve", "logistic_gradient", "NotFittedError", "OPTIMIZERS"]

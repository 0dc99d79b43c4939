"""tinymeta.learners: scikit-learn-style base learners trained by tinymeta's autograd."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymeta as tm
import tinymeta.nn.functional as F
from tinymeta.data import load_digits, train_val_test_split
from tinymeta.learners import (LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor,
                               NotFittedError, RidgeRegression, logistic_gradient, ridge_solve)


def regression_data(n=200, d=5, noise=0.1, seed=0, scales=None):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if scales is not None:
        X = X * scales + 10 * scales
    w = rng.standard_normal(d)
    return X, X @ w + 3.0 + noise * rng.standard_normal(n)


def lstsq(X, y, intercept=True):
    A = np.hstack([X, np.ones((len(X), 1))]) if intercept else X
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    return (sol[:-1], sol[-1]) if intercept else (sol, 0.0)


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-12)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


# ----------------------------------------------------------------------------- LinearRegression

def test_linear_regression_defaults_reach_lstsq():
    X, y = regression_data()
    X = (X - X.mean(0)) / X.std(0)
    model = LinearRegression().fit(X, y)
    w, b = lstsq(X, y)
    assert rel(model.coef_, w) < 1e-3 and abs(model.intercept_ - b) < 1e-3 * abs(b)
    best = np.mean((X @ w + b - y) ** 2)
    gap = np.mean((model.predict(X) - y) ** 2) - best
    assert -1e-12 <= gap < 1e-3 * best
    assert model.score(X, y) == pytest.approx(1 - best * len(y) / np.sum((y - y.mean()) ** 2), rel=1e-6)
    assert model.history_["train_loss"][-1] == pytest.approx(best, rel=1e-3)


def test_linear_regression_handles_raw_feature_scales_and_no_intercept():
    X, y = regression_data(scales=np.array([1e-2, 1.0, 30.0, 1e3, 5.0]))
    model = LinearRegression().fit(X, y)
    w, b = lstsq(X, y)
    assert rel(model.coef_, w) < 1e-3 and model.intercept_ == pytest.approx(b, rel=1e-3)
    X0 = np.random.default_rng(1).standard_normal((100, 3))
    y0 = X0 @ np.array([1.0, -2.0, 0.5])
    m0 = LinearRegression(fit_intercept=False).fit(X0, y0)
    assert m0.intercept_ == 0.0 and rel(m0.coef_, lstsq(X0, y0, False)[0]) < 1e-3


def test_linear_regression_multi_output_and_minibatch_adam():
    X, y = regression_data()
    Y = np.stack([y, -2 * y + 1], axis=1)
    model = LinearRegression().fit(X, Y)
    assert model.coef_.shape == (2, 5) and model.intercept_.shape == (2,)
    assert model.predict(X).shape == (200, 2)
    np.testing.assert_allclose(model.coef_[1], -2 * model.coef_[0], rtol=1e-6)
    adam = LinearRegression(optimizer="adam", lr=0.05, batch_size=32, epochs=150).fit(X, y)
    assert rel(adam.coef_, lstsq(X, y)[0]) < 2e-2


def test_linear_regression_alpha_is_ridge_on_standardized_features():
    X, y = regression_data(n=50)
    Z = (X - X.mean(0)) / X.std(0)
    ours = LinearRegression(alpha=0.1, epochs=2000).fit(Z, y)
    ridge = RidgeRegression(alpha=0.1 * len(y)).fit(Z, y)  # mean loss + a||w||^2 = (sum + n a||w||^2)/n
    assert rel(ours.coef_, ridge.coef_) < 1e-6


# ----------------------------------------------------------------------------- LogisticRegression

def _three_vs_eight(digits):
    X, y = digits
    keep = (y == 3) | (y == 8)
    return X[keep], y[keep]


def _bce_objective(Z, t, C):
    n = len(t)

    def f(theta):
        w, b = theta[:-1], theta[-1]
        z = Z @ w + b
        s = 1 / (1 + np.exp(-z))
        loss = np.mean(np.logaddexp(0, z) - t * z) + w @ w / (2 * C * n)
        return loss, np.append(Z.T @ (s - t) / n + w / (C * n), np.mean(s - t))
    return f


def test_logistic_regression_on_3_vs_8_reaches_the_optimum(digits):
    optimize = pytest.importorskip("scipy.optimize")
    X, y = _three_vs_eight(digits)
    model = LogisticRegression().fit(X, y)
    Z, t = model._scaler(X), (y == 8).astype(float)
    f = _bce_objective(Z, t, C=1.0)
    ref = optimize.minimize(f, np.zeros(Z.shape[1] + 1), jac=True, method="L-BFGS-B",
                            options=dict(maxiter=10**5, gtol=1e-12, ftol=1e-15))
    ours = f(np.append(model.model_.weight.data[0], model.model_.bias.data))[0]
    assert 0 <= ours - ref.fun < 1e-3
    assert model.history_["train_loss"][-1] == pytest.approx(ours, abs=1e-6)
    assert model.score(X, y) == 1.0


def test_logistic_regression_matches_scikit_learn_objective(digits):
    sk = pytest.importorskip("sklearn.linear_model")
    X, y = _three_vs_eight(digits)
    ours = LogisticRegression(C=0.1, epochs=3000).fit(X, y)
    theirs = sk.LogisticRegression(C=0.1, tol=1e-10, max_iter=10**4).fit(ours._scaler(X), y)
    np.testing.assert_allclose(ours.model_.weight.data[0], theirs.coef_[0], atol=1e-3)
    p = theirs.predict_proba(ours._scaler(X))
    np.testing.assert_allclose(ours.predict_proba(X), p, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 30), d=st.integers(1, 6))
def test_autograd_gradient_equals_the_seed_derivation(seed, n, d):
    rng = np.random.default_rng(seed)
    X, theta = rng.standard_normal((n, d)), rng.standard_normal(d) * 2
    y = rng.integers(0, 2, n).astype(float)
    th = tm.tensor(theta, dtype="float64", requires_grad=True)
    (g,) = tm.grad(F.binary_cross_entropy_with_logits(tm.tensor(X) @ th, y), [th])
    np.testing.assert_allclose(g.data, logistic_gradient(theta, X, y), rtol=1e-10, atol=1e-14)
    # written out: -(1/N) sum_i (y_i - sigmoid(theta^T x_i)) x_i
    by_hand = -sum((y[i] - 1 / (1 + np.exp(-theta @ X[i]))) * X[i] for i in range(n)) / n
    np.testing.assert_allclose(g.data, by_hand, rtol=1e-10, atol=1e-14)


def test_loss_and_grad_method(digits):
    X, y = _three_vs_eight(digits)
    model = LogisticRegression(epochs=20).fit(X, y)
    loss, g_auto, g_formula = model.loss_and_grad(X, y)
    np.testing.assert_allclose(g_auto, g_formula, rtol=1e-10, atol=1e-14)
    assert np.isfinite(loss) and g_auto.shape == (X.shape[1] + 1,)


def test_logistic_regression_labels_proba_and_errors():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 2))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    model = LogisticRegression().fit(X, y)
    assert list(model.classes_) == ["no", "yes"]
    proba = model.predict_proba(X)
    assert proba.shape == (80, 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(model.predict(X), model.classes_[proba.argmax(1)])
    assert model.score(X, y) == np.mean(model.predict(X) == y) > 0.95
    with pytest.raises(tm.ArgumentError, match="2 classes"):
        LogisticRegression().fit(X, np.arange(80) % 3)
    with pytest.raises(tm.ArgumentError, match="penalty"):
        LogisticRegression(penalty="l1")


# ----------------------------------------------------------------------------- MLPs

def test_mlp_classifier_on_digits_reaches_97_percent(digits):
    # Accuracy only: how long the fit takes is measured in benchmarks/, not asserted here
    # (a wall-clock bound fails on a loaded machine).
    X, y = digits
    Xtr, ytr, Xva, yva, Xte, yte = train_val_test_split(X, y, val=0.2, test=0.2, rng=0)
    clf = MLPClassifier(hidden_layer_sizes=(64,), activation="relu", optimizer="adam", random_state=0)
    clf.fit(Xtr, ytr, validation_data=(Xva, yva))
    acc = clf.score(Xte, yte)
    print(f"\ndigits MLP 64-64-10: test accuracy {acc:.4f}, {clf.history_.epochs} epochs, "
          f"val accuracy {clf.history_['val_acc'][-1]:.4f}")
    assert acc >= 0.97


def test_mlp_classifier_labels_proba_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((150, 2))
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int)]
    clf = MLPClassifier(hidden_layer_sizes=(16, 16), lr=0.01, epochs=60, early_stopping=True,
                        patience=5).fit(X, y)
    assert list(clf.classes_) == ["a", "b", "c"]
    proba = clf.predict_proba(X)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(1), 1, atol=1e-6)
    assert set(clf.predict(X)) <= {"a", "b", "c"} and clf.score(X, y) > 0.85
    assert "val_loss" in clf.history_ and clf.history_.best_epoch is not None
    again = MLPClassifier(hidden_layer_sizes=(16, 16), lr=0.01, epochs=60, early_stopping=True,
                          patience=5).fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), proba)  # random_state=0 by default


def test_mlp_regressor_fits_a_curve_and_scores_r2():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, (200, 1))
    y = np.sin(X[:, 0])
    reg = MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", lr=0.01, epochs=100).fit(X, y)
    pred = reg.predict(X)
    assert pred.shape == (200,) and reg.score(X, y) > 0.95
    assert reg.score(X, y) == pytest.approx(tm.metrics.r2_score(y, pred))
    two = MLPRegressor(hidden_layer_sizes=(8,), epochs=5).fit(X, np.stack([y, -y], 1))
    assert two.predict(X).shape == (200, 2)


# ----------------------------------------------------------------------------- Ridge

def test_ridge_regression_matches_the_normal_equations_and_scikit_learn():
    X, y = regression_data(n=40, d=6)
    alpha = 2.5
    model = RidgeRegression(alpha=alpha).fit(X, y)
    xm, ym = X.mean(0), y.mean()
    w = np.linalg.solve((X - xm).T @ (X - xm) + alpha * np.eye(6), (X - xm).T @ (y - ym))
    np.testing.assert_allclose(model.coef_, w, rtol=1e-10)
    assert model.intercept_ == pytest.approx(ym - xm @ w, rel=1e-10)
    sk = pytest.importorskip("sklearn.linear_model")
    theirs = sk.Ridge(alpha=alpha).fit(X, y)
    np.testing.assert_allclose(model.coef_, theirs.coef_, rtol=1e-8)
    np.testing.assert_allclose(model.predict(X), theirs.predict(X), rtol=1e-8)
    w0, b0 = lstsq(X, y)  # alpha = 0: least squares
    np.testing.assert_allclose(RidgeRegression(alpha=0).fit(X, y).coef_, w0, rtol=1e-8)
    Y = np.stack([y, 2 * y], 1)
    multi = RidgeRegression(alpha=alpha).fit(X, Y)
    assert multi.coef_.shape == (2, 6) and np.allclose(multi.coef_[1], 2 * w)


@pytest.mark.parametrize("n, d", [(12, 4), (3, 7)])  # primal and dual (fewer samples than features)
def test_ridge_solve_matches_numpy_and_passes_gradcheck(n, d):
    rng = np.random.default_rng(n)
    X, y, alpha = rng.standard_normal((n, d)), rng.standard_normal((n, 2)), 0.7
    w = ridge_solve(tm.tensor(X, dtype="float64"), tm.tensor(y, dtype="float64"), alpha)
    np.testing.assert_allclose(w.data, np.linalg.solve(X.T @ X + alpha * np.eye(d), X.T @ y), rtol=1e-9)
    args = [tm.tensor(a, dtype="float64", requires_grad=True) for a in (X, y, alpha)]
    assert tm.gradcheck(lambda Xt, yt, at: ridge_solve(Xt, yt, at), args)
    # dw/dalpha = -(X^T X + alpha I)^-1 w, so for L = sum(w): dL/dalpha = -1^T A^-1 w
    a = tm.tensor(alpha, dtype="float64", requires_grad=True)
    (g,) = tm.grad(ridge_solve(tm.tensor(X, dtype="float64"), y, a).sum(), [a])
    A = X.T @ X + alpha * np.eye(d)
    assert g.item() == pytest.approx(-np.linalg.solve(A, w.data).sum(), rel=1e-8)


def test_ridge_solve_second_order_and_vector_targets():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    assert ridge_solve(X, y, 1.0).shape == (3,)
    args = [tm.tensor(a, dtype="float64", requires_grad=True) for a in (X, 0.5)]
    assert tm.gradgradcheck(lambda Xt, at: ridge_solve(Xt, y, at), args)
    with pytest.raises(tm.ShapeError):
        ridge_solve(X, y[:5], 1.0)
    with pytest.raises(tm.ArgumentError):
        ridge_solve(X, y, -1.0)


# ----------------------------------------------------------------------------- conventions, validation

ALL = [LinearRegression, LogisticRegression, MLPClassifier, MLPRegressor, RidgeRegression]


def _fit_small(cls):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    y = (X[:, 0] > 0).astype(int) if cls in (LogisticRegression, MLPClassifier) else X[:, 0]
    kwargs = {"epochs": 3} if cls not in (RidgeRegression,) else {}
    return cls(**kwargs), X, y


@pytest.mark.parametrize("cls", ALL)
def test_fit_returns_self_and_numpy_out(cls):
    est, X, y = _fit_small(cls)
    assert est.fit(X, y) is est
    assert isinstance(est.predict(X), np.ndarray) and len(est.predict(X)) == 20
    assert isinstance(est.score(X, y), float)
    assert est.get_params() == est.set_params(**est.get_params()).get_params()
    assert type(est).__name__ in repr(est)


@pytest.mark.parametrize("cls", ALL)
def test_input_validation(cls):
    est, X, y = _fit_small(cls)
    with pytest.raises(tm.ShapeError, match="2-D"):
        est.fit(X[:, 0], y)
    with pytest.raises(tm.ShapeError, match=r"20 samples.*19"):
        est.fit(X, y[:19])
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(tm.ArgumentError, match="NaN"):
        est.fit(bad, y)
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.fit(X, y)
    with pytest.raises(tm.ShapeError, match="3"):
        est.predict(X[:, :2])


@pytest.mark.parametrize("make", [
    lambda: LinearRegression(lr=-0.1), lambda: LinearRegression(epochs=0),
    lambda: LinearRegression(optimizer="lbfgs"), lambda: LinearRegression(batch_size=0),
    lambda: LogisticRegression(C=0), lambda: LogisticRegression(lr=float("nan")),
    lambda: MLPClassifier(hidden_layer_sizes=(0,)), lambda: MLPClassifier(activation="gelu"),
    lambda: MLPClassifier(validation_fraction=1.0), lambda: MLPRegressor(weight_decay=-1),
    lambda: RidgeRegression(alpha=-1), lambda: LinearRegression().set_params(lr=-1),
    lambda: LinearRegression().set_params(nope=1),
])
def test_bad_arguments_raise_argument_error(make):
    with pytest.raises(tm.ArgumentError):
        make()

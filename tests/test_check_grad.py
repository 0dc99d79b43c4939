"""tm.check_grad / check_backward / check_hessian: hand-written NumPy derivatives.

Each classic mistake is caught and its hint names it; correct derivations pass in float64;
float32 gets a PrecisionWarning; kinks (ReLU at 0) are listed apart, not counted; bad input
gets a tinymeta error; the command line prints the report.
"""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinymeta as tm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- logistic regression: loss(theta) = mean(log(1 + exp(z)) - y z), z = X theta ------------------

def _data(n=40, d=3, seed=0):
    r = np.random.default_rng(seed)
    X = r.standard_normal((n, d))
    y = (r.random(n) < 0.5).astype(float)
    return r.standard_normal(d), X, y


def logreg_loss(theta, X, y):
    z = X @ theta
    return np.mean(np.logaddexp(0.0, z) - y * z)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def logreg_grad(theta, X, y):  # -(1/N) sum_i (y_i - sigmoid(theta^T x_i)) x_i
    return -X.T @ (y - _sigmoid(X @ theta)) / len(y)


def logreg_grad_no_mean(theta, X, y):
    return -X.T @ (y - _sigmoid(X @ theta))


def logreg_grad_sign(theta, X, y):
    return X.T @ (y - _sigmoid(X @ theta)) / len(y)


def logreg_loss_tm(theta, X, y):
    """The same loss in tinymeta ops: runs on arrays (through tm) and on tensors."""
    z = X @ tm.tensor(theta) if not isinstance(theta, tm.Tensor) else X @ theta
    return (tm.softplus(z) - y * z).mean()


# -- an affine + ReLU layer in the CS231n convention -----------------------------------------------

def affine_relu_forward(x, w, b):
    a = x @ w + b
    return np.maximum(a, 0.0), (x, w, a)


def affine_relu_backward(dout, cache):
    x, w, a = cache
    da = dout * (a > 0)
    return da @ w.T, x.T @ da, da.sum(axis=0)


def affine_relu_backward_no_transpose(dout, cache):
    x, w, a = cache
    da = dout * (a > 0)
    return da @ w.T, da.T @ x, da.sum(axis=0)  # dw transposed: shape (M, D)


def _layer(n=4, d=5, m=3, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((n, d)), r.standard_normal((d, m)), r.standard_normal(m)


# ---------------------------------------------------------------------------------- passes

def test_correct_logistic_gradient_passes_in_float64():
    theta, X, y = _data()
    rep = tm.check_grad(logreg_loss, logreg_grad, theta, X, y, wrt=0)
    assert rep and rep.ok and rep.precision == "float64"
    assert rep.references == ["central differences"]  # a NumPy f: autodiff cannot run it
    assert "not used" in " ".join(rep.notes)
    assert rep[0].rel_error["central differences"] < 1e-7
    assert rep["theta"] is rep[0] and not rep[0].failures and not rep[0].kinks
    assert "PASS" in str(rep) and "theta" in repr(rep)


def test_correct_layer_backward_passes():
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward, *_layer())
    assert rep, rep
    assert [c.name for c in rep.inputs] == ["input 0 (x)", "input 1 (w)", "input 2 (b)"]
    assert all(c.rel_error["central differences"] < 1e-7 for c in rep.inputs)


def test_backward_without_a_cache_gets_the_inputs():
    x = np.random.default_rng(6).standard_normal((3, 4))
    rep = tm.check_backward(np.tanh, lambda dout, x: dout * (1 - np.tanh(x) ** 2), x)
    assert rep, rep
    rep = tm.check_backward(lambda a, b: a * b, lambda dout, ab: (dout * ab[1], dout * ab[0]),
                            x, x[::-1].copy())
    assert rep, rep
    with pytest.raises(tm.ArgumentError, match="cache=True"):
        tm.check_backward(np.tanh, lambda dout, c: dout, x, cache=True)


def test_autodiff_is_a_second_reference_when_f_runs_on_tensors():
    theta, X, y = _data()
    rep = tm.check_grad(logreg_loss_tm, logreg_grad, theta, X, y, wrt=0)
    assert rep.references == ["central differences", "tinymeta autodiff"], rep
    assert rep[0].rel_error["tinymeta autodiff"] < 1e-12  # exact, no step involved
    bad = tm.check_grad(logreg_loss_tm, logreg_grad_sign, theta, X, y, wrt=0)
    assert not bad and "a sign error" in bad[0].hint


def test_autodiff_that_leaves_the_graph_is_not_trusted():
    theta, X, y = _data()

    def half_numpy(theta, X, y):  # np.logaddexp turns the tensor into an array: graph lost
        z = X @ theta
        return (np.logaddexp(0.0, z) - y * z).mean()
    rep = tm.check_grad(half_numpy, logreg_grad, theta, X, y, wrt=0)
    assert rep, rep  # the hand gradient is right; the broken autodiff must not fail it
    assert rep.references == ["central differences"]
    assert any("disagrees" in n for n in rep.notes), rep.notes


# ---------------------------------------------------------------------------------- mistakes

def test_missing_one_over_n_is_caught_and_named():
    theta, X, y = _data(n=40)
    rep = tm.check_grad(logreg_loss, logreg_grad_no_mean, theta, X, y, wrt=0)
    assert not rep
    assert "missing 1/N" in rep[0].hint and "N = 40" in rep[0].hint and "(X)" in rep[0].hint
    f = rep[0].failures[0]
    assert f.hand == pytest.approx(40 * f.reference, rel=1e-6)
    assert len(rep[0].failures) == theta.size


def test_sign_error_is_caught_and_named():
    theta, X, y = _data()
    rep = tm.check_grad(logreg_loss, logreg_grad_sign, theta, X, y, wrt=0)
    assert not rep and "a sign error" in rep[0].hint
    assert rep[0].rel_error["central differences"] == pytest.approx(2.0, abs=1e-6)


def test_missing_transpose_is_caught_and_named():
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward_no_transpose, *_layer())
    assert not rep
    assert rep["x"].ok and rep["b"].ok and not rep["w"].ok
    assert "missing transpose" in rep["w"].hint and "transpose" in rep["w"].shape_note


def test_missing_transpose_of_a_square_matrix_is_named():
    # same shape, transposed values: only the values can tell
    x, w, b = _layer(d=4, m=4)
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward_no_transpose, x, w, b)
    assert not rep["w"].ok and "missing transpose" in rep["w"].hint, rep


def test_an_extra_one_over_n_and_a_factor_two_are_named():
    x = np.random.default_rng(3).standard_normal(6)
    rep = tm.check_grad(lambda x: 0.5 * np.sum(x ** 2), lambda x: 2 * x, x)
    assert not rep and "extra 2" in rep[0].hint
    rep = tm.check_grad(lambda x: np.sum(x ** 2), lambda x: x, x)
    assert not rep and "missing 2" in rep[0].hint
    theta, X, y = _data(n=10)
    rep = tm.check_grad(logreg_loss, lambda *a: logreg_grad(*a) / 10, theta, X, y, wrt=0)
    assert not rep and "extra 1/N" in rep[0].hint and "N = 10" in rep[0].hint


def test_gradients_in_the_wrong_order_are_named():
    r = np.random.default_rng(1)
    x, y = r.standard_normal(4), r.standard_normal(4)
    f = lambda x, y: np.sum(x * np.sin(y))  # noqa: E731
    rep = tm.check_grad(f, lambda x, y: (x * np.cos(y), np.sin(y)), x, y)
    assert not rep and "wrong order" in rep[0].hint and "input 1 (y)" in rep[0].hint


def test_missing_relu_mask_is_named():
    x = np.random.default_rng(2).standard_normal(8)
    f = lambda x: np.sum(np.maximum(x, 0.0) * np.arange(1.0, 9.0))  # noqa: E731
    rep = tm.check_grad(f, lambda x: np.arange(1.0, 9.0), x)  # forgot * (x > 0)
    assert not rep and "missing mask" in rep[0].hint
    assert {fl.element for fl in rep[0].failures} == {(i,) for i in np.flatnonzero(x < 0)}


def test_failures_name_the_element_and_both_values():
    theta, X, y = _data()
    rep = tm.check_grad(logreg_loss, logreg_grad_sign, theta, X, y, wrt=0)
    text = str(rep)
    f = rep[0].failures[0]
    assert f"[{f.element[0]}]" in text and f"{f.hand:.6g}" in text and f"{f.reference:.6g}" in text
    with pytest.raises(tm.GradcheckError, match="sign"):
        rep.raise_if_failed()


# ---------------------------------------------------------------------------------- kinks

def test_relu_at_zero_is_a_kink_not_a_failure():
    x = np.array([-1.0, 0.0, 2.0, 0.0, -3.0, 0.5])
    f = lambda x: np.sum(np.maximum(x, 0.0) * np.arange(1.0, 7.0))  # noqa: E731
    for mask in (lambda x: x > 0, lambda x: x >= 0):  # relu'(0) = 0 and = 1: both subgradients
        rep = tm.check_grad(f, lambda x: mask(x) * np.arange(1.0, 7.0), x)
        assert rep, rep
        assert [k.element for k in rep[0].kinks] == [(1,), (3,)]
        assert rep[0].checked == 4
        k = rep[0].kinks[0]
        assert (k.left, k.right) == (pytest.approx(0.0, abs=1e-6), pytest.approx(2.0, rel=1e-6))
        assert "not counted" in str(rep) and "only at the kinks" in rep[0].hint


def test_a_value_outside_both_slopes_at_a_kink_still_fails():
    x = np.array([1.0, 0.0, -2.0])
    rep = tm.check_grad(lambda x: np.sum(np.abs(x)), lambda x: np.where(x == 0, 5.0, np.sign(x)), x)
    assert not rep and rep[0].failures[0].at_kink and "kink" in rep[0].hint


def test_layer_with_a_pre_activation_exactly_at_zero():
    x, w, b = _layer()
    x[0] = 0.0   # row 0's pre-activations are b ...
    b[1] = 0.0   # ... and unit 1 of it sits exactly on the ReLU's kink
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward, x, w, b)
    assert rep, rep
    assert {k.element for k in rep["b"].kinks} == {(1,)}
    assert {k.element for k in rep["x"].kinks} == {(0, j) for j in range(5)}


def test_a_kink_the_hand_value_agrees_with_is_still_listed():
    # abs at 0: the central difference (0) happens to equal sign(0); still not a derivative
    rep = tm.check_grad(lambda x: np.sum(np.abs(x)), np.sign, np.array([0.0, 1.0, -2.0]))
    assert rep and [k.element for k in rep[0].kinks] == [(0,)] and rep[0].checked == 2


def test_a_jump_in_the_second_derivative_is_no_false_alarm():
    # max(x, 0)^2 is differentiable at 0 (derivative 0), but its central difference is off by
    # O(h) there, not O(h^2); the check allows for what the step refinement measures
    f = lambda x: np.sum(np.maximum(x, 0.0) ** 2)  # noqa: E731
    x = np.array([0.0, 1.0, -1.0])
    rep = tm.check_grad(f, lambda x: 2 * np.maximum(x, 0.0), x)
    assert rep and not rep[0].kinks, rep
    assert not tm.check_grad(f, lambda x: 2 * np.maximum(x, 0.0) + 1e-3, x)


def test_smooth_steep_functions_are_not_mistaken_for_kinks():
    x = np.random.default_rng(4).uniform(-1, 1, 6)
    rep = tm.check_grad(lambda x: np.sum(np.exp(4 * x) + np.sin(30 * x)),
                        lambda x: 4 * np.exp(4 * x) + 30 * np.cos(30 * x), x)
    assert rep and not rep[0].kinks, rep
    bad = tm.check_grad(lambda x: np.sum(np.exp(4 * x)), lambda x: np.exp(4 * x), x)
    assert not bad and not bad[0].kinks and "factor" in bad[0].hint


# ---------------------------------------------------------------------------------- precision

def test_float32_inputs_get_a_clear_warning_and_a_float64_check():
    theta, X, y = _data()
    with pytest.warns(tm.PrecisionWarning, match="float32.*float64 copy"):
        rep = tm.check_grad(logreg_loss, logreg_grad, theta.astype(np.float32), X, y, wrt=0)
    assert rep and rep.precision == "float64", rep


def test_f_computing_in_float32_loosens_the_check_and_says_so():
    x = np.random.default_rng(5).standard_normal(5)
    f32 = lambda x: np.sum(np.tanh(x.astype(np.float32)) ** 2)  # noqa: E731
    g = lambda x: 2 * np.tanh(x) * (1 - np.tanh(x) ** 2)  # noqa: E731
    with pytest.warns(tm.PrecisionWarning, match="computes in float32"):
        rep = tm.check_grad(f32, g, x)
    assert rep and rep.precision == "float32" and rep.rtol == 1e-2, rep
    with pytest.warns(tm.PrecisionWarning):
        assert not tm.check_grad(f32, lambda x: -g(x), x)  # still catches a sign


def test_no_warning_in_float64():
    theta, X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tm.check_grad(logreg_loss, logreg_grad, theta, X, y, wrt=0)


# ---------------------------------------------------------------------------------- hessians

def _quadratic(seed=1):
    r = np.random.default_rng(seed)
    A = r.standard_normal((4, 4))
    return A @ A.T, r.standard_normal(4)


def test_hessian_correct_and_wrong():
    A, x = _quadratic()
    f = lambda x: 0.5 * x @ A @ x + np.sum(np.exp(x))  # noqa: E731
    H = lambda x: A + np.diag(np.exp(x))  # noqa: E731
    assert tm.check_hessian(f, H, x)
    assert tm.check_hessian(f, H, x, grad_f=lambda x: A @ x + np.exp(x))
    rep = tm.check_hessian(f, lambda x: -H(x), x)
    assert not rep and "a sign error" in rep[0].hint
    rep = tm.check_hessian(f, lambda x: np.diag(np.diag(H(x))), x)
    assert not rep and "cross terms" in rep[0].hint
    rep = tm.check_hessian(f, lambda x: H(x) + np.triu(np.ones((4, 4)), 1), x)
    assert not rep and "not symmetric" in rep[0].hint


def test_hessian_uses_second_order_autodiff_when_f_runs_on_tensors():
    A, x = _quadratic()
    f = lambda x: 0.5 * (x @ (tm.tensor(A) @ x)) + tm.exp(x).sum()  # noqa: E731
    rep = tm.check_hessian(f, lambda x: A + np.diag(np.exp(x)), x)
    assert rep and "tinymeta autodiff" in rep.references, rep


# ---------------------------------------------------------------------------------- bad input

def test_bad_input_gets_tinymeta_errors_and_changes_nothing():
    x = np.array([1.0, 2.0, 3.0])
    keep = x.copy()
    with pytest.raises(tm.ShapeError, match="must return a scalar.*shape \\(3,\\)"):
        tm.check_grad(lambda x: x ** 2, lambda x: 2 * x, x)
    with pytest.raises(tm.ArgumentError, match="returned 1 array\\(s\\) for 2 checked input"):
        tm.check_grad(lambda x, y: np.sum(x * y), lambda x, y: y, x, x.copy())
    with pytest.raises(tm.ShapeError, match="shape \\(2,\\) for input 0 \\(x\\) of shape \\(3,\\)"):
        tm.check_grad(lambda x: np.sum(x ** 2), lambda x: 2 * x[:2], x)
    with pytest.raises(tm.DTypeError, match="integer dtype.*wrt="):
        tm.check_grad(lambda x, k: np.sum(x[k]), lambda x, k: (x, k), x, np.arange(3))
    with pytest.raises(tm.ArgumentError, match="no inputs"):
        tm.check_grad(lambda x: 0.0, lambda x: x)
    with pytest.raises(tm.DTypeError, match="must return a number"):
        tm.check_grad(lambda x: None, lambda x: x, x)
    with pytest.raises(tm.ArgumentError, match="wrt"):
        tm.check_grad(lambda x: np.sum(x), lambda x: x, x, wrt=3)
    with pytest.raises(tm.ShapeError, match="Hessian"):
        tm.check_hessian(lambda x: np.sum(x ** 2), lambda x: 2 * np.eye(2), x)
    with pytest.raises(tm.ShapeError, match="swapped"):  # the shapes fit the inputs reordered
        tm.check_grad(lambda a, b: np.sum(a) + np.sum(b ** 2), lambda a, b: (2 * b, np.ones(3)),
                      np.ones(3), np.ones((2, 2)))
    assert issubclass(tm.ShapeError, ValueError) and issubclass(tm.ArgumentError, ValueError)
    np.testing.assert_array_equal(x, keep)


def test_the_users_arrays_are_never_perturbed():
    # the check perturbs copies: while f runs, the caller's array keeps its values
    theta, X, y = _data()
    keep = theta.copy()
    seen = []

    def loss(t, X, y):
        seen.append(np.array_equal(theta, keep))
        return logreg_loss(t, X, y)
    tm.check_grad(loss, logreg_grad_sign, theta, X, y, wrt=0)
    assert len(seen) > 2 * theta.size and all(seen)


# ---------------------------------------------------------------------------------- command line

USER_MODULE = '''
import numpy as np
def loss(x):
    return np.sum(np.sin(x) * x)
def grad(x):
    return np.cos(x) * x + np.sin(x)
def grad_sign(x):
    return -grad(x)
'''


def _cli(*argv, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "tinymeta.cli", "gradcheck", *argv], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_checks_a_users_function(tmp_path):
    (tmp_path / "mine.py").write_text(USER_MODULE)
    ok = _cli("mine:loss", "mine:grad", "--shape", "5", cwd=tmp_path)
    assert ok.returncode == 0 and "PASS" in ok.stdout, ok.stdout + ok.stderr
    bad = _cli(str(tmp_path / "mine.py") + ":loss", "grad_sign", "--shape", "5", cwd=ROOT)
    assert bad.returncode == 1 and "FAIL" in bad.stdout and "sign" in bad.stdout, bad.stdout + bad.stderr
    missing = _cli("mine:loss", "mine:grad", cwd=tmp_path)
    assert missing.returncode != 0 and "--shape" in missing.stderr


def test_cli_without_a_function_still_checks_the_ops(tmp_path):
    out = _cli("--op", "matmul 2-D", cwd=tmp_path)
    assert out.returncode == 0 and "1 of 1 ops pass" in out.stdout, out.stdout + out.stderr


def test_the_readme_shows_the_report_its_code_prints(capsys):
    import re
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = text.split("## Check a derivation written in NumPy", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, flags=re.S).group(1)
    exec(compile(code, "README check_grad block", "exec"), {"np": np, "tm": tm})
    assert capsys.readouterr().out == shown

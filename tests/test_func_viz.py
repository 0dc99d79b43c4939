"""tm.func (grad, value_and_grad, jacobian, hessian, hvp, vjp) against known derivatives and
finite differences, and tm.viz (to_dot, trace_backward)."""
import re

import numpy as np
import pytest

import tinymeta as tm
from tinymeta import func


def fd_jacobian(f, x, h=1e-6):
    """Central finite differences of NumPy-valued ``f`` at ``x``: shape out.shape + x.shape."""
    x = np.array(x, dtype=np.float64)
    out = np.asarray(f(x))
    jac = np.zeros(out.shape + x.shape)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        jac[(...,) + i] = (np.asarray(f(xp)) - np.asarray(f(xm))) / (2 * h)
    return jac


def as_np(f):
    """Run a tinymeta function on NumPy float64 input, return NumPy."""
    return lambda x: f(tm.tensor(x)).data


# ----------------------------------------------------------------------------- grad, value_and_grad


def f_xy(x, y):
    return (x * y).sum() + (x ** 2).sum()


def test_grad_argnums_int_and_tuple_with_numpy_inputs():
    x, y = np.array([1.0, -2.0, 0.5]), np.array([3.0, 0.25, -1.0])
    gx = func.grad(f_xy)(x, y)
    assert isinstance(gx, tm.Tensor) and gx.dtype == np.float64 and not gx.requires_grad
    np.testing.assert_allclose(gx.data, y + 2 * x)
    gy = func.grad(f_xy, argnums=1)(x, y)
    np.testing.assert_allclose(gy.data, x)
    gx2, gy2 = func.grad(f_xy, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx2.data, y + 2 * x)
    np.testing.assert_allclose(gy2.data, x)
    gs = func.grad(f_xy, argnums=(1,))(x, y)
    assert isinstance(gs, tuple) and len(gs) == 1


def test_grad_with_tensor_and_list_inputs():
    x = tm.tensor([1.0, 2.0], dtype="float64")
    np.testing.assert_allclose(func.grad(lambda t: (t ** 3).sum())(x).data, 3 * x.data ** 2)
    assert not x.requires_grad  # the caller's tensor is left alone
    g = func.grad(lambda t: (t * t).sum())([1.0, 2.0])
    np.testing.assert_allclose(g.data, [2.0, 4.0])
    g = func.grad(lambda t: tm.sin(t).sum())(np.array([0.0, 1.0]))
    np.testing.assert_allclose(g.data, np.cos([0.0, 1.0]))


def test_value_and_grad():
    x, y = np.array([1.0, -2.0]), np.array([0.5, 4.0])
    val, g = func.value_and_grad(f_xy)(x, y)
    assert isinstance(val, tm.Tensor) and not val.requires_grad
    np.testing.assert_allclose(val.item(), (x * y).sum() + (x ** 2).sum())
    np.testing.assert_allclose(g.data, y + 2 * x)
    val, (gx, gy) = func.value_and_grad(f_xy, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gy.data, x)


def test_grad_of_non_scalar_function_is_an_error():
    with pytest.raises(tm.GraphError, match="scalar"):
        func.grad(lambda t: t * 2)(np.ones(3))


def test_grad_works_inside_no_grad():
    with tm.no_grad():
        g = func.grad(lambda t: (t ** 2).sum())(np.array([3.0]))
    np.testing.assert_allclose(g.data, [6.0])
    assert tm.is_grad_enabled() is True


def test_grad_of_grad_is_second_derivative():
    def f(x):
        return (x ** 3 * tm.sin(x)).sum()

    for a in (-1.2, 0.3, 2.0):
        d2 = func.grad(func.grad(f))(np.array(a))
        expected = 6 * a * np.sin(a) + 6 * a ** 2 * np.cos(a) - a ** 3 * np.sin(a)
        np.testing.assert_allclose(d2.item(), expected, rtol=1e-10)
        d3 = func.grad(func.grad(func.grad(f)))(np.array(a))
        expected3 = (6 * np.sin(a) + 18 * a * np.cos(a) - 9 * a ** 2 * np.sin(a)
                     - a ** 3 * np.cos(a))
        np.testing.assert_allclose(d3.item(), expected3, rtol=1e-10)


def test_grad_of_function_not_depending_on_input_is_zero():
    g = func.grad(lambda x, y: (tm.tensor(y) * 2).sum())(np.ones(3), np.ones(2))
    np.testing.assert_array_equal(g.data, np.zeros(3))


# ----------------------------------------------------------------------------- jacobian


def test_jacobian_of_linear_map_is_the_matrix():
    A = np.random.default_rng(0).standard_normal((3, 4))
    J = func.jacobian(lambda x: tm.tensor(A) @ x)(np.ones(4))
    assert J.shape == (3, 4)
    assert not J.requires_grad and J.grad_fn is None  # a plain result, no graph kept
    np.testing.assert_allclose(J.data, A, rtol=1e-14)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 4))

    def f(x):
        return tm.tanh(tm.tensor(W) @ x) * x[0] + tm.softplus(x[1:]).sum()

    x0 = rng.standard_normal(4)
    J = func.jacobian(f)(x0)
    assert J.shape == (3, 4)
    np.testing.assert_allclose(J.data, fd_jacobian(as_np(f), x0), rtol=1e-6, atol=1e-8)


def test_jacobian_of_matrix_valued_function_and_matrix_input():
    rng = np.random.default_rng(2)
    X0 = rng.standard_normal((2, 3))

    def f(X):
        return tm.exp(X) @ X.T  # (2, 2)

    J = func.jacobian(f)(X0)
    assert J.shape == (2, 2, 2, 3)
    np.testing.assert_allclose(J.data, fd_jacobian(as_np(f), X0), rtol=1e-6, atol=1e-8)


def test_jacobian_several_argnums():
    rng = np.random.default_rng(3)
    x0, y0 = rng.standard_normal(3), rng.standard_normal(3)
    Jx, Jy = func.jacobian(lambda x, y: x * tm.sin(y), argnums=(0, 1))(x0, y0)
    np.testing.assert_allclose(Jx.data, np.diag(np.sin(y0)), atol=1e-14)
    np.testing.assert_allclose(Jy.data, np.diag(x0 * np.cos(y0)), atol=1e-14)


def test_hessian_with_several_argnums():
    a0, b0 = np.array([0.5, -1.0]), np.array([2.0])

    def f(a, b):
        return (a ** 2).sum() * b.sum() ** 3

    (Haa, Hab), (Hba, Hbb) = func.hessian(f, argnums=(0, 1))(a0, b0)
    B, s = b0[0], (a0 ** 2).sum()
    np.testing.assert_allclose(Haa.data, 2 * B ** 3 * np.eye(2))
    np.testing.assert_allclose(Hab.data, (6 * B ** 2 * a0)[:, None])
    np.testing.assert_allclose(Hba.data, (6 * B ** 2 * a0)[None, :])
    np.testing.assert_allclose(Hbb.data, [[6 * B * s]])


def test_jacobian_of_scalar_function_is_the_gradient():
    x0 = np.array([0.5, -1.0])
    J = func.jacobian(lambda x: (x ** 2).sum())(x0)
    assert J.shape == (2,)
    np.testing.assert_allclose(J.data, 2 * x0)


# ----------------------------------------------------------------------------- hessian, hvp, vjp


def test_hessian_of_sum_of_cubes_and_of_logsumexp():
    x0 = np.array([0.5, -1.0, 2.0])
    H = func.hessian(lambda x: (x ** 3).sum())(x0)
    assert H.shape == (3, 3)
    assert not H.requires_grad and H.grad_fn is None
    np.testing.assert_allclose(H.data, np.diag(6 * x0), atol=1e-14)
    H = func.hessian(lambda x: tm.logsumexp(x, axis=0))(x0)
    p = np.exp(x0) / np.exp(x0).sum()
    np.testing.assert_allclose(H.data, np.diag(p) - np.outer(p, p), rtol=1e-10, atol=1e-12)


def test_hessian_of_quadratic_form_matrix_input():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((3, 3))
    H = func.hessian(lambda x: x @ (tm.tensor(A) @ x))(rng.standard_normal(3))
    np.testing.assert_allclose(H.data, A + A.T, atol=1e-12)


def test_hessian_matches_finite_differences_of_gradient():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((2, 3))

    def f(x):
        return (tm.sigmoid(tm.tensor(W) @ x) ** 2).sum() + tm.cos(x).sum()

    x0 = rng.standard_normal(3)
    H = func.hessian(f)(x0)
    fd = fd_jacobian(lambda x: func.grad(f)(x).data, x0)
    np.testing.assert_allclose(H.data, fd, rtol=1e-6, atol=1e-8)


def test_hvp_equals_hessian_vector_product():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((4, 3))

    def f(x):
        return tm.softplus(tm.tensor(W) @ tm.tanh(x)).sum() * x.sum()

    x0, v = rng.standard_normal(3), rng.standard_normal(3)
    H = func.hessian(f)(x0).data
    hv = func.hvp(f, tm.tensor(x0), tm.tensor(v))
    np.testing.assert_allclose(hv.data, H @ v, rtol=1e-10, atol=1e-12)
    assert not hv.requires_grad
    hv_np = func.hvp(f, x0, v)  # NumPy in
    np.testing.assert_allclose(hv_np.data, H @ v, rtol=1e-10, atol=1e-12)


def test_hvp_with_tuple_primals():
    a0, b0 = np.array([0.3, -0.7]), np.array([1.5])
    va, vb = np.array([1.0, 2.0]), np.array([-1.0])

    def f(a, b):
        return (a ** 2).sum() * b.sum() ** 2

    ha, hb = func.hvp(f, (a0, b0), (va, vb))
    # H = [[2 b^2 I, 4 b a], [4 b a^T, 2 sum(a^2)]]
    B, s = b0[0], (a0 ** 2).sum()
    np.testing.assert_allclose(ha.data, 2 * B ** 2 * va + 4 * B * a0 * vb[0])
    np.testing.assert_allclose(hb.data, [4 * B * a0 @ va + 2 * s * vb[0]])


def test_vjp():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((3, 2))
    x0 = rng.standard_normal(2)

    def f(x):
        return tm.tensor(A) @ x ** 2

    out, vjp_fn = func.vjp(f, x0)
    np.testing.assert_allclose(out.data, A @ x0 ** 2)
    assert not out.requires_grad
    v = rng.standard_normal(3)
    (g,) = vjp_fn(tm.tensor(v))
    np.testing.assert_allclose(g.data, v @ (A * 2 * x0))
    (g2,) = vjp_fn(np.ones(3))  # callable again
    np.testing.assert_allclose(g2.data, np.ones(3) @ (A * 2 * x0))
    out, vjp_fn = func.vjp(lambda a, b: a * b, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    ga, gb = vjp_fn(np.array([1.0, -1.0]))
    np.testing.assert_allclose(ga.data, [3.0, -4.0])
    np.testing.assert_allclose(gb.data, [1.0, -2.0])


def test_transforms_compose_with_outer_graph():
    """Inside an outer differentiation the transforms' results stay differentiable."""
    x = tm.tensor([0.4, -0.9], dtype="float64", requires_grad=True)
    g = func.grad(lambda t: (t ** 3).sum())(x)  # 3 x^2, with a graph back to x
    assert g.requires_grad
    (gg,) = tm.grad(g.sum(), [x])
    np.testing.assert_allclose(gg.data, 6 * x.data)
    hv = func.hvp(lambda t: (t ** 4).sum(), x, tm.tensor([1.0, 1.0], dtype="float64"))
    (d,) = tm.grad(hv.sum(), [x])
    np.testing.assert_allclose(d.data, 24 * x.data)


# ----------------------------------------------------------------------------- viz


def _small_graph():
    rng = np.random.default_rng(0)
    x = tm.tensor(rng.standard_normal((2, 3)), requires_grad=True, name="x")
    W = tm.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    loss = tm.tanh(x @ W).sum()
    return x, W, loss


def test_to_dot_is_dot_text_with_ops_and_shapes():
    x, W, loss = _small_graph()
    dot = tm.viz.to_dot(loss)
    assert isinstance(dot, str)
    assert dot.lstrip().startswith("digraph") and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    for word in ("matmul", "tanh", "sum", "(2, 3)", "(3, 4)", "(2, 4)"):
        assert word in dot, word
    assert "|grad|=" not in dot  # no gradients yet
    # every edge joins two declared nodes; 3 ops + 2 leaves, 3 edges into ops
    nodes = set(re.findall(r"^\s*(\w+)\s*\[label=", dot, flags=re.M))
    edges = re.findall(r"^\s*(\w+)\s*->\s*(\w+)\s*;?\s*$", dot, flags=re.M)
    assert len(nodes) == 5 and len(edges) == 4
    assert all(a in nodes and b in nodes for a, b in edges)
    # labels are quoted strings with balanced quotes
    for line in dot.splitlines():
        assert line.count('"') % 2 == 0, line


def test_to_dot_shows_gradient_norms_after_backward():
    x, W, loss = _small_graph()
    loss.backward(retain_graph=True)
    dot = tm.viz.to_dot(loss)
    norms = re.findall(r"\|grad\|=([0-9.eE+-]+)", dot)
    assert len(norms) == 2  # the two leaves
    expected = sorted(float(f"{np.linalg.norm(t.grad.data):.4g}") for t in (x, W))
    assert sorted(float(n) for n in norms) == pytest.approx(expected)
    assert "matmul" in dot and "tanh" in dot


def test_to_dot_escapes_names():
    x = tm.tensor([1.0, 2.0], requires_grad=True, name='my "x"')
    dot = tm.viz.to_dot((x * 2).sum())
    label = re.compile(r'\[label="((?:[^"\\]|\\.)*)"(?:,[^\]]*)?\];$')
    for line in dot.splitlines():
        if "[label=" in line:
            assert label.search(line), line


def test_trace_backward_prints_one_line_per_op_and_matches_backward(capsys):
    x, W, loss = _small_graph()
    x2 = tm.tensor(x.data.copy(), requires_grad=True)
    W2 = tm.tensor(W.data.copy(), requires_grad=True)
    tm.tanh(x2 @ W2).sum().backward()

    lines = tm.viz.trace_backward(loss)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert isinstance(lines, list) and len(lines) == 3
    assert printed == [line for line in lines]
    for line, op in zip(lines, ["sum", "tanh", "matmul"]):  # in backward order
        assert op in line
    np.testing.assert_allclose(x.grad.data, x2.grad.data, rtol=1e-6)
    np.testing.assert_allclose(W.grad.data, W2.grad.data, rtol=1e-6)


def test_trace_backward_with_shared_subexpressions(capsys):
    x = tm.tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    h = tm.exp(x)
    loss = (h * h + h).sum()
    lines = tm.viz.trace_backward(loss)
    capsys.readouterr()
    assert len(lines) == 4  # sum, add, mul, exp: one line per op node
    assert sum("exp" in line for line in lines) == 1
    np.testing.assert_allclose(x.grad.data, 2 * np.exp(2 * x.data) + np.exp(x.data))

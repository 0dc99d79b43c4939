"""tm.func (grad, value_and_grad, jacobian, hessian, hvp, vjp) against known derivatives and
finite differences, and tm.viz (draw, to_dot, trace_backward)."""
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
    assert printed[:3] == lines  # the steps, then the legend
    assert printed[3:] == list(tm.viz.LEGEND)
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
    assert sum(line.startswith("exp ") for line in lines) == 1
    np.testing.assert_allclose(x.grad.data, 2 * np.exp(2 * x.data) + np.exp(x.data))


# ----------------------------------------------------------------------------- viz.draw


def _micrograd():
    """Karpathy's micrograd example: L = (a*b + c) * f, so dL/dc = f = -2, dL/da = f*b = 6."""
    a, b, c, f = (tm.tensor(v, dtype="float64", requires_grad=True, name=n)
                  for v, n in ((2.0, "a"), (-3.0, "b"), (10.0, "c"), (-2.0, "f")))
    e = a * b
    e.name = "e"
    d = e + c
    d.name = "d"
    L = d * f
    L.name = "L"
    return (a, b, c, f), L


def _close(*figs):
    plt = tm.plotting.pyplot()
    for fig in figs:
        plt.close(fig)


def _boxes_and_edges(fig):
    """What was drawn: each box as (text, (x0, y0, x1, y1)) in data coordinates, and each
    edge as its polyline, read back from the figure's artists."""
    ax = fig.axes[0]
    patches = [p for p in ax.patches if p.get_gid() == "box"]
    texts = [t for t in ax.texts if t.get_gid() == "label"]
    boxes = []
    for p in patches:
        x0, y0 = p.get_x(), p.get_y()
        x1, y1 = x0 + p.get_width(), y0 + p.get_height()
        inside = [t.get_text() for t in texts
                  if x0 <= t.get_position()[0] <= x1 and y0 <= t.get_position()[1] <= y1]
        assert len(inside) == 1, inside
        boxes.append((inside[0], (x0, y0, x1, y1)))
    edges = [np.column_stack(line.get_data()) for line in ax.lines if line.get_gid() == "edge"]
    return boxes, edges


def _segment_hits_box(p, q, box, eps=1e-9):
    """Whether segment p-q meets the closed rectangle (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for den, num in ((-dx, p[0] - x0), (dx, x1 - p[0]), (-dy, p[1] - y0), (dy, y1 - p[1])):
        if abs(den) < eps:
            if num < -eps:
                return False
            continue
        t = num / den
        if den < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1 + eps:
            return False
    return True


def _touches(point, box, tol=0.2):
    x0, y0, x1, y1 = box
    return x0 - tol <= point[0] <= x1 + tol and y0 - 1e-6 <= point[1] <= y1 + 1e-6


def _assert_no_edge_through_a_box(fig):
    boxes, edges = _boxes_and_edges(fig)
    assert edges
    for pts in edges:
        ends = [i for i, (_, b) in enumerate(boxes) if _touches(pts[0], b) or _touches(pts[-1], b)]
        assert len(ends) == 2, "each edge starts at one box and ends at another"
        for i, (text, box) in enumerate(boxes):
            if i in ends:
                continue
            for p, q in zip(pts, pts[1:]):
                assert not _segment_hits_box(p, q, box), f"an edge runs through the box {text!r}"


def test_segment_box_check_itself():
    box = (0.0, 0.0, 1.0, 1.0)
    assert _segment_hits_box((-1, 0.5), (2, 0.5), box)       # straight through
    assert _segment_hits_box((-1, -1), (2, 2), box)          # diagonally through
    assert not _segment_hits_box((-1, 1.5), (2, 1.5), box)   # above
    assert not _segment_hits_box((-1, 0.0 - 2), (0.5, -0.1), box)


def test_draw_micrograd_example_shows_signed_values_and_gradients(tmp_path):
    (a, b, c, f), L = _micrograd()
    L.backward(retain_graph=True)
    path = tmp_path / "g.png"
    fig = tm.viz.draw(L, str(path))
    assert path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG"
    boxes, edges = _boxes_and_edges(fig)
    assert len(boxes) == 7 and len(edges) == 6  # a b c f e d L; six input edges
    by_name = {t.splitlines()[0].split()[0]: t for t, _ in boxes}  # "a", or "e = mul"
    assert set(by_name) == {"a", "b", "c", "f", "e", "d", "L"}
    for name, value, grad in (("a", "2", "6"), ("b", "-3", "-4"), ("c", "10", "-2"),
                              ("f", "-2", "4"), ("e", "-6", "-2"), ("d", "4", "-2"), ("L", "-8", "1")):
        lines = by_name[name].splitlines()
        assert f"value {value}" in lines and f"grad {grad}" in lines, (name, lines)
        assert "scalar" in lines
    assert by_name["e"].startswith("e = mul") and by_name["d"].startswith("d = add")
    _assert_no_edge_through_a_box(fig)
    _close(fig)


def test_draw_before_backward_shows_no_gradients_and_grads_true_forces_them():
    (a, b, c, f), L = _micrograd()
    fig = tm.viz.draw(L)
    assert not any("grad" in t for t, _ in _boxes_and_edges(fig)[0])
    fig2 = tm.viz.draw(L, grads=True)
    assert any("grad 6" in t for t, _ in _boxes_and_edges(fig2)[0])
    assert a.grad is None  # drawing never accumulates into .grad
    _close(fig, fig2)


def test_draw_names_parameters_shows_shapes_and_routes_long_edges_between_boxes():
    from tinymeta import nn
    model = nn.MLP([2, 3, 3, 1], activation="tanh", rng=0)
    x = tm.tensor(np.ones((4, 2)), name="x")
    first = model.parameters()[0]
    loss = (model(x) ** 2).mean() + 0.1 * (first ** 2).sum()  # a long edge from the first weight
    loss.backward(retain_graph=True)
    fig = tm.viz.draw(loss, names=model)
    text = "\n".join(t for t, _ in _boxes_and_edges(fig)[0])
    for name, p in model.named_parameters():
        assert name in text
        assert "shape " + "x".join(map(str, p.shape)) in text
    assert "|g|=" in text  # large gradients as norms
    _assert_no_edge_through_a_box(fig)
    _close(fig)


def test_draw_second_order_graph():
    t = tm.tensor(0.5, dtype="float64", requires_grad=True, name="t")
    (d1,) = tm.grad(t.tanh(), t, create_graph=True)
    (d2,) = tm.grad(d1, t, create_graph=True)   # the second derivative, a graph built by backward
    d2.backward(retain_graph=True)
    fig = tm.viz.draw(d2)
    boxes, _ = _boxes_and_edges(fig)
    th = np.tanh(0.5)
    t_box = next(b for b, _ in boxes if b.startswith("t\n"))
    third = -2 * (1 - th ** 2) ** 2 + 4 * th ** 2 * (1 - th ** 2)
    assert f"grad {third:.4g}" in t_box
    assert any(f"value {-2 * th * (1 - th ** 2):.4g}" in b for b, _ in boxes)
    _assert_no_edge_through_a_box(fig)
    _close(fig)


def test_draw_maml_graph_has_no_edge_through_a_box():
    from tinymeta import nn
    model = nn.MLP([1, 8, 8, 1], rng=0)
    x = tm.randn(5, 1, rng=0)
    loss = ((model(x) - 1) ** 2).mean()
    grads = tm.grad(loss, model.parameters(), create_graph=True)
    fast = {n: p - 0.01 * g for (n, p), g in zip(model.named_parameters(), grads)}
    q = ((nn.functional_call(model, fast, x) - 1) ** 2).mean()
    q.backward(retain_graph=True)
    fig = tm.viz.draw(q, names=model, max_nodes=100)
    boxes, edges = _boxes_and_edges(fig)
    assert len(boxes) > 30 and len(edges) > 30
    _assert_no_edge_through_a_box(fig)
    _close(fig)


def test_draw_summarises_large_graphs_with_a_note():
    x = tm.tensor(0.3, requires_grad=True, name="x")
    y = x
    for _ in range(150):
        y = (y * 1.01).tanh() + x
    fig = tm.viz.draw(y)
    boxes, _ = _boxes_and_edges(fig)
    assert len(boxes) <= 40
    notes = [t.get_text() for t in fig.texts if "summarised" in t.get_text()]
    assert notes and "451 tensors" in notes[0] and "max_nodes=451" in notes[0]
    assert any(b.startswith("tanh x") for b, _ in boxes)
    _assert_no_edge_through_a_box(fig)
    _close(fig)


def test_draw_refuses_bad_input_clearly():
    with pytest.raises(tm.DTypeError, match="viz.draw"):
        tm.viz.draw(np.ones(3))
    x = tm.tensor([1.0], requires_grad=True)
    with pytest.raises(tm.ArgumentError, match="names"):
        tm.viz.draw(x.sum(), names=[x])
    with pytest.raises(tm.ArgumentError, match="max_nodes"):
        tm.viz.draw(x.sum(), max_nodes=0)


def test_trace_backward_micrograd_signs_names_and_legend(capsys):
    (a, b, c, f), L = _micrograd()
    lines = tm.viz.trace_backward(L)
    out = capsys.readouterr().out
    assert len(lines) == 3
    assert lines[0].startswith("mul [L]") and "got 1 " in lines[0] and "sent d=-2, f=4" in lines[0]
    assert lines[1].startswith("add [d]") and "got -2 " in lines[1] and "sent e=-2, c=-2" in lines[1]
    assert lines[2].startswith("mul [e]") and "sent a=6, b=-4" in lines[2]
    assert (a.grad.item(), c.grad.item()) == (6.0, -2.0)
    assert out.splitlines() == lines + list(tm.viz.LEGEND)


def test_trace_backward_every_printed_symbol_has_a_legend_line(capsys):
    x = tm.tensor(np.ones((4, 2)), name="x")                        # a constant input: "-"
    W = tm.tensor(np.full((2, 3), 0.5), requires_grad=True, name="W")
    bias = tm.tensor(np.zeros(3), requires_grad=True, name="bias")  # broadcast, summed back by add
    loss = (x @ W + bias).tanh().sum()
    lines = tm.viz.trace_backward(loss, legend=False)
    assert capsys.readouterr().out.splitlines() == lines
    text = "\n".join(lines)
    assert "x=-" in text and "bias=[1.68, 1.68, 1.68]" in text and "W=|g|=" in text
    starts = [line.split()[0] for line in tm.viz.LEGEND[1:] if line.startswith("  ") and line.split()]
    for symbol in ("op", "out", "got", "sent", "-", "|g|=N"):
        assert symbol in starts, symbol


def test_draw_after_a_graph_freeing_backward_says_how_to_keep_it():
    (a, b, c, f), L = _micrograd()
    L.backward()  # frees the graph
    fig = tm.viz.draw(L)
    boxes, edges = _boxes_and_edges(fig)
    assert len(boxes) == 1 and "(freed)" in boxes[0][0] and not edges
    assert any("retain_graph=True" in t.get_text() for t in fig.texts)
    _close(fig)


def test_trace_backward_names_parameters_from_a_dict(capsys):
    w = tm.tensor([1.0, -2.0], dtype="float64", requires_grad=True)   # no name= of its own
    loss = (w * w).sum()
    lines = tm.viz.trace_backward(loss, names={"weight": w}, legend=False)
    capsys.readouterr()
    assert "sent weight=[1, -2], weight=[1, -2]" in lines[-1]  # each factor gets the other
    assert w.grad.numpy().tolist() == [2.0, -4.0]                 # and they add up

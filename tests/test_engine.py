"""The autograd engine: higher order against closed forms, the backward pass's bookkeeping
(accumulation, freeing, retain/create graph, unused inputs, dtypes, broadcasting), long
chains, memory, grad modes, anomaly detection, every error the engine promises, custom
Functions, gradcheck itself, dtypes and creation functions, and the Tensor API."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import tinymeta as tm


def f64(a, requires_grad=True):
    return tm.tensor(np.array(a, dtype=np.float64), requires_grad=requires_grad)


def sigmoid_np(z):
    return 1.0 / (1.0 + np.exp(-z))


# ----------------------------------------------------------------------------- higher order


def test_third_derivative_of_tanh_matches_closed_form():
    xs = np.array([-2.0, -0.7, 0.0, 0.3, 1.1, 2.5])
    x = f64(xs)
    (g1,) = tm.grad(tm.tanh(x).sum(), [x], create_graph=True)
    (g2,) = tm.grad(g1.sum(), [x], create_graph=True)
    (g3,) = tm.grad(g2.sum(), [x])
    t = np.tanh(xs)
    np.testing.assert_allclose(g1.data, 1 - t ** 2, rtol=1e-12)
    np.testing.assert_allclose(g2.data, -2 * t * (1 - t ** 2), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g3.data, (1 - t ** 2) * (6 * t ** 2 - 2), rtol=1e-12, atol=1e-15)


def test_fourth_derivative_of_a_product_by_repeated_backward():
    """d^4/dx^4 of x^3 sin(x) by four nested tm.grad calls, against the hand derivative."""
    xs = np.array([-1.3, 0.4, 2.0])
    x = f64(xs)
    g = (x ** 3 * tm.sin(x)).sum()
    for _ in range(4):
        (g,) = tm.grad(g.sum() if g.ndim else g, [x], create_graph=True)
    s, c = np.sin(xs), np.cos(xs)
    # Leibniz: (uv)'''' = sum_k C(4,k) u^(k) v^(4-k), u = x^3, v = sin
    u = [xs ** 3, 3 * xs ** 2, 6 * xs, 6 * np.ones_like(xs), np.zeros_like(xs)]
    v = [s, c, -s, -c, s]
    binom = [1, 4, 6, 4, 1]
    d4 = sum(binom[k] * u[k] * v[4 - k] for k in range(5))
    np.testing.assert_allclose(g.data, d4, rtol=1e-10, atol=1e-12)


def test_hessian_of_quadratic_form_is_a_plus_a_transpose():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    H = tm.func.hessian(lambda x: x @ (tm.tensor(A) @ x))(rng.standard_normal(4))
    assert H.shape == (4, 4)
    np.testing.assert_allclose(H.data, A + A.T, rtol=1e-12, atol=1e-12)


def _mlp_scalar(params):
    W1, b1, W2 = params

    def f(x):
        h = tm.tanh(tm.tensor(W1) @ x + tm.tensor(b1))
        return (tm.softplus(tm.tensor(W2) @ h) + (x ** 2).sum() * 0.1 * tm.sin(x).sum()).sum()
    return f


@pytest.mark.parametrize("kind", ["quadratic", "mlp"])
def test_hvp_equals_hessian_times_v(kind):
    rng = np.random.default_rng(1)
    n = 5
    if kind == "quadratic":
        A = rng.standard_normal((n, n))
        f = lambda x: x @ (tm.tensor(A) @ x)  # noqa: E731
    else:
        f = _mlp_scalar((rng.standard_normal((4, n)), rng.standard_normal(4), rng.standard_normal((2, 4))))
    x0, v = rng.standard_normal(n), rng.standard_normal(n)
    H = tm.func.hessian(f)(x0).data
    hv = tm.func.hvp(f, tm.tensor(x0), tm.tensor(v))
    np.testing.assert_allclose(hv.data, H @ v, rtol=1e-10, atol=1e-12)
    # and independently: central differences of the gradient along v
    grad = tm.func.grad(f)
    h = 1e-5
    fd = (grad(x0 + h * v).data - grad(x0 - h * v).data) / (2 * h)
    np.testing.assert_allclose(hv.data, fd, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(H, H.T, rtol=1e-10, atol=1e-12)


def test_logistic_regression_gradient_matches_hand_formula():
    rng = np.random.default_rng(2)
    N, d = 20, 3
    X = rng.standard_normal((N, d))
    y = (rng.random(N) < 0.5).astype(np.float64)
    theta0 = rng.standard_normal(d)
    expected = -(1.0 / N) * ((y - sigmoid_np(X @ theta0))[:, None] * X).sum(axis=0)

    theta = f64(theta0)
    p = tm.sigmoid(tm.tensor(X) @ theta)
    nll = -(tm.tensor(y) * tm.log(p) + (1 - tm.tensor(y)) * tm.log(1 - p)).mean()
    (g,) = tm.grad(nll, [theta])
    np.testing.assert_allclose(g.data, expected, rtol=1e-10, atol=1e-12)

    # the same loss written stably (softplus(z) - y z), and through backward()
    theta2 = f64(theta0)
    z = tm.tensor(X) @ theta2
    (tm.softplus(z) - z * y).mean().backward()
    np.testing.assert_allclose(theta2.grad.data, expected, rtol=1e-10, atol=1e-12)


def test_mixed_second_partials_match_analytic():
    """f(x, y) = x^2 y^3 + sin(x y): every second partial through create_graph."""
    a, b = 0.7, -1.3
    x, y = f64(a), f64(b)
    f = x ** 2 * y ** 3 + tm.sin(x * y)
    gx, gy = tm.grad(f, [x, y], create_graph=True)
    np.testing.assert_allclose(gx.item(), 2 * a * b ** 3 + b * np.cos(a * b), rtol=1e-12)
    np.testing.assert_allclose(gy.item(), 3 * a ** 2 * b ** 2 + a * np.cos(a * b), rtol=1e-12)
    gxx, gxy = tm.grad(gx, [x, y], retain_graph=True)
    gyx, gyy = tm.grad(gy, [x, y])
    np.testing.assert_allclose(gxx.item(), 2 * b ** 3 - b ** 2 * np.sin(a * b), rtol=1e-12)
    mixed = 6 * a * b ** 2 + np.cos(a * b) - a * b * np.sin(a * b)
    np.testing.assert_allclose(gxy.item(), mixed, rtol=1e-12)
    np.testing.assert_allclose(gyx.item(), mixed, rtol=1e-12)
    np.testing.assert_allclose(gyy.item(), 6 * a ** 2 * b - a ** 2 * np.sin(a * b), rtol=1e-12)


def test_backward_with_create_graph_gives_differentiable_grad():
    x = f64([1.0, 2.0])
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    np.testing.assert_allclose(x.grad.data, [3.0, 12.0])
    (g2,) = tm.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(g2.data, [6.0, 12.0])


def test_backward_create_graph_retains_the_graph_by_default():
    """As in PyTorch, retain_graph defaults to create_graph: exp's second derivative needs the
    forward graph (its rule uses its output), and a second backward must work too."""
    x = f64([0.5, -1.0])
    y = tm.exp(x).sum()
    y.backward(create_graph=True)
    (g2,) = tm.grad(x.grad.sum(), [x], retain_graph=True)
    np.testing.assert_allclose(g2.data, np.exp(x.data))
    x.grad = None
    y.backward()  # the graph is still there
    np.testing.assert_allclose(x.grad.data, np.exp(x.data))


# ----------------------------------------------------------------------------- backward bookkeeping


def test_backward_accumulates_into_grad_across_calls():
    x = f64([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 3.0)
    x.grad = None
    x.sum().backward()
    np.testing.assert_allclose(x.grad.data, np.ones(3))


def test_grad_not_stored_on_non_leaves_and_leaf_flags():
    x = f64([1.0, 2.0])
    h = x * 2.0
    loss = (h * h).sum()
    assert x.is_leaf and x.grad_fn is None
    assert not h.is_leaf and h.grad_fn is not None and h.requires_grad
    loss.backward()
    assert h.grad is None and loss.grad is None
    np.testing.assert_allclose(x.grad.data, 8 * x.data)


def test_diamond_graph_accumulates_every_path():
    x = f64([0.5, -1.5])
    a = x * x          # used three times below
    y = (a * x + a + tm.exp(a)).sum()
    y.backward()
    xs = x.data
    np.testing.assert_allclose(x.grad.data, 3 * xs ** 2 + 2 * xs + 2 * xs * np.exp(xs ** 2))


def test_backward_with_explicit_gradient_and_module_level_backward():
    x = f64([1.0, 2.0, 3.0])
    y = x ** 2
    y.backward(gradient=np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad.data, [2.0, 0.0, -6.0])
    x2 = f64([1.0, 2.0])
    y1, y2 = (x2 * 3).sum(), (x2 ** 2).sum()
    tm.backward([y1, y2])
    np.testing.assert_allclose(x2.grad.data, 3 + 2 * x2.data)
    with pytest.raises(tm.ShapeError, match=r"\(2,\)"):
        (x2 * 1).backward(gradient=np.ones(3))


def test_grad_with_grad_outputs_returns_and_does_not_accumulate():
    x = f64([1.0, 2.0, 3.0])
    v = np.array([0.5, -1.0, 2.0])
    (g,) = tm.grad(x ** 2, [x], grad_outputs=[tm.tensor(v)])
    np.testing.assert_allclose(g.data, 2 * x.data * v)
    assert x.grad is None
    g1 = tm.grad(x ** 2, x, grad_outputs=v)  # single tensor in, tuple out
    assert isinstance(g1, tuple) and len(g1) == 1
    np.testing.assert_allclose(g1[0].data, 2 * x.data * v)
    # several outputs, several inputs
    w = f64([1.0, -1.0])
    o1, o2 = x.sum() * w, (x ** 3).sum()
    gx, gw = tm.grad([o1, o2], [x, w], grad_outputs=[np.array([1.0, 2.0]), None])
    np.testing.assert_allclose(gx.data, (1.0 * 1 + 2.0 * -1) + 3 * x.data ** 2)
    np.testing.assert_allclose(gw.data, [6.0, 12.0])


def test_grad_with_respect_to_intermediate_and_leaf():
    x = f64([1.0, -2.0])
    h = x * 2.0
    y = (h * h).sum()
    gh, gx = tm.grad(y, [h, x])
    np.testing.assert_allclose(gh.data, 2 * h.data)
    np.testing.assert_allclose(gx.data, 8 * x.data)


def test_grad_retain_graph():
    x = f64([1.0, 2.0])
    y = (x.exp() * x).sum()
    (g1,) = tm.grad(y, [x], retain_graph=True)
    (g2,) = tm.grad(y, [x])
    np.testing.assert_allclose(g1.data, g2.data)
    with pytest.raises(tm.GraphError, match="retain_graph"):
        tm.grad(y, [x])


def test_grad_create_graph_results_are_differentiable():
    x = f64([0.3, -0.8])
    (g,) = tm.grad(tm.sin(x).sum(), [x], create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    np.testing.assert_allclose(g.data, np.cos(x.data))
    (gg,) = tm.grad(g.sum(), [x])
    np.testing.assert_allclose(gg.data, -np.sin(x.data))
    (g_plain,) = tm.grad(tm.sin(x).sum(), [x])
    assert not g_plain.requires_grad and g_plain.grad_fn is None


def test_grad_allow_unused():
    x, z = f64([1.0, 2.0]), f64([[3.0]])
    y = (x * x).sum()
    with pytest.raises(tm.GraphError) as ei:
        tm.grad(y, [x, z], retain_graph=True)
    msg = str(ei.value)
    assert "input 1" in msg and "(1, 1)" in msg and "allow_unused" in msg
    assert isinstance(ei.value, RuntimeError) and isinstance(ei.value, tm.TinymetaError)
    gx, gz = tm.grad(y, [x, z], allow_unused=True)
    np.testing.assert_allclose(gx.data, 2 * x.data)
    assert gz is None
    # an output that does not depend on any input at all
    c = tm.tensor(3.0)
    assert tm.grad(c, [x], allow_unused=True) == (None,)
    with pytest.raises(tm.GraphError, match="allow_unused"):
        tm.grad(c, [x])


def test_grad_input_that_does_not_require_grad():
    x = tm.tensor([1.0, 2.0])
    with pytest.raises(tm.GraphError, match="requires_grad"):
        tm.grad((x * 2).sum(), [x])


@pytest.mark.parametrize("sa, sb", [((3, 1), (4,)), ((), (2, 3)), ((2, 1, 3), (4, 1)), ((1,), (1, 1, 1)),
                                    ((5,), (5,))])
def test_broadcast_gradients_have_input_shapes(sa, sb):
    rng = np.random.default_rng(0)
    a, b = f64(rng.standard_normal(sa)), f64(rng.standard_normal(sb))
    for fn in (lambda p, q: p * q, lambda p, q: p + q, lambda p, q: p - q,
               lambda p, q: p / (q * q + 1.0), tm.maximum, lambda p, q: tm.where(p.data > 0, p, q)):
        ga, gb = tm.grad(fn(a, b).sum(), [a, b])
        assert ga.shape == sa and gb.shape == sb
    (a * b).sum().backward()
    assert a.grad.shape == sa and b.grad.shape == sb
    full = np.broadcast_shapes(sa, sb)
    expected_a = np.broadcast_to(b.data, full)
    expected_a = expected_a.sum(axis=tuple(range(len(full) - len(sa))))
    expected_a = expected_a.sum(axis=tuple(i for i, s in enumerate(sa) if s == 1), keepdims=True)
    np.testing.assert_allclose(a.grad.data, expected_a.reshape(sa))


def test_grad_dtype_follows_input_dtype():
    x32 = tm.tensor([1.0, 2.0], requires_grad=True)
    assert x32.dtype == np.float32
    const64 = np.array([0.5, 3.0], dtype=np.float64)
    y = (x32 * const64 + tm.tensor(const64) * x32 ** 2).sum()
    y.backward()
    assert x32.grad.dtype == np.float32
    np.testing.assert_allclose(x32.grad.data, const64 + 2 * const64 * x32.data, rtol=1e-6)
    # two leaves of different dtypes in one graph: each keeps its own
    a32 = tm.tensor([1.0, 2.0], requires_grad=True)
    b64 = f64([3.0, 4.0])
    ga, gb = tm.grad((a32 * b64).sum(), [a32, b64])
    assert ga.dtype == np.float32 and gb.dtype == np.float64
    # second order keeps it too
    (g,) = tm.grad((x32 ** 3 * const64).sum(), [x32], create_graph=True)
    (gg,) = tm.grad(g.sum(), [x32])
    assert g.dtype == gg.dtype == np.float32


def test_leaf_grads_are_independent_writable_buffers():
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    (a + b).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    for p in (a, b):  # gradient scaling, as users and optimizers do it
        p.grad.data *= 0.5
    np.testing.assert_array_equal(a.grad.data, [0.5, 0.5])
    np.testing.assert_array_equal(b.grad.data, [0.5, 0.5])
    x = f64([1.0, 2.0, 3.0])
    x.sum().backward()
    x.grad.zero_()
    x.grad.data += 1.0
    np.testing.assert_array_equal(x.grad.data, np.ones(3))
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full(3, 3.0))


# ----------------------------------------------------------------------------- freeing the graph


def test_second_backward_through_freed_graph_raises():
    x = f64([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(tm.GraphError) as ei:
        y.backward()
    assert "retain_graph" in str(ei.value) and isinstance(ei.value, RuntimeError)
    np.testing.assert_allclose(x.grad.data, 2 * x.data)  # the failed call added nothing


def test_retain_graph_allows_second_backward_and_doubles_grad():
    x = f64([1.0, 2.0])
    y = (tm.tanh(x) * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.data.copy()
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * first)


# ----------------------------------------------------------------------------- long chains


@pytest.mark.parametrize("step", ["mul", "add"])
def test_chain_of_100k_ops_backprops_without_recursion(step):
    n = 100_000
    x = tm.tensor([1.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0000001 if step == "mul" else y + 0.0
    y.sum().backward()  # no RecursionError: that is the check (its time is not asserted)
    expected = 1.0000001 ** n if step == "mul" else 1.0
    np.testing.assert_allclose(x.grad.data, [expected], rtol=1e-9)


def test_long_chain_with_retained_graph_is_released_without_recursion():
    x = tm.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    y.sum().backward(retain_graph=True)
    (g,) = tm.grad(y.sum(), [x])
    assert g.item() == 1.0
    del y, g  # dropping a deep retained graph must not blow the C stack
    assert x.grad.item() == 1.0


# ----------------------------------------------------------------------------- memory


def _mlp_step(params, x, y, lr=0.01):
    W1, b1, W2, b2 = params
    h = tm.relu(tm.linear(x, W1, b1))
    out = tm.linear(h, W2, b2)
    loss = ((out - y) ** 2).mean()
    loss.backward()
    with tm.no_grad():
        for p in params:
            p.data -= lr * p.grad.data
            p.grad = None
    return loss.item()


def test_no_leak_over_10000_training_steps_with_gc_disabled():
    rng = np.random.default_rng(0)
    params = [tm.tensor(rng.standard_normal(s) * 0.3, requires_grad=True)
              for s in [(16, 4), (16,), (1, 16), (1,)]]
    x = tm.tensor(rng.standard_normal((8, 4)))
    y = tm.tensor(rng.standard_normal((8, 1)))
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        first = last = None
        for step in range(1, 10_001):
            last = _mlp_step(params, x, y)  # keep no per-step history: that would grow
            first = last if first is None else first
            if step == 1000:
                at_1000 = tracemalloc.get_traced_memory()[0]
        at_10000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    growth = at_10000 - at_1000
    # one leaked node or tensor per step would be >= 9000 * ~100 bytes
    assert growth < 100_000, f"memory grew by {growth} bytes from step 1000 to 10000"
    assert last < first  # and it did train


def test_graph_is_freed_by_refcounting_alone():
    gc.collect()
    gc.disable()
    try:
        x = tm.tensor(np.ones((3, 4)), requires_grad=True)
        W = tm.tensor(np.full((2, 4), 0.1), requires_grad=True)
        h = tm.tanh(tm.linear(x, W))
        r_h = weakref.ref(h)
        loss = (h * h).sum()
        r_loss = weakref.ref(loss)
        del h
        assert r_h() is not None  # the graph keeps it alive...
        loss.backward()
        del loss
        assert r_loss() is None and r_h() is None  # ...and lets go of it afterwards

        # with the graph retained, dropping the output still frees everything
        h = tm.sigmoid(x * 2.0)
        r_h = weakref.ref(h)
        loss = h.sum()
        loss.backward(retain_graph=True)
        del h, loss
        assert r_h() is None

        # gradients built with create_graph do not keep the forward graph alive in a cycle
        h = tm.exp(x * 0.5)
        r_h = weakref.ref(h)
        loss = (h ** 2).sum()
        (g,) = tm.grad(loss, [x], create_graph=True)
        (gg,) = tm.grad(g.sum(), [x])
        del h, loss, g, gg
        assert r_h() is None

        # never backpropagated at all
        h = tm.relu(x - 0.5)
        r_h = weakref.ref(h)
        loss = h.sum()
        del h, loss
        assert r_h() is None
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- grad modes


def test_no_grad_enable_grad_nesting_and_results():
    x = f64([1.0, 2.0])
    assert tm.is_grad_enabled()
    with tm.no_grad():
        assert not tm.is_grad_enabled()
        y = x * 2 + tm.exp(x)
        assert not y.requires_grad and y.grad_fn is None and y.is_leaf
        with tm.enable_grad():
            assert tm.is_grad_enabled()
            z = x * 2
            assert z.requires_grad and z.grad_fn is not None
            with tm.no_grad():
                assert not tm.is_grad_enabled()
                assert not (x @ x).requires_grad
            assert tm.is_grad_enabled()
        assert not tm.is_grad_enabled()
    assert tm.is_grad_enabled()
    (g,) = tm.grad(z.sum(), [x])
    np.testing.assert_allclose(g.data, [2.0, 2.0])


def test_grad_mode_restored_after_exception():
    with pytest.raises(ZeroDivisionError):
        with tm.no_grad():
            1 / 0
    assert tm.is_grad_enabled()
    x = f64([0.0])
    with pytest.raises(tm.AnomalyError):
        with tm.detect_anomaly():
            tm.sqrt(x).sum().backward()
    assert tm.is_grad_enabled()
    # an error inside a backward with create_graph leaves grad mode as it was
    with tm.no_grad():
        pass
    assert tm.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    x = f64([3.0])

    @tm.no_grad()
    def frozen(t):
        """doc"""
        return t * 2, tm.is_grad_enabled()

    @tm.enable_grad()
    def live(t):
        return t * 2

    y, enabled = frozen(x)
    assert not enabled and not y.requires_grad
    assert frozen.__name__ == "frozen" and frozen.__doc__ == "doc"
    assert tm.is_grad_enabled()
    with tm.no_grad():
        z = live(x)
    assert z.requires_grad


# ----------------------------------------------------------------------------- anomaly detection


@pytest.mark.parametrize("op, fn", [("sqrt", tm.sqrt), ("log", tm.log)])
def test_detect_anomaly_names_the_op(op, fn):
    x = f64([0.0, 1.0])
    with np.errstate(divide="ignore"):  # log(0) = -inf in the forward is expected here
        y = (fn(x) * 2.0).sum()
    with pytest.raises(tm.AnomalyError) as ei:
        with tm.detect_anomaly():
            y.backward()
    assert f"'{op}'" in str(ei.value)
    assert isinstance(ei.value, tm.TinymetaError) and isinstance(ei.value, FloatingPointError)
    # without the context: no error, the inf/NaN goes through
    x2 = f64([0.0, 1.0])
    with np.errstate(all="ignore"):
        (fn(x2) * 2.0).sum().backward()
    assert not np.isfinite(x2.grad.data[0])


def test_nan_inputs_are_not_an_error_by_themselves():
    x = f64([np.nan, 1.0])
    with tm.detect_anomaly():
        (x * 2.0 + 1.0).sum().backward()  # the gradient is finite: nothing to report
    np.testing.assert_allclose(x.grad.data, [2.0, 2.0])
    with tm.detect_anomaly(), pytest.raises(tm.AnomalyError, match="'mul'"):
        (x * x).sum().backward()  # the gradient 2x is NaN: caught, named


# ----------------------------------------------------------------------------- errors


def _is(err, *classes):
    assert isinstance(err, tm.TinymetaError)
    for c in classes:
        assert isinstance(err, c), (type(err), c)


@pytest.mark.parametrize("name, fn", [("add", lambda a, b: a + b), ("add", tm.add),
                                      ("mul", lambda a, b: a * b), ("sub", tm.sub),
                                      ("maximum", tm.maximum)])
def test_broadcast_mismatch_names_op_and_shapes(name, fn):
    a, b = tm.zeros(2, 3), tm.zeros(4)
    with pytest.raises(tm.ShapeError) as ei:
        fn(a, b)
    _is(ei.value, ValueError)
    msg = str(ei.value)
    assert name in msg and "(2, 3)" in msg and "(4,)" in msg and "broadcast" in msg
    assert "reshape" in msg or "unsqueeze" in msg  # the fix


@pytest.mark.parametrize("sa, sb", [((2, 3), (4, 5)), ((3,), (4,)), ((2, 3, 4), (3, 4, 5)), ((2, 3), (2, 3))])
def test_matmul_mismatch_names_both_shapes(sa, sb):
    with pytest.raises(tm.ShapeError) as ei:
        tm.zeros(*sa, requires_grad=True) @ tm.zeros(*sb)
    _is(ei.value, ValueError)
    msg = str(ei.value)
    assert "matmul" in msg and str(sa) in msg and str(sb) in msg
    if sa == sb == (2, 3):
        assert "W.T" in msg  # the likely fix for x @ W with W laid out (out, in)


def test_matmul_of_scalar_is_a_shape_error():
    with pytest.raises(tm.ShapeError, match="matmul"):
        tm.tensor(2.0) @ tm.zeros(3)


def test_backward_on_non_scalar_says_how_to_fix():
    y = f64([1.0, 2.0]) * 2
    with pytest.raises(tm.GraphError) as ei:
        y.backward()
    _is(ei.value, RuntimeError)
    msg = str(ei.value)
    assert "(2,)" in msg and ("sum()" in msg or "reduce" in msg) and "gradient" in msg
    with pytest.raises(tm.GraphError, match="grad_outputs|gradient"):
        tm.grad(y, [y])


def test_backward_on_tensor_without_graph():
    with pytest.raises(tm.GraphError, match="requires_grad"):
        tm.tensor(1.0).backward()


@pytest.mark.parametrize("make", [
    lambda: tm.tensor([1, 2], requires_grad=True),
    lambda: tm.tensor([True, False], requires_grad=True),
    lambda: tm.zeros(2, dtype="int64", requires_grad=True),
    lambda: tm.arange(3, requires_grad=True),
    lambda: tm.tensor([1, 2]).requires_grad_(),
    lambda: tm.tensor(np.array([1, 2], dtype=np.int32)).requires_grad_(True),
], ids=["int_list", "bool", "zeros_int", "arange", "requires_grad_", "int32"])
def test_requires_grad_on_integer_or_bool_is_a_dtype_error(make):
    with pytest.raises(tm.DTypeError) as ei:
        make()
    _is(ei.value, TypeError)
    msg = str(ei.value)
    assert "int" in msg or "bool" in msg
    assert "float" in msg  # says what to use instead


@pytest.mark.parametrize("data", [
    [1 + 2j], np.array([1 + 2j]), np.array([1, "a"], dtype=object), np.array(["a", "b"]), None,
    [{"a": 1}],
], ids=["complex_list", "complex_array", "object_array", "str_array", "none", "dict"])
def test_unsupported_data_is_a_dtype_error(data):
    with pytest.raises(tm.DTypeError) as ei:
        tm.tensor(data)
    _is(ei.value, TypeError)


def test_ragged_list_is_a_tinymeta_error():
    """NumPy >= 1.24 raises a bare ValueError on ragged nesting; tinymeta must wrap it."""
    for data in ([[1.0, 2.0], [3.0]], [[1, 2], [3, 4, 5]]):
        with pytest.raises(tm.TinymetaError) as ei:
            tm.tensor(data)
        assert isinstance(ei.value, (ValueError, TypeError))
        assert "ragged" in str(ei.value)


@pytest.mark.parametrize("how", ["iadd", "isub", "imul", "idiv", "add_", "mul_", "zero_", "fill_",
                                 "copy_", "setitem"])
def test_inplace_on_leaf_requiring_grad_raises_unless_no_grad(how):
    def do(t):
        if how == "iadd":
            t += 1.0
        elif how == "isub":
            t -= 1.0
        elif how == "imul":
            t *= 2.0
        elif how == "idiv":
            t /= 2.0
        elif how == "add_":
            t.add_(1.0)
        elif how == "mul_":
            t.mul_(2.0)
        elif how == "zero_":
            t.zero_()
        elif how == "fill_":
            t.fill_(7.0)
        elif how == "copy_":
            t.copy_(np.array([9.0, 9.0]))
        else:
            t[0] = 5.0
        return t

    x = f64([1.0, 2.0])
    before = x.data.copy()
    with pytest.raises(tm.InplaceError) as ei:
        do(x)
    _is(ei.value, tm.GraphError, RuntimeError)
    assert "no_grad" in str(ei.value)
    np.testing.assert_array_equal(x.data, before)  # nothing changed
    v0 = x._version
    with tm.no_grad():
        out = do(x)
    assert out is x and x.requires_grad and x.is_leaf
    assert not np.array_equal(x.data, before)
    assert x._version > v0


def _modify(t):
    with tm.no_grad():
        t.add_(1.0)


@pytest.mark.parametrize("case", ["input_of_mul", "output_of_exp", "constant_of_mul", "input_of_matmul",
                                  "input_of_tanh_via_setitem"])
def test_saved_tensor_modified_in_place_then_backward(case):
    x = f64([0.5, 1.5])
    w = f64([2.0, -1.0])
    if case == "input_of_mul":
        y, op = (x * w).sum(), "mul"
        _modify(x)
    elif case == "output_of_exp":
        y, op = tm.exp(x), "exp"
        _modify(y)  # exp's backward uses its output
    elif case == "constant_of_mul":
        c = tm.tensor(np.array([1.0, 2.0]))
        y, op = (x * c).sum(), "mul"
        c.add_(1.0)  # c does not require grad: allowed, but versioned
    elif case == "input_of_matmul":
        y, op = x @ w, "matmul"
        _modify(w)
    else:
        h = x * 3.0
        y, op = tm.tanh(h).sum(), "tanh"
        with tm.no_grad():
            h[0] = 0.0
    with pytest.raises(tm.InplaceError) as ei:
        y.backward(gradient=np.ones(y.shape) if y.ndim else None)
    _is(ei.value, tm.GraphError, RuntimeError)
    assert f"'{op}'" in str(ei.value)


@pytest.mark.parametrize("view", ["reshape", "T", "slice", "detach", "unsqueeze", "basic_index"])
def test_inplace_through_a_view_is_detected(view):
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    y = (x * x).sum()  # mul saved x
    with tm.no_grad():
        v = {"reshape": lambda: x.reshape(-1), "T": lambda: x.T, "slice": lambda: x[0:1],
             "detach": lambda: x.detach(), "unsqueeze": lambda: x.unsqueeze(0),
             "basic_index": lambda: x[1]}[view]()
        assert np.shares_memory(v.data, x.data)
        v.add_(1.0)
    with pytest.raises(tm.InplaceError, match="mul"):
        y.backward()


def test_inplace_on_base_is_detected_through_saved_view():
    x = f64([[1.0, 2.0], [3.0, 4.0]])
    v = x.T
    y = (v * v).sum()  # mul saved the view
    _modify(x)
    with pytest.raises(tm.InplaceError):
        y.backward()


def test_inplace_before_use_or_on_unrelated_tensors_is_fine():
    x = f64([1.0, 2.0])
    other = f64([5.0])
    _modify(x)  # before the graph is built
    y = (x * x).sum()
    _modify(other)  # unrelated
    copy = x.detach() + 0  # a copy, not a view
    copy.add_(10.0)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 2 * np.array([2.0, 3.0]))
    # the documented escape hatch: writing .data directly is not tracked
    z = (x * x).sum()
    x.data[...] = 0.0
    z.backward()


@pytest.mark.parametrize("how", ["setitem", "add_", "mul_", "copy_", "iadd"])
def test_inplace_write_of_a_grad_tensor_into_a_plain_tensor_is_not_silent(how):
    """In-place ops record no graph, so writing a value that requires grad into a plain tensor
    would silently lose its gradient: it must be refused (outside no_grad)."""
    w = f64([1.0, 2.0, 3.0])
    buf = tm.zeros(3, dtype="float64")

    def write():
        if how == "setitem":
            buf[0] = w[0] * 2.0
        elif how == "add_":
            buf.add_(w)
        elif how == "mul_":
            buf.mul_(w)
        elif how == "copy_":
            buf.copy_(w * 1.0)
        else:
            b = buf
            b += w

    with pytest.raises(tm.InplaceError) as ei:
        write()
    assert "grad" in str(ei.value)
    np.testing.assert_array_equal(buf.data, np.zeros(3))
    with tm.no_grad():
        write()  # explicitly untracked: allowed
    assert not buf.requires_grad


def test_reshape_to_incompatible_shape():
    with pytest.raises(tm.ShapeError) as ei:
        tm.zeros(2, 3).reshape(4, 2)
    _is(ei.value, ValueError)
    msg = str(ei.value).replace(" ", "")
    assert "reshape" in msg and "(2,3)" in msg and "(4,2)" in msg


@pytest.mark.parametrize("fn", [
    lambda t: t.sum(axis=2), lambda t: t.sum(axis=-3), lambda t: t.sum(axis=(0, 5)),
    lambda t: t.mean(axis=2), lambda t: t.max(axis=2), lambda t: t.min(axis=-3),
    lambda t: t.var(axis=2), lambda t: tm.logsumexp(t, axis=2), lambda t: tm.softmax(t, axis=2),
    lambda t: tm.log_softmax(t, axis=-3), lambda t: t.squeeze(4), lambda t: t.unsqueeze(4),
    lambda t: tm.concatenate([t, t], axis=2), lambda t: tm.stack([t, t], axis=4),
], ids=["sum", "sum_neg", "sum_tuple", "mean", "max", "min", "var", "logsumexp", "softmax",
        "log_softmax", "squeeze", "unsqueeze", "concatenate", "stack"])
def test_out_of_range_axis_is_a_shape_error(fn):
    t = tm.zeros(2, 3, requires_grad=True)
    with pytest.raises(tm.ShapeError) as ei:
        fn(t)
    _is(ei.value, ValueError)
    assert type(ei.value) is not np.exceptions.AxisError
    assert "axis" in str(ei.value) or "dimension" in str(ei.value)


def test_transpose_out_of_range_axis_is_a_shape_error():
    with pytest.raises(tm.ShapeError):
        tm.transpose(tm.zeros(2, 3), 0, 5)


@pytest.mark.parametrize("fn, name", [
    (lambda a: tm.linalg.solve(a, tm.ones(2, dtype="float64")), "solve"),
    (lambda a: tm.linalg.inv(a), "inv"),
])
@pytest.mark.parametrize("a", [np.zeros((2, 2)), np.array([[1.0, 2.0], [2.0, 4.0]])], ids=["zeros", "rank1"])
def test_singular_solve_and_inv(fn, name, a):
    with pytest.raises(tm.TinymetaError) as ei:
        fn(tm.tensor(a, requires_grad=True))
    _is(ei.value, ValueError)
    msg = str(ei.value)
    assert name in msg and "singular" in msg and "(2, 2)" in msg
    assert "pinv" in msg or "ridge" in msg  # the fix


def test_solve_shape_errors():
    with pytest.raises(tm.ShapeError, match="square"):
        tm.linalg.solve(tm.zeros(2, 3), tm.zeros(2))
    with pytest.raises(tm.ShapeError, match=r"\(3,\)"):
        tm.linalg.solve(tm.tensor(np.eye(2)), tm.zeros(3))


# ----------------------------------------------------------------------------- custom Functions


class Cube(tm.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2


class MulSin(tm.Function):
    """f(x, y) = x * y + sin(x)"""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        ctx.seen_needs = None
        return x * y + tm.sin(x)

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        ctx.seen_needs = tuple(ctx.needs_input_grad)
        gx = g * (y + tm.cos(x)) if ctx.needs_input_grad[0] else None
        gy = g * x if ctx.needs_input_grad[1] else None
        return gx, gy


def test_custom_function_forward_and_gradchecks():
    rng = np.random.default_rng(0)
    x = f64(rng.standard_normal((2, 3)))
    y = Cube.apply(x)
    np.testing.assert_allclose(y.data, x.data ** 3)
    assert y.requires_grad and y.grad_fn is not None
    assert tm.gradcheck(Cube.apply, [x])
    assert tm.gradgradcheck(Cube.apply, [x])
    a, b = f64(rng.standard_normal(3)), f64(rng.standard_normal(3))
    np.testing.assert_allclose(MulSin.apply(a, b).data, a.data * b.data + np.sin(a.data))
    assert tm.gradcheck(MulSin.apply, [a, b])
    assert tm.gradgradcheck(MulSin.apply, [a, b])


def test_custom_function_in_a_larger_graph_and_third_order():
    x = f64([0.5, -1.0])
    y = (tm.tanh(Cube.apply(x * 2.0)) + x).sum()
    y.backward()
    t = np.tanh(8 * x.data ** 3)
    np.testing.assert_allclose(x.grad.data, (1 - t ** 2) * 24 * x.data ** 2 + 1)
    x2 = f64([0.7])
    (g,) = tm.grad(Cube.apply(x2).sum(), [x2], create_graph=True)
    (gg,) = tm.grad(g.sum(), [x2], create_graph=True)
    (ggg,) = tm.grad(gg.sum(), [x2])
    np.testing.assert_allclose([g.item(), gg.item(), ggg.item()], [3 * 0.49, 6 * 0.7, 6.0])


def test_custom_function_needs_input_grad():
    x = f64([1.0, 2.0])
    y = tm.tensor([3.0, 4.0], dtype="float64")  # a constant
    out = MulSin.apply(x, y)
    ctx = out.grad_fn.op.ctx if hasattr(out.grad_fn, "op") else None
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, y.data + np.cos(x.data))
    assert ctx is not None and ctx.seen_needs == (True, False)
    assert MulSin.apply(tm.tensor([1.0]), tm.tensor([2.0])).requires_grad is False


def test_custom_function_wrong_number_of_grads():
    class Bad(tm.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g  # one gradient for two inputs

    x, y = f64([1.0]), f64([2.0])
    with pytest.raises(tm.GraphError) as ei:
        Bad.apply(x, y).sum().backward()
    _is(ei.value, RuntimeError)
    msg = str(ei.value)
    assert "Bad" in msg and "1" in msg and "2" in msg


# ----------------------------------------------------------------------------- gradcheck itself


class WrongForSecondInput(tm.Function):
    """x * y with the derivative for y wrong at element 2 only."""

    @staticmethod
    def forward(ctx, x, y):
        ctx.save_for_backward(x, y)
        return x * y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return g * y, g * x + g * np.array([0.0, 0.0, 0.5])


def test_gradcheck_catches_a_wrong_derivative_and_says_where():
    x, y = f64([1.0, 2.0, 3.0]), f64([-1.0, 0.5, 2.0])
    with pytest.raises(tm.GradcheckError) as ei:
        tm.gradcheck(WrongForSecondInput.apply, [x, y])
    _is(ei.value, RuntimeError)
    msg = str(ei.value)
    assert "input 1" in msg and "element 2" in msg
    assert "analytic 3.5" in msg and "numeric 3" in msg
    assert tm.gradcheck(WrongForSecondInput.apply, [x, y], raise_exception=False) is False
    np.testing.assert_array_equal(x.data, [1.0, 2.0, 3.0])  # inputs restored


def test_gradcheck_catches_a_wrong_cube_derivative():
    class BadCube(Cube):  # the same forward; the derivative's constant is wrong on purpose
        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 2 * x ** 2

    with pytest.raises(tm.GradcheckError, match="analytic .* numeric"):
        tm.gradcheck(BadCube.apply, [f64([0.5, -1.0])])


def test_non_differentiable_backward_passes_gradcheck_fails_gradgradcheck():
    class CubeNumpyBackward(tm.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.x = x.data.copy()  # a NumPy constant: its second derivative is lost
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            return g * (3 * ctx.x ** 2)

    x = f64([0.5, -1.2, 2.0])
    assert tm.gradcheck(CubeNumpyBackward.apply, [x])
    with pytest.raises(tm.GradcheckError) as ei:
        tm.gradgradcheck(CubeNumpyBackward.apply, [x])
    assert "input 0" in str(ei.value)
    assert tm.gradgradcheck(Cube.apply, [x])


def test_gradcheck_on_builtin_op_with_a_wrong_second_derivative_is_caught():
    """gradgradcheck sees through create_graph: a leaky product rule is caught too."""
    def f(x):
        return x * tm.tensor(x.data)  # second factor detached: the first derivative is half
    x = f64([0.5, 1.5])
    with pytest.raises(tm.GradcheckError):
        tm.gradcheck(f, [x])


def test_gradcheck_requires_float64():
    x = tm.tensor([1.0, 2.0], requires_grad=True)
    for check in (tm.gradcheck, tm.gradgradcheck):
        with pytest.raises(tm.GradcheckError) as ei:
            check(tm.tanh, [x])
        assert "float64" in str(ei.value) and "float32" in str(ei.value)
    with pytest.raises(tm.GradcheckError, match="requires"):
        tm.gradcheck(tm.tanh, [tm.tensor([1.0], dtype="float64")])


def test_gradcheck_on_non_contiguous_input():
    a = np.random.default_rng(0).standard_normal((3, 2)).T
    x = tm.tensor(a, requires_grad=True)
    assert x.dtype == np.float64
    assert tm.gradcheck(lambda t: t * 2.0, [x])


def test_gradcheck_multiple_outputs_and_constants():
    x, c = f64([0.3, -0.4]), np.array([2.0, 3.0])
    assert tm.gradcheck(lambda t, k: (t * k, tm.exp(t).sum()), [x, tm.tensor(c)])
    assert tm.gradgradcheck(lambda t: (t * t * c, tm.sin(t)), [x])


# ----------------------------------------------------------------------------- dtypes and creation


def test_default_dtype():
    assert tm.get_default_dtype() == np.float32
    assert tm.tensor([1.0]).dtype == np.float32
    assert tm.tensor(1.5).dtype == np.float32
    assert tm.tensor([1, 2]).dtype == np.int64
    assert tm.tensor([True]).dtype == np.bool_
    assert tm.tensor(np.array([1.0])).dtype == np.float64  # NumPy arrays keep their dtype
    assert tm.tensor(np.array([1.0], dtype=np.float16)).dtype == np.float16
    assert tm.tensor([1.0], dtype="float64").dtype == np.float64
    assert tm.zeros(2).dtype == np.float32 and tm.randn(2, rng=0).dtype == np.float32
    prev = tm.get_default_dtype()
    try:
        tm.set_default_dtype("float64")
        assert tm.get_default_dtype() == np.float64
        assert tm.tensor([1.0]).dtype == np.float64
        assert tm.ones(2).dtype == np.float64 and tm.full(2, 1.0).dtype == np.float64
        assert tm.tensor([1, 2]).dtype == np.int64
        assert tm.tensor(np.array([1.0], dtype=np.float32)).dtype == np.float32
        tm.set_default_dtype(np.float32)
        assert tm.tensor([1.0]).dtype == np.float32
        with pytest.raises(tm.DTypeError, match="float"):
            tm.set_default_dtype("int32")
        assert tm.get_default_dtype() == np.float32
    finally:
        tm.set_default_dtype(prev)


def test_creation_functions():
    z = tm.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float32 and not z.requires_grad and (z.data == 0).all()
    assert tm.zeros((2, 3)).shape == (2, 3)
    o = tm.ones(4, requires_grad=True)
    assert o.requires_grad and o.is_leaf and (o.data == 1).all()
    f = tm.full((2, 2), 1.5, dtype="float64")
    assert f.dtype == np.float64 and (f.data == 1.5).all()
    assert tm.full(3, 2.0).shape == (3,)
    assert tm.arange(5).tolist() == [0, 1, 2, 3, 4] and tm.arange(5).dtype == np.int64
    assert tm.arange(2, 8, 3).tolist() == [2, 5]
    a = tm.arange(0, 1, 0.25)
    assert a.dtype == np.float32 and a.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert tm.arange(3, dtype="float64", requires_grad=True).requires_grad
    zl = tm.zeros_like(tm.tensor(np.ones((2, 1), dtype=np.float64)))
    assert zl.shape == (2, 1) and zl.dtype == np.float64 and (zl.data == 0).all()
    assert tm.zeros_like(np.ones(3, dtype=np.int32)).dtype == np.int32
    assert tm.zeros_like(tm.ones(2), requires_grad=True).requires_grad


def test_randn_rng_reproducible_and_generator():
    a, b = tm.randn(3, 4, rng=0), tm.randn(3, 4, rng=0)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.shape == (3, 4) and a.dtype == np.float32
    assert not np.array_equal(a.data, tm.randn(3, 4, rng=1).data)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    c1, c2 = tm.randn(5, rng=g1), tm.randn(5, rng=g1)
    assert not np.array_equal(c1.data, c2.data)  # the generator advances
    np.testing.assert_array_equal(c1.data, tm.randn(5, rng=g2).data)
    np.testing.assert_allclose(c1.data, np.random.default_rng(7).standard_normal(5).astype(np.float32))
    tm.manual_seed(3)
    d1 = tm.randn(4)
    tm.manual_seed(3)
    np.testing.assert_array_equal(d1.data, tm.randn(4).data)
    w = tm.randn((2, 2), rng=0, requires_grad=True, dtype="float64")
    assert w.requires_grad and w.dtype == np.float64
    with pytest.raises(tm.TinymetaError):
        tm.randn(2, rng="seed")


def test_arange_with_step_keyword_only():
    assert tm.arange(10, step=2).tolist() == [0, 2, 4, 6, 8]


# ----------------------------------------------------------------------------- Tensor API


def test_tensor_api_basics():
    x = tm.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.numel() == 6 and len(x) == 2
    assert x.T.shape == (3, 2)
    np.testing.assert_array_equal(x.T.data, x.data.T)
    assert x.reshape(3, 2).shape == (3, 2) and x.reshape((3, 2)).shape == (3, 2)
    assert x.reshape(-1).shape == (6,) and x.view(6, 1).shape == (6, 1)
    assert x.sum().item() == 21.0 and isinstance(x.sum().item(), float)
    assert isinstance(x.numpy(), np.ndarray) and x.numpy() is x.data
    with pytest.raises(tm.TinymetaError):
        x.item()
    r = repr(x * 2)
    assert "tensor(" in r and "grad_fn" in r


def test_detach_stops_gradient():
    x = f64([1.0, 2.0])
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and np.shares_memory(d.data, x.data)
    y = (d * x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.data, x.data)  # only the non-detached factor


def test_requires_grad_underscore():
    x = tm.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])
    x.requires_grad_(False)
    assert not x.requires_grad
    y = f64([1.0]) * 2
    with pytest.raises(tm.GraphError, match="detach"):
        y.requires_grad_(False)


def test_comparisons_return_bool_tensors_without_grad():
    x = f64([1.0, 2.0, 3.0])
    for r in (x > 1.5, x >= 2.0, x < 2.0, x <= 1.0, x == 2.0, x != 2.0, x > tm.tensor([0.0, 5.0, 1.0])):
        assert isinstance(r, tm.Tensor) and r.dtype == np.bool_
        assert not r.requires_grad and r.grad_fn is None
    np.testing.assert_array_equal((x > 1.5).data, [False, True, True])
    np.testing.assert_array_equal((x == tm.tensor([1.0, 0.0, 3.0])).data, [True, False, True])


def test_indexing_with_tensors():
    x = f64(np.arange(12.0).reshape(4, 3))
    idx = tm.tensor([3, 1, 3])
    y = x[idx]
    np.testing.assert_array_equal(y.data, x.data[[3, 1, 3]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data[:, 0], [0, 1, 0, 2])
    m = x > 5.0
    np.testing.assert_array_equal(x[m].data, x.data[x.data > 5.0])
    (g,) = tm.grad(x[m].sum(), [x])
    np.testing.assert_array_equal(g.data, (x.data > 5.0).astype(float))


def test_pos_and_builtin_abs_and_float():
    x = f64([-2.0])
    assert (+x) is x
    assert abs(x).item() == 2.0
    assert float(x * 1) == -2.0

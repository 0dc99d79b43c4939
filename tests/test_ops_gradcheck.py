"""Every differentiable op, held to three standards, in float64:

1. its forward equals NumPy's (a wrong forward with a matching backward still fails);
2. ``tm.gradcheck``: its first derivative equals central finite differences;
3. ``tm.gradgradcheck``: so does its second derivative (the backward is differentiable).

Shapes, axes and keepdims are drawn by hypothesis (broadcasting pairs, negative axes, 0-d to
3-d, at most ~24 elements so finite differences stay cheap). Values stay away from kinks
(|x| >= 0.2 for abs/relu, distinct values for max/min, positive bases for log/sqrt/pow,
well-conditioned matrices for solve/inv/pinv). The whole module runs twice: numba kernels
on, then off.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymeta as tm

FEW = settings(max_examples=15, deadline=None, database=None)
SOME = settings(max_examples=20, deadline=None, database=None)

seeds = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module", params=[True, False], ids=["jit", "nojit"], autouse=True)
def kernels(request):
    """Run every test of this module with the compiled kernels on, then off."""
    prev = tm.kernels.enabled()
    tm.kernels.set_enabled(request.param)
    try:
        yield request.param
    finally:
        tm.kernels.set_enabled(prev)


# ----------------------------------------------------------------------------- helpers


def leaf(a):
    """A fresh float64 leaf owning a copy of ``a`` (gradcheck perturbs inputs in place)."""
    return tm.tensor(np.array(a, dtype=np.float64), requires_grad=True)


def check(fn, arrays, ref=None, gg=True, rtol_fwd=1e-9, **tol):
    """Forward vs ``ref`` (NumPy), grad shapes/dtypes, gradcheck, and gradgradcheck."""
    xs = [leaf(a) for a in arrays]
    out = fn(*xs)
    assert isinstance(out, tm.Tensor)
    assert out.dtype == np.float64, out.dtype
    assert out.requires_grad and out.grad_fn is not None
    if ref is not None:
        expected = np.asarray(ref(*[np.array(a, dtype=np.float64) for a in arrays]))
        assert out.shape == expected.shape, (out.shape, expected.shape)
        np.testing.assert_allclose(out.data, expected, rtol=rtol_fwd, atol=1e-12)
    # Gradients come back in the inputs' shapes and dtypes (un-broadcast in one place).
    w = np.random.default_rng(1).standard_normal(out.shape)
    gs = tm.grad((out * w).sum(), xs, allow_unused=True)
    for g, x in zip(gs, xs):
        if g is not None:
            assert g.shape == x.shape and g.dtype == x.dtype, (g.shape, x.shape, g.dtype)
    assert tm.gradcheck(fn, xs, **tol) is True
    if gg:
        assert tm.gradgradcheck(fn, xs, **tol) is True
    for x, a in zip(xs, arrays):  # gradcheck restores what it perturbs
        np.testing.assert_array_equal(x.data, np.asarray(a, dtype=np.float64))


def vals(rng, shape, lo=0.2, hi=1.5):
    """Random signs, magnitudes in [lo, hi]: clear of the kink at 0."""
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], size=shape)


def positive(rng, shape, lo=0.5, hi=2.0):
    return rng.uniform(lo, hi, shape)


def distinct(rng, shape):
    """Values at least 0.15 apart: no ties for max/min (ties are non-differentiable)."""
    n = int(np.prod(shape))
    v = rng.permutation(n) * 0.25 - 0.125 * n + rng.uniform(-0.05, 0.05, n)
    return v.reshape(shape)


def away_from(rng, shape, kinks, gap=0.1):
    """Uniform in [-1.5, 1.5], pushed at least ``gap`` away from every kink."""
    x = rng.uniform(-1.5, 1.5, shape)
    for p in kinks:
        d = x - p
        x = np.where(np.abs(d) < gap, p + np.where(d >= 0, gap, -gap) + d, x)
    return x


# ----------------------------------------------------------------------------- strategies


@st.composite
def shapes(draw, min_dims=0, max_dims=3, max_size=4, max_numel=24):
    shape = tuple(draw(st.lists(st.integers(1, max_size), min_size=min_dims, max_size=max_dims)))
    while int(np.prod(shape)) > max_numel:  # shrink the largest dimension until small
        i = int(np.argmax(shape))
        shape = shape[:i] + (shape[i] - 1,) + shape[i + 1:]
    return shape


@st.composite
def broadcastable(draw, n=2, **kw):
    """``n`` shapes that broadcast together: a base shape, each operand dropping some
    leading dimensions and setting some others to 1."""
    base = draw(shapes(**kw))
    out = []
    for _ in range(n):
        nd = draw(st.integers(0, len(base)))
        out.append(tuple(1 if draw(st.booleans()) else d for d in base[len(base) - nd:]))
    return out


@st.composite
def axis_spec(draw, min_dims=0):
    """(shape, axis, keepdims) with axis None, an int (maybe negative) or a tuple."""
    shape = draw(shapes(min_dims=min_dims))
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"])) if nd else "none"
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-nd, nd - 1))
    else:
        axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
        axis = tuple(a - nd if draw(st.booleans()) else a for a in axes)
    return shape, axis, draw(st.booleans())


# ----------------------------------------------------------------------------- the fixture works


def test_kernel_switch_is_applied(kernels):
    if kernels and tm.kernels.info()["numba_available"] is False:
        pytest.skip("numba unavailable")
    assert tm.kernels.enabled() is kernels


# ----------------------------------------------------------------------------- binary arithmetic

BINARY = {
    # name: (fn, numpy reference, value maker for a, value maker for b)
    "add": (tm.add, np.add, vals, vals),
    "add_op": (lambda a, b: a + b, np.add, vals, vals),
    "sub": (tm.sub, np.subtract, vals, vals),
    "sub_op": (lambda a, b: a - b, np.subtract, vals, vals),
    "mul": (tm.mul, np.multiply, vals, vals),
    "mul_op": (lambda a, b: a * b, np.multiply, vals, vals),
    "div": (tm.div, np.divide, vals, lambda r, s: vals(r, s, 0.5, 1.5)),
    "div_op": (lambda a, b: a / b, np.divide, vals, lambda r, s: vals(r, s, 0.5, 1.5)),
    "pow_tensor_tensor": (tm.pow, np.power, positive, lambda r, s: r.uniform(-2, 2, s)),
    "pow_op": (lambda a, b: a ** b, np.power, positive, lambda r, s: r.uniform(-2, 2, s)),
    # a - b is never within 0.3 of 0: integer + 0.3 vs integer + 0.7 (plus small noise)
    "maximum": (tm.maximum, np.maximum,
                lambda r, s: r.integers(-2, 3, s) + 0.3 + r.uniform(-0.05, 0.05, s),
                lambda r, s: r.integers(-2, 3, s) + 0.7 + r.uniform(-0.05, 0.05, s)),
    "minimum": (tm.minimum, np.minimum,
                lambda r, s: r.integers(-2, 3, s) + 0.7 + r.uniform(-0.05, 0.05, s),
                lambda r, s: r.integers(-2, 3, s) + 0.3 + r.uniform(-0.05, 0.05, s)),
    "maximum_method": (lambda a, b: a.maximum(b), np.maximum,
                       lambda r, s: r.integers(-2, 3, s) + 0.3 + r.uniform(-0.05, 0.05, s),
                       lambda r, s: r.integers(-2, 3, s) + 0.7 + r.uniform(-0.05, 0.05, s)),
}


@pytest.mark.parametrize("name", list(BINARY))
@FEW
@given(pair=broadcastable(), seed=seeds)
def test_binary_broadcasting(name, pair, seed):
    fn, ref, make_a, make_b = BINARY[name]
    rng = np.random.default_rng(seed)
    sa, sb = pair
    check(fn, [make_a(rng, sa), make_b(rng, sb)], ref)


CONST = np.array([[0.7, -1.3, 2.0]])
SCALAR_CASES = {
    # tensor with Python scalars / NumPy constants, both sides; pow with scalar exponents
    "add_scalar": (lambda x: x + 2.5, lambda x: x + 2.5, vals),
    "radd_scalar": (lambda x: 2.5 + x, lambda x: 2.5 + x, vals),
    "rsub_scalar": (lambda x: 2.5 - x, lambda x: 2.5 - x, vals),
    "rmul_ndarray": (lambda x: CONST * x, lambda x: CONST * x, vals),
    "sub_ndarray": (lambda x: x - CONST, lambda x: x - CONST, vals),
    "rdiv_scalar": (lambda x: 2.0 / x, lambda x: 2.0 / x, lambda r, s: vals(r, s, 0.5, 1.5)),
    "rdiv_ndarray": (lambda x: CONST / x, lambda x: CONST / x, lambda r, s: vals(r, s, 0.5, 1.5)),
    "neg": (tm.neg, np.negative, vals),
    "neg_op": (lambda x: -x, np.negative, vals),
    "pow_2": (lambda x: x ** 2, lambda x: x ** 2, vals),
    "pow_3": (lambda x: tm.pow(x, 3), lambda x: x ** 3, vals),
    "pow_int_negative": (lambda x: x ** -2, lambda x: x ** -2.0, lambda r, s: vals(r, s, 0.5, 1.5)),
    "pow_half": (lambda x: x ** 0.5, np.sqrt, positive),
    "pow_minus_1.5": (lambda x: x ** -1.5, lambda x: x ** -1.5, positive),
    "pow_1": (lambda x: x ** 1, lambda x: x, vals),
    "rpow_scalar": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, vals),
    "rpow_e": (lambda x: tm.pow(np.e, x), np.exp, vals),
    "rpow_ndarray": (lambda x: np.array([1.5, 3.0, 0.5]) ** x,
                     lambda x: np.array([1.5, 3.0, 0.5]) ** x, vals),
}


@pytest.mark.parametrize("name", list(SCALAR_CASES))
@FEW
@given(shape=st.sampled_from([(), (3,), (2, 3), (1, 3), (4, 1, 3)]), seed=seeds)
def test_with_constants(name, shape, seed):
    fn, ref, make = SCALAR_CASES[name]
    check(fn, [make(np.random.default_rng(seed), shape)], ref)


def test_pow_derivatives_at_zero_base():
    x = tm.tensor([0.0, 2.0], dtype="float64", requires_grad=True)
    (g,) = tm.grad((x ** 0).sum(), [x])
    np.testing.assert_array_equal(g.data, [0.0, 0.0])
    (g,) = tm.grad((x ** 1).sum(), [x], create_graph=True)
    (gg,) = tm.grad(g.sum(), [x], allow_unused=True)
    assert gg is None or np.array_equal(gg.data, [0.0, 0.0])
    # a cubic polynomial's Hessian at 0 is finite
    H = tm.func.hessian(lambda t: (t ** 3 + 2.0 * t ** 1 + t ** 0).sum())(np.zeros(2))
    np.testing.assert_array_equal(H.data, np.zeros((2, 2)))


# ----------------------------------------------------------------------------- matmul and linear


@st.composite
def matmul_shapes(draw):
    n, k, m = (draw(st.integers(1, 3)) for _ in range(3))
    kind = draw(st.sampled_from(["2d", "batched", "1d@2d", "2d@1d", "1d@1d", "1d@batched",
                                 "batched@1d"]))
    batch_a, batch_b = draw(broadcastable(max_dims=2, max_size=3, max_numel=6))
    if kind == "2d":
        return (n, k), (k, m)
    if kind == "batched":
        return batch_a + (n, k), batch_b + (k, m)
    if kind == "1d@2d":
        return (k,), (k, m)
    if kind == "2d@1d":
        return (n, k), (k,)
    if kind == "1d@1d":
        return (k,), (k,)
    if kind == "1d@batched":
        return (k,), batch_b + (k, m)
    return batch_a + (n, k), (k,)


@FEW
@given(sh=matmul_shapes(), seed=seeds, op=st.sampled_from(["fn", "operator"]))
def test_matmul(sh, seed, op):
    rng = np.random.default_rng(seed)
    fn = tm.matmul if op == "fn" else (lambda a, b: a @ b)
    check(fn, [rng.standard_normal(sh[0]), rng.standard_normal(sh[1])], np.matmul)


@pytest.mark.parametrize("sa, sb", [((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 2)), ((2, 3, 4), (4, 2)),
                                    ((4,), (2, 4, 3)), ((2, 3, 4), (4,)), ((4,), (4,)),
                                    ((1, 3), (3, 1))])
def test_matmul_named_shapes(sa, sb):
    rng = np.random.default_rng(0)
    check(tm.matmul, [rng.standard_normal(sa), rng.standard_normal(sb)], np.matmul)


def _linear_ref(x, w, b=None):
    y = np.matmul(x, np.swapaxes(w, -1, -2))
    if b is not None:
        y = y + (b if b.ndim == 1 else b[..., None, :])
    return y


LINEAR_CASES = {
    "2d_with_bias": ((4, 3), (2, 3), (2,)),
    "2d_no_bias": ((4, 3), (2, 3), None),
    "single_row": ((1, 3), (2, 3), (2,)),
    "batched_weights": ((2, 4, 3), (2, 5, 3), (2, 5)),
    "shared_x_batched_weights": ((4, 3), (2, 2, 3), (2, 2)),
    "batched_x_shared_weights": ((2, 3, 3), (2, 3), (2,)),
    "batched_no_bias": ((2, 2, 3), (2, 4, 3), None),
}


@pytest.mark.parametrize("case", list(LINEAR_CASES))
def test_linear(case):
    sx, sw, sb = LINEAR_CASES[case]
    rng = np.random.default_rng(len(case))
    arrays = [rng.standard_normal(sx), rng.standard_normal(sw)]
    if sb is not None:
        arrays.append(rng.standard_normal(sb))
    check(tm.linear, arrays, _linear_ref)


def test_linear_one_dimensional_input():
    rng = np.random.default_rng(0)
    check(tm.linear, [rng.standard_normal(3), rng.standard_normal((2, 3)), rng.standard_normal(2)],
          _linear_ref)


# ----------------------------------------------------------------------------- elementwise math

UNARY = {
    # name: (fn, numpy reference, value maker)
    "exp": (tm.exp, np.exp, vals),
    "exp_method": (lambda x: x.exp(), np.exp, vals),
    "log": (tm.log, np.log, positive),
    "log_method": (lambda x: x.log(), np.log, positive),
    "sqrt": (tm.sqrt, np.sqrt, positive),
    "abs": (tm.abs, np.abs, vals),
    "abs_builtin": (lambda x: abs(x), np.abs, vals),
    "sin": (tm.sin, np.sin, vals),
    "cos": (tm.cos, np.cos, vals),
    "tanh": (tm.tanh, np.tanh, vals),
    "tanh_method": (lambda x: x.tanh(), np.tanh, vals),
    "sigmoid": (tm.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x)), vals),
    "relu": (tm.relu, lambda x: np.maximum(x, 0.0), vals),
    "relu_method": (lambda x: x.relu(), lambda x: np.maximum(x, 0.0), vals),
    "leaky_relu_default": (tm.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), vals),
    "leaky_relu_0.2": (lambda x: tm.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x), vals),
    "softplus": (tm.softplus, lambda x: np.log1p(np.exp(x)), vals),
    "clip": (lambda x: tm.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
             lambda r, s: away_from(r, s, [-0.5, 0.5])),
    "clip_min_only": (lambda x: x.clip(min=-0.3), lambda x: np.maximum(x, -0.3),
                      lambda r, s: away_from(r, s, [-0.3])),
    "clip_max_only": (lambda x: tm.clip(x, max=0.4), lambda x: np.minimum(x, 0.4),
                      lambda r, s: away_from(r, s, [0.4])),
    "composite": (lambda x: tm.sigmoid(x.tanh() * x.sin()) + tm.softplus(-x) * x.exp(),
                  lambda x: 1 / (1 + np.exp(-np.tanh(x) * np.sin(x))) + np.log1p(np.exp(-x)) * np.exp(x),
                  vals),
}


@pytest.mark.parametrize("name", list(UNARY))
@FEW
@given(shape=shapes(), seed=seeds)
def test_elementwise(name, shape, seed):
    fn, ref, make = UNARY[name]
    check(fn, [make(np.random.default_rng(seed), shape)], ref)


@SOME
@given(shapes3=broadcastable(n=3), seed=seeds, scalar_branch=st.sampled_from([None, "x", "y"]))
def test_where(shapes3, seed, scalar_branch):
    rng = np.random.default_rng(seed)
    sc, sx, sy = shapes3
    cond = rng.random(sc) < 0.5
    x, y = rng.standard_normal(sx), rng.standard_normal(sy)
    if scalar_branch is None:
        check(lambda a, b: tm.where(cond, a, b), [x, y], lambda a, b: np.where(cond, a, b))
    elif scalar_branch == "x":
        check(lambda b: tm.where(tm.tensor(cond), 0.5, b), [y], lambda b: np.where(cond, 0.5, b))
    else:
        check(lambda a: tm.where(cond, a, -2.0), [x], lambda a: np.where(cond, a, -2.0))


# ----------------------------------------------------------------------------- reductions

REDUCTIONS = {
    # name: (numpy reference, value maker)
    "sum": (np.sum, vals),
    "mean": (np.mean, vals),
    "max": (np.max, distinct),
    "min": (np.min, distinct),
    "var": (np.var, vals),
    "logsumexp": (lambda x, axis=None, keepdims=False:
                  np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)), vals),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
@SOME
@given(spec=axis_spec(), seed=seeds, method=st.booleans())
def test_reduction(name, spec, seed, method):
    shape, axis, keepdims = spec
    ref, make = REDUCTIONS[name]
    if method:
        fn = lambda x: getattr(x, name)(axis=axis, keepdims=keepdims)  # noqa: E731
    else:
        fn = lambda x: getattr(tm, name)(x, axis=axis, keepdims=keepdims)  # noqa: E731
    check(fn, [make(np.random.default_rng(seed), shape)],
          lambda x: ref(x, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1), [0, -1]])
def test_reduction_defaults_and_list_axes(axis):
    x = distinct(np.random.default_rng(3), (3, 4))
    ax = tuple(axis) if isinstance(axis, list) else axis
    check(lambda t: t.sum(axis), [x], lambda a: np.sum(a, ax))
    check(lambda t: t.max(axis), [x], lambda a: np.max(a, ax))
    check(lambda t: tm.mean(t, axis), [x], lambda a: np.mean(a, ax))


def test_var_ddof():
    x = vals(np.random.default_rng(0), (3, 4))
    check(lambda t: tm.var(t, axis=1, ddof=1), [x], lambda a: np.var(a, axis=1, ddof=1))
    check(lambda t: tm.var(t, ddof=1), [x], lambda a: np.var(a, ddof=1))


def test_max_min_ties_split_gradient_evenly():
    x = tm.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype="float64", requires_grad=True)
    (g,) = tm.grad(tm.max(x, axis=1).sum(), [x])
    np.testing.assert_allclose(g.data, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    (g,) = tm.grad(tm.min(x), [x])
    np.testing.assert_allclose(g.data, [[1, 0, 0], [0, 0, 0]])


# ----------------------------------------------------------------------------- softmax family


@st.composite
def shape_and_int_axis(draw):
    shape = draw(shapes(min_dims=1))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


def _softmax_ref(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@SOME
@given(sa=shape_and_int_axis(), seed=seeds, name=st.sampled_from(["softmax", "log_softmax"]),
       method=st.booleans())
def test_softmax_family(sa, seed, name, method):
    shape, axis = sa
    x = np.random.default_rng(seed).standard_normal(shape) * 2
    fn = (lambda t: getattr(t, name)(axis=axis)) if method else (lambda t: getattr(tm, name)(t, axis=axis))
    ref = (lambda a: _softmax_ref(a, axis)) if name == "softmax" else \
        (lambda a: np.log(_softmax_ref(a, axis)))
    check(fn, [x], ref)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_default_axis_is_last(name):
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    ref = _softmax_ref(x, -1)
    check(getattr(tm, name), [x], lambda a: ref if name == "softmax" else np.log(ref))


@SOME
@given(n=st.integers(1, 5), c=st.integers(1, 5), seed=seeds,
       label_dtype=st.sampled_from([np.int64, np.int32]))
def test_softmax_cross_entropy(n, c, seed, label_dtype):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c)) * 2
    labels = rng.integers(0, c, n).astype(label_dtype)

    def ref(z):
        return -np.log(_softmax_ref(z, -1))[np.arange(n), labels]
    check(lambda z: tm.softmax_cross_entropy(z, labels), [logits], ref)


@st.composite
def mse_shapes(draw):
    """(pred shape, target shape, axis): equal shapes (the kernels' case) or shapes that
    broadcast (pred missing leading axes or with size-1 axes), whole-batch or per task."""
    shape = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    pred = list(shape)
    if draw(st.booleans()):
        pred = [1 if draw(st.booleans()) else s for s in pred][draw(st.integers(0, len(pred) - 1)):]
    if draw(st.booleans()):
        pred, shape = shape, pred  # the target is the narrower one
    full = np.broadcast_shapes(tuple(pred), tuple(shape))
    axis = tuple(range(1, len(full))) if draw(st.booleans()) and len(full) > 1 else None
    return tuple(pred), tuple(shape), axis


@SOME
@given(shapes=mse_shapes(), seed=seeds)
def test_mse(shapes, seed):
    pred_shape, target_shape, axis = shapes
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(pred_shape), rng.standard_normal(target_shape)
    check(lambda p, t: tm.mse(p, t, axis=axis), [pred, target],
          lambda p, t: np.mean((p - t) ** 2, axis=axis))


def test_mse_axis_forms_and_empty_inputs():
    p, t = leaf(np.arange(6.0).reshape(2, 3)), np.zeros((2, 3))
    np.testing.assert_allclose(tm.mse(p, t, axis=1).data, tm.mse(p, t, axis=(-1,)).data)
    with pytest.raises(tm.errors.ShapeError, match="axis 5"):
        tm.mse(p, t, axis=(5,))
    for shape, axis in (((0,), None), ((0, 4), (1,)), ((3, 0), (1,))):
        e = leaf(np.zeros(shape))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the mean of nothing is NaN
            loss = tm.mse(e, np.zeros(shape), axis=axis).sum()
        (g,) = tm.grad(loss, [e])
        assert g.shape == shape


@SOME
@given(shapes=mse_shapes(), seed=seeds)
def test_mse_grad(shapes, seed):
    """mse's derivative is a primitive of its own (the mse_backward kernel); its rules are
    checked directly here, to second order, as well as through mse's."""
    from tinymeta.ops import mse_grad
    pred_shape, target_shape, axis = shapes
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(pred_shape), rng.standard_normal(target_shape)
    full = np.broadcast_shapes(pred_shape, target_shape)
    reduced = np.mean(np.zeros(full), axis=axis).shape
    g = rng.standard_normal(reduced)
    n = int(np.prod(full)) // max(1, int(np.prod(reduced)))
    check(lambda g, p, t: mse_grad(g, p, t, axis=axis), [g, pred, target],
          lambda g, p, t: np.reshape(g, np.mean(np.zeros(full), axis=axis, keepdims=True).shape)
          * 2 / n * (p - t))


@SOME
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=seeds,
       lr_shape=st.sampled_from(["scalar", "full"]))
def test_sub_scaled(shape, seed, lr_shape):
    rng = np.random.default_rng(seed)
    p, d = rng.standard_normal(shape), rng.standard_normal(shape)
    lr = rng.random(() if lr_shape == "scalar" else tuple(shape)) + 0.1
    check(tm.sub_scaled, [p, lr, d], lambda p, lr, d: p - lr * d)


@SOME
@given(b=st.integers(1, 2), n=st.integers(1, 3), k=st.integers(1, 3), m=st.integers(1, 3), seed=seeds)
def test_matmul_nt_and_tn(b, n, k, m, seed):
    rng = np.random.default_rng(seed)
    check(tm.ops.matmul_nt, [rng.standard_normal((b, n, k)), rng.standard_normal((m, k))],
          lambda x, y: x @ np.swapaxes(y, -1, -2))
    check(tm.ops.matmul_tn, [rng.standard_normal((b, k, n)), rng.standard_normal((k, m))],
          lambda x, y: np.swapaxes(x, -1, -2) @ y)


def test_softmax_cross_entropy_int_tensor_labels():
    logits = np.random.default_rng(0).standard_normal((3, 4))
    labels = tm.tensor([3, 0, 0])
    assert labels.dtype == np.int64
    check(lambda z: tm.softmax_cross_entropy(z, labels), [logits],
          lambda z: -np.log(_softmax_ref(z, -1))[np.arange(3), [3, 0, 0]])


def test_softmax_cross_entropy_list_labels():
    logits = np.random.default_rng(0).standard_normal((3, 4))
    check(lambda z: tm.softmax_cross_entropy(z, [3, 0, 0]), [logits],
          lambda z: -np.log(_softmax_ref(z, -1))[np.arange(3), [3, 0, 0]])


def test_stable_at_large_logits():
    """Logits of +-1e4 (float32): exact, finite values and gradients, no overflow."""
    x = tm.tensor([[1e4, -1e4, 0.0]], requires_grad=True)
    cases = [
        (lambda t: tm.logsumexp(t, axis=-1), [1e4]),
        (lambda t: tm.softmax(t, axis=-1), [[1.0, 0.0, 0.0]]),
        (lambda t: tm.log_softmax(t, axis=-1), [[0.0, -2e4, -1e4]]),
        (tm.sigmoid, [[1.0, 0.0, 0.5]]),
        (tm.softplus, [[1e4, 0.0, np.log(2.0)]]),
        (lambda t: tm.softmax_cross_entropy(t, np.array([1])), [2e4]),
        (tm.tanh, [[1.0, -1.0, 0.0]]),
    ]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for fn, expected in cases:
            y = fn(x)
            assert y.dtype == np.float32
            np.testing.assert_allclose(y.data, expected, rtol=1e-6, atol=1e-6)
            (g,) = tm.grad(y.sum(), [x])
            assert np.isfinite(g.data).all()
    (g,) = tm.grad(tm.logsumexp(x, axis=-1).sum(), [x])
    np.testing.assert_allclose(g.data, [[1.0, 0.0, 0.0]])


# ----------------------------------------------------------------------------- shapes


def _factorizations(n):
    out = [(n,), (-1,), (1, n), (n, 1), (1, -1, 1)]
    for a in range(2, n + 1):
        if n % a == 0:
            out += [(a, n // a), (a, -1), (n // a, 1, a)]
    return out


@SOME
@given(data=st.data(), shape=shapes(), seed=seeds, tuple_form=st.booleans())
def test_reshape(data, shape, seed, tuple_form):
    n = int(np.prod(shape))
    target = data.draw(st.sampled_from(_factorizations(n)))
    fn = (lambda t: t.reshape(target)) if tuple_form else (lambda t: t.reshape(*target))
    check(fn, [np.random.default_rng(seed).standard_normal(shape)], lambda a: a.reshape(target))
    check(lambda t: tm.reshape(t, target), [np.random.default_rng(seed).standard_normal(shape)],
          lambda a: a.reshape(target), gg=False)


@SOME
@given(data=st.data(), shape=shapes(min_dims=1), seed=seeds)
def test_transpose(data, shape, seed):
    nd = len(shape)
    x = np.random.default_rng(seed).standard_normal(shape)
    perm = tuple(data.draw(st.permutations(range(nd))))
    d0, d1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    swapped = np.swapaxes(x, d0, d1)
    check(lambda t: tm.transpose(t, d0, d1), [x], lambda a: np.swapaxes(a, d0, d1))
    assert tm.transpose(leaf(x), d0, d1).shape == swapped.shape
    check(lambda t: tm.transpose(t, axes=perm), [x], lambda a: np.transpose(a, perm))
    check(lambda t: t.permute(*perm), [x], lambda a: np.transpose(a, perm), gg=False)
    check(lambda t: t.T, [x], lambda a: a.T, gg=False)
    check(tm.transpose, [x], np.transpose, gg=False)


@pytest.mark.parametrize("perm", [(1, 2, 0), (2, 0, 1), (0, 2, 1), (2, 1, 0)])
def test_transpose_3d_permutations(perm):
    """Cyclic permutations are not their own inverse: the backward must invert them."""
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    check(lambda t: tm.transpose(t, axes=perm), [x], lambda a: np.transpose(a, perm))
    check(lambda t: t.permute(perm), [x], lambda a: np.transpose(a, perm), gg=False)


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 3, 4)])
def test_transpose_negative_permutation(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    check(lambda t: tm.transpose(t, axes=(-1, 0, 1)), [x], lambda a: np.transpose(a, (2, 0, 1)))


def test_matrix_transpose_property():
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    check(lambda t: t.mT, [x], lambda a: np.swapaxes(a, -1, -2))


@SOME
@given(pair=broadcastable(), seed=seeds, form=st.sampled_from(["broadcast_to", "expand", "method"]))
def test_broadcast_to(pair, seed, form):
    s, other = pair
    target = np.broadcast_shapes(s, other)
    extra = (2,) if len(target) < 3 else ()  # also add a new leading axis
    target = extra + target
    x = np.random.default_rng(seed).standard_normal(s)
    fn = {"broadcast_to": lambda t: tm.broadcast_to(t, target),
          "expand": lambda t: tm.expand(t, *target),
          "method": lambda t: t.expand(target)}[form]
    check(fn, [x], lambda a: np.broadcast_to(a, target))


@SOME
@given(data=st.data(), base=shapes(max_dims=2), seed=seeds)
def test_squeeze_unsqueeze_flatten(data, base, seed):
    # insert some size-1 axes into ``base``
    shape = list(base)
    for _ in range(data.draw(st.integers(1, 2))):
        shape.insert(data.draw(st.integers(0, len(shape))), 1)
    shape = tuple(shape)
    nd = len(shape)
    x = np.random.default_rng(seed).standard_normal(shape)
    ones = [i for i, s in enumerate(shape) if s == 1]
    ax = data.draw(st.sampled_from(ones))
    ax = ax - nd if data.draw(st.booleans()) else ax
    check(tm.squeeze, [x], np.squeeze)
    check(lambda t: t.squeeze(ax), [x], lambda a: np.squeeze(a, ax))
    check(lambda t: tm.squeeze(t, tuple(ones)), [x], lambda a: np.squeeze(a, tuple(ones)), gg=False)
    uax = data.draw(st.integers(-nd - 1, nd))
    check(lambda t: tm.unsqueeze(t, uax), [x], lambda a: np.expand_dims(a, uax))
    start = data.draw(st.integers(0, nd - 1))
    check(lambda t: t.flatten(start), [x], lambda a: a.reshape(a.shape[:start] + (-1,)), gg=False)
    check(tm.flatten, [x], lambda a: a.reshape(-1), gg=False)


GETITEM = {
    # name: (shape, index); integer arrays with duplicates must add up in the backward
    "int": ((4, 3), 1),
    "negative_int": ((4, 3), -1),
    "slice": ((4, 3), slice(1, 3)),
    "slice_step": ((5, 3), slice(0, None, 2)),
    "negative_step": ((5, 3), slice(None, None, -1)),
    "negative_step_2": ((5, 3), (slice(4, 0, -2), slice(None, None, -1))),
    "int_and_slice": ((4, 3), (2, slice(0, 2))),
    "ellipsis_newaxis": ((2, 3, 2), (None, Ellipsis, 1)),
    "int_array_dups": ((4, 3), np.array([0, 2, 2, 0, 3])),
    "int_list_dups": ((4, 3), [1, 1, -1]),
    "int_array_2d": ((4, 3), np.array([[0, 1], [1, 1]])),
    "two_int_arrays": ((4, 3), (np.array([0, 0, 3]), np.array([2, 2, 1]))),
    "int_array_and_slice": ((4, 3), (slice(None), [0, 0, 2])),
    "int_array_slice_int_array": ((2, 3, 4), (np.array([1, 1]), slice(None), np.array([0, 3]))),
    "bool_mask_rows": ((4, 3), np.array([True, False, True, True])),
    "bool_mask_full": ((3, 4), np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 0]], dtype=bool)),
    "bool_mask_and_int_array": ((3, 4), (np.array([True, False, True]), np.array([1, 1]))),
    "bool_mask_and_slice": ((3, 4), (slice(1, None), np.array([True, False, False, True]))),
    "int_tensor": ((4, 3), "int_tensor"),
    "bool_tensor": ((4, 3), "bool_tensor"),
}


@pytest.mark.parametrize("name", list(GETITEM))
def test_getitem(name):
    shape, idx = GETITEM[name]
    x = np.random.default_rng(0).standard_normal(shape)
    if isinstance(idx, str) and idx == "int_tensor":
        idx, np_idx = tm.tensor([3, 0, 3]), np.array([3, 0, 3])
    elif isinstance(idx, str):
        np_idx = x > 0.1
        idx = tm.tensor(x) > 0.1
        assert idx.dtype == bool
    else:
        np_idx = np.asarray(idx) if isinstance(idx, list) else idx
    check(lambda t: t[idx], [x], lambda a: a[np_idx])


def test_getitem_duplicate_indices_accumulate():
    x = tm.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    (g,) = tm.grad(x[[0, 0, 2, 0]].sum(), [x])
    np.testing.assert_array_equal(g.data, [3.0, 0.0, 1.0])


@SOME
@given(data=st.data(), shape=shapes(min_dims=1, max_numel=12), seed=seeds)
def test_concatenate_and_stack(data, shape, seed):
    rng = np.random.default_rng(seed)
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    k = data.draw(st.integers(1, 3))
    parts = []
    for _ in range(k):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(rng.standard_normal(s))
    check(lambda *ts: tm.concatenate(ts, axis=axis), parts,
          lambda *ps: np.concatenate(ps, axis=axis))
    same = [rng.standard_normal(shape) for _ in range(k)]
    sax = data.draw(st.integers(-nd - 1, nd))
    check(lambda *ts: tm.stack(list(ts), axis=sax), same, lambda *ps: np.stack(ps, axis=sax))


def test_concatenate_with_constant():
    c = np.ones((1, 3))
    check(lambda a, b: tm.concatenate([a, c, b], axis=0), [np.zeros((2, 3)) + 0.5, np.arange(3.0)[None]],
          lambda a, b: np.concatenate([a, c, b]))


def test_astype():
    x = vals(np.random.default_rng(0), (2, 3))
    check(lambda t: t.astype("float64") * 2.0, [x], lambda a: a * 2.0)
    # through float32 and back: finite differences need a coarser step
    xs = [leaf(x)]
    y = tm.astype(xs[0], "float32")
    assert y.dtype == np.float32
    (g,) = tm.grad(y.sum(), xs)
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g.data, np.ones((2, 3)))
    assert tm.gradcheck(lambda t: (t.astype(np.float32) ** 2).astype(np.float64), xs,
                        eps=1e-2, atol=1e-3, rtol=1e-2)
    assert tm.gradgradcheck(lambda t: (t.astype(np.float32) ** 2).astype(np.float64), xs,
                            eps=1e-2, atol=1e-3, rtol=1e-2)


# ----------------------------------------------------------------------------- linear algebra


def well_conditioned(rng, shape):
    n = shape[-1]
    return rng.standard_normal(shape) + n * np.eye(n)


@FEW
@given(n=st.integers(1, 3), k=st.integers(1, 3), seed=seeds,
       batch=st.sampled_from([((), ()), ((2,), (2,)), ((1,), (2,)), ((2,), ())]))
def test_solve(n, k, seed, batch):
    rng = np.random.default_rng(seed)
    ba, bb = batch
    A = well_conditioned(rng, ba + (n, n))
    B = rng.standard_normal(bb + (n, k))
    check(tm.linalg.solve, [A, B], np.linalg.solve, rtol_fwd=1e-8)


@FEW
@given(n=st.integers(1, 4), seed=seeds)
def test_solve_vector_rhs(n, seed):
    rng = np.random.default_rng(seed)
    check(tm.linalg.solve, [well_conditioned(rng, (n, n)), rng.standard_normal(n)], np.linalg.solve,
          rtol_fwd=1e-8)


def test_solve_batched_matrix_vector_rhs():
    rng = np.random.default_rng(0)
    check(tm.linalg.solve, [well_conditioned(rng, (2, 3, 3)), rng.standard_normal(3)], np.linalg.solve,
          rtol_fwd=1e-8)


@FEW
@given(n=st.integers(1, 3), batch=st.sampled_from([(), (2,), (2, 1)]), seed=seeds)
def test_inv(n, batch, seed):
    check(tm.linalg.inv, [well_conditioned(np.random.default_rng(seed), batch + (n, n))],
          np.linalg.inv, rtol_fwd=1e-8)


@pytest.mark.parametrize("shape", [(3, 2), (2, 3), (3, 3), (4, 1), (1, 3), (2, 3, 2), (2, 2, 3)],
                         ids=["tall", "wide", "square", "column", "row", "batched_tall", "batched_wide"])
def test_pinv(shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape)
    m, n = shape[-2:]
    a[..., :min(m, n), :min(m, n)] += 2 * np.eye(min(m, n))  # full rank, well away from rank drops
    check(tm.linalg.pinv, [a], np.linalg.pinv, rtol_fwd=1e-8)


def test_linalg_compositions_second_order():
    """A ridge-regression head as closed-form learners use it: w = (X^T X + lam I)^-1 X^T y."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))

    def ridge(Xt, yt):
        A = Xt.T @ Xt + 0.5 * np.eye(3)
        return tm.linalg.solve(A, Xt.T @ yt)

    check(ridge, [X, y], lambda a, b: np.linalg.solve(a.T @ a + 0.5 * np.eye(3), a.T @ b), rtol_fwd=1e-8)
    check(lambda Xt: tm.linalg.pinv(Xt) @ y, [X], lambda a: np.linalg.pinv(a) @ y, rtol_fwd=1e-8)


# ----------------------------------------------------------------------------- third order

THIRD_ORDER = {
    # ops whose derivative rules are themselves differentiated twice more: broadcasting
    # (sum_to's rule), indexing (scatter's rule), concatenation, reductions, and the rest
    "broadcast_mul": (lambda x: (x * np.array([0.5, -1.0, 2.0])) ** 3, (2, 1)),
    "broadcast_to": (lambda x: tm.broadcast_to(x, (2, 3)) ** 3, (3,)),
    "getitem_dups": (lambda x: x[[0, 0, 2]] ** 3, (3,)),
    "getitem_slice": (lambda x: x[::-1, 1:] ** 3, (2, 3)),
    "concatenate": (lambda x: tm.concatenate([x, x * 2.0], axis=0) ** 3, (2, 2)),
    "sum_keepdims": (lambda x: tm.sum(x ** 2, axis=1, keepdims=True) ** 2, (2, 3)),
    "mean": (lambda x: tm.mean(x, axis=0) ** 3, (3, 2)),
    "tanh_sigmoid": (lambda x: tm.tanh(x) * tm.sigmoid(x), (4,)),
    "softmax": (lambda x: tm.softmax(x, axis=-1), (2, 3)),
    "log_softmax": (lambda x: tm.log_softmax(x, axis=0), (3, 2)),
    "logsumexp": (lambda x: tm.logsumexp(x, axis=1), (2, 3)),
    "matmul": (lambda x: (x @ x.T) ** 2, (2, 3)),
    "where_relu": (lambda x: tm.where(x.data > 0, x ** 3, tm.relu(x) * x), (4,)),
    "solve": (lambda x: tm.linalg.solve(x + 3.0 * np.eye(2), np.array([1.0, -1.0])), (2, 2)),
    "inv": (lambda x: tm.linalg.inv(x + 3.0 * np.eye(2)), (2, 2)),
}


@pytest.mark.parametrize("name", list(THIRD_ORDER))
def test_third_order(name):
    """gradgradcheck of the first derivative checks third derivatives."""
    fn, shape = THIRD_ORDER[name]
    x = leaf(vals(np.random.default_rng(0), shape))
    w = np.random.default_rng(1).standard_normal(fn(x).shape)

    def first(t):
        (g,) = tm.grad((fn(t) * w).sum(), [t], create_graph=True)
        return g

    assert tm.gradgradcheck(first, [x])


# ----------------------------------------------------------------------------- kernels vs NumPy, float32


@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4)])
def test_activation_kernels_match_numpy_float32(shape):
    """The hot paths (relu forward; relu/tanh/sigmoid backward) give NumPy's numbers in float32,
    whichever path runs."""
    rng = np.random.default_rng(0)
    a = vals(rng, shape).astype(np.float32)
    w = rng.standard_normal(shape).astype(np.float32)
    for fn, ref, dref in [
        (tm.relu, np.maximum(a, 0), (a > 0).astype(np.float32)),
        (tm.tanh, np.tanh(a), 1 - np.tanh(a) ** 2),
        (tm.sigmoid, 1 / (1 + np.exp(-a)), np.exp(-a) / (1 + np.exp(-a)) ** 2),
    ]:
        x = tm.tensor(a, requires_grad=True)
        y = fn(x)
        assert y.dtype == np.float32 and y.shape == shape
        np.testing.assert_allclose(y.data, ref, rtol=1e-6, atol=1e-7)
        (g,) = tm.grad(y, [x], grad_outputs=tm.tensor(w))
        assert g.dtype == np.float32
        np.testing.assert_allclose(g.data, w * dref, rtol=1e-5, atol=1e-6)


def test_linear_and_cross_entropy_kernels_match_numpy_float32():
    rng = np.random.default_rng(0)
    x = tm.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    W = tm.tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    b = tm.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    y = tm.linear(x, W, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, x.data @ W.data.T + b.data, rtol=1e-5, atol=1e-6)
    labels = np.array([0, 2, 1, 1, 0])
    loss = tm.softmax_cross_entropy(y, labels)
    p = _softmax_ref(y.data.astype(np.float64), -1)
    np.testing.assert_allclose(loss.data, -np.log(p[np.arange(5), labels]), rtol=1e-5)
    gx, gW, gb = tm.grad(loss.mean(), [x, W, b])
    d = (p - np.eye(3)[labels]) / 5
    np.testing.assert_allclose(gb.data, d.sum(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gW.data, d.T @ x.data, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gx.data, d @ W.data, rtol=1e-4, atol=1e-6)
    assert gx.dtype == gW.dtype == gb.dtype == np.float32


# ----------------------------------------------------------------------------- every op is covered

COVERED = {"add", "sub", "mul", "div", "neg", "pow", "matmul", "linear", "exp", "log", "sqrt", "abs",
           "sin", "cos", "tanh", "sigmoid", "relu", "leaky_relu", "softplus", "clip", "maximum",
           "minimum", "where", "sum", "mean", "max", "min", "var", "logsumexp", "softmax",
           "log_softmax", "softmax_cross_entropy", "reshape", "transpose", "broadcast_to", "expand",
           "squeeze", "unsqueeze", "flatten", "concatenate", "stack", "astype", "mse", "sub_scaled"}


def test_every_exported_op_is_covered_here():
    """A new op exported from tinymeta.ops must get a gradcheck in this file."""
    import tinymeta.ops as ops
    exported = {name for name in dir(tm) if callable(getattr(tm, name, None))
                and getattr(getattr(tm, name), "__module__", "") == ops.__name__}
    missing = exported - COVERED - {"Tensor"}
    assert not missing, f"ops without a gradcheck in this file: {sorted(missing)}"
    assert {"solve", "inv", "pinv"} <= set(tm.linalg.__all__)

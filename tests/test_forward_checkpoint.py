"""Forward mode (tm.func.jvp, jacfwd, hvp(mode="forward")) and gradient checkpointing
(tm.checkpoint, MAML(checkpoint=True)).

jvp and jacfwd are checked against tm.func.jacobian (reverse mode, one pass per output)
and against central finite differences, and they are differentiated again (gradcheck,
gradgradcheck through them) over broadcasting shapes. checkpoint must give the plain
function's values and derivatives to third order, refuse tensors it would silently drop,
and actually not keep intermediates (measured with tracemalloc, which NumPy reports to).
"""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymeta as tm
from tinymeta import meta, nn
from tinymeta.func import hvp, jacfwd, jacobian, jvp

SETTINGS = settings(max_examples=12, deadline=None)


def t64(a, grad=False):
    return tm.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together (size-1 axes and missing leading axes)."""
    ndim = draw(st.integers(0, 3))
    full = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    def sub():
        drop = draw(st.integers(0, ndim))
        return tuple(1 if draw(st.booleans()) else d for d in full[drop:])
    return sub(), sub(), draw(st.integers(0, 2 ** 16))


def f2(x, y):
    """A smooth function of two broadcasting inputs, nonlinear in both."""
    return (x * y).tanh() + x ** 2 * y.sin()


def contract(J, t, ndim_t):
    """J (out.shape + t.shape) applied to t."""
    return np.tensordot(J, t, axes=ndim_t) if ndim_t else J * t


# ----------------------------------------------------------------------------- jvp


@SETTINGS
@given(broadcast_pair())
def test_jvp_matches_jacobian_and_finite_differences(case):
    sx, sy, seed = case
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=sx), rng.normal(size=sy)
    tx, ty = rng.normal(size=sx), rng.normal(size=sy)
    out, jt = jvp(f2, (t64(x), t64(y)), (t64(tx), t64(ty)))
    assert np.allclose(out.numpy(), f2(t64(x), t64(y)).numpy())
    Jx, Jy = jacobian(f2, (0, 1))(t64(x), t64(y))
    want = contract(Jx.numpy(), tx, len(sx)) + contract(Jy.numpy(), ty, len(sy))
    np.testing.assert_allclose(jt.numpy(), want, rtol=1e-10, atol=1e-12)
    eps = 1e-6
    fd = (f2(t64(x + eps * tx), t64(y + eps * ty)).numpy()
          - f2(t64(x - eps * tx), t64(y - eps * ty)).numpy()) / (2 * eps)
    np.testing.assert_allclose(jt.numpy(), fd, rtol=1e-5, atol=1e-7)
    assert not jt.requires_grad and not out.requires_grad  # nothing asked for a graph


@SETTINGS
@given(broadcast_pair())
def test_jvp_is_differentiable_twice_in_primals_and_tangents(case):
    sx, sy, seed = case
    rng = np.random.default_rng(seed)
    x, y, tx, ty = (t64(rng.normal(size=s), grad=True) for s in (sx, sy, sx, sy))
    fn = lambda a, b, ta, tb: jvp(f2, (a, b), (ta, tb))[1]  # noqa: E731
    assert tm.gradcheck(fn, (x, y, tx, ty))
    assert tm.gradgradcheck(fn, (x, y, tx, ty))


@SETTINGS
@given(broadcast_pair())
def test_jacfwd_equals_jacobian_and_is_differentiable(case):
    sx, sy, seed = case
    rng = np.random.default_rng(seed)
    x, y = t64(rng.normal(size=sx), grad=True), t64(rng.normal(size=sy), grad=True)
    for fwd, rev in zip(jacfwd(f2, (0, 1))(x, y), jacobian(f2, (0, 1))(x, y)):
        assert fwd.shape == rev.shape
        np.testing.assert_allclose(fwd.numpy(), rev.numpy(), rtol=1e-10, atol=1e-12)
    assert tm.gradgradcheck(lambda a, b: jacfwd(f2, 1)(a, b), (x, y))


def test_jacfwd_tuple_outputs_and_unused_argument():
    x, z = t64([0.3, -0.7, 1.1]), t64([2.0])
    f = lambda a, b: (a.exp(), (a * a).sum())  # noqa: E731  (b unused)
    (jx1, jz1), (jx2, jz2) = jacfwd(f, (0, 1))(x, z)
    (rx1, rz1), (rx2, rz2) = jacobian(f, (0, 1))(x, z)
    np.testing.assert_allclose(jx1.numpy(), np.diag(np.exp(x.numpy())))
    np.testing.assert_allclose(jx2.numpy(), rx2.numpy())
    assert jx2.shape == () + (3,) and jz1.shape == (3, 1)
    assert not jz1.numpy().any() and not jz2.numpy().any()


def test_jvp_tuple_output_and_constant_function():
    x, t = t64([[1.0, 2.0]]), t64([[0.5, -1.0]])
    (a, b), (ja, jb) = jvp(lambda v: (v.sin(), v.sum() * 3.0), x, t)
    np.testing.assert_allclose(ja.numpy(), np.cos(x.numpy()) * t.numpy())
    assert jb.item() == pytest.approx(-1.5)
    _, jc = jvp(lambda v: t64([1.0, 2.0]), x, t)  # does not depend on v: J = 0
    assert jc.shape == (2,) and not jc.numpy().any()


def test_hvp_forward_over_reverse_equals_reverse_and_hessian():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(4, 4))
    f = lambda v: (v @ (t64(A) @ v)).tanh() + (v ** 3).sum()  # noqa: E731
    x, v = t64(rng.normal(size=4) * 0.3), t64(rng.normal(size=4))
    H = tm.func.hessian(f)(x).numpy()
    rev, fwd = hvp(f, x, v), hvp(f, x, v, mode="forward")
    np.testing.assert_allclose(rev.numpy(), H @ v.numpy(), rtol=1e-10)
    np.testing.assert_allclose(fwd.numpy(), rev.numpy(), rtol=1e-10)
    # Both differentiate again (third derivatives), and agree there too.
    xg = t64(x.numpy(), grad=True)
    assert tm.gradcheck(lambda a: hvp(f, a, v, mode="forward"), (xg,))
    two = lambda a, b: (a * b).sin().sum()  # noqa: E731  (several primals)
    p = (t64([0.1, 0.2]), t64([0.3, -0.4]))
    q = (t64([1.0, 0.0]), t64([0.0, 1.0]))
    for r, w in zip(hvp(two, p, q), hvp(two, p, q, mode="forward")):
        np.testing.assert_allclose(r.numpy(), w.numpy(), rtol=1e-12)


def test_jvp_argument_errors_name_the_problem():
    x = t64(np.ones((2, 3)))
    f = lambda v: v.exp()  # noqa: E731
    with pytest.raises(tm.ShapeError, match=r"jvp: tangent 0 has shape \(3,\) but primal 0 has shape \(2, 3\)"):
        jvp(f, x, t64(np.ones(3)))
    with pytest.raises(tm.DTypeError, match=r"jvp: tangent 0 has dtype float32 but primal 0 has dtype float64"):
        jvp(f, x, tm.tensor(np.ones((2, 3)), dtype="float32"))
    with pytest.raises(tm.DTypeError, match="tangent 0 has dtype int64"):
        jvp(f, x, np.ones((2, 3), dtype=np.int64))
    with pytest.raises(tm.ArgumentError, match="2 primal.* but 1 tangent"):
        jvp(lambda a, b: a * b, (x, x), (x,))
    with pytest.raises(tm.DTypeError, match="must return a Tensor"):
        jvp(lambda v: 3.0, x, x)
    with pytest.raises(tm.ArgumentError, match="mode must be"):
        hvp(lambda v: v.sum(), x, x, mode="sideways")
    # Python numbers take the primal's dtype: a list is a fine tangent.
    _, jt = jvp(f, t64([0.0, 1.0]), [1.0, 2.0])
    np.testing.assert_allclose(jt.numpy(), [1.0, 2.0 * np.e])


# ----------------------------------------------------------------------------- checkpoint


def block(x, w, b):
    return (x @ w + b).tanh().sin() * x.sum()


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(0, 2 ** 16))
def test_checkpoint_values_and_derivatives_match_plain(n, d, seed):
    rng = np.random.default_rng(seed)
    x, w, b = (t64(rng.normal(size=s), grad=True) for s in ((n, d), (d, 2), (2,)))
    ck = lambda *a: tm.checkpoint(block, *a)  # noqa: E731
    np.testing.assert_array_equal(ck(x, w, b).numpy(), block(x, w, b).numpy())
    assert tm.gradcheck(ck, (x, w, b))
    assert tm.gradgradcheck(ck, (x, w, b))


def test_checkpoint_third_order_and_tuple_outputs():
    rng = np.random.default_rng(3)
    x, w = t64(rng.normal(size=(2, 3)), grad=True), t64(rng.normal(size=3), grad=True)

    def pair(a, c):
        return (a * c).exp(), (a.sin() * c).sum(axis=0)

    def third(use_ckpt):
        u, v = tm.checkpoint(pair, x, w) if use_ckpt else pair(x, w)
        s = (u ** 2).sum() + (v ** 3).sum()
        gx, gw = tm.grad(s, [x, w], create_graph=True)
        hx, = tm.grad((gx * gw).sum(), [x], create_graph=True)
        return tm.grad((hx ** 2).sum(), [x, w])

    for a, b in zip(third(True), third(False)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert tm.gradgradcheck(lambda a, c: tm.checkpoint(pair, a, c), (x, w))


def test_checkpoint_keeps_no_intermediates():
    rng = np.random.default_rng(0)
    x = t64(rng.normal(size=(300, 300)), grad=True)  # 0.7 MB per intermediate

    def chain(a):
        for _ in range(10):
            a = (a * 1.01).tanh()
        return a

    def held(use_ckpt):
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        y = tm.checkpoint(chain, x) if use_ckpt else chain(x)
        kept = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        return kept, y

    (plain, y0), (ckpt, y1) = held(False), held(True)
    mb = x.numpy().nbytes
    assert plain > 10 * mb  # the plain graph holds the 20 intermediates
    assert ckpt < 2 * mb    # checkpoint holds the output only
    g0, = tm.grad(y0.sum(), [x])
    g1, = tm.grad(y1.sum(), [x])
    np.testing.assert_allclose(g1.numpy(), g0.numpy(), rtol=1e-13)


def test_checkpoint_refuses_tensors_it_would_drop():
    w = t64([1.0, 2.0], grad=True)
    x = t64([[0.5, -0.5]], grad=True)
    y = tm.checkpoint(lambda a: a * w, x)  # w only closed over
    with pytest.raises(tm.GraphError, match=r"shape \(2,\) that requires grad but was not passed"):
        y.sum().backward()
    assert x.grad is None and w.grad is None  # refused before anything accumulated
    with pytest.raises(tm.GraphError, match="was not passed"):  # no input needs grad: found at once
        tm.checkpoint(lambda a: a * w, t64([[0.5, -0.5]]))
    with pytest.raises(tm.DTypeError, match="argument 1 is a ndarray"):
        tm.checkpoint(lambda a, b: a, x, np.ones(2))
    with pytest.raises(tm.DTypeError, match="callable"):
        tm.checkpoint(x, x)
    with pytest.raises(tm.DTypeError, match="output 1 is a float"):
        tm.checkpoint(lambda a: (a, 1.0), x)
    with tm.no_grad():  # nothing can want a gradient: fn simply runs
        assert not tm.checkpoint(lambda a: a * w, x).requires_grad


def test_checkpoint_of_a_module_with_its_parameters_passed():
    model = nn.MLP([2, 8, 1], activation="tanh", rng=0)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    names = [n for n, _ in model.named_parameters()]
    x = t64(np.random.default_rng(0).normal(size=(5, 2)))

    def run(a, *w):
        return nn.functional_call(model, dict(zip(names, w)), a)

    params = model.parameters()
    loss = ((tm.checkpoint(run, x, *params)) ** 2).mean()
    got = tm.grad(loss, params)
    want = tm.grad((model(x) ** 2).mean(), params)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)


def test_checkpoint_sees_inplace_changes_of_its_inputs():
    x = t64([1.0, 2.0], grad=True)
    a = x * 1.0
    y = tm.checkpoint(lambda v: v.exp(), a)
    with tm.no_grad():
        a += 1.0
    with pytest.raises(tm.InplaceError):
        y.sum().backward()


# ----------------------------------------------------------------------------- MAML


def _maml_grads(checkpoint, first_order, steps=4, tasks=3, shots=6):
    model = nn.MLP([1, 16, 16, 1], activation="relu", rng=0)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    learner = meta.MAML(model, inner_lr=0.05, inner_steps=steps, first_order=first_order,
                        checkpoint=checkpoint)
    batch = meta.tasks.Sinusoid(k_support=shots, k_query=shots).sample(tasks, rng=0)
    loss = learner.meta_loss(batch)
    loss.backward()
    return loss.item(), [p.grad.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
def test_maml_checkpoint_gives_the_plain_gradients(first_order):
    loss0, g0 = _maml_grads(False, first_order)
    loss1, g1 = _maml_grads(True, first_order)
    assert loss1 == pytest.approx(loss0, rel=1e-14)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    if not first_order:  # and it is truly second order: the Hessian terms are there
        _, fo = _maml_grads(True, True)
        assert max(np.abs(a - b).max() for a, b in zip(g1, fo)) > 1e-4


def _maml_peak(steps, checkpoint, first_order=False, tasks=10, shots=50):
    model = nn.MLP([1, 40, 40, 1], activation="relu", rng=0)
    learner = meta.MAML(model, inner_lr=0.01, inner_steps=steps, first_order=first_order,
                        checkpoint=checkpoint)
    batch = meta.tasks.Sinusoid(k_support=shots, k_query=shots).sample(tasks, rng=0)
    tracemalloc.start()
    learner.meta_loss(batch).backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_maml_checkpoint_memory_is_flat_in_inner_steps():
    _maml_peak(1, False)  # warm-up: first calls allocate caches (kernels, imports)
    _maml_peak(1, True)
    plain2, plain10 = _maml_peak(2, False), _maml_peak(10, False)
    ck2, ck10 = _maml_peak(2, True), _maml_peak(10, True)
    assert plain10 > 2.5 * plain2         # plain second order grows with the steps
    assert ck10 <= 0.5 * plain10         # the bar, at a smaller size
    assert ck10 < 1.6 * ck2              # and checkpointed MAML barely grows

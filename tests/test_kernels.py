"""tinymeta.kernels: numba kernels == NumPy twins == textbook formulas, plus the
lazy-import, fallback and cache-folder behaviour (checked in fresh subprocesses)."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import tinymeta.kernels as K
from tinymeta.errors import ArgumentError, IndexingError

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "tinymeta")

# Same operation order in both paths, so float32 differs only where a sum is
# accumulated in another order (softmax), float64 hardly at all.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
DTYPES = [np.float32, np.float64]
FAST = settings(max_examples=25, deadline=None, database=None)


def floats_for(dt, lo=-10.0, hi=10.0):
    return st.floats(lo, hi, width=32 if dt == np.float32 else 64)


def array_of(data, dt, shape, lo=-10.0, hi=10.0):
    return data.draw(arrays(dt, shape, elements=floats_for(dt, lo, hi)))


def both(name, *args, copy_args=()):
    """Run the numba and the NumPy implementation; in-place args are copied per run."""
    out = []
    for use in (True, False):
        a = [x.copy() if i in copy_args else x for i, x in enumerate(args)]
        out.append((K._impl(name, use)(*a), a))
    return out


def close(a, b, dt, terms=1):
    """Equal to rounding; ``terms`` > 1: sums of that many products of entries up to 10
    in magnitude, added in another order than BLAS, so cancellation may leave an
    absolute error of a few ulps of the largest partial sum."""
    assert a.dtype == b.dtype == dt
    tol = dict(TOL[dt])
    if terms > 1:
        tol["atol"] = 4 * terms * 100 * np.finfo(dt).eps
    np.testing.assert_allclose(a, b, **tol)


# ---------------------------------------------------------------- numba == twin

@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", ["relu", "relu_backward", "tanh_backward", "sigmoid_backward"])
@FAST
@given(data=st.data())
def test_elementwise_matches_twin(name, dt, data):
    shape = data.draw(array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=9))
    g = array_of(data, dt, shape)
    args = (g,) if name == "relu" else (g, array_of(data, dt, shape, -1.0, 1.0))
    (r_nb, _), (r_np, _) = both(name, *args)
    assert r_nb.shape == shape
    close(r_nb, r_np, dt)


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@FAST
@given(data=st.data())
def test_bias_act_matches_twin(dt, data):
    shape = data.draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    y = array_of(data, dt, shape)
    b = data.draw(st.none() | arrays(dt, shape[-1:], elements=floats_for(dt)))
    act = data.draw(st.sampled_from(["none", "relu"]))
    (r_nb, a_nb), (r_np, a_np) = both("bias_act", y, b, act, copy_args=(0,))
    assert r_nb is a_nb[0] and r_np is a_np[0]  # in place, and returned
    close(r_nb, r_np, dt)


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@FAST
@given(data=st.data())
def test_linear_act_matches_twin(dt, data):
    # Up to 12x12x12 multiply-adds: both the compiled loops (small layers) and np.dot.
    n, k, m = (data.draw(st.integers(0, 12)) for _ in range(3))
    x, w = array_of(data, dt, (n, k)), array_of(data, dt, (m, k))
    b = data.draw(st.none() | arrays(dt, (m,), elements=floats_for(dt)))
    act = data.draw(st.sampled_from(["none", "relu"]))
    (r_nb, _), (r_np, _) = both("linear_act", x, w, b, act)
    assert r_nb.shape == (n, m) and r_nb.dtype == dt
    close(r_nb, r_np, dt, terms=k)


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@FAST
@given(data=st.data())
def test_mse_and_its_backward_match_twin(dt, data):
    shape = data.draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=9))
    lead = data.draw(st.integers(0, len(shape) - 1))
    pred, target = array_of(data, dt, shape), array_of(data, dt, shape)
    axis = tuple(range(lead, len(shape))) if lead else None
    (l_nb, _), (l_np, _) = both("mse", pred, target, axis)
    assert l_nb.shape == shape[:lead]
    close(l_nb, l_np, dt)
    g = array_of(data, dt, shape[:lead])
    (d_nb, _), (d_np, _) = both("mse_backward", g, pred, target, axis)
    assert d_nb.shape == shape
    close(d_nb, d_np, dt)


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@FAST
@given(data=st.data())
def test_softmax_xent_matches_twin(dt, data):
    # Rows up to 60 reach the split form (exp in NumPy) from XENT_SPLIT logits on.
    n, c = data.draw(st.integers(0, 9) | st.integers(25, 60)), data.draw(st.integers(1, 12))
    logits = array_of(data, dt, (n, c), -50.0, 50.0)
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                      dtype=data.draw(st.sampled_from([np.int64, np.int32])))
    (l_nb, _), (l_np, _) = both("softmax_xent", logits, labels)
    close(l_nb, l_np, dt)


def optimizer_case(name, data, dt, shape):
    """(positional args, indices of in-place arrays) for one random optimizer step."""
    p, g = array_of(data, dt, shape), array_of(data, dt, shape)
    pos = lambda: np.asarray(np.abs(array_of(data, dt, shape)))  # noqa: E731  (second moments)
    wd = data.draw(st.sampled_from([0.0, 0.01]))
    lr = data.draw(st.floats(1e-4, 0.5))
    mom = data.draw(st.sampled_from([0.0, 0.9]))
    if name == "sgd_update":
        return ((p, g, array_of(data, dt, shape), lr, mom, data.draw(st.sampled_from([0.0, 0.1])),
                 data.draw(st.booleans()), wd, data.draw(st.booleans())), (0, 2))
    if name == "adam_update":
        return ((p, g, array_of(data, dt, shape), pos(), lr, 0.9, 0.999, 1e-8, wd,
                 data.draw(st.booleans()), data.draw(st.integers(1, 50))), (0, 2, 3))
    if name == "rmsprop_update":
        return ((p, g, pos(), lr, 0.99, 1e-8, wd, mom, array_of(data, dt, shape)), (0, 2, 8))
    return (p, g, pos(), lr, 1e-10, wd), (0, 2)


@needs_numba
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", ["sgd_update", "adam_update", "rmsprop_update", "adagrad_update"])
@FAST
@given(data=st.data())
def test_optimizer_matches_twin(name, dt, data):
    shape = data.draw(array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=9))
    args, inplace = optimizer_case(name, data, dt, shape)
    g0 = args[1].copy()
    (r_nb, a_nb), (r_np, a_np) = both(name, *args, copy_args=inplace)
    assert r_nb is None and r_np is None
    for i in inplace:
        close(a_nb[i], a_np[i], dt)  # param and every state array, dtype kept
    np.testing.assert_array_equal(args[1], g0)  # the caller's gradient is untouched


@needs_numba
@pytest.mark.parametrize("name", ["sgd_update", "adam_update", "rmsprop_update", "adagrad_update"])
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # float16: eps rounds to 0
def test_optimizer_kernels_refuse_what_they_cannot_update_in_place(name):
    """The compiled optimizers check layout and shapes themselves (at numba typing time):
    a transposed (non-contiguous) parameter, a float16 or byte-swapped one, or a gradient
    of another shape goes to the twin, with the same result or error, and the kernel is
    not retired."""
    K.set_enabled(True)
    rng = np.random.default_rng(4)
    base = rng.standard_normal((3, 4))
    for p0 in (base.T, base.astype(np.float16), base.astype(">f8"), np.asfortranarray(base)):
        args = [p0.copy(order="K"), (p0 * 0.1).astype(p0.dtype)]
        args += {"sgd_update": [np.zeros_like(p0), 0.1, 0.9, 0.0, False, 0.0, False],
                 "adam_update": [np.zeros_like(p0), np.zeros_like(p0), 0.1, 0.9, 0.999, 1e-8, 0.0,
                                 False, 1],
                 "rmsprop_update": [np.zeros_like(p0), 0.1, 0.99, 1e-8, 0.0, 0.5, np.zeros_like(p0)],
                 "adagrad_update": [np.zeros_like(p0), 0.1, 1e-10, 0.0]}[name]
        expect = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        K._impl(name, False)(*expect)
        getattr(K, name)(*args)
        np.testing.assert_array_equal(args[0], expect[0])  # bit-for-bit the twin's update
        assert args[0].dtype == p0.dtype
    p = np.ones((2, 3))
    with pytest.raises(ValueError):  # a gradient of the wrong shape: NumPy's error, from the twin
        K.adam_update(p, np.ones((3, 2)), np.zeros((2, 3)), np.zeros((2, 3)), 0.1, 0.9, 0.999,
                      1e-8, 0.0, False, 1)
    assert K.info()["fallback_reason"] is None and name in K._jit


@pytest.mark.parametrize("use", [False] + ([True] if HAVE_NUMBA else []))
def test_adam_update_many_equals_one_call_per_tensor(use):
    """Adam.step's batched call, with a tensor the kernel must refuse (a transposed view)
    among ordinary ones, updates each exactly as adam_update one by one would."""
    rng = np.random.default_rng(5)
    shapes = [(4, 3), (3,), (2, 5)]
    ps = [rng.standard_normal(s).astype(np.float32) for s in shapes] + [rng.standard_normal((3, 2)).T]
    items = [(p, p * 0.5 + 0.1, np.full_like(p, 0.01), np.full_like(p, 0.02), n + 1)
             for n, p in enumerate(ps)]
    one = [tuple(a.copy(order="K") if isinstance(a, np.ndarray) else a for a in it) for it in items]
    assert not one[-1][0].flags.c_contiguous  # the reference takes the refusal path too
    try:
        K.set_enabled(use)
        for it in one:
            K.adam_update(*it[:4], 1e-2, 0.9, 0.999, 1e-8, 0.01, True, it[4])
        K.adam_update_many(items, 1e-2, 0.9, 0.999, 1e-8, 0.01, True)
    finally:
        K.set_enabled(True)
    for it, ref in zip(items, one):
        for a, b in zip(it[:4], ref[:4]):
            np.testing.assert_array_equal(a, b)


@needs_numba
def test_float32_mse_stays_accurate_on_long_rows():
    # A float32 running sum would drift (2**25 ones: 0.5 instead of 1.0); the kernel sums
    # in float64, so it is at least as accurate as NumPy's pairwise float32 mean.
    ones = np.ones((1, 2 ** 25), np.float32)
    assert K._impl("mse", True)(ones, np.zeros_like(ones), (1,))[0] == 1.0
    x = np.random.default_rng(0).standard_normal(4_000_000).astype(np.float32)
    exact = np.mean(x.astype(np.float64) ** 2)
    assert abs(K._impl("mse", True)(x, np.zeros_like(x), None) / exact - 1) < 1e-6


@needs_numba
def test_unpickled_arrays_still_take_the_compiled_path():
    """An unpickled array's dtype equals float64 without being the same object."""
    import pickle
    K.set_enabled(True)
    a = pickle.loads(pickle.dumps(np.linspace(-1, 1, 6)))
    assert a.dtype is not np.dtype(np.float64)
    assert K._same(a, a * 2) and K._floats(a, np.zeros_like(a))
    K._compiled.discard("adagrad_update")
    K.adagrad_update(a, a * 0.1, np.zeros_like(a), 0.1, 1e-10, 0.0)
    assert "adagrad_update" in K.info()["compiled"]


# ---------------------------------------------------------------- twins == formulas

BOTH_PATHS = [False] + ([True] if HAVE_NUMBA else [])


@pytest.mark.parametrize("use", BOTH_PATHS)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # inf * 0 on purpose
def test_elementwise_match_formulas(use):
    f = lambda name: K._impl(name, use)  # noqa: E731
    x = np.array([-2.0, -0.0, 0.5, 3.0, np.nan])
    np.testing.assert_array_equal(f("relu")(x), [0, 0, 0.5, 3.0, np.nan])
    g, z = np.array([1.0, -2.0, 3.0]), np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(f("tanh_backward")(g, np.tanh(z)), g / np.cosh(z) ** 2)
    s = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(f("sigmoid_backward")(g, s), g * s * (1 - s))
    # An inf gradient where relu was off gives NaN, as g * (out > 0) does.
    np.testing.assert_array_equal(f("relu_backward")(np.array([1.0, -2.0, np.inf]), z),
                                  [0, 0, np.inf])
    np.testing.assert_array_equal(f("relu_backward")(np.array([np.inf, 1.0]), np.array([0.0, 1.0])),
                                  [np.nan, 1.0])
    y = np.array([[-1.0, 2.0], [0.5, -3.0]])
    np.testing.assert_array_equal(f("bias_act")(y, np.array([0.5, 0.5]), "relu"),
                                  [[0, 2.5], [1.0, 0]])


@pytest.mark.parametrize("use", BOTH_PATHS)
def test_softmax_xent_matches_log_softmax(use):
    rng = np.random.default_rng(1)
    z, lab = rng.standard_normal((6, 4)) * 3, np.array([0, 1, 2, 3, 3, 0])
    losses = K._impl("softmax_xent", use)(z, lab)
    log_sm = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(losses, -log_sm[np.arange(6), lab], rtol=1e-12)
    # Huge logits: finite, and exactly the gap to the winning logit. Repeated to 300
    # rows, the same holds on the split form the kernel switches to for large inputs.
    for dt in DTYPES:
        for reps in (1, 150):
            big = np.tile(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dt), (reps, 1))
            losses = K._impl("softmax_xent", use)(big, np.tile([1, 0], reps))
            assert np.isfinite(losses).all()
            np.testing.assert_allclose(losses, np.tile([2e4, 2e4 + np.log(2)], reps), rtol=1e-6)


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_twin_matches_textbook(decoupled):
    rng = np.random.default_rng(2)
    p, grads = rng.standard_normal(5), rng.standard_normal((3, 5))
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    q, m, v = p.copy(), np.zeros(5), np.zeros(5)
    mm, vv = np.zeros(5), np.zeros(5)
    for t, g in enumerate(grads, start=1):
        K._impl("adam_update", False)(q, g, m, v, lr, b1, b2, eps, wd, decoupled, t)
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        mm, vv = b1 * mm + (1 - b1) * g, b2 * vv + (1 - b2) * g ** 2
        p = p - lr * (mm / (1 - b1 ** t)) / (np.sqrt(vv / (1 - b2 ** t)) + eps)
    np.testing.assert_allclose(q, p, rtol=1e-12)


def test_other_optimizer_twins_match_textbook():
    rng = np.random.default_rng(3)
    p0, grads = rng.standard_normal(4), rng.standard_normal((3, 4))
    for nesterov in (False, True):  # SGD, momentum 0.9, dampening 0.1, wd 0.01
        q, buf, p, b = p0.copy(), np.zeros(4), p0.copy(), None
        for t, g in enumerate(grads):
            K._impl("sgd_update", False)(q, g, buf, 0.1, 0.9, 0.1, nesterov, 0.01, t == 0)
            d = g + 0.01 * p
            b = d if b is None else 0.9 * b + 0.9 * d
            p = p - 0.1 * (d + 0.9 * b if nesterov else b)
        np.testing.assert_allclose(q, p, rtol=1e-12)
    for mom in (0.0, 0.5):  # RMSprop
        q, sq, buf, p, s, b = p0.copy(), np.zeros(4), np.zeros(4), p0.copy(), 0, 0
        for g in grads:
            K._impl("rmsprop_update", False)(q, g, sq, 0.01, 0.9, 1e-8, 0.01, mom, buf)
            g = g + 0.01 * p
            s = 0.9 * s + 0.1 * g * g
            b = mom * b + g / (np.sqrt(s) + 1e-8)
            p = p - 0.01 * (b if mom else g / (np.sqrt(s) + 1e-8))
        np.testing.assert_allclose(q, p, rtol=1e-12)
    q, acc, p, s = p0.copy(), np.zeros(4), p0.copy(), 0  # Adagrad
    for g in grads:
        K._impl("adagrad_update", False)(q, g, acc, 0.1, 1e-10, 0.01)
        g = g + 0.01 * p
        s = s + g * g
        p = p - 0.1 * g / (np.sqrt(s) + 1e-10)
    np.testing.assert_allclose(q, p, rtol=1e-12)


# ---------------------------------------------------------------- the dispatcher

def test_dispatcher_dtype_layout_and_errors():
    K.set_enabled(True)
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    assert K.relu(x).dtype == np.float32
    losses = K.softmax_xent(x, np.array([0, 1, 2, 5], dtype=np.int32))
    assert losses.dtype == np.float32
    p, g, m, v = x.copy(), x * 0.1, np.zeros_like(x), np.zeros_like(x)
    K.adam_update(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.0, True, 1)
    assert p.dtype == m.dtype == v.dtype == np.float32
    # A strided view, mixed dtypes, a Fortran-ordered param: not for the kernels,
    # still answered (by NumPy).
    np.testing.assert_array_equal(K.relu(x[:, ::2]), np.maximum(x[:, ::2], 0))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(K.tanh_backward(x, x64), x * (1 - x64 * x64))
    p2 = np.asfortranarray(np.ones((3, 2)))
    K.sgd_update(p2, np.ones((3, 2)), None, 0.5, 0.0, 0.0, False, 0.0, True)
    np.testing.assert_array_equal(p2, 0.5)
    with pytest.raises(IndexingError):
        K.softmax_xent(x, np.array([0, 1, 2, 6]))
    with pytest.raises(IndexingError):
        K.softmax_xent(x, np.array([0, -1, 2, 3]))
    with pytest.raises(IndexingError, match="label 6 at row 70"):  # the split form checks too
        K.softmax_xent(np.zeros((100, 6)), np.where(np.arange(100) == 70, 6, 1))
    with pytest.raises(ArgumentError):
        K.bias_act(x.copy(), None, "gelu")
    assert K.info()["fallback_reason"] is None  # bad input did not retire a kernel
    if HAVE_NUMBA:
        assert {"relu", "softmax_xent", "adam_update"} <= set(K.info()["compiled"])


def test_set_enabled_and_info():
    try:
        K.set_enabled(False)
        assert K.enabled() is False and K.info()["enabled"] is False
        np.testing.assert_array_equal(K.relu(np.array([-1.0, 2.0])), [0.0, 2.0])
    finally:
        K.set_enabled(True)
    info = K.info()
    assert info["enabled"] is HAVE_NUMBA
    assert set(info) == {"numba_available", "numba_version", "enabled", "compiled",
                         "cache_dir", "fallback_reason"}
    assert "cache_dir" in str(info)
    assert len(K.NAMES) == 13 and all(callable(getattr(K, n)) for n in K.NAMES)


@needs_numba
def test_broken_kernel_falls_back_with_one_warning(monkeypatch):
    K.relu(np.ones(2))  # make sure numba is loaded
    def boom(*a):
        raise RuntimeError("simulated lowering failure")
    monkeypatch.setitem(K._jit, "relu", boom)
    monkeypatch.setattr(K, "_warned", False)
    monkeypatch.setattr(K, "_reason", None)
    with pytest.warns(RuntimeWarning, match="simulated lowering failure"):
        np.testing.assert_array_equal(K.relu(np.array([-1.0, 2.0])), [0, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        K.relu(np.array([1.0]))  # retired: no second warning
    assert "relu" not in K._jit and "simulated" in K.info()["fallback_reason"]


# ---------------------------------------------------------------- fresh processes

def run_py(code, env_extra=(), drop=(), path=ROOT):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(dict(env_extra), PYTHONPATH=path)
    code = CALL_ALL + textwrap.dedent(code)
    # cwd too: "python -c" puts the working directory first on sys.path.
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# Defines call_all(K): every kernel once through the public API, True if all right.
CALL_ALL = """
import numpy as np
def call_all(K):
    x = np.array([[-1.0, 0.5, 2.0], [3.0, -0.5, 0.0]]); g = np.ones_like(x)
    res = [K.relu(x), K.relu_backward(g, x), K.tanh_backward(g, x), K.sigmoid_backward(g, x),
           K.bias_act(x.copy(), np.array([1.0, 0.0, -1.0]), "relu"),
           K.softmax_xent(x, np.array([2, 0])), K.linear_act(x, np.eye(3), None, "relu"),
           K.mse(x, g, (1,)), K.mse_backward(np.ones(2), x, g, (1,))]
    p = np.ones(3)
    K.sgd_update(p, np.ones(3), np.zeros(3), 0.1, 0.9, 0.0, False, 0.0, True)
    K.adam_update(p, np.ones(3), np.zeros(3), np.zeros(3), 0.1, 0.9, 0.999, 1e-8, 0.0, False, 1)
    K.rmsprop_update(p, np.ones(3), np.zeros(3), 0.1, 0.99, 1e-8, 0.0, 0.0, None)
    K.adagrad_update(p, np.ones(3), np.zeros(3), 0.1, 1e-10, 0.0)
    return all([res[0].tolist() == [[0, 0.5, 2], [3, 0, 0]],
                res[1].tolist() == [[0, 1, 1], [1, 0, 0]],
                np.allclose(res[2], 1 - x * x), np.allclose(res[3], x * (1 - x)),
                res[4].tolist() == [[0, 0.5, 1], [4, 0, 0]],
                np.allclose(res[5], np.log(np.exp(x).sum(1)) - x[[0, 1], [2, 0]]),
                res[6].tolist() == res[0].tolist(), np.allclose(res[7], ((x - 1) ** 2).mean(1)),
                np.allclose(res[8], 2 / 3 * (x - 1)),
                np.allclose(p, 1 - 0.1 - 0.1 - 0.1 / 0.1 - 0.1)])
"""


def test_import_does_not_import_numba():
    out = run_py("""
        import sys, json, tinymeta.kernels as K
        before = "numba" in sys.modules
        info = K.info(); K.enabled()
        print(json.dumps([before, "numba" in sys.modules, info["numba_available"]]))
    """)
    assert out == [False, False, None]


def test_env_switch_disables_jit():
    out = run_py("""
        import sys, json, tinymeta.kernels as K
        print(json.dumps([K.info()["enabled"], K.enabled(), call_all(K), "numba" in sys.modules]))
    """, env_extra={"TINYMETA_JIT": "0"})
    assert out == [False, False, True, False]


def test_numba_hidden_falls_back_with_one_warning():
    out = run_py("""
        import sys, json, warnings
        sys.modules["numba"] = None  # makes "import numba" raise ImportError
        import tinymeta.kernels as K
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ok = call_all(K) and call_all(K)
        info = K.info()
        print(json.dumps([ok, [w.category.__name__ for w in caught],
                          info["numba_available"], info["enabled"], info["fallback_reason"]]))
    """)
    ok, caught, available, enabled, reason = out
    assert ok and caught == ["RuntimeWarning"]
    assert available is False and enabled is False and "import of numba halted" in reason


@needs_numba
def test_read_only_package_uses_a_writable_cache(tmp_path):
    dst = tmp_path / "site" / "tinymeta"
    shutil.copytree(os.path.join(PKG, "kernels"), dst / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(PKG, "errors.py"), dst / "errors.py")
    (dst / "__init__.py").write_text("")
    home = tmp_path / "home"
    home.mkdir()
    root = os.geteuid() == 0
    if not root:
        for d in (dst, dst / "kernels"):
            os.chmod(d, 0o555)
    # Root writes through chmod, so there the package folder is made to look
    # read-only to tinymeta's own check by patching os.access in the child.
    patch = f"""
        import os
        _real = os.access
        os.access = lambda p, m, **kw: (False if os.path.abspath(p).startswith({str(dst)!r})
                                        and m & os.W_OK else _real(p, m, **kw))
    """ if root else ""
    try:
        out = run_py(textwrap.dedent(patch) + textwrap.dedent("""
            import json, os, numpy as np, tinymeta.kernels as K
            K.relu(np.array([-1.0, 1.0])); K.adam_update(np.ones(2), np.ones(2), np.zeros(2),
                np.zeros(2), 0.1, 0.9, 0.999, 1e-8, 0.0, False, 1)
            info = K.info()
            print(json.dumps([info["compiled"], info["cache_dir"], info["fallback_reason"]]))
        """), env_extra={"HOME": str(home)}, drop=("NUMBA_CACHE_DIR",), path=str(dst.parent))
    finally:
        for d in (dst, dst / "kernels"):
            os.chmod(d, 0o755)
    compiled, cache_dir, reason = out
    assert compiled == ["adam_update", "relu"] and reason is None
    assert cache_dir == str(home / ".cache" / "tinymeta" / "numba")
    assert any(f.endswith(".nbi") for _, _, fs in os.walk(cache_dir) for f in fs)
    assert not any(f.endswith(".nbi") for _, _, fs in os.walk(dst) for f in fs)


def test_cache_dir_choice(monkeypatch, tmp_path):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if p.startswith(PKG) else real(p, m))
    assert K._cache_dir() == (str(tmp_path / "home" / ".cache" / "tinymeta" / "numba"), True)
    # HOME unusable too: the shared temp folder.
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if p.startswith((PKG, str(tmp_path)))
                        else real(p, m))
    path, must_set = K._cache_dir()
    assert must_set and not path.startswith(str(tmp_path)) and real(path, os.W_OK)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert K._cache_dir() == (str(tmp_path / "mine"), False)

"""Fused replays (Program.fuse, tm.jit once a program is hot): chains of elementwise ops run
as one compiled loop and compute what the unfused replay computes, bit for bit for the
arithmetic; what cannot be fused safely stays as it was."""
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymeta as tm
from tinymeta import kernels, nn, optim
from tinymeta.kernels import fuse as kfuse
from tinymeta.ops import elementwise, fused as fused_ops
from tinymeta.tape import fusion
from tinymeta.tape.jit import FUSE_AFTER

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="numba unavailable: nothing is fused")
SCALAR_OPS = {n: f for module in (elementwise, fused_ops) for n, f in vars(module).items()
              if hasattr(f, "op") and getattr(f.op, "scalar", None)}
SOME = settings(max_examples=25, deadline=None, database=None)


def _arrays(out):
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in _arrays(o)]
    return [np.asarray(out.data if type(out) is tm.Tensor else out)]


def _same_bits(got, want):
    for g, w in zip(_arrays(got), _arrays(want)):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)  # NaN equals NaN here...
        if g.dtype.kind == "f":  # ...and so do 0.0 and -0.0, so their signs are compared too
            zeros = w == 0
            np.testing.assert_array_equal(np.signbit(g[zeros]), np.signbit(w[zeros]))


# ----------------------------------------------------------------------------- shapes and dtypes


@st.composite
def broadcastable(draw, n=3):
    base = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    out = []
    for _ in range(n):
        nd = draw(st.integers(0, len(base)))
        out.append(tuple(1 if draw(st.booleans()) else d for d in base[len(base) - nd:]))
    out[0] = base  # one operand has the full shape, so every chain has the output's shape
    return out


def _chain(a, b, c):
    """Every op with a scalar form, in chains that broadcast: the function whose first and
    second derivatives the tests trace."""
    h = tm.relu(a * b + c) - tm.maximum(a, c) / (tm.abs(b) + 1.5)
    h = tm.where(h > 0.25, h * h, tm.minimum(h, -c)) + tm.sqrt(tm.abs(a) + 0.5)
    return (h * c - b).sum()


@SOME
@given(shapes=broadcastable(), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**31))
def test_fused_derivatives_over_broadcasting_shapes_equal_the_unfused_replay(shapes, dtype, seed):
    rng = np.random.default_rng(seed)

    def grads(a, b, c):
        gs = tm.grad(_chain(a, b, c), [a, b, c], create_graph=True)
        second = tm.grad(sum((g * g).sum() for g in gs), [a, b, c], allow_unused=True)
        return gs, [g for g in second if g is not None]

    def leaves():
        return [tm.tensor(rng.standard_normal(s), dtype=dtype, requires_grad=True) for s in shapes]
    prog = tm.trace(grads, *leaves())
    new = leaves()
    unfused = prog(*new)
    assert prog.fuse(*new) > 0
    _same_bits(prog(*new), unfused)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for g, w in zip(_arrays(prog(*new)), _arrays(grads(*new))):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", SCALAR_OPS)
def test_every_op_with_a_scalar_form_fuses_and_rounds_as_numpy(name, dtype):
    op = SCALAR_OPS[name]
    n_in = 3 if name in ("where", "sub_scaled") else 1 if name in ("neg", "sqrt", "abs", "relu") else 2
    rng = np.random.default_rng(3)
    values = [rng.standard_normal((7, 9)) * 3 for _ in range(n_in)]
    values[0].flat[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30]  # where rounding and NaN differ
    if name == "where":
        values[0] = values[0] > 0

    def fn(*xs):
        y = op(*xs)
        if y.data.dtype == bool:  # a comparison: its mask picks between the inputs
            y = tm.where(y, xs[0], xs[1])
        return y * 1.7 + 0.1  # the op's result feeds two more steps: a chain of three

    inputs = [v if v.dtype == bool else v.astype(dtype) for v in values]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # inf and NaN are meant
        prog = tm.trace(fn, *inputs)
        unfused = prog(*inputs)
        assert prog.fuse(*inputs) == 1
        assert name in prog.fused_ops[0]
        _same_bits(prog(*inputs), unfused)


# ----------------------------------------------------------------------------- what stays unfused


def test_a_value_read_by_another_step_before_the_chain_ends_is_not_inside_it():
    def fn(x, y):
        a = x * y + 1.0            # a chain...
        s = a.sum(axis=0)          # ...whose value a reduction reads here,
        b = (a - s) * 2.0 + y      # before the chain would end
        return b

    x, y = map(tm.Tensor, np.random.default_rng(0).standard_normal((2, 64, 70)))
    prog = tm.trace(fn, x, y)
    unfused = prog(x, y)
    assert prog.fuse(x, y) >= 1
    reduction = next(n for n, st in enumerate(prog._steps) if st.op.name == "sum")
    for g in prog.fused:
        users = [n for n, st in enumerate(prog._steps) for m in g.members if prog._steps[m].out in st.ins]
        assert all(u > g.end or u in g.members for u in users)  # nothing reads a value before it exists
        assert not (min(g.members) < reduction < g.end)
    _same_bits(prog(x, y), unfused)


def test_chains_of_two_or_more_are_fused_single_ops_are_not():
    def single(x):
        return x * 2.0

    def pair(x):
        return x * 2.0 + 1.0

    x = tm.Tensor(np.ones((10, 10)))
    assert tm.trace(single, x).fuse(x) == 0  # one ufunc call costs what one kernel call does
    assert tm.trace(pair, x).fuse(x) == 1    # two cost more (benchmarks/fusion.py)


def test_transcendental_ops_stay_with_numpy():
    # NumPy's vectorised exp/log/tanh are 5-10x faster than a fused loop's scalar calls.
    def fn(x):
        return tm.exp(x * 2.0) * x + tm.tanh(x) * 3.0

    x = tm.Tensor(np.random.default_rng(1).standard_normal((100, 100)))
    prog = tm.trace(fn, x)
    prog.fuse(x)
    assert not {"exp", "tanh"} & {n for ops in prog.fused_ops for n in ops}


def test_with_the_kernels_off_nothing_is_fused():
    x = tm.Tensor(np.ones((10, 10)))
    before = kernels.enabled()
    kernels.set_enabled(False)
    try:
        prog = tm.trace(lambda x: (x * 2.0 + 1.0) * x, x)
        assert prog.fuse(x) == 0 and prog.fused == []
    finally:
        kernels.set_enabled(before)


def test_a_kernel_that_fails_or_computes_wrong_is_refused(monkeypatch):
    def fn(x):
        return (x * 2.0 + 1.0) * x

    x = tm.Tensor(np.random.default_rng(2).standard_normal((20, 20)))
    want = fn(x).data

    def broken(body, name="kernel"):
        def kernel(*arrays):
            raise TypeError("numba could not type this")
        return kernel
    monkeypatch.setattr(kfuse, "compile_kernel", broken)
    prog = tm.trace(fn, x)
    n = len(fusion.failures)
    assert prog.fuse(x) == 0 and len(fusion.failures) == n + 1
    np.testing.assert_allclose(prog(x).data, want)

    def wrong(body, name="kernel"):
        def kernel(*arrays):
            arrays[-1][...] = 0.0  # the planted fault: a kernel that writes zeros
        return kernel
    monkeypatch.setattr(kfuse, "compile_kernel", wrong)
    prog = tm.trace(fn, x)
    assert prog.fuse(x) == 0 and "differed" in fusion.failures[-1]
    np.testing.assert_allclose(prog(x).data, want)


# ----------------------------------------------------------------------------- in use


def test_tm_jit_fuses_a_hot_training_step_and_stays_equal_to_eager():
    def make():
        layers = [nn.Linear(8, 64, rng=0, dtype="float64"), nn.Linear(64, 1, rng=1, dtype="float64")]
        return layers, optim.SGD([p for layer in layers for p in layer.parameters()], lr=0.05)

    def step(layers, opt, x, y):
        h = layers[0](x)
        h = tm.maximum(h, h * 0.1) * 1.5 - 0.25  # an activation written in elementwise ops
        loss = ((layers[1](h) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((128, 8)), rng.standard_normal((128, 1))) for _ in range(5)]
    (layers, opt), (eager_layers, eager_opt) = make(), make()
    jitted = tm.jit(lambda x, y: step(layers, opt, x, y))
    for i in range(FUSE_AFTER + 10):
        x, y = batches[i % len(batches)]
        got = jitted(x, y)
        want = step(eager_layers, eager_opt, x, y)
        np.testing.assert_allclose(got.data, want.data, rtol=1e-12, atol=1e-12)
    prog = next(p for progs in jitted.cache.values() for p in progs if p.replays)
    assert prog.fused, "a hot program with elementwise chains was not fused"
    for a, b in zip(layers, eager_layers):
        for p, q in zip(a.parameters(), b.parameters()):
            np.testing.assert_allclose(p.data, q.data, rtol=1e-12, atol=1e-12)


def test_the_replay_source_shows_each_kernel_and_fused_outputs_reuse_dead_buffers():
    def fn(x, y):
        a = (x * y + 1.0) * x      # a chain whose result dies after b...
        b = a.sum(axis=1, keepdims=True) * 1.0
        c = (y - b) * 2.0 + x      # ...so this chain's output can take its buffer
        return c.sum()

    x, y = map(tm.Tensor, np.random.default_rng(4).standard_normal((2, 64, 64)))
    prog = tm.trace(fn, x, y)
    unfused = prog(x, y)
    assert prog.fuse(x, y) == 2
    text = prog.replay_source
    assert text.count("# fused: ") == 2 and text.count("def kernel(") == 2
    assert re.search(r"^    v\d+_0 = v\d+_0$", prog._py, re.M), "the second kernel allocated afresh"
    _same_bits(prog(x, y), unfused)

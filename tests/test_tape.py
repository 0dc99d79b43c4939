"""The tape (tm.trace, tm.jit): a replay equals eager on new inputs, for every op at first and
second order, kernels on and off; the printed NumPy program computes the same; what a replay
would get wrong is refused."""
import numpy as np
import pytest

import tinymeta as tm
from tinymeta import kernels, meta, nn, optim
from tinymeta.errors import DTypeError, ShapeError, TraceError
from tinymeta.opcheck import _cases

CASES = _cases()


@pytest.fixture(params=[True, False], ids=["kernels-on", "kernels-off"])
def jit_mode(request):
    before = kernels.enabled()
    kernels.set_enabled(request.param)
    yield request.param
    kernels.set_enabled(before)


def _derivatives(fn, order):
    """A function of the op's inputs returning its value and its first (and second) derivatives
    along fixed directions, all through tm.grad: what the tape must follow."""
    rng = np.random.default_rng(7)
    dirs = {}

    def direction(shape):
        if shape not in dirs:
            dirs[shape] = rng.standard_normal(shape)
        return dirs[shape]

    def run(*xs):
        y = fn(*xs)
        s = (y * direction(y.shape)).sum()
        gs = tm.grad(s, list(xs), create_graph=order > 1, allow_unused=True)
        gs = [g for g in gs if g is not None]
        if order == 1:
            return y, gs
        s2 = sum((g * direction(g.shape) * 0.5).sum() for g in gs)
        ggs = tm.grad(s2, list(xs), allow_unused=True)
        return y, gs, [g for g in ggs if g is not None]
    return run


def _flat(tree):
    if isinstance(tree, (list, tuple)):
        return [a for t in tree for a in _flat(t)]
    return [tree.data if type(tree) is tm.Tensor else np.asarray(tree)]


# Ops whose inputs must stay in a domain (positive, well-conditioned): new inputs for them
# are a small relative change; every other op gets its values shuffled with random signs,
# so kinks (relu, abs, max, clip...) fall elsewhere and a mask frozen at trace time shows.
_DOMAIN = ("log", "sqrt", "div", "tensor ** tensor", "linalg")


def _new_inputs(arrays, seed, name=""):
    rng = np.random.default_rng(seed)
    if any(d in name for d in _DOMAIN):
        return [a * (1 + 0.05 * rng.uniform(-1, 1, a.shape)) for a in arrays]
    return [rng.permutation(a.ravel()).reshape(a.shape) * rng.choice([-1.0, 1.0], a.shape) for a in arrays]


def _has_chain(prog):
    """Whether a step with a scalar form reads another one's result of the same shape."""
    made = {st.out: st for st in prog._steps}
    return any(st.op.scalar and len(st.shapes) > 2 and st.shapes[1] and any(
        type(a) is int and a in made and made[a].op.scalar and made[a].shapes[1] == st.shapes[1]
        for a in st.ins) for st in prog._steps)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_replay_equals_eager_for_every_op(case, order, jit_mode):
    name, fn, arrays = case
    run = _derivatives(fn, order)
    leaves = lambda arrs: [tm.tensor(a, dtype="float64", requires_grad=True) for a in arrs]  # noqa: E731
    prog = tm.trace(run, *leaves(arrays))
    new = _new_inputs(arrays, 1, name)
    got = _flat(prog(*leaves(new)))
    want = _flat(run(*leaves(new)))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    # The printed program, run with NumPy alone, computes the same.
    ns = {}
    exec(prog.source, ns)
    printed = ns["program"](*prog.source_args(*leaves(new)))
    for g, w in zip(_flat(list(printed)), want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10)
    # Fused (every chain of two or more elementwise ops), the same again.
    fused = prog.fuse(*leaves(new))
    assert (fused > 0) == (jit_mode and _has_chain(prog))
    for g, w in zip(_flat(prog(*leaves(new))), want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_replay_equals_eager_in_float32(case, order):
    name, fn, arrays = case
    run = _derivatives(fn, order)
    leaves = lambda arrs: [tm.tensor(a, dtype="float32", requires_grad=True) for a in arrs]  # noqa: E731
    prog = tm.trace(run, *leaves(arrays))
    new = _new_inputs(arrays, 2, name)
    for g, w in zip(_flat(prog(*leaves(new))), _flat(run(*leaves(new)))):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def _sinusoid_batch(seed, dtype=np.float64):
    return meta.tasks.Sinusoid(k_support=10, k_query=10, dtype=dtype).sample(5, rng=seed)


@pytest.mark.parametrize("make", [
    lambda m: meta.MAML(m, inner_lr=0.01, inner_steps=2),
    lambda m: meta.MAML(m, inner_lr=0.01, inner_steps=2, first_order=True),
    lambda m: meta.MetaSGD(m, inner_lr=0.01, inner_steps=1),
], ids=["maml", "fomaml", "metasgd"])
def test_meta_gradients_replay_like_eager(make):
    model = nn.MLP([1, 16, 16, 1], rng=0, dtype="float64")
    learner = make(model)
    params = learner.parameters()

    def meta_step(batch):
        loss = learner.meta_loss(batch)
        return loss, tm.grad(loss, params)

    prog = tm.trace(meta_step, _sinusoid_batch(0))
    for seed in (1, 2):
        batch = _sinusoid_batch(seed)
        got, want = _flat(prog(batch)), _flat(meta_step(batch))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


def test_mapping_learner_and_hvp_replay_like_eager():
    learner = meta.MappingLearner(nn.MLP([1, 8, 1], rng=0, dtype="float64"), rng=0)
    params = learner.parameters()
    step = lambda b: (lambda loss: (loss, tm.grad(loss, params)))(learner.meta_loss(b))  # noqa: E731
    prog = tm.trace(step, _sinusoid_batch(0))
    for g, w in zip(_flat(prog(_sinusoid_batch(3))), _flat(step(_sinusoid_batch(3)))):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)

    A = np.random.default_rng(0).standard_normal((4, 4))
    f = lambda x: (tm.tanh(tm.tensor(A) @ x) ** 2).sum()  # noqa: E731
    hvp = lambda x, v: tm.func.hvp(f, x, v)  # noqa: E731
    x0, v0 = np.ones(4), np.arange(4.0)
    prog = tm.trace(hvp, x0, v0)
    x1, v1 = np.linspace(-1, 1, 4), np.ones(4)
    np.testing.assert_allclose(_flat(prog(x1, v1))[0], _flat(hvp(x1, v1))[0], rtol=1e-12)


def test_jitted_meta_training_loop_matches_eager_for_1000_iterations():
    """The README's loop body under tm.jit: meta_loss, zero_grad, backward, step."""
    tasks = meta.tasks.Sinusoid(k_support=5, k_query=5, dtype=np.float64)
    batches = [tasks.sample(4, rng=i) for i in range(1000)]
    finals = []
    for compiled in (False, True):
        model = nn.MLP([1, 8, 8, 1], rng=0, dtype="float64")
        maml = meta.MAML(model, inner_lr=0.01, inner_steps=1)
        opt = optim.Adam(maml.parameters(), lr=1e-3)

        def body(batch):
            loss = maml.meta_loss(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        step = tm.jit(body) if compiled else body
        losses = [step(b).item() for b in batches]
        finals.append((losses, [p.data.copy() for p in maml.parameters()]))
    np.testing.assert_allclose(finals[0][0], finals[1][0], rtol=1e-9)
    for p, q in zip(finals[0][1], finals[1][1]):
        np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)


def test_jitted_training_loop_matches_eager_for_1000_steps():
    """Loss and gradients compiled, the optimizer step outside: the same trajectory."""
    def make():
        model = nn.MLP([1, 8, 1], rng=0, dtype="float64")
        return model, optim.Adam(model.parameters(), lr=1e-2)
    x = np.linspace(-2, 2, 16)[:, None]
    y = np.sin(x)
    models = []
    for compiled in (False, True):
        model, opt = make()

        def loss_and_grads(x, y):
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        step = tm.jit(loss_and_grads) if compiled else loss_and_grads
        for _ in range(1000):
            opt.zero_grad()
            step(x, y)
            opt.step()
        models.append(model)
    for p, q in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-10, atol=1e-12)


def test_printed_program_reads_as_numpy_with_names_and_rules():
    model = nn.MLP([2, 3, 1], rng=0, dtype="float64")
    dict(model.named_parameters())  # names the parameters
    x = tm.tensor(np.ones((4, 2)), name="x")

    def loss_fn(x):
        loss = (model(x) ** 2).mean()
        loss.backward()
        return loss
    prog = tm.trace(loss_fn, x)
    src = prog.source
    assert src.startswith("import numpy as np")
    assert "def program(x, p0_weight, p0_bias, p2_weight, p2_bias):" in src
    assert "# -------- forward" in src and "# -------- backward" in src
    assert "# rule of linear" in src and "# rule of pow" in src
    assert str(prog) == src
    for p in model.parameters():
        p.grad = None


def test_second_order_program_has_a_backward_of_the_backward():
    f = lambda x: (tm.grad((x ** 3).sum(), x, create_graph=True)[0] ** 2).sum()  # noqa: E731

    def second(x):
        return tm.grad(f(x), x)[0]
    x = tm.tensor([0.5, -1.0], dtype="float64", requires_grad=True)
    prog = tm.trace(second, x)
    assert "# -------- backward of the backward" in prog.source
    # f = sum((3 x^2)^2) = 9 sum x^4, so df/dx = 36 x^3
    np.testing.assert_allclose(prog(tm.tensor([2.0, 1.0], dtype="float64", requires_grad=True)).data,
                               [288.0, 36.0], rtol=1e-12)


# ----------------------------------------------------------------------------- the guards


def test_python_values_of_traced_tensors_are_refused():
    for read in (lambda t: t.item(), float, bool):
        def fn(x):
            y = tm.tensor(x).sum()
            return y * 2 if read(y) > 0 else y
        with pytest.raises(TraceError, match="frozen"):
            tm.trace(fn, np.ones(3))


def test_other_shapes_and_dtypes_are_named():
    prog = tm.trace(lambda x, y: tm.tensor(x) * y, np.ones(3), np.ones(3))
    with pytest.raises(ShapeError, match=r"argument y has shape \(4,\).*\(3,\)"):
        prog(np.ones(3), np.ones(4))
    with pytest.raises(DTypeError, match="argument x has dtype float32"):
        prog(np.ones(3, np.float32), np.ones(3))


def test_a_replaced_captured_array_is_detected():
    w = tm.tensor(np.ones(3), requires_grad=True)
    prog = tm.trace(lambda x: (w * x).sum(), np.ones(3))
    w.data = np.full(3, 2.0)  # replaced, same shape: read by reference, so followed
    assert prog(np.ones(3)).item() == 6.0
    w.data = np.ones(4)
    with pytest.raises(TraceError, match="replaced"):
        prog(np.ones(3))


def test_inplace_writes_and_work_after_a_step_are_refused():
    w = tm.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([w], lr=0.1)

    def after_step(x):
        (w * x).sum().backward()
        opt.step()
        return (w * x).sum()  # would read w before the replayed step
    with pytest.raises(TraceError, match="after SGD.step"):
        tm.trace(after_step, np.ones(3))
    w.grad = None
    with pytest.raises(TraceError, match="in-place"):
        tm.trace(lambda x: tm.tensor(x).add_(1.0), np.ones(3))


def test_index_arrays_from_the_inputs_are_refused():
    with pytest.raises(TraceError, match="frozen"):
        tm.trace(lambda x, i: tm.tensor(x)[i], np.ones(4), np.array([0, 2]))


def test_jit_retraces_for_a_new_shape_and_caches():
    calls = []

    @tm.jit
    def f(x):
        calls.append(1)
        return (tm.tensor(x) ** 2).sum()
    assert f(np.ones(3)).item() == 3.0        # traced (fn runs)
    assert f(np.full(3, 2.0)).item() == 12.0  # checked once against fn on new inputs (fn runs)
    assert f(np.full(3, 3.0)).item() == 27.0  # replayed (fn does not run)
    assert len(calls) == 2
    assert f(np.ones(5)).item() == 5.0        # a new shape: traced again
    assert len(calls) == 3 and len(f.cache) == 2


def test_jit_keeps_one_program_per_gradient_state_so_accumulation_is_right():
    """Gradient accumulation: the first backward of a group sets .grad, the next ones add to
    it; each state gets its own program, and the sums equal eager."""
    def run(compiled):
        w = tm.tensor(np.array([1.0, -2.0]), requires_grad=True)

        def fn(x):
            loss = (w * tm.tensor(x) ** 2).sum()
            loss.backward()
            return loss
        f = tm.jit(fn) if compiled else fn
        grads = []
        for k in range(6):
            if k % 3 == 0:
                w.grad = None
            f(np.array([k, 1.0 + k]))
            grads.append(w.grad.data.copy())
        return grads, f
    eager, _ = run(False)
    compiled, f = run(True)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b)
    assert len(next(iter(f.cache.values()))) == 2


def test_a_program_refuses_to_drop_an_accumulated_gradient():
    w = tm.tensor(np.ones(2), requires_grad=True)
    prog = tm.trace(lambda x: (w * tm.tensor(x)).sum().backward(), np.ones(2))
    with pytest.raises(TraceError, match="drop"):
        prog(np.ones(2))   # w.grad is set now: replaying would overwrite it


def test_jit_catches_a_value_frozen_by_a_numpy_copy():
    @tm.jit
    def f(x):
        return (tm.tensor(np.asarray(x, dtype=np.float32)) * 2).sum()  # a copy: frozen
    f(np.ones(3))
    with pytest.raises(TraceError, match="frozen"):
        f(np.full(3, 2.0))


def test_replay_writes_ufunc_results_into_dead_buffers_and_still_matches():
    """Liveness: a ufunc's result goes into a buffer nothing reads any more (out=), never into
    one still needed or returned; the MAML program has such reuse, and replays as eager."""
    model = nn.MLP([1, 16, 16, 1], rng=0, dtype="float64")
    maml = meta.MAML(model, inner_lr=0.01, inner_steps=2)
    params = maml.parameters()

    def step(batch):
        loss = maml.meta_loss(batch)
        return loss, tm.grad(loss, params)
    prog = tm.trace(step, _sinusoid_batch(0))
    assert "out=" in prog._py
    for seed in (4, 5):  # twice: buffers are per call, nothing leaks between replays
        got, want = _flat(prog(_sinusoid_batch(seed))), _flat(step(_sinusoid_batch(seed)))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


def test_buffer_reuse_leaves_zero_dimensional_results_alone():
    """A ufunc on 0-d arrays returns a NumPy scalar, which cannot be an out= buffer."""
    w = tm.tensor(np.array([0.5, -1.0]), requires_grad=True)

    def f(x):
        s = (w * tm.tensor(x)).sum()
        loss = (s * s + s * 3.0 + 1.0) * 0.5 + s.exp() * 2.0  # several 0-d ufunc results in a row
        loss.backward()
        return loss
    prog = tm.trace(f, np.ones(2))
    w.grad = None
    got = prog(np.array([2.0, 1.0])).item()
    g = w.grad.data.copy()
    w.grad = None
    want = f(np.array([2.0, 1.0])).item()
    assert abs(got - want) < 1e-12 and np.allclose(g, w.grad.data)


def test_a_dtype_conversion_of_an_input_is_replayed_not_frozen():
    """Tensor(x, dtype=...) copies x; the tape records that copy as an astype, so a replay
    converts the new input (a float64 batch fed to a float32 model)."""
    model = nn.MLP([2, 4, 1], rng=0)   # float32

    @tm.jit
    def f(x):
        return model(x).sum()          # the layer converts float64 x to float32
    for seed in range(4):              # trace, check on new inputs, then replays
        x = np.random.default_rng(seed).standard_normal((3, 2))
        with tm.no_grad():
            want = model(x.astype(np.float32)).sum().item()
        assert abs(f(x).item() - want) < 1e-5

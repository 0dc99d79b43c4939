"""Independent checks of tinymeta.optim against the published update rules, written out
here in NumPy float64 (PyTorch's documented pseudo-code for each optimizer)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymeta as tm
import tinymeta.nn.functional as F
from tinymeta import kernels, nn, optim
from tinymeta.optim import functional as OF
from tinymeta.errors import ShapeError
from tinymeta.optim import lr_scheduler

SHAPES = [(3, 2), (2,)]
_C = [np.linspace(0.5, 2.0, 6).reshape(3, 2), np.array([1.5, 0.25])]   # curvatures
_D = [np.linspace(-1.0, 1.0, 6).reshape(3, 2), np.array([-0.5, 0.75])]  # linear terms


@pytest.fixture(params=[True, False], ids=["jit", "numpy"])
def jit(request):
    before = kernels._want
    kernels.set_enabled(request.param)
    yield request.param
    kernels.set_enabled(before)


def _init():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s) for s in SHAPES]


def _grads_np(ps):
    """Gradient of the quadratic sum(c p^2 / 2 + d p): depends on p, so each step matters."""
    return [c * p + d for p, c, d in zip(ps, _C, _D)]


def _loss(params):
    return sum(tm.sum(p * p * c * 0.5 + p * d) for p, c, d in zip(params, _C, _D))


def _run(cls, steps=3, **hp):
    params = [tm.tensor(p, dtype="float64", requires_grad=True) for p in _init()]
    opt = cls(params, **hp)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        _loss(params).backward()
        opt.step()
        history.append([p.data.copy() for p in params])
    return history, opt, params


# ----------------------------------------------------------------------------- by hand

def sgd_by_hand(steps, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    ps, bufs, out = _init(), None, []
    for t in range(steps):
        gs = [g + weight_decay * p for g, p in zip(_grads_np(ps), ps)]
        if momentum:
            bufs = gs if t == 0 else [momentum * b + (1 - dampening) * g for b, g in zip(bufs, gs)]
            gs = [g + momentum * b for g, b in zip(gs, bufs)] if nesterov else bufs
        ps = [p - lr * g for p, g in zip(ps, gs)]
        out.append(ps)
    return out


def adam_by_hand(steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    b1, b2 = betas
    ps = _init()
    m = [np.zeros_like(p) for p in ps]
    v = [np.zeros_like(p) for p in ps]
    out = []
    for t in range(1, steps + 1):
        gs = _grads_np(ps)
        if decoupled:
            ps = [p * (1 - lr * weight_decay) for p in ps]
        else:
            gs = [g + weight_decay * p for g, p in zip(gs, ps)]
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, gs)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, gs)]
        ps = [p - lr * (mi / (1 - b1 ** t)) / (np.sqrt(vi / (1 - b2 ** t)) + eps)
              for p, mi, vi in zip(ps, m, v)]
        out.append(ps)
    return out


def rmsprop_by_hand(steps, lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
    ps = _init()
    s = [np.zeros_like(p) for p in ps]
    b = [np.zeros_like(p) for p in ps]
    out = []
    for _ in range(steps):
        gs = [g + weight_decay * p for g, p in zip(_grads_np(ps), ps)]
        s = [alpha * si + (1 - alpha) * g * g for si, g in zip(s, gs)]
        if momentum:
            b = [momentum * bi + g / (np.sqrt(si) + eps) for bi, g, si in zip(b, gs, s)]
            ps = [p - lr * bi for p, bi in zip(ps, b)]
        else:
            ps = [p - lr * g / (np.sqrt(si) + eps) for p, g, si in zip(ps, gs, s)]
        out.append(ps)
    return out


def adagrad_by_hand(steps, lr, eps=1e-10, weight_decay=0.0):
    ps = _init()
    s = [np.zeros_like(p) for p in ps]
    out = []
    for _ in range(steps):
        gs = [g + weight_decay * p for g, p in zip(_grads_np(ps), ps)]
        s = [si + g * g for si, g in zip(s, gs)]
        ps = [p - lr * g / (np.sqrt(si) + eps) for p, g, si in zip(ps, gs, s)]
        out.append(ps)
    return out


CASES = {
    "sgd": (optim.SGD, sgd_by_hand, dict(lr=0.1)),
    "sgd_momentum": (optim.SGD, sgd_by_hand, dict(lr=0.1, momentum=0.9)),
    "sgd_dampening": (optim.SGD, sgd_by_hand, dict(lr=0.1, momentum=0.8, dampening=0.3)),
    "sgd_nesterov": (optim.SGD, sgd_by_hand, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_weight_decay": (optim.SGD, sgd_by_hand, dict(lr=0.1, momentum=0.5, weight_decay=0.1)),
    "adam": (optim.Adam, adam_by_hand, dict(lr=0.05)),
    "adam_l2": (optim.Adam, adam_by_hand, dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)),
    "adamw": (optim.AdamW, lambda s, **k: adam_by_hand(s, decoupled=True, **k),
              dict(lr=0.05, weight_decay=0.1)),
    "rmsprop": (optim.RMSprop, rmsprop_by_hand, dict(lr=0.01)),
    "rmsprop_momentum": (optim.RMSprop, rmsprop_by_hand, dict(lr=0.01, momentum=0.9, alpha=0.9,
                                                              weight_decay=0.05)),
    "adagrad": (optim.Adagrad, adagrad_by_hand, dict(lr=0.1)),
    "adagrad_wd": (optim.Adagrad, adagrad_by_hand, dict(lr=0.1, weight_decay=0.2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_first_three_steps_match_the_published_rule(case, jit):
    cls, by_hand, hp = CASES[case]
    got, _, _ = _run(cls, 3, **hp)
    want = by_hand(3, **hp)
    for t in range(3):
        for g, w in zip(got[t], want[t]):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15, err_msg=f"{case} step {t + 1}")


def test_adam_first_step_moves_each_coordinate_by_lr(jit):
    # m/(1-b1) = g and v/(1-b2) = g^2 at t = 1: the step is lr g / (|g| + eps)
    got, _, _ = _run(optim.Adam, 1, lr=0.01)
    for p0, p1, g in zip(_init(), got[0], _grads_np(_init())):
        np.testing.assert_allclose(p0 - p1, 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)


FUNCTIONAL = {"sgd": OF.sgd, "sgd_momentum": OF.sgd, "sgd_dampening": OF.sgd, "sgd_nesterov": OF.sgd,
              "sgd_weight_decay": OF.sgd, "adam": OF.adam, "adam_l2": OF.adam, "adamw": OF.adamw,
              "rmsprop": OF.rmsprop, "rmsprop_momentum": OF.rmsprop, "adagrad": OF.adagrad,
              "adagrad_wd": OF.adagrad}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stateful_optimizer_equals_the_pure_function(case, jit):
    cls, _, hp = CASES[case]
    got, opt, params = _run(cls, 3, **hp)
    ps, state = [tm.tensor(p, dtype="float64") for p in _init()], None
    for t in range(3):
        gs = [tm.tensor(g) for g in _grads_np([p.data for p in ps])]
        ps, state = FUNCTIONAL[case](ps, gs, state, **hp)
        for a, b in zip(ps, got[t]):
            np.testing.assert_allclose(a.data, b, rtol=1e-12, atol=1e-15)
    # and the state they carry agrees too
    for name, values in state.items():
        if isinstance(values, list):
            for i, v in enumerate(values):
                np.testing.assert_allclose(opt.state[id(params[i])][name], v.data, rtol=1e-12, atol=1e-15)
        else:
            assert all(opt.state[id(p)][name] == values for p in params)


# ----------------------------------------------------------------------------- differentiable rules

def test_gradient_through_an_sgd_step_wrt_lr_matches_finite_differences():
    x = tm.tensor(np.linspace(-1, 1, 8).reshape(4, 2), dtype="float64")
    y = np.array([0.5, -1.0, 2.0, 0.0])
    w0 = np.array([0.3, -0.2])

    def loss_after_step(lr):
        w = tm.tensor(w0, dtype="float64", requires_grad=True)
        inner = F.mse_loss(x @ w, y)
        (g,) = tm.grad(inner, [w], create_graph=True)
        (w1,), _ = OF.sgd([w], [g], lr=lr, momentum=0.0)
        return F.mse_loss(x @ w1, y)

    lr = tm.tensor(0.1, dtype="float64", requires_grad=True)
    (analytic,) = tm.grad(loss_after_step(lr), [lr])
    h = 1e-6
    numeric = (loss_after_step(0.1 + h).item() - loss_after_step(0.1 - h).item()) / (2 * h)
    assert analytic.item() == pytest.approx(numeric, rel=1e-6)
    assert tm.gradcheck(loss_after_step, [tm.tensor(0.1, dtype="float64", requires_grad=True)])


def _tensors(arrays, grad=False):
    return [tm.tensor(a, dtype="float64", requires_grad=grad) for a in arrays]


@pytest.mark.parametrize("rule, state", [
    (OF.adam, {"step": 1, "exp_avg": [np.full(s, 0.1) for s in SHAPES],
               "exp_avg_sq": [np.full(s, 0.3) for s in SHAPES]}),
    (OF.rmsprop, {"square_avg": [np.full(s, 0.2) for s in SHAPES]}),
    (OF.adagrad, {"sum": [np.full(s, 0.5) for s in SHAPES]}),
    (OF.sgd, {"momentum_buffer": [np.full(s, 0.4) for s in SHAPES]}),
])
def test_functional_rules_pass_gradcheck_wrt_params(rule, state):
    kwargs = {"momentum": 0.9, "nesterov": True} if rule is OF.sgd else {}
    st_t = {k: (_tensors(v) if isinstance(v, list) else v) for k, v in state.items()}

    def one_step(*ps):
        gs = [p * c + d for p, c, d in zip(ps, _C, _D)]  # the gradient depends on p too
        new, _ = rule(list(ps), gs, st_t, lr=0.1, **kwargs)
        return tuple(new)

    assert tm.gradcheck(one_step, _tensors(_init(), grad=True))


def test_meta_sgd_per_parameter_learning_rates_get_gradients():
    lrs = _tensors([np.full(s, 0.1) for s in SHAPES], grad=True)
    ps = _tensors(_init())
    new, _ = OF.sgd(ps, _tensors(_grads_np(_init())), lr=lrs)
    lgrads = tm.grad(sum(tm.sum(p * p) for p in new), lrs)
    for lg, p0, g in zip(lgrads, _init(), _grads_np(_init())):  # d/dlr (p - lr g)^2 = -2 (p - lr g) g
        np.testing.assert_allclose(lg.data, -2 * (p0 - 0.1 * g) * g, rtol=1e-12)


# ----------------------------------------------------------------------------- accumulation, clipping

@pytest.mark.parametrize("cls, hp", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.01))])
@pytest.mark.parametrize("k", [2, 4])
def test_accumulating_k_micro_batches_equals_one_full_batch_step(cls, hp, k):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.integers(0, 3, 8)
    whole, micro = (nn.MLP([3, 5, 3], rng=1, dtype="float64") for _ in range(2))
    opt_whole, opt_micro = cls(whole.parameters(), **hp), cls(micro.parameters(), **hp)
    for _ in range(3):
        opt_whole.zero_grad()
        F.cross_entropy(whole(X), y).backward()
        opt_whole.step()
        opt_micro.zero_grad()
        for xb, yb in zip(np.split(X, k), np.split(y, k)):
            (F.cross_entropy(micro(xb), yb) / k).backward()  # .grad accumulates across backward()
        opt_micro.step()
    for a, b in zip(whole.parameters(), micro.parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-10, atol=1e-13)


def _with_grads(grads):
    ps = [tm.tensor(np.zeros_like(g), dtype="float64", requires_grad=True) for g in grads]
    for p, g in zip(ps, grads):
        p.grad = tm.tensor(g, dtype="float64")
    return ps


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), max_norm=st.floats(0.01, 10.0))
def test_clip_grad_norm(seed, max_norm):
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal((3, 2)) * 3, rng.standard_normal(4)]
    total = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    ps = _with_grads(grads)
    shared = ps[0].grad.data  # a .grad may alias other memory: it must not be written in place
    before = shared.copy()
    returned = optim.clip_grad_norm_(ps, max_norm)
    assert returned == pytest.approx(total, rel=1e-12)
    new_norm = math.sqrt(sum(float((p.grad.data ** 2).sum()) for p in ps))
    if total > max_norm:
        assert new_norm == pytest.approx(max_norm, rel=1e-5)
        for p, g in zip(ps, grads):  # same direction
            np.testing.assert_allclose(p.grad.data, g * (new_norm / total), rtol=1e-12)
    else:
        for p, g in zip(ps, grads):
            np.testing.assert_array_equal(p.grad.data, g)
    np.testing.assert_array_equal(shared, before)


def test_clip_grad_norm_inf_and_no_grads():
    ps = _with_grads([np.array([3.0, -4.0]), np.array([1.0])])
    assert optim.clip_grad_norm_(ps, 2.0, norm_type=float("inf")) == 4.0
    assert np.abs(np.concatenate([p.grad.data for p in ps])).max() == pytest.approx(2.0, rel=1e-6)
    assert optim.clip_grad_norm_([tm.tensor([1.0], requires_grad=True)], 1.0) == 0.0


# ----------------------------------------------------------------------------- schedulers

def _opt(lr=0.5):
    return optim.SGD([tm.tensor([1.0], requires_grad=True)], lr=lr)


@pytest.mark.parametrize("make, formula", [
    (lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5), lambda e: 0.5 * 0.5 ** (e // 3)),
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=0.9), lambda e: 0.5 * 0.9 ** e),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
     lambda e: 0.01 + (0.5 - 0.01) * (1 + math.cos(math.pi * e / 10)) / 2),
])
def test_schedulers_follow_their_formulas(make, formula):
    opt = _opt()
    sched = make(opt)
    assert opt.param_groups[0]["lr"] == 0.5
    for epoch in range(1, 13):
        opt.step()
        sched.step()
        assert sched.get_last_lr()[0] == pytest.approx(formula(epoch), rel=1e-12)
    # state_dict round trip: a fresh scheduler continues identically
    opt2 = _opt()
    sched2 = make(opt2)
    sched2.load_state_dict(sched.state_dict())
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert lr_scheduler.CosineAnnealingLR(_opt(), T_max=4).get_last_lr() == [0.5]


def test_scheduler_arguments_are_checked():
    with pytest.raises(tm.ArgumentError):
        lr_scheduler.StepLR(_opt(), step_size=0)
    with pytest.raises(tm.ArgumentError):
        lr_scheduler.CosineAnnealingLR(_opt(), T_max=0)


# ----------------------------------------------------------------------------- state_dict

@pytest.mark.parametrize("case", sorted(CASES))
def test_state_dict_round_trip_continues_bit_for_bit(case, jit):
    cls, _, hp = CASES[case]
    straight, _, _ = _run(cls, 6, **hp)

    _, opt, params = _run(cls, 3, **hp)
    sd = opt.state_dict()
    for s in sd["state"].values():  # the state is a copy: scribbling on it changes nothing
        for v in s.values():
            if isinstance(v, np.ndarray):
                v_copy = v.copy()
                v += 1.0
                v[...] = v_copy
    # a fresh model and optimizer (different hyperparameters even) take the saved state
    fresh = [tm.tensor(p.data.copy(), dtype="float64", requires_grad=True) for p in params]
    opt2 = cls(fresh, **{**hp, "lr": 123.0})
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == hp["lr"]
    for _ in range(3):
        opt2.zero_grad()
        _loss(fresh).backward()
        opt2.step()
    for a, b in zip(fresh, straight[-1]):
        np.testing.assert_array_equal(a.data, b)


def test_load_state_dict_refuses_a_state_for_other_parameters():
    _, opt, _ = _run(optim.Adam, 2, lr=0.1)
    other = optim.Adam([tm.tensor(np.zeros((4, 4)), requires_grad=True)], lr=0.1)
    with pytest.raises(tm.CheckpointError):
        other.load_state_dict(opt.state_dict())


def test_load_state_dict_refuses_a_state_for_a_different_number_of_parameters():
    a, b, c = (tm.tensor(np.ones(2), requires_grad=True) for _ in range(3))
    two = optim.Adam([a, b], lr=0.1)
    (a.sum() + b.sum()).backward()
    two.step()
    with pytest.raises(tm.CheckpointError):
        optim.Adam([a, b, c], lr=0.1).load_state_dict(two.state_dict())


def test_param_groups_use_their_own_hyperparameters():
    a = tm.tensor([1.0], dtype="float64", requires_grad=True)
    b = tm.tensor([1.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([{"params": [a], "lr": 0.5}, {"params": [b]}], lr=0.1)
    (a + b).sum().backward()
    opt.step()
    assert a.item() == pytest.approx(0.5) and b.item() == pytest.approx(0.9)


# ----------------------------------------------------------------------------- validation

def _p():
    return [tm.tensor([1.0], requires_grad=True)]


@pytest.mark.parametrize("make, pattern", [
    (lambda: optim.SGD(_p(), lr=-0.1), "lr"),
    (lambda: optim.Adam(_p(), lr=-1e-3), "lr"),
    (lambda: optim.AdamW(_p(), lr=-1.0), "lr"),
    (lambda: optim.RMSprop(_p(), lr=-1.0), "lr"),
    (lambda: optim.Adagrad(_p(), lr=-1.0), "lr"),
    (lambda: optim.Adam(_p(), betas=(1.0, 0.999)), "betas"),
    (lambda: optim.Adam(_p(), betas=(0.9, -0.1)), "betas"),
    (lambda: optim.Adam(_p(), eps=0.0), "eps"),
    (lambda: optim.SGD(_p(), lr=0.1, nesterov=True), "Nesterov"),
    (lambda: optim.SGD(_p(), lr=0.1, momentum=-0.5), "momentum"),
    (lambda: optim.SGD(_p(), lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda: optim.SGD([], lr=0.1), "empty"),
    (lambda: optim.SGD([tm.tensor([1.0])], lr=0.1), "requires_grad"),
    (lambda: optim.RMSprop(_p(), alpha=1.5), "alpha"),
    (lambda: optim.clip_grad_norm_(_p(), -1.0), "max_norm"),
])
def test_bad_arguments_are_refused(make, pattern):
    with pytest.raises(tm.ArgumentError, match=pattern):
        make()


# ----------------------------------------------------------------------------- hypergradient SGD

@pytest.mark.parametrize("lr, direction", [(1e-3, +1), (1.9, -1)])
def test_hypergrad_lr_moves_lr_the_right_way_on_a_quadratic(lr, direction):
    # L = ||p||^2 / 2: too small an lr keeps successive gradients aligned (lr should grow),
    # too large an lr (curvature 1, lr > 1) flips them (lr should shrink).
    p = tm.tensor(np.array([1.0, -2.0, 0.5]), dtype="float64", requires_grad=True)
    opt = optim.SGD([p], lr=lr, hypergrad_lr=1e-3)
    lrs = [lr]
    for _ in range(5):
        opt.zero_grad()
        ((p * p).sum() * 0.5).backward()
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
    steps = np.diff(lrs)[1:]  # the first step has no previous gradient: lr unchanged
    assert lrs[1] == lr
    assert np.all(np.sign(steps) == direction)
    # Baydin et al.: the first update is hypergrad_lr * g_t . g_{t-1}
    g0 = np.array([1.0, -2.0, 0.5])
    g1 = g0 * (1 - lr)
    assert lrs[2] == pytest.approx(lr + 1e-3 * float(g1 @ g0), rel=1e-12)


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad])
def test_step_with_a_mismatched_gradient_changes_nothing(cls, jit):
    """All gradients are checked before any parameter moves: the error names both shapes,
    and no parameter, version or optimizer state has changed."""
    tm.kernels.set_enabled(jit)
    try:
        a, b = tm.tensor(np.ones(3), requires_grad=True), tm.tensor(np.ones((2, 3)), requires_grad=True)
        opt = cls([a, b], lr=0.1)
        a.grad, b.grad = tm.tensor(np.ones(3)), tm.tensor(np.ones((3, 2)))
        version = a._version
        with pytest.raises(ShapeError, match=r"shape \(2, 3\).*shape \(3, 2\)"):
            opt.step()
        assert a.data.tolist() == [1.0, 1.0, 1.0] and a._version == version
        assert opt.state == {}
    finally:
        tm.kernels.set_enabled(True)


@pytest.mark.parametrize("jit", [True, False])
def test_adam_state_of_a_scalar_parameter_survives_a_round_trip(jit):
    """A 0-d parameter's moments come back from load_state_dict as arrays that keep
    updating (not as frozen Python floats)."""
    tm.kernels.set_enabled(jit)
    try:
        def run(reload):
            p = tm.tensor(np.array(1.0), requires_grad=True)
            opt = optim.Adam([p], lr=0.1)
            for i in range(3):
                p.grad = tm.tensor(np.array(1.0 + i))
                opt.step()
                if reload and i == 0:
                    sd = opt.state_dict()
                    opt = optim.Adam([p], lr=0.1)
                    opt.load_state_dict(sd)
            return p.data.item(), opt.state[id(p)]["exp_avg"]
        (p1, m1), (p2, m2) = run(False), run(True)
        assert p1 == p2 and float(m1) == float(m2) and isinstance(m2, np.ndarray)
    finally:
        tm.kernels.set_enabled(True)

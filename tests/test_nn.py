"""Independent checks of tinymeta.nn: modules, functional_call, checkpoints, losses."""
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinymeta as tm
import tinymeta.nn.functional as F
from tinymeta import nn


def f64(a, grad=True):
    return tm.tensor(np.asarray(a, dtype=np.float64), dtype="float64", requires_grad=grad)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh(), nn.Linear(4, 2, rng=1))
        self.scale = nn.Parameter(np.ones(2))
        self.constant = tm.tensor([1.0, 2.0])  # does not require grad: not a parameter

    def forward(self, x):
        return self.body(x) * self.scale + self.constant


# ----------------------------------------------------------------------------- Module

def test_parameters_are_registered_with_dotted_names_in_order():
    m = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p.shape for p in m.parameters()] == [(3, 2), (3,), (1, 3), (1,)]
    assert all(p.requires_grad and p.is_leaf for p in m.parameters())
    assert m.num_parameters() == 6 + 3 + 3 + 1


def test_nested_modules_and_non_parameters():
    b = Block()
    names = [n for n, _ in b.named_parameters()]
    assert names == ["scale", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    assert "constant" not in names
    assert [n for n, _ in b.named_modules()] == ["", "body", "body.0", "body.1", "body.2"]
    b.scale = nn.Parameter(np.zeros(2))  # reassignment replaces, does not duplicate
    assert [n for n, _ in b.named_parameters()].count("scale") == 1


def test_module_without_super_init_says_so():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_zero_grad_clears_every_gradient():
    b = Block()
    b(np.ones((5, 3), dtype=np.float32)).sum().backward()
    assert all(p.grad is not None for p in b.parameters())
    b.zero_grad()
    assert all(p.grad is None for p in b.parameters())


def test_train_eval_flags_propagate_to_every_submodule():
    b = Block()
    assert all(m.training for _, m in b.named_modules())
    assert b.eval() is b
    assert not any(m.training for _, m in b.named_modules())
    b.train()
    assert all(m.training for _, m in b.named_modules())


def test_state_dict_is_a_copy_and_round_trips():
    b, other = Block(), Block()
    with tm.no_grad():
        for p in other.parameters():
            p.data[...] = 7.0
    sd = b.state_dict()
    sd["scale"][...] = 123.0  # must not write through to the model
    assert np.all(b.scale.data == 1.0)
    other.load_state_dict(b.state_dict())
    for (n1, p1), (n2, p2) in zip(b.named_parameters(), other.named_parameters()):
        assert n1 == n2 and np.array_equal(p1.data, p2.data)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    assert np.array_equal(b(x).data, other(x).data)


def _params_of(m):
    return {n: p.data.copy() for n, p in m.named_parameters()}


@pytest.mark.parametrize("change, pattern", [
    (lambda sd: sd.pop("body.2.bias"), "missing.*body.2.bias"),
    (lambda sd: sd.__setitem__("body.9.weight", np.zeros(3)), "unexpected.*body.9.weight"),
    (lambda sd: sd.__setitem__("body.2.bias", np.zeros(5)), r"body.2.bias.*\(5,\).*\(2,\)"),
])
def test_load_state_dict_refuses_mismatches_and_changes_nothing(change, pattern):
    m = Block()
    before = _params_of(m)
    sd = {k: v + 1.0 for k, v in m.state_dict().items()}  # every value differs from the model's
    change(sd)
    with pytest.raises(tm.CheckpointError, match=pattern):
        m.load_state_dict(sd)
    after = _params_of(m)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_state_dict_keeps_parameter_identity_and_dtype():
    m = nn.Linear(3, 2, dtype="float32", rng=0)
    w = m.weight
    m.load_state_dict({"weight": np.ones((2, 3)), "bias": np.zeros(2)})  # float64 in
    assert m.weight is w and w.dtype == np.float32 and np.all(w.data == 1)


# ----------------------------------------------------------------------------- layers

@pytest.mark.parametrize("fan_in, fan_out", [(1, 1), (3, 7), (64, 10), (400, 5)])
def test_linear_shapes_and_pytorch_init_bounds(fan_in, fan_out):
    lin = nn.Linear(fan_in, fan_out, rng=0)
    assert lin.weight.shape == (fan_out, fan_in) and lin.bias.shape == (fan_out,)
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    if fan_in * fan_out >= 200:  # the whole range is used, not a narrower one
        assert np.abs(lin.weight.data).max() > 0.9 * bound
        assert abs(lin.weight.data.std() - bound / np.sqrt(3)) < 0.1 * bound
    x = np.ones((6, fan_in), dtype=np.float32)
    assert lin(x).shape == (6, fan_out)
    assert nn.Linear(fan_in, fan_out, bias=False).bias is None


def test_linear_input_dtype_follows_parameters():
    lin = nn.Linear(2, 1, dtype="float64", rng=0)
    assert lin(np.ones((3, 2), dtype=np.float32)).dtype == np.float64


@pytest.mark.parametrize("bad", [0, -1, 2.0])
def test_linear_rejects_bad_sizes(bad):
    with pytest.raises(tm.ArgumentError):
        nn.Linear(bad, 3)


def test_mlp_equals_the_equivalent_sequential():
    mlp = nn.MLP([5, 8, 8, 2], activation="tanh", rng=np.random.default_rng(3))
    g = np.random.default_rng(3)
    seq = nn.Sequential(nn.Linear(5, 8, rng=g), nn.Tanh(), nn.Linear(8, 8, rng=g), nn.Tanh(),
                        nn.Linear(8, 2, rng=g))
    assert [n for n, _ in mlp.named_parameters()] == [n for n, _ in seq.named_parameters()]
    assert [type(m) for m in mlp.children()] == [type(m) for m in seq.children()]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(mlp.parameters(), seq.parameters()))
    x = np.random.default_rng(0).standard_normal((7, 5))
    np.testing.assert_array_equal(mlp(x).data, seq(x).data)
    with pytest.raises(tm.ArgumentError, match="activation"):
        nn.MLP([2, 2], activation="swish")


NUMPY_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "softplus": lambda z: np.log1p(np.exp(z)),
    "identity": lambda z: z,
}


@pytest.mark.parametrize("activation", sorted(NUMPY_ACTIVATIONS))
def test_mlp_computes_its_activation_as_written_by_hand_in_numpy(activation):
    # Compared with NumPy written here, not with Sequential (which would share a wrong
    # activation table): MLP(activation="tanh") computing ReLU must fail this.
    mlp = nn.MLP([3, 6, 5, 2], activation=activation, rng=0, dtype="float64")
    x = np.random.default_rng(1).standard_normal((9, 3)) * 2
    f = NUMPY_ACTIVATIONS[activation]
    h = x
    layers = [m for m in mlp.children() if isinstance(m, nn.Linear)]
    assert len(layers) == 3
    for i, lin in enumerate(layers):
        h = h @ lin.weight.data.T + lin.bias.data
        if i < len(layers) - 1:
            h = f(h)
    np.testing.assert_allclose(mlp(x).data, h, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- functional_call

def _mlp64():
    return nn.MLP([3, 5, 2], activation="tanh", rng=0, dtype="float64")


def test_functional_call_with_own_params_matches_module():
    m = _mlp64()
    x = np.random.default_rng(1).standard_normal((4, 3))
    own = dict(m.named_parameters())
    np.testing.assert_array_equal(nn.functional_call(m, own, x).data, m(x).data)


def test_functional_call_uses_given_params_and_leaves_module_alone():
    m = _mlp64()
    x = np.random.default_rng(1).standard_normal((4, 3))
    before, out_before = _params_of(m), m(x).data.copy()
    own = dict(m.named_parameters())
    new = {k: f64(v.data * 2 + 0.1) for k, v in own.items()}
    out = nn.functional_call(m, new, x)
    assert not np.allclose(out.data, out_before)
    for name, p in m.named_parameters():  # same objects, same values
        assert p is own[name] and np.array_equal(p.data, before[name])
    np.testing.assert_array_equal(m(x).data, out_before)
    # the result equals running a copy of the module that holds the new params
    twin = _mlp64()
    twin.load_state_dict({k: v.data for k, v in new.items()})
    np.testing.assert_allclose(out.data, twin(x).data, rtol=1e-12)


def test_functional_call_gradients_reach_the_given_params_only():
    m = _mlp64()
    x = np.random.default_rng(1).standard_normal((4, 3))
    new = {k: f64(v.data) for k, v in m.named_parameters()}
    nn.functional_call(m, new, x).sum().backward()
    assert all(v.grad is not None for v in new.values())
    assert all(p.grad is None for p in m.parameters())
    # partial dict: the rest keep the module's own parameters
    w = f64(m[0].weight.data + 1.0)
    out = nn.functional_call(m, {"0.weight": w}, x)
    (gw,) = tm.grad(out.sum(), [w])
    assert gw.shape == w.shape


def test_functional_call_restores_params_after_an_error():
    m = _mlp64()
    before = dict(m.named_parameters())
    bad = {"0.weight": f64(np.zeros((5, 4)))}  # wrong shape: the forward raises
    with pytest.raises(tm.ShapeError):
        nn.functional_call(m, bad, np.ones((2, 3)))
    assert all(p is before[n] for n, p in m.named_parameters())
    with pytest.raises(tm.ArgumentError, match="nope"):
        nn.functional_call(m, {"nope": f64(1.0)}, np.ones((2, 3)))


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 4), N=st.integers(1, 5), seed=st.integers(0, 1000))
def test_functional_call_with_a_task_axis_equals_a_loop(T, N, seed):
    rng = np.random.default_rng(seed)
    m = _mlp64()
    batched = {n: f64(rng.standard_normal((T, *p.shape))) for n, p in m.named_parameters()}
    x = rng.standard_normal((T, N, 3))
    out = nn.functional_call(m, batched, x)
    assert out.shape == (T, N, 2)
    loss = (out * out).sum()
    grads = tm.grad(loss, list(batched.values()))
    for t in range(T):
        single = {n: f64(v.data[t]) for n, v in batched.items()}
        o = nn.functional_call(m, single, x[t])
        np.testing.assert_allclose(out.data[t], o.data, rtol=1e-12, atol=1e-12)
        gs = tm.grad((o * o).sum(), list(single.values()))
        for g, gt in zip(grads, gs):
            np.testing.assert_allclose(g.data[t], gt.data, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- checkpoints

def test_save_load_round_trip(tmp_path):
    path = tmp_path / "m.npz"
    a, b = Block(), Block()
    with tm.no_grad():
        for p in b.parameters():
            p.data[...] = 0
    nn.save(a, path, step=np.array(7))
    extra = nn.load(b, path)
    assert int(extra["step"]) == 7
    assert all(np.array_equal(p.data, q.data) for p, q in zip(a.parameters(), b.parameters()))


def test_save_is_atomic_when_the_write_fails_midway(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    good = Block()
    nn.save(good, path)
    original = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        nn.save(Block(), path)
    monkeypatch.undo()
    assert path.read_bytes() == original
    assert os.listdir(tmp_path) == ["m.npz"]  # no temporary file left
    fresh = Block()
    nn.load(fresh, path)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(good.parameters(), fresh.parameters()))


def test_save_interrupted_by_keyboardinterrupt_leaves_no_temp(tmp_path, monkeypatch):
    def interrupted(f, **arrays):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        nn.save(Block(), tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []  # neither target nor temporary


class _Trap:
    """Unpickling this sets a flag: proves whether a loader unpickles."""
    fired = False

    def __reduce__(self):
        return (_fire, ())


def _fire():
    _Trap.fired = True
    return "boom"


def _bad_files(tmp_path):
    good = tmp_path / "good.npz"
    nn.save(Block(), good)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "empty.npz").write_bytes(b"")
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3), bias=np.zeros(2))
    from tinymeta.nn.serialization import FORMAT, FORMAT_KEY
    obj = np.empty(1, dtype=object)
    obj[0] = _Trap()
    np.savez(tmp_path / "object.npz", **{FORMAT_KEY: np.array(FORMAT), "param/scale": obj})
    return ["truncated", "random", "empty", "foreign", "object"]


def test_corrupt_foreign_and_pickled_files_are_refused(tmp_path):
    for name in _bad_files(tmp_path):
        m = Block()
        before = _params_of(m)
        with pytest.raises(tm.CheckpointError, match=r"\S") as info:
            nn.load(m, tmp_path / f"{name}.npz")
        assert name + ".npz" in str(info.value)
        assert all(np.array_equal(before[k], v) for k, v in _params_of(m).items())
    assert not _Trap.fired  # allow_pickle=False: the object array was never unpickled
    with pytest.raises(tm.CheckpointError, match="no checkpoint"):
        nn.load(Block(), tmp_path / "missing.npz")


def test_checkpoint_for_another_model_is_refused_whole(tmp_path):
    nn.save(nn.MLP([3, 4, 2], rng=0), tmp_path / "mlp.npz")
    m = nn.MLP([3, 5, 2], rng=1)
    before = _params_of(m)
    with pytest.raises(tm.CheckpointError, match="0.weight"):
        nn.load(m, tmp_path / "mlp.npz")
    assert all(np.array_equal(before[k], v) for k, v in _params_of(m).items())


def test_save_refuses_object_arrays(tmp_path):
    with pytest.raises(tm.CheckpointError, match="object"):
        nn.save_arrays(tmp_path / "x.npz", {"a": np.array([{"k": 1}], dtype=object)})
    assert os.listdir(tmp_path) == []


def test_pickle_is_not_how_checkpoints_are_written(tmp_path):
    nn.save(Block(), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:  # readable without pickle
        assert all(z[k].dtype.kind != "O" for k in z.files)
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads((tmp_path / "m.npz").read_bytes())


# ----------------------------------------------------------------------------- losses

def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_mse_loss_refuses_silent_broadcasting():
    pred = f64(np.zeros((4, 1)))
    with pytest.raises(tm.ShapeError, match=r"\(4, 1\).*\(4,\)"):
        F.mse_loss(pred, np.zeros(4))
    with pytest.raises(ValueError):  # also a built-in ValueError
        F.mse_loss(pred, np.zeros(4))
    assert F.mse_loss(pred, np.ones((4, 1))).item() == 1.0


def test_mse_and_l1_reductions():
    a, b = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [1.0, 1.0]])
    assert F.mse_loss(f64(a), b).item() == pytest.approx((1 + 0 + 4 + 16) / 4)
    assert F.mse_loss(f64(a), b, reduction="sum").item() == pytest.approx(21)
    np.testing.assert_allclose(F.mse_loss(f64(a), b, reduction="none").data, (a - b) ** 2)
    assert F.l1_loss(f64(a), b).item() == pytest.approx((1 + 0 + 2 + 4) / 4)
    with pytest.raises(tm.ArgumentError, match="reduction"):
        F.mse_loss(f64(a), b, reduction="avg")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(2, 5), weighted=st.booleans(), seed=st.integers(0, 10**6),
       lead=st.sampled_from([(), (3,)]))
def test_cross_entropy_matches_numpy(n, c, weighted, seed, lead):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((*lead, n, c)) * 3
    y = rng.integers(0, c, (*lead, n))
    w = rng.uniform(0.1, 2.0, c) if weighted else None
    picked = -np.take_along_axis(_log_softmax(z), y[..., None], -1)[..., 0]
    wl = np.ones_like(picked) if w is None else w[y]
    got = {r: F.cross_entropy(f64(z), y, weight=w, reduction=r).data for r in ("mean", "sum", "none")}
    # PyTorch's weighted mean divides by the summed weights
    np.testing.assert_allclose(got["mean"], (picked * wl).sum() / wl.sum(), rtol=1e-10)
    np.testing.assert_allclose(got["sum"], (picked * wl).sum(), rtol=1e-10)
    np.testing.assert_allclose(got["none"], picked * wl, rtol=1e-10, atol=1e-14)
    # and equals -log_softmax picked, built from tinymeta ops
    ls = tm.log_softmax(f64(z), axis=-1).data
    picked_tm = -np.take_along_axis(ls, y[..., None], -1)[..., 0]
    np.testing.assert_allclose(got["none"], picked_tm * wl, rtol=1e-10, atol=1e-14)


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    rng = np.random.default_rng(0)
    z, y = f64(rng.standard_normal((5, 4))), rng.integers(0, 4, 5)
    F.cross_entropy(z, y).backward()
    p = np.exp(_log_softmax(z.data))
    np.testing.assert_allclose(z.grad.data, (p - np.eye(4)[y]) / 5, rtol=1e-10, atol=1e-15)


def test_cross_entropy_errors():
    z = f64(np.zeros((3, 4)))
    with pytest.raises(tm.ArgumentError, match=r"\[0, 4\)"):
        F.cross_entropy(z, np.array([0, 1, 4]))
    with pytest.raises(tm.ArgumentError):
        F.cross_entropy(z, np.array([0, -1, 2]))
    with pytest.raises(tm.DTypeError, match="integer"):
        F.cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(tm.ShapeError):
        F.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(tm.ShapeError, match="weight"):
        F.cross_entropy(z, np.array([0, 1, 2]), weight=np.ones(3))


def test_cross_entropy_is_finite_for_huge_logits():
    z = f64([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
    loss = F.cross_entropy(z, np.array([1, 0]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx((2e4 + 2e4 + np.log(2)) / 2)
    assert np.isfinite(z.grad.data).all()


def _bce_ref(p, t):
    return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log1p(-p), -100))


def test_binary_cross_entropy_matches_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.uniform(0.01, 0.99, (4, 3)), rng.uniform(0, 1, (4, 3))
    np.testing.assert_allclose(F.binary_cross_entropy(f64(p), t).item(), _bce_ref(p, t).mean(), rtol=1e-10)
    np.testing.assert_allclose(F.binary_cross_entropy(f64(p), t, reduction="none").data, _bce_ref(p, t),
                               rtol=1e-10)
    # p exactly 0 or 1: logs clamped at -100, as in PyTorch
    edge = F.binary_cross_entropy(f64([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(edge.data, [100, 100, 0, 0])
    with pytest.raises(tm.ShapeError):
        F.binary_cross_entropy(f64(p[:, :1]), t[:, 0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.sampled_from([0.1, 3.0, 40.0]))
def test_bce_with_logits_matches_numpy_and_its_gradient(seed, scale):
    rng = np.random.default_rng(seed)
    z, t = rng.standard_normal(7) * scale, rng.uniform(0, 1, 7)
    ref = np.logaddexp(0, z) - z * t  # stable NumPy form of -(t log s + (1-t) log(1-s))
    zt = f64(z)
    loss = F.binary_cross_entropy_with_logits(zt, t)
    np.testing.assert_allclose(loss.item(), ref.mean(), rtol=1e-10, atol=1e-300)
    loss.backward()
    np.testing.assert_allclose(zt.grad.data, (1 / (1 + np.exp(-z)) - t) / 7, rtol=1e-10, atol=1e-300)
    if scale < 10:  # also equal to BCE on probabilities where those are accurate
        np.testing.assert_allclose(F.binary_cross_entropy(tm.sigmoid(f64(z, False)), t).item(),
                                   ref.mean(), rtol=1e-9)


def test_bce_with_logits_finite_at_plus_minus_1e4():
    for dtype in ("float32", "float64"):
        z = tm.tensor([1e4, -1e4, 1e4, -1e4], dtype=dtype, requires_grad=True)
        t = np.array([1.0, 0.0, 0.0, 1.0])
        losses = F.binary_cross_entropy_with_logits(z, t, reduction="none")
        np.testing.assert_allclose(losses.data, [0, 0, 1e4, 1e4], rtol=1e-6)
        losses.sum().backward()
        np.testing.assert_allclose(z.grad.data, [0, 0, 1, -1])
        (g,) = tm.grad(F.binary_cross_entropy_with_logits(z, t), [z], create_graph=True)
        (gg,) = tm.grad(g.sum(), [z])
        assert np.isfinite(gg.data).all()


_LOSSES = {
    "mse": (lambda a, b: F.mse_loss(a, b), "real"),
    "mse_sum": (lambda a, b: F.mse_loss(a, b, reduction="sum"), "real"),
    "l1": (lambda a, b: F.l1_loss(a, b), "real"),
    "cross_entropy": (lambda z, y: F.cross_entropy(z, y), "labels"),
    "cross_entropy_weighted": (lambda z, y: F.cross_entropy(z, y, weight=np.array([0.5, 2.0, 1.0])),
                               "labels"),
    "cross_entropy_none_3d": (lambda z, y: F.cross_entropy(z[None] * 1.0, y[None], reduction="none"),
                              "labels"),
    "nll": (lambda z, y: F.nll_loss(tm.log_softmax(z, axis=-1), y), "labels"),
    "bce": (lambda a, b: F.binary_cross_entropy(tm.sigmoid(a), b), "probs"),
    "bce_logits": (lambda a, b: F.binary_cross_entropy_with_logits(a, b), "probs"),
}


@pytest.mark.parametrize("name", sorted(_LOSSES))
def test_every_loss_passes_gradcheck_and_gradgradcheck(name):
    fn, kind = _LOSSES[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    if kind == "labels":
        y = rng.integers(0, 3, 4)
    elif kind == "probs":
        y = rng.uniform(0, 1, (4, 3))
    else:
        y = x + rng.choice([-1.0, 1.0], (4, 3)) * rng.uniform(0.3, 1, (4, 3))  # away from l1's kink
    assert tm.gradcheck(lambda a: fn(a, y), [f64(x)])
    assert tm.gradgradcheck(lambda a: fn(a, y), [f64(x)])
    if kind != "labels":  # the target is differentiable too
        assert tm.gradcheck(lambda b: fn(f64(x, False), b), [f64(y)])


def test_binary_cross_entropy_gradient_is_finite_at_0_and_1():
    p = f64([0.0, 1.0, 0.0, 1.0])
    F.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0, 1.0])).backward()
    assert np.isfinite(p.grad.data).all()


def test_nll_loss_accepts_a_task_axis():
    z = np.random.default_rng(0).standard_normal((2, 3, 4))
    y = np.random.default_rng(1).integers(0, 4, (2, 3))
    got = F.nll_loss(tm.log_softmax(f64(z), axis=-1), y)
    np.testing.assert_allclose(got.item(), F.cross_entropy(f64(z), y).item(), rtol=1e-12)


def test_nll_loss_refuses_bad_labels():
    lp = tm.log_softmax(f64(np.zeros((3, 4))), axis=-1)
    with pytest.raises(tm.ArgumentError):
        F.nll_loss(lp, np.array([0, 1, -1]))
    with pytest.raises(tm.DTypeError):
        F.nll_loss(lp, np.array([0.5, 1.0, 2.0]))

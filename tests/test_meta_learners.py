"""iMAML, ANIL, CAVIA, ProtoNet and the learned optimizer: each does what its paper's
update says, checked against closed forms or finite differences in float64, and each
survives a checkpoint round trip."""
import numpy as np
import pytest

import tinymeta as tm
from meta_helpers import _analytic, _fd_grad, _sinusoid_batch  # noqa: F401
from tinymeta import meta, nn, optim
from tinymeta.errors import ArgumentError, ShapeError




# ------------------------------------------------------------------------------- iMAML
def _imaml_closed_form(batch, theta, lam):
    """phi* = argmin L_S + lam/2 |phi - theta|^2 and the implicit meta-gradient, exactly."""
    n, loss, grad = len(batch), 0.0, np.zeros_like(theta)
    for t in range(n):
        X, y = batch.x_support[t], batch.y_support[t][:, 0]
        Xq, yq = batch.x_query[t], batch.y_query[t][:, 0]
        H = 2 / len(y) * X.T @ X  # Hessian of the mean squared error
        phi = np.linalg.solve(H + lam * np.eye(len(theta)), 2 / len(y) * X.T @ y + lam * theta)
        gq = 2 / len(yq) * Xq.T @ (Xq @ phi - yq)
        grad += np.linalg.solve(np.eye(len(theta)) + H / lam, gq) / n
        loss += np.mean((Xq @ phi - yq) ** 2) / n
    return loss, grad


def test_imaml_matches_the_closed_form_on_linear_regression(f64):
    dim, lam = 4, 2.0
    batch = meta.tasks.LinearRegression(dim=dim, k_support=6, k_query=8, dtype=np.float64).sample(5, 0)
    model = nn.Linear(dim, 1, bias=False, rng=1)
    # CG is exact after dim steps on a dim x dim system; the inner problem's Hessian H + lam I
    # has eigenvalues in [lam, ~12] here, so 400 steps of lr 0.1 contract the error below 1e-30.
    imaml = meta.IMAML(model, inner_lr=0.1, inner_steps=400, lam=lam, cg_steps=dim)
    loss = imaml.meta_loss(batch)
    loss.backward()
    want_loss, want_grad = _imaml_closed_form(batch, model.weight.data[0].copy(), lam)
    assert loss.item() == pytest.approx(want_loss, rel=1e-10)
    np.testing.assert_allclose(model.weight.grad.data[0], want_grad, rtol=1e-8, atol=1e-12)
    # ... and it is not MAML's gradient, nor the plain query gradient: the solve matters.
    plain = sum(2 / 8 * batch.x_query[t].T @ (batch.x_query[t] @ imaml.adapt(batch.x_support[t],
                batch.y_support[t])["weight"].data[0] - batch.y_query[t][:, 0]) for t in range(5)) / 5
    assert np.abs(plain - want_grad).max() > 1e-3


def test_imaml_adapt_solves_the_proximal_problem(f64):
    batch = meta.tasks.LinearRegression(dim=3, k_support=5, k_query=5, dtype=np.float64).sample(1, 2)
    model = nn.Linear(3, 1, bias=False, rng=0)
    imaml = meta.IMAML(model, inner_lr=0.1, inner_steps=600, lam=1.0)
    X, y = batch.x_support[0], batch.y_support[0][:, 0]
    theta = model.weight.data[0]
    want = np.linalg.solve(2 / 5 * X.T @ X + np.eye(3), 2 / 5 * X.T @ y + theta)
    np.testing.assert_allclose(imaml.adapt(X, batch.y_support[0])["weight"].data[0], want, rtol=1e-9)
    np.testing.assert_array_equal(model.weight.data[0], theta)  # theta itself unchanged


def _graph_size(t):
    seen, stack = set(), [t]
    while stack:
        x = stack.pop()
        node = getattr(x, "grad_fn", None)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(i for i in node.inputs if isinstance(i, tm.Tensor))
    return len(seen)


def test_imaml_graph_does_not_grow_with_inner_steps():
    model = nn.MLP([1, 8, 1], activation="tanh", rng=0)
    batch = meta.tasks.Sinusoid(5, 5).sample(2, 0)
    sizes = [_graph_size(meta.IMAML(model, inner_steps=s).meta_loss(batch)) for s in (1, 20)]
    assert sizes[0] == sizes[1] <= 2


def test_imaml_peak_memory_is_flat_in_inner_steps():
    import tracemalloc
    batch = meta.tasks.Sinusoid(50, 50).sample(10, 0)
    peaks = []
    for steps in (2, 30):
        imaml = meta.IMAML(nn.MLP([1, 40, 40, 1], rng=0), inner_steps=steps)
        imaml.meta_loss(batch).backward()  # warm: kernels, caches
        tracemalloc.start()
        imaml.meta_loss(batch).backward()
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    # Second-order MAML's peak grows about linearly in the steps (15x here); iMAML's must not.
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_imaml_rejects_bad_settings():
    model = nn.Linear(2, 1)
    with pytest.raises(ArgumentError, match="lam"):
        meta.IMAML(model, lam=-1.0)
    with pytest.raises(ArgumentError, match="cg_steps"):
        meta.IMAML(model, cg_steps=0)


# -------------------------------------------------------------------------------- ANIL
def test_anil_adapt_changes_only_the_head():
    model = nn.MLP([1, 8, 8, 1], rng=0)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    anil = meta.ANIL(model, inner_lr=0.1, inner_steps=3)
    assert anil.head_names == ["4.weight", "4.bias"]
    b = meta.tasks.Sinusoid(10, 10).sample(4, 0)
    for x, y, batched in ((b.x_support, b.y_support, True), (b.x_support[0], b.y_support[0], False)):
        phi = anil.adapt(x, y)
        assert set(phi) == set(before)
        for n in anil.body_names:
            got = phi[n].data
            np.testing.assert_array_equal(got, np.broadcast_to(before[n], got.shape))
            assert got.shape == ((4,) if batched else ()) + before[n].shape
        assert not np.allclose(phi["4.weight"].data, before["4.weight"])
    for n, p in model.named_parameters():  # the model itself is never modified
        np.testing.assert_array_equal(p.data, before[n])


@pytest.mark.parametrize("sequential", [True, False])
def test_anil_meta_gradient_is_second_order_and_exact(f64, sequential):
    mlp = nn.MLP([1, 5, 5, 1], activation="tanh", rng=0)

    class Wrapped(nn.Module):  # not a Sequential: the general path (whole forward per step)
        def __init__(self):
            super().__init__()
            self.net = mlp

        def forward(self, x):
            return self.net(x)

    model = mlp if sequential else Wrapped()
    anil = meta.ANIL(model, inner_lr=0.3, inner_steps=2)
    assert (anil._split is not None) == sequential
    batch = _sinusoid_batch()
    grads = _analytic(anil, batch)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(g, _fd_grad(lambda: anil.meta_loss(batch), p), rtol=1e-5, atol=1e-8)
    first = _analytic(meta.ANIL(model, inner_lr=0.3, inner_steps=2, first_order=True), batch)
    # The head's gradient differs when the inner steps are not differentiated through.
    assert np.abs(first[-2] - grads[-2]).max() > 1e-4


def test_anil_needs_a_body():
    with pytest.raises(ArgumentError, match="body"):
        meta.ANIL(nn.Linear(3, 1))


# ------------------------------------------------------------------------------- CAVIA
def test_cavia_adapts_only_the_context_from_zero():
    model = nn.MLP([1 + 3, 8, 1], rng=0)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    cavia = meta.CAVIA(model, num_context=3, inner_lr=1.0, inner_steps=2)
    b = meta.tasks.Sinusoid(10, 10).sample(4, 0)
    np.testing.assert_array_equal(cavia.adapt(b.x_support, b.y_support, steps=0)["context"].data, 0.0)
    phi = cavia.adapt(b.x_support, b.y_support)
    assert list(phi) == ["context"] and phi["context"].shape == (4, 3)
    assert np.abs(phi["context"].data).max() > 0
    one = cavia.adapt(b.x_support[0], b.y_support[0])
    np.testing.assert_allclose(one["context"].data, phi["context"].data[0], rtol=1e-5)
    assert cavia.predict(one, b.x_query[0]).shape == (10, 1)
    assert cavia.predict(phi, b.x_query).shape == (4, 10, 1)
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


def test_cavia_meta_gradient_equals_finite_differences(f64):
    model = nn.MLP([1 + 2, 5, 1], activation="tanh", rng=0)
    cavia = meta.CAVIA(model, num_context=2, inner_lr=0.5, inner_steps=2)
    batch = _sinusoid_batch()
    grads = _analytic(cavia, batch)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(g, _fd_grad(lambda: cavia.meta_loss(batch), p), rtol=1e-5, atol=1e-8)


def test_cavia_says_when_the_model_lacks_context_inputs():
    cavia = meta.CAVIA(nn.MLP([1, 8, 1], rng=0), num_context=4)
    b = meta.tasks.Sinusoid(5, 5).sample(2, 0)
    with pytest.raises(ShapeError, match="build the model with 5 inputs"):
        cavia.meta_loss(b)


# ---------------------------------------------------------------------------- ProtoNet
def _episodes(k_shot=2, n=3, seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(60, 6)), np.repeat(np.arange(6), 10)
    return meta.tasks.FewShotClassification(X, y, n_way=3, k_shot=k_shot, k_query=4).sample(n, seed)


def test_protonet_prototypes_are_class_means_and_logits_distances(f64):
    encoder = nn.MLP([6, 7, 4], rng=0)
    proto = meta.ProtoNet(encoder)
    b = _episodes()
    # Shuffle the support order: prototypes must follow the labels, not the positions.
    perm = np.random.default_rng(1).permutation(b.x_support.shape[1])
    xs, ys = b.x_support[:, perm], b.y_support[:, perm]
    params = proto.adapt(xs, ys)
    emb = encoder(tm.tensor(xs)).data
    want = np.stack([[emb[t][ys[t] == c].mean(0) for c in range(3)] for t in range(len(b))])
    np.testing.assert_allclose(params["prototypes"].data, want, rtol=1e-12)
    q = encoder(tm.tensor(b.x_query)).data
    logits = proto.predict(params, b.x_query).data
    np.testing.assert_allclose(logits, -((q[:, :, None] - want[:, None]) ** 2).sum(-1), rtol=1e-10)
    single = proto.predict(proto.adapt(xs[0], ys[0]), b.x_query[0]).data
    np.testing.assert_allclose(single, logits[0], rtol=1e-10)


def test_protonet_meta_gradient_equals_finite_differences(f64):
    encoder = nn.MLP([6, 5, 3], activation="tanh", rng=0)
    proto = meta.ProtoNet(encoder)
    b = _episodes()
    grads = _analytic(proto, b)
    for p, g in zip(encoder.parameters(), grads):
        np.testing.assert_allclose(g, _fd_grad(lambda: proto.meta_loss(b), p), rtol=1e-5, atol=1e-8)


def test_protonet_refuses_float_labels():
    proto = meta.ProtoNet(nn.MLP([6, 4], rng=0))
    b = _episodes()
    with pytest.raises(ArgumentError, match="integers"):
        proto.adapt(b.x_support, b.y_support.astype(float))


# -------------------------------------------------------------------- learned optimizer
@pytest.mark.parametrize("learn_init", [False, True])
def test_learned_optimizer_meta_gradient_equals_finite_differences(f64, learn_init):
    model = nn.MLP([1, 3, 1], activation="tanh", rng=0)
    lo = meta.LearnedOptimizer(model, inner_steps=3, hidden=4, learn_init=learn_init, rng=0)
    # Start from a rule that is not Adam: the network's last layer is zero at first.
    lo.rule[2].weight.data[...] = np.random.default_rng(3).normal(0, 0.5, lo.rule[2].weight.shape)
    lo.log_step.data[...] = np.log(0.05)
    batch = _sinusoid_batch(n=2, k=4)
    params = lo.parameters()
    assert len(params) == 5 + (4 if learn_init else 0)
    grads = _analytic(lo, batch)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(g, _fd_grad(lambda: lo.meta_loss(batch), p), rtol=1e-5, atol=1e-8)


def test_learned_optimizer_starts_as_adam_and_adapt_is_its_rule(f64):
    model = nn.MLP([1, 4, 1], activation="tanh", rng=0)  # no exactly-zero gradients
    lo = meta.LearnedOptimizer(model, inner_steps=3, hidden=5)
    b = _sinusoid_batch(n=2, k=5)
    got = lo.adapt(b.x_support, b.y_support, steps=3)
    lr = float(np.exp(lo.log_step.data))
    names = [n for n, _ in model.named_parameters()]
    fast = meta.MAML(model).expand({n: p.detach() for n, p in model.named_parameters()}, 2)
    state = None
    for _ in range(3):  # Adam, eps inside the square root as in the learned rule's direction
        leaves = [fast[n].detach().requires_grad_() for n in names]
        xs, ys, _ = lo._batched_input(b.x_support, b.y_support)
        loss = tm.sum(lo.task_losses(dict(zip(names, leaves)), xs, ys))
        grads = tm.grad(loss, leaves)
        new, state = optim.functional.adam([x.detach() for x in leaves], grads, state, lr=lr, eps=0.0)
        fast = dict(zip(names, new))
    for n in names:
        np.testing.assert_allclose(got[n].data, fast[n].data, rtol=1e-5, atol=1e-9)
    curve = lo.update_curve(np.array([-2.0, -0.1, 0.1, 2.0]))
    np.testing.assert_allclose(curve, lr * np.sign([-2.0, -0.1, 0.1, 2.0]), rtol=1e-5)


# ------------------------------------------------------------------------- checkpoints
def _learners():
    cls = meta.tasks.FewShotClassification(np.random.default_rng(0).normal(size=(60, 6)),
                                           np.repeat(np.arange(6), 10), n_way=3, k_shot=2, k_query=3)
    sin = meta.tasks.Sinusoid(5, 5)
    return {
        "imaml": (lambda s: meta.IMAML(nn.MLP([1, 8, 1], rng=s), inner_steps=2), sin),
        "anil": (lambda s: meta.ANIL(nn.MLP([1, 8, 1], rng=s), inner_lr=0.1), sin),
        "cavia": (lambda s: meta.CAVIA(nn.MLP([1 + 5, 8, 1], rng=s)), sin),
        "protonet": (lambda s: meta.ProtoNet(nn.MLP([6, 8, 4], rng=s)), cls),
        "learned_optimizer": (lambda s: meta.LearnedOptimizer(nn.MLP([1, 8, 1], rng=s), inner_steps=2,
                                                              hidden=4, rng=s), sin),
    }


@pytest.mark.parametrize("name", list(_learners()))
def test_checkpoint_round_trip(name, tmp_path):
    make, tasks = _learners()[name]
    learner = make(0)
    path = str(tmp_path / "ckpt.npz")
    meta.train(learner, tasks, optim.Adam(learner.parameters(), lr=1e-2), iterations=3, meta_batch=2,
               rng=0, checkpoint=path, progress=False)
    other = make(1)  # a different initialisation, overwritten by the checkpoint
    meta.train(other, tasks, optim.Adam(other.parameters(), lr=1e-2), iterations=3, meta_batch=2,
               rng=0, checkpoint=path, resume=True, progress=False)
    mine, theirs = learner.state_dict(), other.state_dict()
    assert set(mine) == set(theirs)
    for k in mine:
        np.testing.assert_array_equal(mine[k], theirs[k], err_msg=k)
    b = tasks.sample(2, 5)
    a1, a2 = learner.adapt(b.x_support, b.y_support), other.adapt(b.x_support, b.y_support)
    for k in a1:
        np.testing.assert_array_equal(a1[k].data, a2[k].data)


@pytest.mark.parametrize("name", list(_learners()))
def test_learners_train_and_help_names_the_paper(name):
    make, tasks = _learners()[name]
    learner = make(0)
    doc = type(learner).__doc__
    assert any(year in doc for year in ("2016", "2017", "2019", "2020")) and ("<-" in doc or "=" in doc)
    opt = optim.Adam(learner.parameters(), lr=1e-2)
    losses = [learner.meta_step(tasks.sample(4, i), opt) for i in range(3)]
    assert all(np.isfinite(losses))


# ------------------------------------------------------------------------ tinymeta reproduce
@pytest.mark.parametrize("learner", ["imaml", "anil", "cavia", "learned-optimizer"])
def test_reproduce_trains_and_evaluates_the_new_learners(learner, tmp_path):
    import json
    from tinymeta.cli import main
    out = tmp_path / "r.json"
    code = main(["reproduce", "sinusoid", "--learner", learner, "--iterations", "2", "--meta-batch", "3",
                 "--eval-tasks", "5", "--quiet", "--out", str(tmp_path), "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["learner"] == learner and set(result["query_mse"]) == {"0", "1", "10"}
    assert all(np.isfinite(v["mean"]) for v in result["query_mse"].values())


def test_every_reproduce_option_has_help_and_a_default(capsys):
    from tinymeta.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices["reproduce"]
    for action in sub._actions:
        if action.dest in ("help", "experiment"):
            continue
        assert action.help and "default" in action.help, f"--{action.dest}: {action.help!r}"


@pytest.mark.parametrize("learner", ["protonet", "maml"])
def test_reproduce_mnist1d_fewshot_meta_trains_on_generated_classes_and_tests_on_digits(learner, tmp_path):
    pytest.importorskip("mnist1d", reason="the optional package mnist1d is not installed "
                                          "(pip install 'tinymeta[mnist1d]')")
    import json
    from tinymeta.cli import main as cli_main
    out = tmp_path / "r.json"
    code = cli_main(["reproduce", "mnist1d-fewshot", "--learner", learner, "--iterations", "3",
                     "--eval-tasks", "20", "--meta-batch", "4", "--quiet", "--json", str(out)])
    assert code in (0, None)
    res = json.loads(out.read_text())
    assert res["experiment"] == "mnist1d-fewshot" and res["learner"] == learner and res["shots"] == 5
    acc = list(res["digit_accuracy"].values())[0]
    assert 0.0 <= acc["mean"] <= 1.0 and acc["ci95"] > 0
    assert res["iterations"] == 3

"""Meta-learners: their meta-gradients are the true derivatives of their meta-losses.

The bug users of other libraries keep hitting is MAML code that is silently first order;
these tests compare against finite differences of the meta-loss, in float64."""
import numpy as np
import pytest

import tinymeta as tm
from meta_helpers import _analytic, _fd_grad, _sinusoid_batch  # noqa: F401
from tinymeta import engine, meta, nn, optim
from tinymeta.meta.tasks import TaskBatch




@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_maml_gradient_equals_finite_differences(f64, steps):
    model = nn.MLP([1, 6, 6, 1], activation="tanh", rng=0)
    maml = meta.MAML(model, inner_lr=0.1, inner_steps=steps)
    batch = _sinusoid_batch()
    grads = _analytic(maml, batch)
    for p, g in zip(model.parameters(), grads):
        num = _fd_grad(lambda: maml.meta_loss(batch), p)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-8)


def test_first_order_maml_is_really_first_order_and_differs(f64):
    model = nn.MLP([1, 6, 6, 1], activation="tanh", rng=0)
    batch = _sinusoid_batch()
    second = _analytic(meta.MAML(model, 0.1, 2), batch)
    first = _analytic(meta.MAML(model, 0.1, 2, first_order=True), batch)
    gap = max(np.abs(a - b).max() for a, b in zip(first, second))
    assert gap > 1e-3, "first- and second-order meta-gradients agree: the Hessian term is missing"
    # FOMAML's gradient is the query gradient at the adapted weights, summed back to theta.
    maml = meta.MAML(model, 0.1, 2)
    phi = maml.adapt(batch.x_support, batch.y_support, steps=2)
    phi = {n: p.detach().requires_grad_() for n, p in phi.items()}
    xq, yq, _ = maml._batched_input(batch.x_query, batch.y_query)
    loss = tm.mean(maml.task_losses(phi, xq, yq))
    expected = tm.grad(loss, [phi[n] for n in maml.names])
    for e, f in zip(expected, first):
        np.testing.assert_allclose(e.data.sum(axis=0), f, rtol=1e-7, atol=1e-10)


def test_batched_meta_gradient_equals_loop_over_tasks(f64):
    model = nn.MLP([1, 8, 8, 1], rng=1)
    maml = meta.MAML(model, 0.05, 2)
    batch = _sinusoid_batch(n=4)
    batched = _analytic(maml, batch)
    total = [np.zeros_like(g) for g in batched]
    for i in range(len(batch)):
        for g_sum, g in zip(total, _analytic(maml, batch[i])):
            g_sum += g / len(batch)
    for a, b in zip(batched, total):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_meta_sgd_learns_its_learning_rates(f64):
    model = nn.MLP([1, 5, 1], activation="tanh", rng=0)
    msgd = meta.MetaSGD(model, inner_lr=0.05)
    batch = _sinusoid_batch()
    grads = _analytic(msgd, batch)
    for p, g in zip(msgd.parameters(), grads):  # theta and alpha
        np.testing.assert_allclose(g, _fd_grad(lambda: msgd.meta_loss(batch), p), rtol=1e-5, atol=1e-8)
    assert len(msgd.parameters()) == 2 * len(model.parameters())


def test_reptile_step_matches_its_formula(f64):
    model = nn.MLP([1, 4, 1], rng=0)
    rep = meta.Reptile(model, inner_lr=0.02, inner_steps=3, outer_step_size=0.5)
    batch = _sinusoid_batch(n=2)
    theta = {n: p.data.copy() for n, p in model.named_parameters()}
    xs = np.concatenate([batch.x_support, batch.x_query], 1)
    ys = np.concatenate([batch.y_support, batch.y_query], 1)
    phis = [rep.adapt(xs[i], ys[i]) for i in range(2)]
    rep.meta_step(batch)
    for n, p in model.named_parameters():
        mean_phi = (phis[0][n].data + phis[1][n].data) / 2
        np.testing.assert_allclose(p.data, theta[n] + 0.5 * (mean_phi - theta[n]), rtol=1e-10)


def test_adapt_batched_equals_single_and_lowers_support_loss(f64):
    model = nn.MLP([1, 8, 1], rng=0)
    maml = meta.MAML(model, 0.02, 1)
    batch = _sinusoid_batch(n=3)
    both = maml.adapt(batch.x_support, batch.y_support, steps=5)
    one = maml.adapt(batch.x_support[1], batch.y_support[1], steps=5)
    for n in one:
        np.testing.assert_allclose(both[n].data[1], one[n].data, rtol=1e-10)
    before = maml.adapt(batch.x_support[1], batch.y_support[1], steps=0)
    err = lambda p: np.mean((maml.predict(p, batch.x_support[1]).data - batch.y_support[1]) ** 2)  # noqa: E731
    assert err(one) < err(before)


def test_adaptation_cost_does_not_grow_with_steps():
    # Each step must build the same graph: count nodes created per adaptation step.
    maml = meta.MAML(nn.MLP([1, 16, 1], rng=0), 0.01, 1)
    b = meta.tasks.Sinusoid(5, 5).sample(4, 0)
    counts = []
    for steps in (1, 2, 4, 8):
        start = engine._mode.seq
        maml.adapt(b.x_support, b.y_support, steps=steps)
        counts.append((engine._mode.seq - start) / steps)
    assert max(counts) == min(counts)


def test_second_order_memory_grows_with_inner_steps_first_order_does_not():
    import tracemalloc
    batch = meta.tasks.Sinusoid(10, 10).sample(25, 0)

    def peak(first_order, steps):
        maml = meta.MAML(nn.MLP([1, 40, 40, 1], rng=0), 0.01, steps, first_order=first_order)
        tracemalloc.start()
        maml.meta_loss(batch).backward()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    s1, s5 = peak(False, 1), peak(False, 5)
    f1, f5 = peak(True, 1), peak(True, 5)
    assert s5 > 2.5 * s1          # the second-order graph keeps every inner step
    assert f5 < 1.6 * f1          # the first-order one does not


def test_mapping_learner_is_permutation_invariant_and_one_pass():
    base = nn.MLP([1, 8, 1], rng=0)
    ml = meta.MappingLearner(base, hidden=16, rng=0)
    b = meta.tasks.Sinusoid(6, 6).sample(2, 0)
    perm = np.random.default_rng(1).permutation(6)
    a = ml.flat_params(b.x_support, b.y_support).data
    c = ml.flat_params(b.x_support[:, perm], b.y_support[:, perm]).data
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
    # At initialisation every task gets the base model's own parameters.
    flat0 = np.concatenate([p.data.ravel() for p in base.parameters()])
    np.testing.assert_allclose(a[0], flat0, rtol=1e-6)
    start = engine._mode.seq
    ml.adapt(b.x_support[0], b.y_support[0], steps=10)  # steps are ignored: one pass
    assert engine._mode.seq - start < 60


def test_mapping_learner_gradients_are_exact(f64):
    fam = meta.tasks.LinearFunctions(dim=3, k_support=6, k_query=6, dtype=np.float64)
    batch = fam.sample(3, 0)
    for mode in ("supervised", "end_to_end"):
        ml = meta.MappingLearner(nn.Linear(3, 1, bias=False, rng=0), hidden=6, mode=mode,
                                 target_fn=meta.linear_targets(fam), rng=0)
        ml.head[len(ml.head) - 1].weight.data[...] = np.random.default_rng(0).standard_normal((3, 6)) * 0.1
        grads = _analytic(ml, batch)
        p = ml.parameters()[0]
        np.testing.assert_allclose(grads[0], _fd_grad(lambda: ml.meta_loss(batch), p), rtol=1e-5, atol=1e-8)


def test_mapping_learner_supervised_learns_linear_tasks():
    fam = meta.tasks.LinearFunctions(dim=2, k_support=20, k_query=10, noise=0.0)
    ml = meta.MappingLearner(nn.Linear(2, 1, bias=False, rng=0), hidden=64, mode="supervised",
                             target_fn=meta.linear_targets(fam), rng=0)
    opt = optim.Adam(ml.parameters(), lr=3e-3)
    hist = meta.train(ml, fam, opt, iterations=600, meta_batch=32, rng=0, progress=False, log_every=100)
    assert hist["loss"][-1] < 0.25 * hist["loss"][0]


def test_ridge_head_solves_ridge_and_woodbury_agrees(f64):
    rng = np.random.default_rng(0)
    feat = nn.Linear(4, 6, rng=0)
    rh = meta.RidgeHead(feat, n_outputs=3, lam=0.7)
    params = dict(rh.model.named_parameters())
    for n_shots in (5, 12):  # fewer and more shots than features+1: both Gram forms
        x = rng.standard_normal((2, n_shots, 4))
        y = rng.integers(0, 3, (2, n_shots))
        W = rh.solve_head(params, x, y).data
        X = np.concatenate([x @ feat.weight.data.T + feat.bias.data, np.ones((2, n_shots, 1))], -1)
        Y = np.eye(3)[y]
        for t in range(2):
            ref = np.linalg.solve(X[t].T @ X[t] + 0.7 * np.eye(7), X[t].T @ Y[t])
            np.testing.assert_allclose(W[t], ref, rtol=1e-8, atol=1e-10)


def test_ridge_head_second_derivatives_flow_through_the_solve(f64):
    feat = nn.Linear(3, 4, rng=0)
    rh = meta.RidgeHead(feat, n_outputs=2, lam=0.5, loss="mse")
    rng = np.random.default_rng(1)
    batch = TaskBatch(rng.standard_normal((2, 3, 3)), rng.standard_normal((2, 3, 2)),
                      rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 2)))
    log_lam = rh.model.log_lambda

    def meta_loss_of(ll):
        old = rh.model.log_lambda
        object.__setattr__(rh.model, "log_lambda", ll)
        try:
            return rh.meta_loss(batch)
        finally:
            object.__setattr__(rh.model, "log_lambda", old)

    x = tm.tensor(log_lam.data.copy(), dtype="float64", requires_grad=True)
    assert tm.gradcheck(meta_loss_of, (x,))
    assert tm.gradgradcheck(meta_loss_of, (x,))


def test_hypergradient_equals_finite_differences(f64):
    import tinymeta.nn.functional as F
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = X @ rng.standard_normal((3, 1))
    model = nn.MLP([3, 4, 1], activation="tanh", rng=0)
    tr, va = (X[:20], y[:20]), (X[20:], y[20:])
    _, g_lr, g_wd = meta.hypergradient(model, F.mse_loss, tr, va, 0.05, 0.01, steps=4)
    f = lambda lr, wd: meta.unrolled_validation_loss(model, F.mse_loss, tr, va, lr, wd, 4).item()  # noqa: E731
    eps = 1e-6
    assert g_lr == pytest.approx((f(0.05 + eps, 0.01) - f(0.05 - eps, 0.01)) / (2 * eps), rel=1e-5)
    assert g_wd == pytest.approx((f(0.05, 0.01 + eps) - f(0.05, 0.01 - eps)) / (2 * eps), rel=1e-5)


def test_tune_fixes_a_poor_learning_rate(f64):
    import tinymeta.nn.functional as F
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 4))
    y = X @ rng.standard_normal((4, 1)) + 0.1 * rng.standard_normal((80, 1))
    model = nn.MLP([4, 8, 1], activation="tanh", rng=0)
    tr, va = (X[:40], y[:40]), (X[40:], y[40:])
    start = meta.unrolled_validation_loss(model, F.mse_loss, tr, va, 1e-4, 0.0, 10).item()
    hist = meta.tune(model, F.mse_loss, tr, va, lr=1e-4, steps=10, runs=8)
    assert min(h["val_loss"] for h in hist) < 0.5 * start


def test_meta_train_resume_is_bit_for_bit(tmp_path):
    tasks = meta.tasks.Sinusoid(5, 5)

    def run(iterations, resume=False, ckpt=None):
        model = nn.MLP([1, 8, 1], rng=0)
        maml = meta.MAML(model, 0.01, 1)
        opt = optim.Adam(maml.parameters(), lr=1e-2)
        meta.train(maml, tasks, opt, iterations=iterations, meta_batch=4, rng=3, progress=False,
                   checkpoint=ckpt, checkpoint_every=5, resume=resume)
        return [p.data.copy() for p in model.parameters()]

    straight = run(20)
    ckpt = str(tmp_path / "c.npz")
    run(10, ckpt=ckpt)
    resumed = run(20, resume=True, ckpt=ckpt)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)


def test_evaluate_reports_mean_and_interval():
    maml = meta.MAML(nn.MLP([1, 8, 1], rng=0), 0.01, 1)
    res = meta.evaluate(maml, meta.tasks.Sinusoid(5, 5), n_tasks=30, steps=(0, 3), rng=0, chunk=7)
    for s in (0, 3):
        m, half = res[s]["mse"]
        assert m > 0 and half > 0
    assert res[3]["mse"][0] < res[0]["mse"][0]


def test_few_shot_classification_with_maml_runs():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 6)).astype(np.float32)
    y = np.repeat(np.arange(10), 20)
    X += y[:, None] * 0.5
    tr, te = meta.tasks.FewShotClassification.split(X, y, test_classes=[7, 8, 9], rng=0,
                                                    n_way=3, k_shot=2, k_query=4)
    maml = meta.MAML(nn.MLP([6, 16, 3], rng=0), 0.1, 1, loss="cross_entropy")
    opt = optim.Adam(maml.parameters(), lr=1e-2)
    meta.train(maml, tr, opt, iterations=30, meta_batch=4, rng=0, progress=False)
    res = meta.evaluate(maml, te, n_tasks=20, steps=(0, 5), rng=1)
    assert 0.0 <= res[5]["accuracy"][0] <= 1.0


def test_meta_learner_argument_errors():
    model = nn.MLP([1, 4, 1], rng=0)
    with pytest.raises(tm.ArgumentError, match="inner_lr"):
        meta.MAML(model, inner_lr=-1)
    with pytest.raises(tm.ArgumentError, match="inner_steps"):
        meta.MAML(model, inner_steps=0)
    with pytest.raises(tm.ArgumentError, match="meta_optimizer"):
        meta.train(meta.MAML(model), meta.tasks.Sinusoid(), None, iterations=1)
    with pytest.raises(tm.ArgumentError):
        meta.train(meta.MAML(model), meta.tasks.Sinusoid(), optim.SGD(model.parameters()), meta_batch=0)

"""What a new user hit in the core, each mended (and each test failed on the code before)."""
import numpy as np
import pytest

import tinymeta as tm
from tinymeta import nn, optim
from tinymeta.errors import GraphError, InplaceError, ShapeError


def _model():
    return nn.MLP([2, 4, 1], rng=0, dtype="float64")


def test_micrograd_update_idiom_updates_data_in_place(tmp_path):
    model = _model()
    x = np.ones((3, 2))
    model(x).sum().backward()
    p = model.parameters()[0]
    before, array = p.data.copy(), p.data
    for q in model.parameters():
        q.data -= 0.1 * q.grad
    assert type(p.data) is np.ndarray and p.data is array  # the same buffer, updated
    np.testing.assert_allclose(p.data, before - 0.1 * p.grad.data)
    model(x).sum().backward()  # the next forward and backward still work
    nn.save(model, tmp_path / "m.npz")
    nn.load(model, tmp_path / "m.npz")


def test_numpy_meeting_a_tensor_keeps_the_graph():
    t = tm.tensor([0.5, 1.0], dtype="float64", requires_grad=True)
    y = np.array([1.0, 2.0]) - t            # ndarray first: still tinymeta's sub
    z = np.exp(t)                            # a NumPy ufunc on a Tensor: tinymeta's exp
    assert type(y) is tm.Tensor and type(z) is tm.Tensor
    (y.sum() + z.sum()).backward()
    np.testing.assert_allclose(t.grad.data, -1 + np.exp([0.5, 1.0]))


def test_custom_function_with_wrong_gradient_shape_is_named():
    class BadSum(tm.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return tm.ones(7, dtype="float64")  # wrong: x has shape (3,)

    x = tm.tensor([1.0, 2.0, 3.0], dtype="float64", requires_grad=True)
    with pytest.raises(ShapeError, match=r"BadSum.*shape \(7,\).*input 0.*shape \(3,\)"):
        BadSum.apply(x).backward()


def test_linear_layer_names_itself_on_a_shape_mismatch():
    layer = nn.Linear(3, 5, rng=0)
    with pytest.raises(ShapeError, match=r"Linear\(3, 5.*\(8, 4\).*3 features"):
        layer(np.zeros((8, 4), np.float32))


def test_inplace_subtraction_is_reported_as_sub():
    p = tm.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(InplaceError, match=r"^sub_:"):
        p -= 1


def test_sgd_hypergradient_step_that_raises_changes_nothing():
    a = tm.tensor(np.ones((2, 2)), requires_grad=True)
    b = tm.tensor(np.ones(3), requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1, hypergrad_lr=0.01)
    a.grad, b.grad = tm.tensor(np.ones((2, 2))), tm.tensor(np.ones(3))
    opt.step()
    a.grad, b.grad = tm.tensor(np.ones((2, 2))), tm.tensor(np.ones(2))  # b's is the wrong shape
    lr, state = opt.param_groups[0]["lr"], {k: {n: np.copy(v) for n, v in s.items()} for k, s in opt.state.items()}
    data = (a.data.copy(), b.data.copy())
    with pytest.raises(ShapeError):
        opt.step()
    assert opt.param_groups[0]["lr"] == lr
    for k, s in opt.state.items():
        for n, v in s.items():
            np.testing.assert_array_equal(v, state[k][n])
    np.testing.assert_array_equal(a.data, data[0])
    np.testing.assert_array_equal(b.data, data[1])


def test_zero_grad_honours_set_to_none():
    p = tm.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * 3).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and not p.grad.data.any()
    opt.zero_grad()
    assert p.grad is None


def test_sequential_runs_what_it_is_given_and_mlp_fuses_visibly():
    seq = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ReLU(), nn.Linear(3, 1, rng=1))
    mlp = nn.MLP([2, 3, 1], rng=0)
    mlp.load_state_dict(seq.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 2)).astype(np.float32)
    ys, ym = seq(x), mlp(x)
    np.testing.assert_allclose(ys.data, ym.data, rtol=1e-6)

    def ops_of(y):
        names, stack, seen = [], [y], set()
        while stack:
            t = stack.pop()
            if id(t) in seen or t.grad_fn is None:
                continue
            seen.add(id(t))
            names.append(t.grad_fn.op.name)
            stack.extend(p for p in t.grad_fn.inputs if type(p) is tm.Tensor)
        return sorted(names)

    assert ops_of(ys) == ["linear", "linear", "relu"]   # what the user wrote
    assert ops_of(ym) == ["linear", "linear"]           # the MLP's documented fusion
    fused = nn.Linear(2, 3, rng=0, activation="relu")
    np.testing.assert_allclose(fused(x).data, tm.relu(seq[0](x)).data, rtol=1e-6)


def test_ridge_solve_is_one_solver_for_both_forms_and_batches():
    from tinymeta.learners import ridge_solve
    rng = np.random.default_rng(0)
    for n, d in ((8, 3), (3, 8)):  # primal and dual
        X, y = rng.standard_normal((2, n, d)), rng.standard_normal((2, n))
        w = ridge_solve(tm.tensor(X, dtype="float64"), tm.tensor(y, dtype="float64"), 0.7).data
        for t in range(2):
            ref = np.linalg.solve(X[t].T @ X[t] + 0.7 * np.eye(d), X[t].T @ y[t])
            np.testing.assert_allclose(w[t], ref, rtol=1e-10)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal(6)
    np.testing.assert_allclose(ridge_solve(X, y, 0.0).data, np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-5)


def test_fit_gradient_refuses_unbroadcastable_gradients_with_names():
    from tinymeta.ops.core import fit_gradient
    p = tm.tensor(np.ones((2, 3)))
    assert fit_gradient("op", 0, tm.tensor(np.ones((4, 2, 3))), p).shape == (2, 3)
    with pytest.raises(ShapeError, match="op: .*shape \\(3, 2\\) for input 1"):
        fit_gradient("op", 1, tm.tensor(np.ones((3, 2))), p)


def test_graph_error_names_survive_the_engine_split():
    y = (tm.tensor([1.0], requires_grad=True) * 2).sum()
    y.backward()
    with pytest.raises(GraphError, match="already freed"):
        y.backward()


def test_training_loops_use_one_blas_thread_on_a_small_machine_and_restore_it(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from tinymeta import threads, train
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(threads, "_limit", None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    before, seen = blas_threads(), []
    model = nn.Linear(2, 1, rng=0)

    def loss_fn(out, y):
        seen.append(blas_threads())
        return nn.functional.mse_loss(out, y)
    X, y = np.ones((8, 2), np.float32), np.ones((8, 1), np.float32)
    train.fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.1), (X, y), epochs=1, batch_size=8,
              progress=False)
    assert seen and all(t == [1] * len(t) for t in seen)
    assert blas_threads() == before
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 64)  # a big machine: left alone
    seen.clear()
    train.fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.1), (X, y), epochs=1, batch_size=8,
              progress=False)
    assert seen[0] == before

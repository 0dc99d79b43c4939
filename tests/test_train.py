"""tinymeta.train.fit: epochs, validation, accumulation, early stopping, checkpoints, History."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import tinymeta as tm
import tinymeta.nn.functional as F
from tinymeta import nn, optim
from tinymeta.data import DataLoader
from tinymeta.train import EarlyStopping, History, evaluate_model, fit


def blobs(n=60, seed=0, d=4, c=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    X = rng.standard_normal((n, d)) * 0.7 + np.eye(c, d)[y] * 2.0
    return X, y


def model_opt(seed=0, lr=0.05, cls=optim.Adam, sizes=(4, 8, 3), dtype="float64", **hp):
    m = nn.MLP(list(sizes), rng=seed, dtype=dtype)
    return m, cls(m.parameters(), lr=lr, **hp)


def params(m):
    return [p.data.copy() for p in m.parameters()]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def fit_quiet(*args, **kwargs):
    kwargs.setdefault("progress", False)
    return fit(*args, **kwargs)


# ----------------------------------------------------------------------------- basics

def test_fit_learns_and_records_classification_metrics():
    X, y = blobs()
    Xv, yv = blobs(30, seed=1)
    m, opt = model_opt()
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), val=(Xv, yv), epochs=15, batch_size=16)
    assert isinstance(h, History) and h.epochs == 15
    assert sorted(h) == ["train_acc", "train_loss", "val_acc", "val_loss"]
    assert all(len(v) == 15 for v in h.values())
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert h["val_acc"][-1] > 0.9
    assert h.best_epoch is None and not h.stopped_early and not h.interrupted
    # the last validation numbers are the model's, computed outside fit
    with tm.no_grad():
        out = m(Xv)
    assert h["val_loss"][-1] == pytest.approx(F.cross_entropy(out, yv).item(), rel=1e-12)
    assert h["val_acc"][-1] == pytest.approx(np.mean(out.data.argmax(1) == yv))
    assert evaluate_model(m, F.cross_entropy, (Xv, yv)) == {"loss": pytest.approx(h["val_loss"][-1]),
                                                       "acc": pytest.approx(h["val_acc"][-1])}


def test_regression_records_no_accuracy_and_train_loss_is_the_sample_mean():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 4))
    Y = X @ rng.standard_normal((4, 1))
    m, opt = model_opt(sizes=(4, 6, 1), cls=optim.SGD, lr=0.0)  # lr 0: the model stays put
    seen = []

    def loss_fn(out, target):
        loss = F.mse_loss(out, target)
        seen.append((loss.item(), len(target)))
        return loss

    h = fit_quiet(m, loss_fn, opt, (X, Y), epochs=1, batch_size=4)  # batches of 4, 4, 2
    assert sorted(h) == ["train_loss"]
    assert [n for _, n in seen] == [4, 4, 2]
    assert h["train_loss"][0] == pytest.approx(sum(v * n for v, n in seen) / 10, rel=1e-12)
    with tm.no_grad():
        assert h["train_loss"][0] == pytest.approx(F.mse_loss(m(X), Y).item(), rel=1e-12)


def test_validation_runs_in_eval_mode_without_graph():
    modes = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3, rng=0, dtype="float64")

        def forward(self, x):
            modes.append((self.training, tm.is_grad_enabled()))
            return self.lin(x)

    X, y = blobs(8)
    m = Probe()
    fit_quiet(m, F.cross_entropy, optim.SGD(m.parameters(), lr=0.1), (X, y), val=(X, y), epochs=1,
              batch_size=8)
    assert modes == [(True, True), (False, False)]
    assert m.training  # back in training mode afterwards


def test_shuffling_is_seeded_and_a_dataloader_is_used_as_given():
    X, y = blobs()
    runs = []
    for rng in (0, 0, 1):
        m, opt = model_opt()
        fit_quiet(m, F.cross_entropy, opt, (X, y), epochs=2, batch_size=8, rng=rng)
        runs.append(params(m))
    assert same(runs[0], runs[1]) and not same(runs[0], runs[2])
    m, opt = model_opt()
    loader = DataLoader(X, y, batch_size=8, shuffle=True, rng=0)
    fit_quiet(m, F.cross_entropy, opt, loader, epochs=2, batch_size=999, rng=5)
    assert same(params(m), runs[0])


@pytest.mark.parametrize("cls, hp", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.01))])
@pytest.mark.parametrize("k", [2, 3])
def test_accumulate_equals_one_step_on_the_concatenated_batch(cls, hp, k):
    X, y = blobs(48)
    a, opt_a = model_opt(cls=cls, **hp)
    b, opt_b = model_opt(cls=cls, **hp)
    # the same seeded permutation each epoch; micro-batches of 4 tile the batches of 4k
    ha = fit_quiet(a, F.cross_entropy, opt_a, (X, y), epochs=3, batch_size=4 * k, rng=3)
    hb = fit_quiet(b, F.cross_entropy, opt_b, (X, y), epochs=3, batch_size=4, accumulate=k, rng=3)
    for p, q in zip(params(a), params(b)):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(ha["train_loss"][0], hb["train_loss"][0], rtol=1e-10)


def test_accumulate_with_a_short_last_group_averages_over_that_group():
    X, y = blobs(10)
    a, opt_a = model_opt(cls=optim.SGD, lr=0.1)
    fit_quiet(a, F.cross_entropy, opt_a, DataLoader(X, y, batch_size=2), epochs=1, accumulate=3)
    b, opt_b = model_opt(cls=optim.SGD, lr=0.1)
    for group in ([0, 1, 2], [3, 4]):  # 5 batches of 2: groups of 3 and 2
        opt_b.zero_grad()
        for i in group:
            (F.cross_entropy(b(X[2 * i:2 * i + 2]), y[2 * i:2 * i + 2]) / len(group)).backward()
        opt_b.step()
    for p, q in zip(params(a), params(b)):
        np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-14)


def test_metrics_by_name_and_callable():
    X, y = blobs()
    m, opt = model_opt()
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), val=(X, y), epochs=2,
                  metrics=["accuracy", lambda t, p: float(np.mean(p == 0))])
    assert {"train_accuracy", "val_accuracy", "train_<lambda>", "val_<lambda>"} <= set(h)
    assert h["train_accuracy"] == pytest.approx(h["train_acc"])
    assert h["val_accuracy"] == pytest.approx(h["val_acc"])
    with pytest.raises(tm.ArgumentError, match="unknown metric"):
        fit_quiet(m, F.cross_entropy, opt, (X, y), metrics=["nope"])


@pytest.mark.parametrize("kwargs, pattern", [
    (dict(epochs=-1), "epochs"),
    (dict(accumulate=0), "accumulate"),
    (dict(early_stopping=3), "val"),
    (dict(early_stopping=0, val=True), "patience"),
    (dict(early_stopping={"patience": 2, "min_delta": -1}, val=True), "min_delta"),
    (dict(early_stopping={"monitor": "val_f1"}, val=True), "val_f1"),
    (dict(resume=True), "checkpoint"),
    (dict(train="data"), "tuple"),
])
def test_bad_arguments(kwargs, pattern):
    X, y = blobs(8)
    m, opt = model_opt()
    if kwargs.pop("val", False):
        kwargs["val"] = (X, y)
    train = kwargs.pop("train", (X, y))
    with pytest.raises(tm.ArgumentError, match=pattern):
        fit_quiet(m, F.cross_entropy, opt, train, epochs=kwargs.pop("epochs", 2), **kwargs)


# ----------------------------------------------------------------------------- early stopping

def _overfit_setup():
    """Validation labels disagree with training labels: val loss rises after a few epochs."""
    X, y = blobs(60)
    return X, y, (X[:30], (y[:30] + 1) % 3)


@pytest.mark.parametrize("spec", [3, {"patience": 3}, EarlyStopping(patience=3),
                                  type("Spec", (), {"patience": 3, "monitor": "val_loss"})()])
def test_early_stopping_stops_and_restores_the_best_weights(spec):
    X, y, val = _overfit_setup()
    m, opt = model_opt(lr=0.05)
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), val=val, epochs=100, early_stopping=spec)
    assert h.stopped_early and h.epochs == h.best_epoch + 3 + 1 < 100
    best = h["val_loss"][h.best_epoch]
    assert best == min(h["val_loss"])
    assert evaluate_model(m, F.cross_entropy, val)["loss"] == pytest.approx(best, rel=1e-12)


def test_early_stopping_without_restore_keeps_the_last_weights_and_max_mode():
    X, y, val = _overfit_setup()
    m, opt = model_opt(lr=0.05)
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), val=val, epochs=100,
                  early_stopping={"patience": 2, "restore_best": False})
    assert evaluate_model(m, F.cross_entropy, val)["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-12)
    m, opt = model_opt(lr=0.05)
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), val=(X, y), epochs=12,
                  early_stopping={"patience": 50, "monitor": "val_acc"})
    assert h["val_acc"][h.best_epoch] == max(h["val_acc"])  # accuracy is maximised
    assert h["val_acc"].index(max(h["val_acc"])) == h.best_epoch  # the first best counts


def test_min_delta_ignores_tiny_improvements():
    stopper = EarlyStopping(patience=1, min_delta=0.1)
    assert stopper.improved(1.0, None) and stopper.improved(0.85, 1.0) and not stopper.improved(0.95, 1.0)
    assert EarlyStopping(monitor="val_acc", min_delta=0.1).improved(0.75, 0.6)
    assert not EarlyStopping(monitor="val_acc", min_delta=0.1).improved(0.65, 0.6)


# ----------------------------------------------------------------------------- checkpoints, resume

def _resumable(seed=0):
    m, opt = model_opt(seed=seed, lr=0.05, weight_decay=1e-3, dtype="float32")
    return m, opt, optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)


def _fit_resumable(m, opt, sched, epochs, **kwargs):
    X, y = blobs(50)
    Xv, yv = blobs(20, seed=1)
    return fit_quiet(m, F.cross_entropy, opt, (X, y), val=(Xv, yv), epochs=epochs, batch_size=8,
                     scheduler=sched, early_stopping={"patience": 50}, rng=7, **kwargs)


def test_resume_follows_the_uninterrupted_trajectory_bit_for_bit(tmp_path):
    m, opt, sched = _resumable()
    straight = _fit_resumable(m, opt, sched, 6)
    path = str(tmp_path / "run.npz")
    m1, opt1, sched1 = _resumable()
    _fit_resumable(m1, opt1, sched1, 3, checkpoint=path)
    m2, opt2, sched2 = _resumable(seed=99)  # a fresh process: different initial weights
    resumed = _fit_resumable(m2, opt2, sched2, 6, checkpoint=path, resume=True)
    assert same(params(m2), params(m))
    assert dict(resumed) == dict(straight) and resumed.best_epoch == straight.best_epoch
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] == 0.05 * 0.5 ** 3
    # resuming a finished run changes nothing
    again = _fit_resumable(m2, opt2, sched2, 6, checkpoint=path, resume=True)
    assert dict(again) == dict(straight) and same(params(m2), params(m))


def test_checkpoint_keys_are_flat_and_readable_without_pickle(tmp_path):
    path = tmp_path / "run.npz"
    _fit_resumable(*_resumable(), 2, checkpoint=path)
    arrays = nn.load_arrays(path)
    assert {"model/0.weight", "optim/state/0/exp_avg", "optim/group/0/lr", "run/epoch",
            "history/val_loss", "loader/rng_state"} <= set(arrays)
    assert int(arrays["run/epoch"]) == 2
    with np.load(path, allow_pickle=False) as z:
        assert len(z.files) == len(arrays) + 1


class _InterruptAt:  # a loss with a Python side effect: run with compile=False (a replay skips it)
    """A loss function that presses Ctrl-C at its n-th call."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, out, y):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return F.cross_entropy(out, y)


def test_ctrl_c_saves_returns_and_resumes_bit_for_bit(tmp_path, capsys):
    X, y = blobs(40)
    Xv, yv = blobs(10, seed=1)
    kwargs = dict(val=(Xv, yv), batch_size=8, rng=2)  # 5 train batches + 1 val batch per epoch
    m, opt = model_opt()
    fit_quiet(m, F.cross_entropy, opt, (X, y), epochs=5, **kwargs)
    after2, _ = model_opt()
    opt_after2 = optim.Adam(after2.parameters(), lr=0.05)
    h2 = fit_quiet(after2, F.cross_entropy, opt_after2, (X, y), epochs=2, **kwargs)

    path = str(tmp_path / "ck.npz")
    m1, opt1 = model_opt()
    h = fit_quiet(m1, _InterruptAt(6 * 2 + 3), opt1, (X, y), epochs=5, checkpoint=path, compile=False, **kwargs)
    assert h.interrupted and h.epochs == 2 and dict(h) == dict(h2)
    assert same(params(m1), params(after2))  # rolled back to the saved epoch
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "resume=True" in err[0]

    m2, opt2 = model_opt(seed=5)
    h = fit_quiet(m2, F.cross_entropy, opt2, (X, y), epochs=5, checkpoint=path, resume=True, **kwargs)
    assert not h.interrupted and h.epochs == 5
    assert same(params(m2), params(m))


def test_ctrl_c_without_a_checkpoint_path_saves_in_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    X, y = blobs(16)
    m, opt = model_opt()
    h = fit_quiet(m, _InterruptAt(1), opt, (X, y), epochs=3, batch_size=8, compile=False)
    assert h.interrupted and h.epochs == 0
    assert os.listdir(tmp_path) == ["tinymeta-interrupted.npz"]
    assert "tinymeta-interrupted.npz" in capsys.readouterr().err
    m2, opt2 = model_opt(seed=3)
    fit_quiet(m2, F.cross_entropy, opt2, (X, y), epochs=0, checkpoint="tinymeta-interrupted.npz",
              resume=True)
    assert same(params(m2), params(m))  # the initial weights were saved


def test_resume_without_a_file_starts_fresh_and_a_foreign_file_is_refused(tmp_path):
    X, y = blobs(16)
    m, opt = model_opt()
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), epochs=1, checkpoint=tmp_path / "new.npz", resume=True)
    assert h.epochs == 1 and (tmp_path / "new.npz").exists()
    other, other_opt = model_opt(sizes=(4, 5, 3))
    before = params(other)
    with pytest.raises(tm.CheckpointError, match="resume"):
        fit_quiet(other, F.cross_entropy, other_opt, (X, y), epochs=2, checkpoint=tmp_path / "new.npz",
                  resume=True)
    assert same(params(other), before) and other_opt.state == {}
    nn.save(m, tmp_path / "plain.npz")  # a model checkpoint, not a fit checkpoint
    with pytest.raises(tm.CheckpointError):
        fit_quiet(m, F.cross_entropy, opt, (X, y), epochs=2, checkpoint=tmp_path / "plain.npz", resume=True)


# ----------------------------------------------------------------------------- progress, plot, import

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    X, y = blobs(16)
    m, opt = model_opt()
    fit(m, F.cross_entropy, opt, (X, y), epochs=2)  # pytest's stderr is not a terminal
    assert capsys.readouterr() == ("", "")
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    fit(m, F.cross_entropy, opt, (X, y), epochs=2, progress=False)
    assert term.getvalue() == ""
    fit(m, F.cross_entropy, opt, (X, y), epochs=2)
    assert "2/2" in term.getvalue() and "train_loss" in term.getvalue()


def test_history_plot(tmp_path):
    X, y = blobs(20)
    m, opt = model_opt()
    h = fit_quiet(m, F.cross_entropy, opt, (X, y), val=(X, y), epochs=3, early_stopping=5)
    fig = h.plot(tmp_path / "curves.png")
    assert len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Accuracy"]
    assert len(fig.axes[0].lines) == 3  # train, validation, best-epoch marker
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reg = History(train_loss=[3.0, 2.0])
    assert len(reg.plot().axes) == 1 and reg.epochs == 2
    import matplotlib.pyplot as plt
    plt.close("all")


def test_import_is_light():
    code = ("import sys, tinymeta.train, tinymeta.learners; "
            "print(sorted(m for m in ('matplotlib', 'tqdm', 'tinymeta.meta') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

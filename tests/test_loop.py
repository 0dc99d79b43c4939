"""The loop core under train.fit and meta.fit (tinymeta/loop.py): old checkpoints still resume,
a checkpoint of the other loop is refused, renamed functions warn, progress shows on terminals,
notebooks and pipes (and not with progress=False), NaN/inf data is refused, a diverging loss
stops the run and leaves the model where the bad epoch started."""
import importlib.util
import io
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import tinymeta as tm
import tinymeta.nn.functional as F
from tinymeta import loop, meta, nn, optim
from tinymeta.data import DataLoader
from tinymeta.train import evaluate_model, fit

DATA = os.path.join(os.path.dirname(__file__), "data")


def blobs(n=50, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return rng.standard_normal((n, 4)) * 0.7 + np.eye(3, 4)[y] * 2.0, y


def params(m):
    return [p.data.copy() for p in m.parameters()]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- checkpoints of the old format

def _fixture_fit(epochs, **kwargs):
    """The run tests/data/make_before_loop_core.py made (3 epochs), continued to ``epochs``."""
    X, y = blobs()
    m = nn.MLP([4, 8, 3], rng=kwargs.pop("seed", 0), dtype="float32")
    opt = optim.Adam(m.parameters(), lr=0.05, weight_decay=1e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    h = fit(m, F.cross_entropy, opt, (X, y), val=(X[:20], y[:20]), epochs=epochs, batch_size=8,
            scheduler=sched, early_stopping={"patience": 50}, rng=7, progress=False, **kwargs)
    return m, opt, h


def _fixture_meta(iterations, **kwargs):
    maml = meta.MAML(nn.MLP([1, 8, 1], rng=kwargs.pop("seed", 0)), 0.01, 1)
    opt = optim.Adam(maml.parameters(), lr=1e-2)
    h = meta.fit(maml, meta.tasks.Sinusoid(5, 5), opt, iterations=iterations, meta_batch=4, rng=3,
                 progress=False, checkpoint_every=5, log_every=5, **kwargs)
    return maml, opt, h


def test_a_fit_checkpoint_written_before_the_loop_core_resumes_bit_for_bit(tmp_path):
    old = tmp_path / "old.npz"
    old.write_bytes(open(os.path.join(DATA, "fit-before-loop-core.npz"), "rb").read())
    straight, opt, h_straight = _fixture_fit(5)
    resumed, opt2, h = _fixture_fit(5, seed=42, checkpoint=old, resume=True)
    assert same(params(resumed), params(straight))
    assert dict(h) == dict(h_straight) and h.best_epoch == h_straight.best_epoch
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_a_meta_checkpoint_written_before_the_loop_core_resumes_bit_for_bit(tmp_path):
    old = tmp_path / "old.npz"
    old.write_bytes(open(os.path.join(DATA, "meta-before-loop-core.npz"), "rb").read())
    straight, _, h_straight = _fixture_meta(20)
    resumed, _, h = _fixture_meta(20, seed=42, checkpoint=str(old), resume=True)
    assert same(params(resumed.model), params(straight.model))
    assert h["iteration"] == h_straight["iteration"] == [5, 10, 15, 20]
    assert h["loss"][2:] == h_straight["loss"][2:]


def test_a_checkpoint_of_the_other_loop_is_refused_by_name_and_changes_nothing(tmp_path):
    path = tmp_path / "meta.npz"
    _fixture_meta(5, checkpoint=str(path))
    X, y = blobs()
    m = nn.MLP([1, 8, 1], rng=0)  # even the parameter names and shapes fit
    opt = optim.Adam(m.parameters(), lr=1e-2)
    before = params(m)
    with pytest.raises(tm.CheckpointError, match="written by meta.fit, not train.fit"):
        fit(m, F.mse_loss, opt, (X[:, :1], X[:, 1:2]), epochs=2, progress=False, checkpoint=path, resume=True)
    assert same(params(m), before) and opt.state == {}
    fit_path = tmp_path / "fit.npz"
    _fixture_fit(1, checkpoint=fit_path)
    with pytest.raises(tm.CheckpointError, match="written by train.fit, not meta.fit"):
        _fixture_meta(5, checkpoint=str(fit_path), resume=True)


def test_the_loop_core_imports_no_meta_and_train_no_tqdm():
    code = ("import sys, tinymeta.loop, tinymeta.train; "
            "print(sorted(m for m in ('tinymeta.meta', 'tqdm', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(DATA) + "/..")
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- renamed functions

def test_meta_train_is_meta_fit_under_its_old_name_with_a_deprecation_warning():
    a, _, ha = _fixture_meta(6)
    maml = meta.MAML(nn.MLP([1, 8, 1], rng=0), 0.01, 1)
    opt = optim.Adam(maml.parameters(), lr=1e-2)
    with pytest.warns(DeprecationWarning, match="meta.train is renamed meta.fit") as record:
        hb = meta.train(maml, meta.tasks.Sinusoid(5, 5), opt, iterations=6, meta_batch=4, rng=3,
                        progress=False, checkpoint_every=5, log_every=5)
    assert record[0].filename == __file__  # the warning points at the caller's line
    assert same(params(maml.model), params(a.model)) and hb["loss"] == ha["loss"]
    assert "fit" in meta.__all__ and "train" in meta.__all__


def test_train_evaluate_is_evaluate_model_under_its_old_name_with_a_deprecation_warning():
    from tinymeta import train
    X, y = blobs()
    m = nn.MLP([4, 8, 3], rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name does not warn
        new = evaluate_model(m, F.cross_entropy, (X, y))
    with pytest.warns(DeprecationWarning, match="evaluate_model") as record:
        old = train.evaluate(m, F.cross_entropy, (X, y))
    assert record[0].filename == __file__
    assert old == new and set(new) == {"loss", "acc"}


# ----------------------------------------------------------------------------- progress

class _Pipe(io.StringIO):
    def isatty(self):
        return False


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def use_pipe(monkeypatch):
    """stderr is a pipe, and lines start at once (runs here are shorter than PIPE_DELAY). Called
    in the test body: pytest sets its own sys.stderr after fixtures have run."""
    stream = _Pipe()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(loop, "PIPE_DELAY", 0.0)
    return stream


def _maml():
    maml = meta.MAML(nn.MLP([1, 8, 1], rng=0), 0.01, 1)
    return maml, optim.Adam(maml.parameters(), lr=1e-2)


def _fit(progress, epochs=40):
    m = nn.MLP([4, 8, 3], rng=0)
    return fit(m, F.cross_entropy, optim.Adam(m.parameters()), blobs(), epochs=epochs, progress=progress)


def _meta_fit(progress, iterations=40, log_every=4):
    maml, opt = _maml()
    return meta.fit(maml, meta.tasks.Sinusoid(5, 5), opt, iterations=iterations, meta_batch=2,
                    log_every=log_every, progress=progress)


RUNS = {
    "train.fit": _fit,
    "meta.fit": _meta_fit,
    "meta.evaluate": lambda progress: meta.evaluate(_maml()[0], meta.tasks.Sinusoid(5, 5), n_tasks=40,
                                                    steps=(0, 1), chunk=2, progress=progress),
}
UNITS = {"train.fit": "epoch", "meta.fit": "iteration", "meta.evaluate": "task"}


@pytest.mark.parametrize("who", RUNS)
def test_on_a_pipe_progress_is_a_plain_line_at_each_5_percent(who, monkeypatch, capsys):
    pipe = use_pipe(monkeypatch)
    RUNS[who](True)
    lines = pipe.getvalue().splitlines()
    assert len(lines) == 20, lines
    assert lines[0].startswith(f"{who}: {UNITS[who]} 2/40 (5%)")
    assert lines[-1].startswith(f"{who}: {UNITS[who]} 40/40 (100%)")
    assert "\r" not in pipe.getvalue()  # no bar redraws piling up in a log
    if who == "train.fit":
        assert "train_loss" in lines[-1] and "left" in lines[0]
    if who == "meta.fit":
        assert "loss" in lines[-1]
    assert capsys.readouterr().out == ""  # progress goes to stderr, results to stdout


@pytest.mark.parametrize("who", RUNS)
def test_progress_false_prints_nothing_on_a_pipe_or_a_terminal(who, monkeypatch, capsys):
    pipe = use_pipe(monkeypatch)
    RUNS[who](False)
    assert pipe.getvalue() == ""
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    RUNS[who](False)
    assert term.getvalue() == "" and capsys.readouterr().out == ""


@pytest.mark.parametrize("who", ["meta.fit", "meta.evaluate"])
def test_on_a_terminal_progress_is_a_bar(who, monkeypatch):
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    RUNS[who](True)
    shown = term.getvalue()
    assert f"{who}:" in shown and "/40 [" in shown and "\r" in shown  # tqdm's bar
    if who == "meta.fit":
        assert "40/40" in shown  # it stays; meta.evaluate's bar (a part of a run) is cleared at the end


def test_in_a_notebook_progress_is_a_bar_even_though_stderr_is_not_a_terminal(monkeypatch):
    pipe = use_pipe(monkeypatch)
    class Shell:
        kernel = object()  # what a Jupyter kernel's shell has and a terminal IPython has not

    fake = type(sys)("IPython")
    fake.get_ipython = lambda: Shell()
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert loop._in_notebook()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # no ipywidgets: tqdm's text bar
                        lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a))
    RUNS["meta.fit"](True)
    assert "40/40" in pipe.getvalue() and "\r" in pipe.getvalue()
    Shell.kernel = None
    assert not loop._in_notebook()


def test_progress_in_a_real_notebook_kernel():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from tinymeta import meta, nn, optim\n"
        "maml = meta.MAML(nn.MLP([1, 8, 1], rng=0), 0.01, 1)\n"
        "h = meta.fit(maml, meta.tasks.Sinusoid(5, 5), optim.Adam(maml.parameters()), iterations=30, meta_batch=2)")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    shown = "".join(o.get("text", "") + str(o.get("data", "")) for o in nb.cells[0].outputs)
    assert "meta.fit" in shown and "30/30" in shown
    assert "Traceback" not in shown and "Exception" not in shown


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_plain_lines_wait_for_a_slow_run_then_mark_every_5_percent_and_beat_on_long_steps():
    out, clock = _Pipe(), _Clock()
    lines = loop._Lines("run", 1000, 0, "step", out, clock=clock)
    for n in range(1, 21):  # fast steps: a short run stays quiet
        clock.t = n * 0.01
        lines.update(n)
    assert out.getvalue() == ""
    for n in range(21, 1001):
        clock.t = 1.0 + n * 0.01  # past PIPE_DELAY from step 100 on
        lines.update(n, {"loss": 0.5})
    text = out.getvalue().splitlines()
    assert len(text) == 19 and text[0].startswith("run: step 100/1000 (10%)") and "loss 0.5" in text[0]
    assert text[-1].startswith("run: step 1000/1000 (100%)")
    out, clock = _Pipe(), _Clock()
    slow = loop._Lines("run", 1000, 0, "step", out, clock=clock)
    for n in range(1, 6):  # one slow step every 31 s: a heartbeat line each time
        clock.t = 31.0 * n
        slow.update(n)
    assert len(out.getvalue().splitlines()) == 5
    slow.close()  # the end of a run that was shown is shown
    assert len(out.getvalue().splitlines()) == 5  # (already on the last line: no repeat)
    slow.update(6)
    slow.close()
    assert out.getvalue().splitlines()[-1].startswith("run: step 6/1000")


def test_a_long_epoch_on_a_pipe_shows_a_heartbeat_between_epochs(monkeypatch):
    pipe = use_pipe(monkeypatch)
    monkeypatch.setattr(loop, "PIPE_HEARTBEAT", 0.0)  # as if each batch took longer than it
    X, y = blobs(40)
    m = nn.MLP([4, 8, 3], rng=0)
    fit(m, F.cross_entropy, optim.SGD(m.parameters(), lr=0.1), (X, y), epochs=2, batch_size=10)
    lines = pipe.getvalue().splitlines()
    assert lines[0].startswith("train.fit: epoch 1/2 under way (batch 1/4), ")
    assert "train.fit: epoch 2/2 under way (batch 4/4)" in lines[-2] and "2/2 (100%)" in lines[-1]


# ----------------------------------------------------------------------------- NaN and inf

@pytest.mark.parametrize("where, index", [("X", (3, 1)), ("y", 7), ("val X", (0, 0))])
def test_non_finite_data_is_refused_naming_the_array_and_the_first_index(where, index):
    X, y = blobs()
    y = y.astype(np.float64)[:, None]
    Xv = X[:10].copy()
    target = {"X": X, "y": y, "val X": Xv}[where]
    target[index if isinstance(index, tuple) else (index, 0)] = np.nan
    target[-1, 0] = np.inf
    m = nn.MLP([4, 8, 1], rng=0)
    before = params(m)
    with pytest.raises(tm.ArgumentError) as info:
        fit(m, F.mse_loss, optim.SGD(m.parameters(), lr=0.1), (X, y), val=(Xv, y[:10]), epochs=2,
            progress=False)
    msg = str(info.value)
    name = where if where.startswith("val") else f"train {where}"
    shown = index if isinstance(index, tuple) else (index, 0)
    assert name in msg and f"index {shown}" in msg and "2 non-finite" in msg and "nan" in msg
    assert same(params(m), before)


def test_non_finite_data_in_a_dataloader_and_in_evaluate_model_is_refused():
    X, y = blobs()
    X[5, 2] = -np.inf
    m = nn.MLP([4, 8, 3], rng=0)
    with pytest.raises(tm.ArgumentError, match=r"train X .* -inf at index \(5, 2\)"):
        fit(m, F.cross_entropy, optim.SGD(m.parameters(), lr=0.1), DataLoader(X, y), epochs=1,
            progress=False)
    with pytest.raises(tm.ArgumentError, match="evaluate_model: data X"):
        evaluate_model(m, F.cross_entropy, (X, y))


class _NanAt:
    """cross-entropy, except that its n-th call returns NaN (as a diverging run would)."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, out, y):
        self.calls += 1
        loss = F.cross_entropy(out, y)
        return loss * float("nan") if self.calls == self.n else loss


def test_a_non_finite_loss_stops_fit_and_leaves_the_model_where_that_epoch_started(tmp_path):
    X, y = blobs(40)
    kw = dict(batch_size=8, progress=False, rng=1)  # 5 batches an epoch, no validation
    good = nn.MLP([4, 8, 3], rng=0)
    good_opt = optim.Adam(good.parameters(), lr=0.05)
    h2 = fit(good, F.cross_entropy, good_opt, (X, y), epochs=2, **kw)

    m = nn.MLP([4, 8, 3], rng=0)
    opt = optim.Adam(m.parameters(), lr=0.05)
    path = tmp_path / "run.npz"
    with pytest.raises(tm.AnomalyError, match=r"loss became nan in epoch 3, batch 4 of 5") as info:
        fit(m, _NanAt(2 * 5 + 4), opt, (X, y), epochs=5, checkpoint=path, compile=False, **kw)  # a side effect
    assert same(params(m), params(good))  # epoch 3's first three steps were undone
    assert opt.state_dict()["state"][0]["step"] == good_opt.state_dict()["state"][0]["step"] == 10
    assert dict(info.value.history) == dict(h2) and info.value.history.epochs == 2
    assert int(nn.load_arrays(path)["run/epoch"]) == 2
    # and the run can continue from the checkpoint, e.g. once the cause is fixed
    h = fit(m, F.cross_entropy, opt, (X, y), epochs=3, checkpoint=path, resume=True, **kw)
    assert h.epochs == 3 and np.isfinite(h["train_loss"]).all()


def test_history_plot_marks_whole_epochs_only(tmp_path):
    X, y = blobs(20)
    m = nn.MLP([4, 8, 3], rng=0)
    h = fit(m, F.cross_entropy, optim.Adam(m.parameters()), (X, y), epochs=3, progress=False)
    fig = h.plot()
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks == [1, 2, 3]
    mh = _meta_fit(False, iterations=4, log_every=2)
    fig2 = mh.plot(tmp_path / "meta.png", title="MAML")
    assert fig2.axes[0].get_title() == "MAML" and fig2.axes[0].get_yscale() == "log"
    assert (tmp_path / "meta.png").read_bytes()[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt
    plt.close("all")

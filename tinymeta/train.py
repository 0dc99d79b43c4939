"""A training loop for ``nn`` modules: ``fit(...)`` returns a ``History``.

    history = fit(model, F.cross_entropy, optim.Adam(model.parameters()), (X, y),
                  val=(X_val, y_val), epochs=20, early_stopping=5, checkpoint="run.npz")
    history["val_acc"], history.best_epoch, history.plot("curves.png")

Checkpoints hold everything a run depends on (parameters, optimizer and scheduler state,
the shuffling generator, history, early-stopping bookkeeping), taken at the end of an
epoch, so a resumed run repeats the uninterrupted one bit for bit. Ctrl-C during ``fit``
writes that last epoch-end state, prints how to resume, rolls the model back to it and
returns the History with ``history.interrupted = True`` (it does not re-raise: a script
that plots or evaluates afterwards still runs; check the flag if you need to stop).
``evaluate_model(model, loss_fn, (X, y))`` measures a model on held-out data.

The loop's checkpoints, rollback, progress display and History plotting are
``tinymeta.loop``'s, shared with ``meta.fit``; this module says what an epoch is.
"""
import warnings
from typing import Callable, Optional, Union

import numpy as np

from . import loop
from .data import DataLoader
from .engine import no_grad
from .errors import AnomalyError, ArgumentError, TraceError
from .tape import jit

INTERRUPT_PATH = loop.INTERRUPT_PATH


class History(loop.History):
    """Metric name -> list with one value per epoch ("train_loss", "train_acc", "val_loss",
    "val_acc", and "train_<m>"/"val_<m>" for extra metrics).

    ``epochs``: number of epochs completed; ``best_epoch``: index (into those lists) of
    the best monitored value when early stopping ran, else None; ``stopped_early``;
    ``interrupted``: True when Ctrl-C ended the run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.best_epoch = None
        self.stopped_early = False

    @property
    def epochs(self):
        return max((len(v) for v in self.values()), default=0)

    def plot(self, path=None, show=False, title=None):
        """Loss (and accuracy, when recorded) per epoch, train vs validation, in side-by-side
        panels. Saves a PNG to ``path`` if given; returns the matplotlib Figure."""
        return self._draw(self._panels(), path, show, title)

    def _panels(self):
        kinds = [("loss", "Loss")]
        if "train_acc" in self or "val_acc" in self:
            kinds.append(("acc", "Accuracy"))
        best = None if self.best_epoch is None else (self.best_epoch + 1, "best epoch")
        return [{"title": title, "xlabel": "epoch", "x": np.arange(1, self.epochs + 1), "integer_x": True,
                 "vline": best,
                 "series": [(label, self.get(f"{split}_{key}", []), style)
                            for split, label, style in (("train", "train", "-"), ("val", "validation", "--"))]}
                for key, title in kinds]


class EarlyStopping:
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience``
    epochs. Names containing "loss" are minimised, others (accuracy...) maximised."""

    def __init__(self, patience=10, monitor="val_loss", min_delta=0.0, restore_best=True, mode=None):
        if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 1:
            raise ArgumentError(f"early_stopping: patience must be a positive int, got {patience!r}")
        if min_delta < 0:
            raise ArgumentError(f"early_stopping: min_delta must be >= 0, got {min_delta}")
        mode = mode or ("min" if "loss" in monitor else "max")
        if mode not in ("min", "max"):
            raise ArgumentError(f"early_stopping: mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.monitor, self.min_delta = int(patience), monitor, float(min_delta)
        self.restore_best, self.mode = bool(restore_best), mode

    @classmethod
    def coerce(cls, spec):
        if spec is None or isinstance(spec, cls):
            return spec
        if isinstance(spec, dict):
            return cls(**spec)
        if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
            return cls(patience=spec)
        keys = ("patience", "monitor", "min_delta", "restore_best", "mode")
        if hasattr(spec, "patience"):  # any object with the same attributes
            return cls(**{k: getattr(spec, k) for k in keys if hasattr(spec, k)})
        raise ArgumentError(f"early_stopping: expected None, an int patience, a dict or an "
                            f"EarlyStopping, got {type(spec).__name__}")

    def improved(self, value, best):
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


def _as_loader(data, batch_size, shuffle, rng, what, who="fit"):
    if isinstance(data, DataLoader):
        loader = data
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        loader = DataLoader(*data, batch_size=batch_size, shuffle=shuffle, rng=rng)
    else:
        raise ArgumentError(f"{who}: {what} must be a tuple (X, y) of arrays or a tinymeta.data.DataLoader, "
                            f"got {type(data).__name__}")
    _check_finite(loader.arrays, what, who)
    return loader


def _check_finite(arrays, what, who):
    """NaN or inf in the data would make every loss NaN: refuse it up front, by name and index."""
    names = ("X", "y") if len(arrays) == 2 else tuple(f"array {i}" for i in range(len(arrays)))
    for name, a in zip(names, arrays):
        if a.dtype.kind in "fc" and not np.isfinite(a).all():
            bad = ~np.isfinite(a)
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            where = first[0] if len(first) == 1 else first
            raise ArgumentError(f"{who}: {what} {name} holds {int(bad.sum())} non-finite value(s) (NaN or "
                                f"inf); the first is {a[first]} at index {where}. Drop or fill those "
                                f"samples first, e.g. keep = np.isfinite(X).all(axis=1)")


def _is_classification(out, y):
    return out.ndim >= 2 and out.shape[-1] > 1 and np.asarray(y).dtype.kind in "iu"


def _resolve_metrics(metrics):
    """-> list of (name, fn(y_true, y_pred)); strings name functions of tinymeta.metrics."""
    if metrics is None:
        return []
    from . import metrics as M
    items = metrics.items() if isinstance(metrics, dict) else [(None, m) for m in metrics]
    out = []
    for name, m in items:
        if isinstance(m, str):
            if not callable(getattr(M, m, None)):
                raise ArgumentError(f"fit: unknown metric {m!r}; use a name from tinymeta.metrics "
                                    f"({', '.join(M.__all__)}) or a function (y_true, y_pred)")
            name, m = name or m, getattr(M, m)
        elif not callable(m):
            raise ArgumentError(f"fit: metrics must be names or callables, got {type(m).__name__}")
        out.append((name or m.__name__, m))
    return out


class _Epoch:
    """Sample-weighted running loss, accuracy and the outputs extra metrics need."""

    def __init__(self, keep):
        self.n = self.loss = self.correct = 0.0
        self.classify = None
        self.keep, self.ys, self.preds = keep, [], []

    def add(self, loss, out, y):
        n = len(y)
        self.n += n
        self.loss += loss * n
        if self.classify is None:
            self.classify = _is_classification(out, y)
        pred = out.argmax(-1) if self.classify else out
        if self.classify:
            self.correct += float(np.sum(pred == y))
        if self.keep:
            self.ys.append(np.asarray(y))
            self.preds.append(pred)

    def log(self, history, prefix, metrics):
        history._log(f"{prefix}_loss", self.loss / self.n)
        if self.classify:
            history._log(f"{prefix}_acc", self.correct / self.n)
        if metrics:
            y, p = np.concatenate(self.ys), np.concatenate(self.preds)
            for name, fn in metrics:
                history._log(f"{prefix}_{name}", fn(y, p))


def evaluate_model(model, loss_fn: Callable, data: Union[tuple, DataLoader], batch_size: int = 256,
                   metrics=None) -> dict:
    """The mean loss of ``model`` on ``data`` (and accuracy for classification, and each of
    ``metrics``), under no_grad, in eval mode: ``{"loss": ..., "acc": ..., "<metric>": ...}``.

    data: ``(X, y)`` arrays or a ``DataLoader``; loss_fn(output, y) -> scalar Tensor (a mean
    over the batch: batches are weighted by their size).

        evaluate_model(model, F.cross_entropy, (X_test, y_test))  # {'loss': 0.21, 'acc': 0.94}
    """
    loader = _as_loader(data, batch_size, False, None, "data", "evaluate_model")
    metrics = _resolve_metrics(metrics)
    history, acc = History(), _Epoch(bool(metrics))
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            for xb, yb in loader:
                out = model(xb)
                acc.add(float(loss_fn(out, yb).item()), out.data, yb)
    finally:
        if was_training:
            model.train()
    acc.log(history, "val", metrics)
    return {k[4:]: v[0] for k, v in history.items()}


def evaluate(model, loss_fn: Callable, data: Union[tuple, DataLoader], batch_size: int = 256,
             metrics=None) -> dict:
    """Deprecated name of ``evaluate_model`` (renamed apart from ``meta.evaluate``, which
    evaluates meta-learners on tasks); it will be removed in the next release."""
    warnings.warn("tinymeta.train.evaluate is renamed tinymeta.train.evaluate_model; the old name will "
                  "be removed in the next release", DeprecationWarning, stacklevel=2)
    return evaluate_model(model, loss_fn, data, batch_size, metrics)


# ----------------------------------------------------------------------------- fit

class _Run:
    """The early-stopping bookkeeping a checkpoint holds besides model, optimizer and data."""

    def __init__(self, model):
        self.model = model
        self.best = None          # best monitored value
        self.wait = 0             # epochs since it improved
        self.best_state = None    # model state_dict at the best epoch

    def part(self, history):
        def save():
            arrays = {"run/wait": np.asarray(self.wait), "run/stopped": np.asarray(history.stopped_early)}
            if self.best is not None:
                arrays["run/best"] = np.asarray(self.best, dtype=np.float64)
                arrays["run/best_epoch"] = np.asarray(history.best_epoch)
            if self.best_state is not None:
                arrays.update({f"best/{k}": v.copy() for k, v in self.best_state.items()})
            return arrays

        def load(arrays):
            wait, stopped = int(arrays["run/wait"]), bool(arrays["run/stopped"])
            best = float(arrays["run/best"]) if "run/best" in arrays else None
            best_epoch = int(arrays["run/best_epoch"]) if "run/best_epoch" in arrays else None
            self.wait, self.best, history.stopped_early, history.best_epoch = wait, best, stopped, best_epoch
            self.best_state = loop.section(arrays, "best/") or None
        return loop.Part(save, load)


def _scheduler_part(scheduler):
    def save():
        s = scheduler.state_dict()
        return {"sched/last_epoch": np.asarray(s["last_epoch"]),
                "sched/base_lrs": np.asarray(s["base_lrs"], dtype=np.float64)}

    def load(arrays):
        if "sched/last_epoch" in arrays:
            scheduler.load_state_dict({"last_epoch": arrays["sched/last_epoch"],
                                       "base_lrs": arrays["sched/base_lrs"]})
    return loop.Part(save, load)


def _loader_part(loader):
    return loop.Part(lambda: {f"loader/{k}": v for k, v in loader.state_dict().items()},
                     lambda arrays: loader.load_state_dict(loop.section(arrays, "loader/")))


def fit(model, loss_fn: Callable, optimizer, train: Union[tuple, DataLoader],
        val: Optional[Union[tuple, DataLoader]] = None, epochs: int = 10, batch_size: int = 32,
        accumulate: int = 1, early_stopping=None, progress: bool = True, metrics=None, rng=0,
        scheduler=None, checkpoint=None, resume: bool = False, compile: bool = True) -> History:
    """Train ``model`` for ``epochs`` epochs (a total: a resumed run continues up to it).

    train, val: ``(X, y)`` arrays (shuffled each epoch by a DataLoader seeded with ``rng``)
        or a ``DataLoader`` (used as given; ``batch_size``/``rng`` then do not apply). Data
        holding NaN or inf is refused (ArgumentError naming the array and the first index).
    loss_fn(output, y) -> scalar Tensor.
    accumulate=k: one optimizer step per k mini-batches, each backpropagating loss/k, so
        the step sees the mean gradient of the k batches (a last, shorter group divides by
        its own size). The loss is assumed to be a mean over the batch.
    early_stopping: an int patience, a dict or an ``EarlyStopping`` (patience, monitor=
        "val_loss", min_delta=0, restore_best=True: the best epoch's weights are put back).
    metrics: names from ``tinymeta.metrics`` or callables ``fn(y_true, y_pred)`` (y_pred
        is the argmax class for classification), logged as "train_<name>"/"val_<name>".
    scheduler: a ``lr_scheduler``; stepped once after each epoch.
    checkpoint: a ``.npz`` path written atomically after each epoch; ``resume=True`` loads
        it when it exists (else starts fresh) and continues bit for bit.
    progress: a bar over epochs on a terminal or in a notebook, a plain line now and then
        on stderr when it is a pipe or a file (runs over 2 s); False shows nothing.

    compile: each batch's forward, loss and backward run as a ``tm.jit`` replay (traced once
        per batch shape, checked against eager); a loss_fn the tape cannot follow runs
        eagerly, with a warning.

    A training loss that becomes NaN or inf stops the run with ``tm.AnomalyError``: the
    model, optimizer and History are put back as they were at the start of that epoch
    (the error's ``history`` attribute holds the History so far). Ctrl-C saves the last
    finished epoch, rolls back to it and returns with ``history.interrupted = True``.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ArgumentError(f"fit: epochs must be a non-negative int, got {epochs!r}")
    if isinstance(accumulate, bool) or not isinstance(accumulate, (int, np.integer)) or accumulate < 1:
        raise ArgumentError(f"fit: accumulate must be a positive int, got {accumulate!r}")
    if not callable(loss_fn):
        raise ArgumentError(f"fit: loss_fn must be callable (output, y) -> scalar Tensor, got {loss_fn!r}")
    stopper = EarlyStopping.coerce(early_stopping)
    if stopper is not None and stopper.monitor.startswith("val_") and val is None:
        raise ArgumentError(f"fit: early stopping monitors {stopper.monitor!r} but no val data was "
                            "given; pass val=(X_val, y_val) or monitor='train_loss'")
    if resume and checkpoint is None:
        raise ArgumentError("fit: resume=True needs checkpoint=PATH, the file to resume from")
    train_loader = _as_loader(train, batch_size, True, rng, "train")
    val_loader = None if val is None else _as_loader(val, max(batch_size, 256), False, None, "val")
    metric_fns = _resolve_metrics(metrics)
    history, run = History(), _Run(model)
    parts = [loop.module_part("model/", model), loop.optimizer_part(optimizer), _loader_part(train_loader)]
    if scheduler is not None:
        parts.append(_scheduler_part(scheduler))
    parts += [loop.history_part(history), run.part(history)]
    runner = loop.Loop("train.fit", "epoch", epochs, parts, checkpoint=checkpoint, progress=progress)
    if resume:
        runner.resume(missing_ok=True)

    batch_step = _BatchStep(model, loss_fn, compile)

    def epoch():
        _train_epoch(batch_step, optimizer, train_loader, accumulate, history, metric_fns, runner, model)
        if val_loader is not None:
            acc = _Epoch(bool(metric_fns))
            model.eval()
            with no_grad():
                for xb, yb in val_loader:
                    out = model(xb)
                    acc.add(float(loss_fn(out, yb).item()), out.data, yb)
            model.train()
            acc.log(history, "val", metric_fns)
        if scheduler is not None:
            scheduler.step()
        if stopper is not None:
            _early_stopping(stopper, model, history, run, runner.done + 1)
        return history.stopped_early

    try:
        finished = runner.run(epoch, status=lambda: {k: v[-1] for k, v in history.items()},
                              stopped=history.stopped_early)
    except AnomalyError as exc:
        exc.history = history
        raise
    history.interrupted = not finished
    if finished and stopper is not None and stopper.restore_best and run.best_state is not None:
        model.load_state_dict(run.best_state)
    return history


class _BatchStep:
    """One batch's forward, loss and backward (the optimizer steps outside): compiled with
    tm.jit unless ``compile`` is off or the tape cannot follow ``loss_fn`` (then eager)."""

    def __init__(self, model, loss_fn, compile):
        def step(xb, yb, scale):
            out = model(xb)
            loss = loss_fn(out, yb)
            (loss * scale if scale != 1.0 else loss).backward()
            return loss, out
        self.eager = step
        self.run = jit(step, fallback=True) if compile else step

    def __call__(self, xb, yb, scale):
        try:
            return self.run(xb, yb, scale)
        except TraceError as exc:  # raised while tracing, before any gradient was written
            warnings.warn(f"train.fit: running eagerly, the tape cannot follow this loss: {exc}",
                          RuntimeWarning, stacklevel=3)
            self.run = self.eager
            return self.eager(xb, yb, scale)


def _train_epoch(batch_step, optimizer, loader, accumulate, history, metric_fns, runner, model):
    model.train()
    acc = _Epoch(bool(metric_fns))
    n_batches = len(loader)
    optimizer.zero_grad()
    done = runner.done
    for b, (xb, yb) in enumerate(loader):
        group_start = b - b % accumulate
        group_len = min(accumulate, n_batches - group_start)
        loss, out = batch_step(xb, yb, 1.0 / group_len)
        value = float(loss.item())
        if not np.isfinite(value):
            raise AnomalyError(
                f"train.fit: the training loss became {value} in epoch {done + 1}, batch {b + 1} of "
                f"{n_batches}: the run diverged. Model, optimizer and history are back as they were at "
                f"the start of epoch {done + 1}. Try a smaller learning rate or clipping "
                f"(optim.clip_grad_norm_), or run under tm.detect_anomaly() to find the op that made it")
        if b - group_start == group_len - 1:
            optimizer.step()
            optimizer.zero_grad()
        acc.add(value, out.data, yb)
        runner.tick(f"batch {b + 1}/{n_batches}")
    if acc.n:
        acc.log(history, "train", metric_fns)


def _early_stopping(stopper, model, history, run, epoch):
    if stopper.monitor not in history:
        raise ArgumentError(f"fit: early stopping monitors {stopper.monitor!r}, which is not "
                            f"recorded; recorded: {sorted(history)}")
    value = history[stopper.monitor][-1]
    if stopper.improved(value, run.best):
        run.best, run.wait, history.best_epoch = value, 0, epoch - 1
        if stopper.restore_best:
            run.best_state = model.state_dict()
    else:
        run.wait += 1
        history.stopped_early = run.wait >= stopper.patience


__all__ = ["fit", "evaluate_model", "evaluate", "History", "EarlyStopping"]

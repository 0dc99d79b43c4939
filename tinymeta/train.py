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
"""
import os
import sys

import numpy as np

from .data import DataLoader
from .engine import no_grad
from .errors import ArgumentError, CheckpointError
from .nn import load_arrays, save_arrays

INTERRUPT_PATH = "tinymeta-interrupted.npz"


class History(dict):
    """Metric name -> list with one value per epoch ("train_loss", "train_acc", "val_loss",
    "val_acc", and "train_<m>"/"val_<m>" for extra metrics).

    ``epochs``: number of epochs completed; ``best_epoch``: index (into those lists) of
    the best monitored value when early stopping ran, else None; ``stopped_early``;
    ``interrupted``: True when Ctrl-C ended the run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.best_epoch = None
        self.stopped_early = False
        self.interrupted = False

    @property
    def epochs(self):
        return max((len(v) for v in self.values()), default=0)

    def _log(self, name, value):
        self.setdefault(name, []).append(float(value))

    def plot(self, path=None, show=False):
        """Loss (and accuracy, when recorded) per epoch, train vs validation, in side-by-side
        panels. Saves a PNG to ``path`` if given; returns the matplotlib Figure."""
        plt = _pyplot()
        panels = [("loss", "Loss")]
        if "train_acc" in self or "val_acc" in self:
            panels.append(("acc", "Accuracy"))
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
        x = np.arange(1, self.epochs + 1)
        for ax, (key, title) in zip(axes[0], panels):
            for split, style in (("train", "-"), ("val", "--")):
                values = self.get(f"{split}_{key}")
                if values:
                    ax.plot(x[:len(values)], values, style, label="validation" if split == "val" else split)
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch + 1, color="gray", lw=0.8, ls=":", label="best epoch")
            ax.set(title=title, xlabel="epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        if show:
            plt.show()
        return fig


def _pyplot():
    # Deferred: matplotlib costs ~0.3 s to import and most training runs never plot.
    import matplotlib
    if "matplotlib.pyplot" not in sys.modules and sys.platform.startswith("linux") \
            and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


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


def _as_loader(data, batch_size, shuffle, rng, what):
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return DataLoader(*data, batch_size=batch_size, shuffle=shuffle, rng=rng)
    raise ArgumentError(f"fit: {what} must be a tuple (X, y) of arrays or a tinymeta.data.DataLoader, "
                        f"got {type(data).__name__}")


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


def evaluate(model, loss_fn, data, batch_size=256, metrics=None):
    """Loss (and accuracy for classification) of ``model`` on ``data`` under no_grad, as a dict."""
    loader = _as_loader(data, batch_size, False, None, "data")
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


# ----------------------------------------------------------------------------- checkpoints

def _flatten_optimizer(sd):
    flat = {}
    for i, s in sd["state"].items():
        for k, v in s.items():
            flat[f"optim/state/{i}/{k}"] = np.asarray(v)
    for g, group in enumerate(sd["param_groups"]):
        for k, v in group.items():
            if v is not None:
                flat[f"optim/group/{g}/{k}"] = np.asarray(v)
    return flat


def _unflatten_optimizer(arrays):
    state, groups = {}, {}
    for key, v in arrays.items():
        parts = key.split("/")
        if parts[:2] == ["optim", "state"]:
            state.setdefault(int(parts[2]), {})[parts[3]] = v
        elif parts[:2] == ["optim", "group"]:
            groups.setdefault(int(parts[2]), {})[parts[3]] = v
    return {"state": state, "param_groups": [groups[g] for g in sorted(groups)]}


class _Run:
    """What a checkpoint holds, besides model and optimizer: the resumable loop state."""

    def __init__(self):
        self.epoch = 0
        self.best = None          # best monitored value
        self.wait = 0             # epochs since it improved
        self.best_state = None    # model state_dict at the best epoch


def _snapshot(model, optimizer, loader, scheduler, history, run):
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update(_flatten_optimizer(optimizer.state_dict()))
    arrays.update({f"loader/{k}": v for k, v in loader.state_dict().items()})
    if scheduler is not None:
        s = scheduler.state_dict()
        arrays.update({"sched/last_epoch": np.asarray(s["last_epoch"]),
                       "sched/base_lrs": np.asarray(s["base_lrs"], dtype=np.float64)})
    arrays.update({f"history/{k}": np.asarray(v, dtype=np.float64) for k, v in history.items()})
    arrays["run/epoch"] = np.asarray(run.epoch)
    arrays["run/wait"] = np.asarray(run.wait)
    arrays["run/stopped"] = np.asarray(history.stopped_early)
    if run.best is not None:
        arrays["run/best"] = np.asarray(run.best, dtype=np.float64)
        arrays["run/best_epoch"] = np.asarray(history.best_epoch)
    if run.best_state is not None:
        arrays.update({f"best/{k}": v for k, v in run.best_state.items()})
    return arrays


def _restore(arrays, model, optimizer, loader, scheduler, history, run, where):
    def part(prefix):
        return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
    before = model.state_dict(), optimizer.state_dict()
    try:
        epoch, wait = int(arrays["run/epoch"]), int(arrays["run/wait"])
        stopped = bool(arrays["run/stopped"])
        model.load_state_dict(part("model/"))
        optimizer.load_state_dict(_unflatten_optimizer(arrays))
        loader.load_state_dict(part("loader/"))
        if scheduler is not None and "sched/last_epoch" in arrays:
            scheduler.load_state_dict({"last_epoch": arrays["sched/last_epoch"],
                                       "base_lrs": arrays["sched/base_lrs"]})
    except (CheckpointError, KeyError, ValueError, IndexError) as exc:
        # Nothing half-loaded: put model and optimizer back as they were.
        model.load_state_dict(before[0])
        optimizer.load_state_dict(before[1])
        raise CheckpointError(f"fit: cannot resume from {where!r}: it does not match this model, "
                              f"optimizer or data ({type(exc).__name__}: {exc})") from exc
    run.epoch, run.wait = epoch, wait
    history.clear()
    history.update({k: v.tolist() for k, v in part("history/").items()})
    history.stopped_early = stopped
    if "run/best" in arrays:
        run.best, history.best_epoch = float(arrays["run/best"]), int(arrays["run/best_epoch"])
    best = part("best/")
    run.best_state = best or None


# ----------------------------------------------------------------------------- fit

def fit(model, loss_fn, optimizer, train, val=None, epochs=10, batch_size=32, accumulate=1,
        early_stopping=None, progress=True, metrics=None, rng=0, scheduler=None, checkpoint=None,
        resume=False):
    """Train ``model`` for ``epochs`` epochs (a total: a resumed run continues up to it).

    train, val: ``(X, y)`` arrays (shuffled each epoch by a DataLoader seeded with ``rng``)
        or a ``DataLoader`` (used as given; ``batch_size``/``rng`` then do not apply).
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
    progress: a tqdm bar over epochs, shown only when stderr is a terminal.
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
    history, run = History(), _Run()
    if resume and os.path.exists(checkpoint):
        _restore(load_arrays(checkpoint), model, optimizer, train_loader, scheduler, history, run,
                 checkpoint)
    last = _snapshot(model, optimizer, train_loader, scheduler, history, run)

    bar = None
    if progress and sys.stderr.isatty() and run.epoch < epochs and not history.stopped_early:
        from tqdm.auto import tqdm  # deferred: only interactive runs pay for it
        bar = tqdm(total=epochs, initial=run.epoch, desc="fit", unit="epoch", leave=True)
    try:
        while run.epoch < epochs and not history.stopped_early:
            _train_epoch(model, loss_fn, optimizer, train_loader, accumulate, history, metric_fns)
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
            run.epoch += 1
            if stopper is not None:
                _early_stopping(stopper, model, history, run)
            last = _snapshot(model, optimizer, train_loader, scheduler, history, run)
            if checkpoint is not None:
                save_arrays(checkpoint, last)
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v[-1]:.4g}" for k, v in history.items()}, refresh=False)
    except KeyboardInterrupt:
        path = checkpoint if checkpoint is not None else INTERRUPT_PATH
        save_arrays(path, last)
        # Roll back to the state that was saved, so model, optimizer and history agree.
        _restore(last, model, optimizer, train_loader, scheduler, history, _Run(), path)
        history.interrupted = True
        print(f"tinymeta.train.fit: interrupted during epoch {int(last['run/epoch']) + 1}; epoch "
              f"{int(last['run/epoch'])} saved to {path}; resume with "
              f"fit(..., checkpoint={path!r}, resume=True)", file=sys.stderr)
        return history
    finally:
        if bar is not None:
            bar.close()
    if stopper is not None and stopper.restore_best and run.best_state is not None:
        model.load_state_dict(run.best_state)
    return history


def _train_epoch(model, loss_fn, optimizer, loader, accumulate, history, metric_fns):
    model.train()
    acc = _Epoch(bool(metric_fns))
    n_batches = len(loader)
    optimizer.zero_grad()
    for b, (xb, yb) in enumerate(loader):
        group_start = b - b % accumulate
        group_len = min(accumulate, n_batches - group_start)
        out = model(xb)
        loss = loss_fn(out, yb)
        (loss * (1.0 / group_len) if group_len > 1 else loss).backward()
        if b - group_start == group_len - 1:
            optimizer.step()
            optimizer.zero_grad()
        acc.add(float(loss.item()), out.data, yb)
    if acc.n:
        acc.log(history, "train", metric_fns)


def _early_stopping(stopper, model, history, run):
    if stopper.monitor not in history:
        raise ArgumentError(f"fit: early stopping monitors {stopper.monitor!r}, which is not "
                            f"recorded; recorded: {sorted(history)}")
    value = history[stopper.monitor][-1]
    if stopper.improved(value, run.best):
        run.best, run.wait, history.best_epoch = value, 0, run.epoch - 1
        if stopper.restore_best:
            run.best_state = model.state_dict()
    else:
        run.wait += 1
        history.stopped_early = run.wait >= stopper.patience


__all__ = ["fit", "evaluate", "History", "EarlyStopping"]

"""The training-loop core that ``train.fit`` and ``meta.fit`` share.

A run is a number of steps (epochs for ``train.fit``, meta-iterations for ``meta.fit``).
The step itself belongs to its loop; everything around it lives here, once:

- **checkpoints**: what a run depends on is a flat dict of named arrays, gathered from
  ``Part``s (the model, the optimizer, random generators, the History, ...). Files are
  written atomically (``nn.save_arrays``) and read with ``allow_pickle=False``; a file that
  does not fit is refused with a message before anything changes, never half-loaded.
- **interruption**: Ctrl-C rolls back the unfinished step, saves the state after the last
  finished one and prints how to resume, so a resumed run repeats the uninterrupted one
  bit for bit. Any other error in a step also rolls it back before it propagates.
- **progress**: ``progress(...)`` picks a tqdm bar on terminals and in notebooks, and a
  plain line now and then when stderr is a pipe or a file.
- **History**: a dict of per-step lists, whose ``plot`` draws its panels.

Layer: this sits with ``train`` (it uses nn, optim state dicts, plotting, errors) and
never imports ``meta``.
"""
import importlib.util
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence, TextIO

import numpy as np

from .errors import CheckpointError
from .threads import small_machine_blas
from .nn.serialization import load_arrays, save_arrays
from .plotting import pyplot

INTERRUPT_PATH = "tinymeta-interrupted.npz"
LOOP_KEY = "run/loop"   # which loop wrote a checkpoint (absent in files written before this core)

Arrays = dict  # checkpoint key -> np.ndarray


# ----------------------------------------------------------------------------- checkpoint parts

class Part:
    """One piece of a run's state. ``save()`` returns copies as {checkpoint key: array};
    ``load(arrays)`` reads its keys from a whole checkpoint's dict and puts them back,
    raising (CheckpointError, KeyError, ValueError...) when they do not fit.

    ``mark()`` and ``rollback(mark)`` do the same in memory before each step, so they can be
    cheaper (a History only needs its lengths); by default they are ``save`` and ``load``."""

    def __init__(self, save: Callable[[], Arrays], load: Callable[[Arrays], None],
                 mark: Optional[Callable[[], object]] = None, rollback: Optional[Callable[[object], None]] = None):
        self.save, self.load = save, load
        self.mark, self.rollback = mark or save, rollback or load


def section(arrays: Arrays, prefix: str) -> Arrays:
    """The entries of ``arrays`` under ``prefix``, with the prefix taken off their names."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def module_part(prefix: str, module) -> Part:
    """A module's parameters (anything with state_dict/load_state_dict) under ``prefix``."""
    def load(arrays):
        module.load_state_dict(section(arrays, prefix))
    return Part(lambda: {prefix + k: v for k, v in module.state_dict().items()}, load)


def optimizer_arrays(optimizer) -> Arrays:
    """An optimizer's state_dict as flat arrays: "optim/state/<param>/<name>", "optim/group/<g>/<name>"."""
    sd = optimizer.state_dict()
    flat = {}
    for i, s in sd["state"].items():
        for k, v in s.items():
            flat[f"optim/state/{i}/{k}"] = np.asarray(v)
    for g, group in enumerate(sd["param_groups"]):
        for k, v in group.items():
            if v is not None:
                flat[f"optim/group/{g}/{k}"] = np.asarray(v)
    return flat


def load_optimizer_arrays(optimizer, arrays: Arrays) -> None:
    """The inverse of ``optimizer_arrays`` (other keys in ``arrays`` are ignored)."""
    state, groups = {}, {}
    for key, v in section(arrays, "optim/").items():
        kind, index, name = key.split("/")
        (state if kind == "state" else groups).setdefault(int(index), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": [groups[g] for g in sorted(groups)]})


def optimizer_part(optimizer) -> Part:
    """An optimizer's state (moments, step counts, hyperparameters) under "optim/"."""
    return Part(lambda: optimizer_arrays(optimizer), lambda arrays: load_optimizer_arrays(optimizer, arrays))


def rng_part(key: str, rng: np.random.Generator) -> Part:
    """A ``np.random.Generator``'s state as one JSON string array (readable without pickle)."""
    def load(arrays):
        state = json.loads(str(arrays[key]))
        if state.get("bit_generator") != type(rng.bit_generator).__name__:
            raise ValueError(f"'{key}' holds a {state.get('bit_generator')!r} state, this run uses "
                             f"{type(rng.bit_generator).__name__}")
        rng.bit_generator.state = state
    def rollback(state):
        rng.bit_generator.state = state
    return Part(lambda: {key: np.array(json.dumps(rng.bit_generator.state))}, load,
                lambda: rng.bit_generator.state, rollback)


def history_part(history: dict, keys: Optional[Sequence[str]] = None) -> Part:
    """History lists as float arrays "history/<name>". With ``keys`` exactly those are saved
    and required on load; without, every list is, and loading replaces them all. A step only
    appends, so rolling one back cuts the lists to their earlier lengths (no copies: a long
    run's History would make copying at every step quadratic)."""
    def save():
        names = keys if keys is not None else list(history)
        return {f"history/{k}": np.asarray(history[k], dtype=np.float64) for k in names}

    def load(arrays):
        saved = section(arrays, "history/")
        if keys is not None:
            history.update({k: saved[k].tolist() for k in keys})  # KeyError when one is missing
        else:
            history.clear()
            history.update({k: v.tolist() for k, v in saved.items()})

    def rollback(lengths):
        for k in [k for k in history if k not in lengths]:
            del history[k]
        for k, n in lengths.items():
            del history[k][n:]
    return Part(save, load, lambda: {k: len(history[k]) for k in (keys or list(history))}, rollback)


# ----------------------------------------------------------------------------- the loop

class Loop:
    """Runs ``step()`` up to ``total`` times with checkpoints, rollback and progress.

    who: the function's name for messages ("train.fit"); unit: "epoch" or "iteration",
    also the checkpoint key of the step count ("run/<unit>"); parts: the run's state.
    checkpoint: a path written every ``every`` steps and at the end; ``resume_hint`` is
    added to the "interrupted" message (the command line's ``--resume``)."""

    def __init__(self, who: str, unit: str, total: int, parts: Sequence[Part], checkpoint=None, every: int = 1,
                 progress: bool = True, resume_hint: str = ""):
        self.who, self.unit, self.total = who, unit, total
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.every, self.show_progress, self.resume_hint = every, progress, resume_hint
        self.done = 0
        self.reporter = _Silent()
        counter = f"run/{unit}"

        def load_counter(arrays):
            self.done = int(arrays[counter])

        def rollback_counter(done):
            self.done = done
        self.parts = [Part(lambda: {LOOP_KEY: np.array(who), counter: np.asarray(self.done)},
                           load_counter, lambda: self.done, rollback_counter)] + list(parts)

    # -- state
    def capture(self) -> Arrays:
        """Everything the run depends on, as copies: a checkpoint's contents."""
        arrays = {}
        for part in self.parts:
            arrays.update(part.save())
        return arrays

    def mark(self) -> list:
        """The state before a step, in memory, for ``rollback``."""
        return [part.mark() for part in self.parts]

    def rollback(self, marks: list) -> None:
        """Put every part back where ``mark`` found it."""
        for part, mark in zip(self.parts, marks):
            part.rollback(mark)

    def restore(self, arrays: Arrays, where: str) -> None:
        """Put every part back from ``arrays``, or, when any part does not fit, put every
        part back as it was and raise CheckpointError: nothing is ever half-loaded."""
        written_by = arrays.get(LOOP_KEY)
        if written_by is not None and str(written_by) != self.who:
            raise CheckpointError(f"{self.who}: cannot resume from {where!r}: it was written by "
                                  f"{written_by}, not {self.who}")
        before = self.capture()
        try:
            for part in self.parts:
                part.load(arrays)
        except (CheckpointError, KeyError, ValueError, IndexError, TypeError) as exc:
            for part in self.parts:
                part.load(before)
            raise CheckpointError(f"{self.who}: cannot resume from {where!r}: it does not match this "
                                  f"model, optimizer or data ({type(exc).__name__}: {exc})") from exc

    def resume(self, missing_ok: bool = False) -> None:
        """Load the checkpoint; with ``missing_ok`` a missing file means a fresh start."""
        if missing_ok and not os.path.exists(self.checkpoint):
            return
        try:
            arrays = load_arrays(self.checkpoint)
        except CheckpointError as exc:
            raise CheckpointError(f"{self.who}: cannot resume: {exc}") from exc
        self.restore(arrays, self.checkpoint)

    # -- running
    def run(self, step: Callable[[], object], after: Optional[Callable[[], object]] = None,
            status: Optional[Callable[[], Optional[dict]]] = None, stopped: bool = False) -> bool:
        """Call ``step()`` until ``total`` steps are done or it returns True; then, once the
        step counts as done, ``after()`` (logging, evaluation, callbacks; True also stops).
        ``status()`` gives the numbers shown beside the progress. Returns False when Ctrl-C
        ended the run: a step under way is rolled back, and the state saved."""
        saved = self.done if self.checkpoint else None
        if self.done < self.total and not stopped:
            self.reporter = progress(self.show_progress, self.who, self.total, self.done, self.unit)
        marks = None  # set while a step is under way
        blas = small_machine_blas()  # one BLAS thread on a small machine, for this loop only
        blas.__enter__()
        try:
            while self.done < self.total and not stopped:
                marks = self.mark()
                stopped = bool(step())
                self.done += 1
                marks = None
                if after is not None:
                    stopped = bool(after()) or stopped
                if self.checkpoint and self.done % self.every == 0:
                    save_arrays(self.checkpoint, self.capture())
                    saved = self.done
                self.reporter.update(self.done, status() if status else None)
        except KeyboardInterrupt:
            self.reporter.close()
            if marks is not None:  # the step under way never happened
                self.rollback(marks)
            path = self.checkpoint or INTERRUPT_PATH
            save_arrays(path, self.capture())
            print(f"{self.who}: interrupted during {self.unit} {self.done + 1}; {self.done} "
                  f"{self.unit}{'s' if self.done != 1 else ''} done and saved to {path}; resume with "
                  f"{self.who}(..., checkpoint={path!r}, resume=True){self.resume_hint}", file=sys.stderr)
            return False
        except Exception:
            if marks is not None:
                # A step that raises changes nothing: model, optimizer and history go back to
                # where it started (a checkpoint on disk already holds that state).
                self.rollback(marks)
            raise
        finally:
            self.reporter.close()
            blas.__exit__(None, None, None)
        if self.checkpoint and saved != self.done:
            save_arrays(self.checkpoint, self.capture())
        return True

    def tick(self, detail: str) -> None:
        """Inside a long step: lets a log show that the run is alive ("batch 120/469")."""
        self.reporter.tick(self.done, detail)

    def write(self, message: str) -> None:
        """Print a message above the progress bar (or to stdout when there is none)."""
        self.reporter.write(message)


# ----------------------------------------------------------------------------- progress

# Plain progress lines (pipes, log files): nothing for runs shorter than PIPE_DELAY seconds,
# then a line at each 5% of the run, and one at least every PIPE_HEARTBEAT seconds.
PIPE_DELAY = 2.0
PIPE_HEARTBEAT = 30.0
PIPE_STEPS = 20


def progress(enabled: bool, desc: str, total: int, initial: int = 0, unit: str = "it",
             stream: Optional[TextIO] = None, leave: bool = True):
    """A progress reporter with ``update(n, status)``, ``write(msg)`` and ``close()``.

    Terminals get a tqdm bar and notebooks tqdm's widget (or its text bar when ipywidgets
    is missing); anything else (a pipe, a file, a CI log) gets a plain line now and then,
    because a bar's carriage-return redraws would pile up there. ``enabled=False``: silent.
    ``leave=False``: the bar disappears when done (for a part of a larger run).
    """
    stream = sys.stderr if stream is None else stream
    if not enabled or initial >= total:
        return _Silent()
    if _in_notebook():
        return _Bar(desc, total, initial, unit, stream, leave, notebook=True)
    if getattr(stream, "isatty", lambda: False)():
        return _Bar(desc, total, initial, unit, stream, leave)
    return _Lines(desc, total, initial, unit, stream)


def _in_notebook():
    """True inside a Jupyter kernel (a notebook, JupyterLab, VS Code, Colab)."""
    ipython = sys.modules.get("IPython")  # never imported here: only a running IPython has it
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None) is not None


def _status_text(status):
    if not status:
        return ""
    return "".join(f", {k} {v:.4g}" if isinstance(v, (float, np.floating)) else f", {k} {v}"
                   for k, v in status.items())


class _Silent:
    draws_bar = False

    def update(self, n, status=None):
        pass

    def tick(self, n, detail):
        pass

    def write(self, message):
        print(message, flush=True)

    def close(self):
        pass


class _Bar:
    draws_bar = True

    def __init__(self, desc, total, initial, unit, stream, leave=True, notebook=False):
        # tqdm's notebook widget needs ipywidgets; without it, its text bar renders in notebooks
        # too (and a failed widget would print a traceback when garbage-collected).
        if notebook and importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave)
        else:
            from tqdm import tqdm  # deferred: only runs that show a bar pay for the import
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream,
                            dynamic_ncols=True, leave=leave)
        self.n = initial

    def update(self, n, status=None):
        if status:
            self.bar.set_postfix({k: f"{v:.4g}" if isinstance(v, float) else v for k, v in status.items()},
                                 refresh=False)
        self.bar.update(n - self.n)
        self.n = n

    def tick(self, n, detail):
        pass  # the bar's own clock shows that the run is alive

    def write(self, message):
        self.bar.write(message)

    def close(self):
        self.bar.close()


class _Lines:
    """'train.fit: epoch 3/10 (30%), 4.2 s elapsed, ~9.8 s left, train_loss 0.42' lines on ``stream``."""

    draws_bar = False

    def __init__(self, desc, total, initial, unit, stream, clock=time.monotonic):
        self.desc, self.total, self.unit, self.stream, self.clock = desc, total, unit, stream, clock
        self.start = self.last = clock()
        self.initial = self.n = self.shown = initial
        self.status = None
        self.printed = False

    def update(self, n, status=None):
        self.n, self.status = n, status or self.status
        now = self.clock()
        if now - self.start < PIPE_DELAY:
            return
        new_mark = n * PIPE_STEPS // self.total > self.shown * PIPE_STEPS // self.total
        if new_mark or now - self.last >= PIPE_HEARTBEAT:
            self._line(now)

    def tick(self, n, detail):
        """A heartbeat inside step n+1 when the steps are long (an epoch over a large dataset)."""
        now = self.clock()
        if now - self.start >= PIPE_DELAY and now - self.last >= PIPE_HEARTBEAT:
            print(f"{self.desc}: {self.unit} {n + 1}/{self.total} under way ({detail}), "
                  f"{_duration(now - self.start)} elapsed", file=self.stream, flush=True)
            self.last, self.printed = now, True

    def _line(self, now):
        elapsed = now - self.start
        done = self.n - self.initial
        left = ""
        if 0 < done and self.n < self.total:  # the rate so far predicts the rest
            left = f", ~{_duration(elapsed / done * (self.total - self.n))} left"
        print(f"{self.desc}: {self.unit} {self.n}/{self.total} ({100 * self.n / self.total:.0f}%), "
              f"{_duration(elapsed)} elapsed{left}{_status_text(self.status)}", file=self.stream, flush=True)
        self.shown, self.last, self.printed = self.n, now, True

    def write(self, message):
        print(message, flush=True)

    def close(self):
        if self.printed and self.shown != self.n:  # a log that showed the run also shows its end
            self._line(self.clock())


def _duration(seconds):
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 60 else f"{minutes / 60:.1f} h"


# ----------------------------------------------------------------------------- History

class History(dict):
    """Metric name -> list with one value per logged step; ``interrupted`` is True when
    Ctrl-C ended the run. Subclasses say what to draw in ``_panels``; ``plot`` draws it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.interrupted = False

    def _log(self, name, value):
        self.setdefault(name, []).append(float(value))

    def _panels(self):
        """-> list of dicts: title, x, xlabel, series [(label, values, style)], and optional
        ylabel, yscale, integer_x (whole-number ticks), vline (x, label)."""
        raise NotImplementedError

    def plot(self, path=None, show: bool = False, title: Optional[str] = None):
        """Draw the panels side by side; save a PNG to ``path`` if given; return the Figure."""
        return self._draw(self._panels(), path, show, title)

    def _draw(self, panels, path, show, title):
        plt = pyplot()
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + 1, 4), squeeze=False)
        for ax, panel in zip(axes[0], panels):
            x = np.asarray(panel["x"])
            for label, values, style in panel["series"]:
                if len(values):
                    ax.plot(x[:len(values)], values, style, label=label)
            if panel.get("vline") is not None:
                at, label = panel["vline"]
                ax.axvline(at, color="gray", lw=0.8, ls=":", label=label)
            if panel.get("yscale"):
                ax.set_yscale(panel["yscale"])
            if panel.get("integer_x"):
                from matplotlib.ticker import MaxNLocator
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(title=panel["title"], xlabel=panel["xlabel"], ylabel=panel.get("ylabel", ""))
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title) if len(panels) > 1 else axes[0][0].set_title(title)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=120)
        if show:
            plt.show()
        return fig


__all__ = ["Loop", "Part", "History", "progress", "module_part", "optimizer_part", "rng_part",
           "history_part", "optimizer_arrays", "load_optimizer_arrays", "section", "INTERRUPT_PATH"]

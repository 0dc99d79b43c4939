"""Meta-training and evaluation loops shared by every meta-learner.

``fit`` samples a fresh meta-batch each iteration, calls the learner's ``meta_step``,
shows progress, evaluates now and then, and checkpoints (atomically) so a run can be
interrupted (Ctrl-C saves) and resumed on the same trajectory, bit for bit: the
checkpoint holds the parameters, the optimizer state, the iteration and the RNG state.
The checkpoint format, the rollback and the progress display are ``tinymeta.loop``'s,
shared with ``train.fit``.
"""
from __future__ import annotations

import os
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Sequence

import numpy as np

from .. import loop
from ..creation import as_rng
from ..engine import no_grad
from ..errors import ArgumentError
from ..tape import jit
from .base import MetaLearner, check_int
from ..metrics import mean_confidence_interval
from ..optim import Optimizer

if TYPE_CHECKING:  # for the annotations only
    from .tasks import TaskBatch


class TaskFamily(Protocol):
    """A distribution over tasks: anything with ``sample(n_tasks, rng, ...) -> TaskBatch``
    (``meta.tasks.Sinusoid``, ``LinearFunctions``, ``FewShotClassification``)."""

    def sample(self, n_tasks: int, rng: int | np.random.Generator | None = None,
               **kwargs: Any) -> TaskBatch: ...


def evaluate(learner: MetaLearner, tasks: TaskFamily, n_tasks: int = 1000, steps: Sequence[int] = (0, 1, 10),
             rng: int | np.random.Generator | None = 0, k_query: Optional[int] = None, chunk: int = 100,
             progress: bool = True) -> dict:
    """Mean query loss (MSE for regression; accuracy too for classification) over
    ``n_tasks`` fresh tasks after adapting with each number of ``steps``, with a 95%
    interval (normal approximation). Returns {steps: {"mse"/"loss": (mean, half), ...}}.
    Tasks are drawn ``chunk`` at a time; ``progress`` shows how many are done (a bar on a
    terminal or in a notebook, a plain line now and then on a pipe; False: nothing).

    Args:
        learner: a meta-learner (MAML, Reptile, ...); its ``adapt`` is called per step count.
        tasks: the task family to draw fresh tasks from.
        n_tasks: how many tasks to average over.
        steps: the numbers of adaptation steps to evaluate after (0: the initialisation).
        rng: the seed or Generator of the task draws.
        k_query: query points per task (default: the family's own).
        chunk: tasks drawn at a time.
        progress: show progress.

    Returns:
        ``{steps: {"mse" or "loss": (mean, half-width), "accuracy": ...}}``; print it with
        ``format_evaluation``.

    Example:
        >>> print(meta.format_evaluation(meta.evaluate(maml, meta.tasks.Sinusoid(), n_tasks=200)))
    """
    n_tasks = check_int("evaluate", "n_tasks", n_tasks)
    chunk = check_int("evaluate", "chunk", chunk)
    steps = tuple(check_int("evaluate", "steps", s, minimum=0) for s in steps)
    rng = as_rng(rng)
    per = {s: {"loss": [], "accuracy": []} for s in steps}
    done = 0
    reporter = loop.progress(progress, "meta.evaluate", n_tasks, unit="task", leave=False)
    try:
        while done < n_tasks:
            done += _evaluate_chunk(learner, tasks, rng, min(chunk, n_tasks - done), k_query, steps, per)
            reporter.update(done)
    finally:
        reporter.close()
    name = "mse" if learner.loss == "mse" else "loss"
    result = {}
    for s in steps:
        result[s] = {name: mean_confidence_interval(per[s]["loss"])}
        if per[s]["accuracy"]:
            result[s]["accuracy"] = mean_confidence_interval(per[s]["accuracy"])
    return result


def _evaluate_chunk(learner, tasks, rng, n, k_query, steps, per):
    """Adds the query losses (and accuracies) of ``n`` fresh tasks to ``per``; returns n."""
    kw = {"k_query": k_query} if k_query is not None else {}
    batch = tasks.sample(n, rng, **kw)
    for s in steps:
        # A diverging adaptation is a result to report (inf), not a flood of warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            params = learner.adapt(batch.x_support, batch.y_support, steps=s)
        with no_grad(), np.errstate(over="ignore", invalid="ignore"):
            xq, yq, _ = learner._batched_input(batch.x_query, batch.y_query)
            out = learner.predict(params, xq)
            per[s]["loss"].extend(learner._task_loss(out, yq).data.tolist())
            if learner.loss == "cross_entropy":
                per[s]["accuracy"].extend((out.data.argmax(-1) == yq).mean(axis=1).tolist())
    return n


def format_evaluation(result: dict) -> str:
    """The result of ``evaluate`` as text, one line per number of steps, e.g.
    ``after  1 step : mse 0.4123 +- 0.0311``."""
    lines = []
    for s, metrics in result.items():
        parts = [f"{k} {m:.4f} +- {h:.4f}" for k, (m, h) in metrics.items()]
        lines.append(f"  after {s:>2} step{'s' if s != 1 else ' '}: " + ", ".join(parts))
    return "\n".join(lines)


class MetaHistory(loop.History):
    """Lists per key: 'iteration', 'loss' (mean over each logging window), 'time'; and
    'evaluations': [(iteration, result)]. ``interrupted`` is True after a Ctrl-C."""

    def plot(self, path=None, title="meta-training", show=False, ylabel="query loss"):
        """The meta-loss per logged iteration on a log scale; saves a PNG to ``path`` if
        given; returns the matplotlib Figure."""
        return self._draw(self._panels(ylabel), path, show, title)

    def _panels(self, ylabel="query loss"):
        return [{"title": "", "xlabel": "meta-iteration", "ylabel": ylabel,
                 "yscale": "log", "x": self["iteration"],
                 "series": [("meta-loss (train batches)", self["loss"], "-")]}]


def fit(learner: MetaLearner, tasks: TaskFamily, meta_optimizer: Optimizer | None = None,
        iterations: int = 1000, meta_batch: int = 25, rng: int | np.random.Generator | None = 0,
        eval_every: int = 0, eval_tasks: int = 100, eval_steps: Sequence[int] = (0, 1, 10),
        log_every: int = 100, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1000,
        resume: bool = False,
        progress: bool = True, verbose: bool = False,
        callback: Optional[Callable[[int, float], bool]] = None, compile: bool = True) -> MetaHistory:
    """Meta-train ``learner`` on tasks sampled from ``tasks`` for ``iterations`` meta-steps
    (a total: a resumed run continues up to it); returns a ``MetaHistory``.

    ``rng`` seeds the task sampling (the only randomness). With ``checkpoint`` a file is
    written every ``checkpoint_every`` iterations, at the end and on Ctrl-C; ``resume=True``
    continues from it, bit for bit. ``callback(iteration, loss)`` may return True to stop
    early. ``compile`` (default on): each meta-iteration (meta_loss, zero_grad, backward, step)
    runs as a ``tm.jit`` replay, traced once and checked against eager twice; a learner with a
    meta-step of its own, or one the check finds the tape cannot follow, runs eagerly (with a
    warning in the second case). ``eval_every``: run ``evaluate`` on ``eval_tasks`` tasks every so many iterations
    (kept in ``history["evaluations"]``). ``progress``: a bar on a terminal or in a notebook,
    a plain line now and then on stderr when it is a pipe or a file; ``verbose`` also
    prints the meta-loss every ``log_every`` iterations when no bar is shown.

        hist = meta.fit(maml, meta.tasks.Sinusoid(), optim.Adam(maml.parameters(), lr=1e-3),
                        iterations=2000, checkpoint="maml.npz")
    """
    iterations = check_int("meta.fit", "iterations", iterations, minimum=0)
    meta_batch = check_int("meta.fit", "meta_batch", meta_batch)
    log_every = check_int("meta.fit", "log_every", log_every)
    checkpoint_every = check_int("meta.fit", "checkpoint_every", checkpoint_every)
    eval_every = check_int("meta.fit", "eval_every", eval_every, minimum=0)
    if meta_optimizer is None and not hasattr(learner, "outer_step_size"):
        raise ArgumentError(f"meta.fit: {type(learner).__name__} needs a meta_optimizer, e.g. "
                            "optim.Adam(learner.parameters(), lr=1e-3)")
    if resume and checkpoint is None:
        raise ArgumentError("meta.fit: resume=True needs the checkpoint path")
    rng = as_rng(rng)
    history = MetaHistory(iteration=[], loss=[], time=[], evaluations=[])
    parts = [loop.module_part("learner/", learner), loop.rng_part("run/rng", rng),
             loop.history_part(history, ("iteration", "loss", "time"))]
    if meta_optimizer is not None:
        parts.insert(1, loop.optimizer_part(meta_optimizer))
    runner = loop.Loop("meta.fit", "iteration", iterations, parts, checkpoint=checkpoint,
                       every=checkpoint_every, progress=progress, resume_hint=" (or --resume)")
    if resume:
        runner.resume()
    window, t0, last = [], time.perf_counter(), [None]

    step_fn = learner.meta_step
    if compile and meta_optimizer is not None and learner.traceable and \
            getattr(learner.meta_step, "__func__", None) is MetaLearner.meta_step:
        def iteration(batch):  # the base meta_step, without its float(): that stays outside
            loss = learner.meta_loss(batch)
            meta_optimizer.zero_grad()
            loss.backward()
            meta_optimizer.step()
            return loss
        replay = jit(iteration, fallback=True)
        step_fn = lambda batch, opt: float(replay(batch).data)  # noqa: E731

    def step():
        last[0] = step_fn(tasks.sample(meta_batch, rng), meta_optimizer)

    def after():  # the iteration is done: a Ctrl-C from here on keeps it
        it = runner.done
        window.append(last[0])
        if it % log_every == 0 or it == iterations:
            history["iteration"].append(it)
            history["loss"].append(float(np.mean(window)))
            history["time"].append(time.perf_counter() - t0)
            window.clear()
            if verbose and not runner.reporter.draws_bar:
                print(f"iteration {it:>7}  meta-loss {history['loss'][-1]:.4f}", flush=True)
        if eval_every and it % eval_every == 0:
            res = evaluate(learner, tasks, eval_tasks, eval_steps, rng=12345, progress=False)
            history["evaluations"].append((it, res))
            if verbose or runner.reporter.draws_bar:
                runner.write(f"evaluation at iteration {it}:\n{format_evaluation(res)}")
        return callback is not None and callback(it, last[0])

    status = lambda: {"loss": history["loss"][-1]} if history["loss"] else None  # noqa: E731
    history.interrupted = not runner.run(step, after, status)
    return history


def train(*args: Any, **kwargs: Any) -> MetaHistory:
    """Deprecated name of ``meta.fit`` (renamed to mirror ``train.fit`` and so that it no
    longer reads like the module ``tinymeta.train``); it will be removed in the next release."""
    warnings.warn("meta.train is renamed meta.fit (it mirrors train.fit); the old name will be removed "
                  "in the next release", DeprecationWarning, stacklevel=2)
    return fit(*args, **kwargs)

"""Meta-training and evaluation loops shared by every meta-learner.

``train`` samples a fresh meta-batch each iteration, calls the learner's ``meta_step``,
shows progress, evaluates now and then, and checkpoints (atomically) so a run can be
interrupted (Ctrl-C saves) and resumed on the same trajectory, bit for bit: the
checkpoint holds the parameters, the optimizer state, the iteration and the RNG state.
"""
import json
import sys
import time

import numpy as np

from ..creation import as_rng
from ..engine import no_grad
from ..errors import ArgumentError, CheckpointError
from .base import check_int
from ..metrics import mean_confidence_interval
from ..nn.serialization import load_arrays, save_arrays
from ..train import _flatten_optimizer, _unflatten_optimizer


def evaluate(learner, tasks, n_tasks=1000, steps=(0, 1, 10), rng=0, k_query=None, chunk=100):
    """Mean query loss (MSE for regression; accuracy too for classification) over
    ``n_tasks`` fresh tasks after adapting with each number of ``steps``, with a 95%
    interval (normal approximation). Returns {steps: {"mse"/"loss": (mean, half), ...}}."""
    n_tasks = check_int("evaluate", "n_tasks", n_tasks)
    chunk = check_int("evaluate", "chunk", chunk)
    steps = tuple(check_int("evaluate", "steps", s, minimum=0) for s in steps)
    rng = as_rng(rng)
    per = {s: {"loss": [], "accuracy": []} for s in steps}
    done = 0
    while done < n_tasks:
        n = min(chunk, n_tasks - done)
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
        done += n
    name = "mse" if learner.loss == "mse" else "loss"
    result = {}
    for s in steps:
        result[s] = {name: mean_confidence_interval(per[s]["loss"])}
        if per[s]["accuracy"]:
            result[s]["accuracy"] = mean_confidence_interval(per[s]["accuracy"])
    return result


def format_evaluation(result):
    lines = []
    for s, metrics in result.items():
        parts = [f"{k} {m:.4f} +- {h:.4f}" for k, (m, h) in metrics.items()]
        lines.append(f"  after {s:>2} step{'s' if s != 1 else ' '}: " + ", ".join(parts))
    return "\n".join(lines)


class MetaHistory(dict):
    """Lists per key: 'iteration', 'loss' (mean over each logging window), 'time'; and
    'evaluations': [(iteration, result)]. ``interrupted`` is True after a Ctrl-C."""

    interrupted = False

    def plot(self, path=None, title="meta-training"):
        from ..train import _pyplot
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self["iteration"], self["loss"], label="meta-loss (train batches)")
        ax.set_yscale("log")
        ax.set_xlabel("meta-iteration")
        ax.set_ylabel("query loss")
        ax.set_title(title)
        ax.legend()
        fig.tight_layout()
        if path:
            fig.savefig(path, dpi=110)
        return fig


def _rng_state(rng):
    return np.array(json.dumps(rng.bit_generator.state))


def _set_rng_state(rng, arr):
    rng.bit_generator.state = json.loads(str(arr))


def _save(path, learner, optimizer, rng, it, history):
    arrays = {f"learner/{k}": v for k, v in learner.state_dict().items()}
    if optimizer is not None:
        arrays.update(_flatten_optimizer(optimizer.state_dict()))
    arrays["run/iteration"] = np.array(it)
    arrays["run/rng"] = _rng_state(rng)
    for k in ("iteration", "loss", "time"):
        arrays[f"history/{k}"] = np.asarray(history[k], dtype=float)
    save_arrays(path, arrays)


def _load(path, learner, optimizer, rng, history):
    arrays = load_arrays(path)
    # Check everything, then load: a refused checkpoint must leave the learner as it was.
    need = ["run/rng", "run/iteration"] + [f"history/{k}" for k in ("iteration", "loss", "time")]
    missing = [k for k in need if k not in arrays]
    if missing or (optimizer is not None and not any(k.startswith("optim/") for k in arrays)):
        raise CheckpointError(f"resume: {path!r} is not a meta-training checkpoint of this learner "
                              f"(missing {missing or ['optimizer state']})")
    try:
        json.loads(str(arrays["run/rng"]))
        own = {k: p for k, p in learner.named_parameters()}
        state = {k[len("learner/"):]: v for k, v in arrays.items() if k.startswith("learner/")}
        if set(state) != set(own) or any(np.shape(state[k]) != own[k].shape for k in own):
            raise ValueError(f"its parameters {sorted(state)} do not match the learner's {sorted(own)}")
        saved_rng = arrays["run/rng"]
        learner.load_state_dict(state)
        if optimizer is not None:
            optimizer.load_state_dict(_unflatten_optimizer(
                {k: v for k, v in arrays.items() if k.startswith("optim/")}))
        _set_rng_state(rng, saved_rng)
        for k in ("iteration", "loss", "time"):
            history[k] = arrays[f"history/{k}"].tolist()
        return int(arrays["run/iteration"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"resume: {path!r} is not a meta-training checkpoint of this "
                              f"learner ({type(exc).__name__}: {exc})") from exc


class _Snapshot:
    """The state at the start of an iteration: iteration number, parameters, optimizer state
    and RNG state. A Ctrl-C can land anywhere inside an iteration (even between two
    parameter updates); restoring this makes the saved checkpoint say exactly "iteration
    `it` completed", so a resumed run continues bit for bit."""

    def __init__(self, it, learner, optimizer, rng):
        self.it = it
        self.params = [(p, p.data.copy()) for _, p in learner.named_parameters()]
        self.opt = None
        if optimizer is not None:
            self.opt = ({k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in st.items()}
                         for k, st in optimizer.state.items()},
                        [dict(g) for g in optimizer.param_groups])
        self.rng = rng.bit_generator.state

    def restore(self, optimizer, rng):
        for p, data in self.params:
            p.data[...] = data
            p._bump_version()
        if self.opt is not None:
            optimizer.state, optimizer.param_groups = self.opt
        rng.bit_generator.state = self.rng
        return self.it


def _progress(total, initial, enabled):
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="meta-train", unit="it", dynamic_ncols=True)


def train(learner, tasks, meta_optimizer=None, iterations=1000, meta_batch=25, rng=0,
          eval_every=0, eval_tasks=100, eval_steps=(0, 1, 10), log_every=100, checkpoint=None,
          checkpoint_every=1000, resume=False, progress=True, verbose=False, callback=None):
    """Meta-train ``learner`` on tasks sampled from ``tasks`` for ``iterations`` meta-steps.

    ``rng`` seeds the task sampling (the only randomness). With ``checkpoint`` a file is
    written every ``checkpoint_every`` iterations and on Ctrl-C; ``resume=True`` continues
    from it. ``callback(iteration, loss)`` may return True to stop early."""
    iterations = check_int("meta.train", "iterations", iterations, minimum=0)
    meta_batch = check_int("meta.train", "meta_batch", meta_batch)
    log_every = check_int("meta.train", "log_every", log_every)
    checkpoint_every = check_int("meta.train", "checkpoint_every", checkpoint_every)
    eval_every = check_int("meta.train", "eval_every", eval_every, minimum=0)
    if meta_optimizer is None and not hasattr(learner, "outer_step_size"):
        raise ArgumentError(f"meta.train: {type(learner).__name__} needs a meta_optimizer, e.g. "
                            "optim.Adam(learner.parameters(), lr=1e-3)")
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    history = MetaHistory(iteration=[], loss=[], time=[], evaluations=[])
    start = 0
    if resume:
        if checkpoint is None:
            raise ArgumentError("meta.train: resume=True needs the checkpoint path")
        start = _load(checkpoint, learner, meta_optimizer, rng, history)
    bar = _progress(iterations, start, progress)
    window, t0, it = [], time.perf_counter(), start
    snap = None
    try:
        while it < iterations:
            snap = _Snapshot(it, learner, meta_optimizer, rng)
            loss = learner.meta_step(tasks.sample(meta_batch, rng), meta_optimizer)
            it += 1
            snap = None
            window.append(loss)
            if bar is not None:
                bar.update(1)
            if it % log_every == 0 or it == iterations:
                history["iteration"].append(it)
                history["loss"].append(float(np.mean(window)))
                history["time"].append(time.perf_counter() - t0)
                window = []
                if bar is not None:
                    bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
                elif verbose:
                    print(f"iteration {it:>7}  meta-loss {history['loss'][-1]:.4f}", flush=True)
            if eval_every and it % eval_every == 0:
                res = evaluate(learner, tasks, eval_tasks, eval_steps, rng=12345)
                history["evaluations"].append((it, res))
                if verbose or bar is not None:
                    msg = f"evaluation at iteration {it}:\n{format_evaluation(res)}"
                    (bar.write if bar is not None else print)(msg)
            if checkpoint and it % checkpoint_every == 0:
                _save(checkpoint, learner, meta_optimizer, rng, it, history)
            if callback is not None and callback(it, loss):
                break
    except KeyboardInterrupt:
        if snap is not None:  # the iteration under way never happened
            it = snap.restore(meta_optimizer, rng)
        path = checkpoint or "tinymeta-interrupted.npz"
        _save(path, learner, meta_optimizer, rng, it, history)
        history.interrupted = True
        print(f"\ninterrupted at iteration {it}: saved {path}; continue with "
              f"meta.train(..., checkpoint={path!r}, resume=True) (or --resume)", file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    if checkpoint and not history.interrupted:
        _save(checkpoint, learner, meta_optimizer, rng, it, history)
    return history

"""Pictures of meta-learning: the Finn et al. (2017) sinusoid figure."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..checks import as_rng
from ..engine import no_grad
from ..plotting import pyplot
from .base import MetaLearner

if TYPE_CHECKING:  # for the annotations only
    from matplotlib.figure import Figure

    from .tasks import Sinusoid


def sinusoid_adaptation(learner: MetaLearner, tasks: Sinusoid, rng: int | np.random.Generator | None = 0,
                        steps: Sequence[int] = (0, 1, 10), path: str | os.PathLike | None = None,
                        n_panels: int = 2, title: str | None = None) -> Figure:
    """For ``n_panels`` new sinusoid tasks: the true function, the K support points, and
    the learner's prediction after each number of adaptation ``steps``. Returns the Figure.

    Args:
        learner: a trained meta-learner (its ``adapt`` and ``predict`` are used).
        tasks: the ``meta.tasks.Sinusoid`` family to draw the tasks from.
        rng: the seed or Generator of the task draw.
        steps: the numbers of adaptation steps to draw a prediction for (0: the initialisation).
        path: write a PNG there when given.
        n_panels: the number of tasks, one panel each.
        title: the figure title (default: names the learner).

    Returns:
        The matplotlib Figure.
    """
    plt = pyplot()
    batch = tasks.sample(n_panels, as_rng(rng))
    grid = np.linspace(-5, 5, 200, dtype=batch.x_support.dtype)[:, None]
    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 3.8), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.15, 0.85, len(steps)))
    for i, ax in enumerate(axes[0]):
        xs, ys = batch.x_support[i], batch.y_support[i]
        amp, phase = batch.params["amplitude"][i], batch.params["phase"][i]
        ax.plot(grid[:, 0], tasks.evaluate(amp, phase, grid[:, 0]), "k-", lw=2, label="true function")
        ax.plot(xs[:, 0], ys[:, 0], "^", color="tab:red", ms=8, label=f"{len(xs)} support points")
        for s, c in zip(steps, colors):
            params = learner.adapt(xs, ys, steps=s)
            with no_grad():
                pred = learner.predict(params, grid).data[:, 0]
            label = "meta-learned init (0 steps)" if s == 0 else f"after {s} step{'s' * (s != 1)}"
            ax.plot(grid[:, 0], pred, "--", color=c, lw=1.6, label=label)
        ax.set(xlabel="x", ylabel="y", ylim=(-6, 6), title=f"task {i + 1}: A={amp:.2f}, phase={phase:.2f}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title or f"{type(learner).__name__}: few-shot adaptation to new sinusoids")
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig

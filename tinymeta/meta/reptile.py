"""Reptile (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018).

No second derivatives and no query set: run k steps of SGD on each task from theta,
then move theta toward the adapted weights:

    phi_i  = SGD^k(theta; task i)
    theta <- theta + epsilon * (1/n) sum_i (phi_i - theta)

``meta_step`` does exactly that for a meta-batch (all tasks at once, batched). Equivalently
theta - phi is a "gradient" for any optimizer: pass ``meta_optimizer`` to ``meta_step`` to
use it instead of the plain epsilon step.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .. import ops
from ..engine import no_grad, Tensor
from ..nn.module import Module
from ..optim import Optimizer
from .base import MetaLearner, check_int, check_number

if TYPE_CHECKING:  # for the annotations only
    from .tasks import TaskBatch


class Reptile(MetaLearner):
    """Reptile (Nichol, Achiam & Schulman, "On First-Order Meta-Learning Algorithms", 2018).

    No second derivatives and no query set: run k steps of SGD on each task from theta,
    then move theta toward the adapted weights::

        theta'_i = SGD^k(theta; task i)                                  (inner steps, rate alpha)
        theta   <- theta + epsilon (1/n) sum_i (theta'_i - theta)          (outer step)

    ``meta_step`` does exactly that for a meta-batch, all tasks at once. Equivalently
    theta - theta' is a "gradient" for any optimizer: pass ``meta_optimizer`` to ``meta_step``
    to use it instead of the plain epsilon step.

    Args:
        model: the task model (an ``nn.Module``); its parameters are theta.
        inner_lr: alpha, the inner SGD step size.
        inner_steps: k, the number of inner steps.
        outer_step_size: epsilon, the step toward the adapted weights.
        loss: ``"mse"``, ``"cross_entropy"``, or a callable ``(out, y) -> per-task losses (T,)``.

    Example:
        >>> reptile = meta.Reptile(nn.MLP([1, 40, 40, 1], rng=0), inner_steps=5)
        >>> reptile.meta_step(meta.tasks.Sinusoid().sample(10, rng=0))   # mean support loss
    """

    def __init__(self, model: Module, inner_lr: float = 0.02, inner_steps: int = 5,
                 outer_step_size: float = 0.1, loss: str | Callable[[Tensor, Tensor], Tensor] = "mse"):
        super().__init__(model, loss)
        self.inner_lr = check_number("Reptile", "inner_lr", inner_lr)
        self.inner_steps = check_int("Reptile", "inner_steps", inner_steps)
        self.outer_step_size = check_number("Reptile", "outer_step_size", outer_step_size)

    def adapt(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray,
              steps: int | None = None) -> dict[str, Tensor]:
        """The adapted parameters theta' after ``steps`` SGD steps on (x, y) (default: ``inner_steps``)."""
        return self.adapt_with(x, y, self.inner_steps if steps is None else steps, self.inner_lr)

    def meta_step(self, batch: TaskBatch, meta_optimizer: Optimizer | None = None) -> float:
        """One Reptile update of the model's parameters; returns the mean support loss of the
        adapted weights (before the update), for logging."""
        xs = np.concatenate([batch.x_support, batch.x_query], axis=1)
        ys = np.concatenate([batch.y_support, batch.y_query], axis=1)
        phi = self.adapt(xs, ys)
        with no_grad():
            loss = float(ops.mean(self.task_losses(phi, *self._batched_input(xs, ys)[:2])).item())
            for name, p in self.model.named_parameters():
                direction = p.data - phi[name].data.mean(axis=0)  # theta - mean phi
                if meta_optimizer is None:
                    p.data -= self.outer_step_size * direction
                    p._bump_version()
                else:
                    p.grad = Tensor(direction.astype(p.dtype))
            if meta_optimizer is not None:
                meta_optimizer.step()
        return loss

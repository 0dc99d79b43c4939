"""Meta-SGD (Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot
Learning", 2017): learn the update rule along with the initialisation.

Every parameter theta gets a learned learning-rate tensor alpha of the same shape; the
inner step is elementwise and both are meta-learned through it (second order):

    phi_i  = theta - alpha * grad_theta L_{S_i}(theta)       (* elementwise)
    (theta, alpha) <- (theta, alpha) - beta * grad_{theta, alpha} (1/n) sum_i L_{Q_i}(phi_i)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .. import ops
from ..engine import Tensor
from ..nn.module import Module, Parameter
from .base import MetaLearner, check_int, check_number

if TYPE_CHECKING:  # for the annotations only
    from .tasks import TaskBatch


class MetaSGD(MetaLearner):
    """Meta-SGD (Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot
    Learning", 2017): learn the update rule along with the initialisation.

    Every parameter theta gets a learned learning-rate tensor alpha of the same shape (its
    direction and size per coordinate); the inner step is elementwise and both are
    meta-learned through it, to second order::

        theta'_i       = theta - alpha * grad_theta L_{S_i}(theta)            (* elementwise)
        (theta, alpha) <- (theta, alpha) - beta grad_{theta, alpha} (1/n) sum_i L_{Q_i}(theta'_i)

    ``parameters()`` returns theta and alpha together, so one optimizer takes the outer step;
    the alphas are named ``"alpha.<parameter name>"`` in ``named_parameters()``.

    Args:
        model: the task model (an ``nn.Module``); its parameters are theta.
        inner_lr: the initial value of every entry of alpha.
        inner_steps: the number of inner steps.
        loss: ``"mse"``, ``"cross_entropy"``, or a callable ``(out, y) -> per-task losses (T,)``.

    Example:
        >>> learner = meta.MetaSGD(nn.MLP([1, 40, 40, 1], rng=0), inner_lr=0.01)
        >>> opt = optim.Adam(learner.parameters(), lr=1e-3)
        >>> loss = learner.meta_loss(meta.tasks.Sinusoid().sample(25, rng=0))
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, model: Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 loss: str | Callable[[Tensor, Tensor], Tensor] = "mse"):
        super().__init__(model, loss)
        inner_lr = check_number("MetaSGD", "inner_lr (the initial learning rates)", inner_lr)
        self.inner_steps = check_int("MetaSGD", "inner_steps", inner_steps)
        self.alphas = {n: Parameter(np.full(p.shape, inner_lr, dtype=p.dtype))
                       for n, p in model.named_parameters()}

    def parameters(self) -> list[Tensor]:
        """theta (the model's parameters) and then the learned rates alpha."""
        return self.model.parameters() + list(self.alphas.values())

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """The model's (name, parameter) pairs, then ``("alpha.<name>", rate)`` for each."""
        return list(self.model.named_parameters()) + [(f"alpha.{n}", a) for n, a in self.alphas.items()]

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore theta and alpha from ``state_dict()``."""
        self.model.load_state_dict({k: v for k, v in state.items() if not k.startswith("alpha.")})
        for n, a in self.alphas.items():
            a.data[...] = state[f"alpha.{n}"]
            a._bump_version()

    def _lrs(self):
        return [self.alphas[n] for n in self.names]

    def meta_loss(self, batch: TaskBatch, inner_steps: int | None = None) -> Tensor:
        """Mean query loss after the learned-rate inner steps; ``backward()`` on it gives the
        meta-gradient of both theta and alpha."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        theta_t = self.expand(self.init_params(), xs.shape[0])
        phi = self.inner_loop(theta_t, xs, ys, inner_steps or self.inner_steps, self._lrs(),
                              create_graph=True)
        return ops.mean(self.task_losses(phi, xq, yq))

    def adapt(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray,
              steps: int | None = None) -> dict[str, Tensor]:
        """theta' after ``steps`` inner steps with the learned rates (default: ``inner_steps``)."""
        lrs = [a.detach() for a in self._lrs()]
        return self.adapt_with(x, y, self.inner_steps if steps is None else steps, lrs)

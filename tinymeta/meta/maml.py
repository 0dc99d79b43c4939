"""MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017).

Learn an initialisation theta from which a few gradient steps solve a new task. For a
meta-batch of tasks T_i with support set S_i and query set Q_i:

    phi_i   = theta - alpha * grad_theta L_{S_i}(theta)          (inner step; k of them)
    L_meta  = (1/n) sum_i L_{Q_i}(phi_i)
    theta  <- theta - beta * grad_theta L_meta                   (outer step, any optimizer)

The meta-gradient differentiates *through* the inner step:
    grad_theta L_{Q_i}(phi_i) = (I - alpha * H_{S_i}(theta)) grad_phi L_{Q_i}(phi_i),
with H the Hessian of the support loss: second order. First-order MAML (FOMAML) drops the
Hessian term by treating the inner gradient as a constant: the same code with
``create_graph=False``. All tasks of a meta-batch run as one batched computation.

Memory. Second-order MAML keeps the graph of every inner step (activations, the inner
gradient and its own graph) until ``backward()``: memory grows linearly with the number of
inner steps. With ``checkpoint=True`` each inner step runs under ``tm.checkpoint``: only
the adapted parameters phi_1..phi_k are kept, and backward recomputes one step at a time,
so memory stays flat in k for the price of one more forward (and inner gradient) per step
(Chen et al. 2016, "Training deep nets with sublinear memory cost"; applied to MAML by
Shaban et al. 2019 and memory-efficient-maml). Gradients are those of plain second-order
MAML. First-order MAML keeps no graph across steps already, so ``checkpoint`` changes
nothing there.

    maml = meta.MAML(model, inner_lr=0.01, inner_steps=1)
    opt = optim.Adam(maml.parameters(), lr=1e-3)
    loss = maml.meta_loss(tasks.sample(25, rng)); opt.zero_grad(); loss.backward(); opt.step()
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .. import ops
from ..checkpoint import checkpoint as _checkpoint
from ..engine import enable_grad, grad, is_grad_enabled
from ..nn.module import Module
from ..optim import functional as optim_f
from ..engine import Tensor
from .base import MetaLearner, check_int, check_number

if TYPE_CHECKING:  # for the annotations only
    from .tasks import TaskBatch


class MAML(MetaLearner):
    """MAML: Model-Agnostic Meta-Learning (Finn, Abbeel & Levine, ICML 2017).

    Learns an initialisation theta from which a few gradient steps solve a new task. For a
    meta-batch of n tasks T_i, each with a support set S_i and a query set Q_i::

        theta'_i = theta - alpha grad_theta L_{S_i}(theta)                (inner step; k of them)
        theta   <- theta - beta grad_theta sum_i L_{Q_i}(theta'_i)         (outer step)

    (``meta_loss`` returns the mean over tasks, (1/n) sum_i L_{Q_i}(theta'_i); the outer step
    is taken by any optimizer on ``parameters()``, beta being its learning rate.)

    The meta-gradient differentiates *through* the inner step:
    ``grad_theta L_Q(theta') = (I - alpha H_S(theta)) grad_theta' L_Q(theta')``, with H_S the
    Hessian of the support loss: second order. First-order MAML (FOMAML,
    ``first_order=True``) drops the Hessian term by treating the inner gradient as a
    constant: the same code with ``create_graph=False``. All tasks of a meta-batch run as one
    batched computation. With ``checkpoint=True`` each inner step runs under
    ``tm.checkpoint``: memory stays flat in k (one more forward per step), same gradients.

    Args:
        model: the task model (an ``nn.Module``); its parameters are theta.
        inner_lr: alpha, the inner-loop step size.
        inner_steps: k, the number of inner SGD steps.
        first_order: FOMAML: no second derivatives.
        loss: ``"mse"``, ``"cross_entropy"``, or a callable ``(out, y) -> per-task losses (T,)``.
        checkpoint: recompute the inner steps in backward instead of keeping their graphs.

    Example:
        >>> maml = meta.MAML(nn.MLP([1, 40, 40, 1], rng=0), inner_lr=0.01, inner_steps=1)
        >>> opt = optim.Adam(maml.parameters(), lr=1e-3)
        >>> loss = maml.meta_loss(meta.tasks.Sinusoid().sample(25, rng=0))
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, model: Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, loss: str | Callable[[Tensor, Tensor], Tensor] = "mse",
                 checkpoint: bool = False):
        super().__init__(model, loss)
        self.inner_lr = check_number("MAML", "inner_lr", inner_lr)
        self.inner_steps = check_int("MAML", "inner_steps", inner_steps)
        self.first_order = bool(first_order)
        self.checkpoint = bool(checkpoint)

    def meta_loss(self, batch: TaskBatch, inner_steps: int | None = None) -> Tensor:
        """Mean query loss after adapting to each task's support set; ``backward()`` on it
        accumulates the meta-gradient into the model's parameters.

        Args:
            batch: a meta-batch of tasks (support and query sets, with a leading task axis).
            inner_steps: k for this call (default: the learner's ``inner_steps``).

        Returns:
            The scalar (1/n) sum_i L_{Q_i}(theta'_i), with a graph back to theta.
        """
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        theta_t = self.expand(self.init_params(), xs.shape[0])
        steps = inner_steps or self.inner_steps
        if self.checkpoint and not self.first_order and is_grad_enabled() \
                and any(p.requires_grad for p in theta_t.values()):
            phi = self._checkpointed_inner_loop(theta_t, xs, ys, steps)
        else:
            phi = self.inner_loop(theta_t, xs, ys, steps, self.inner_lr,
                                  create_graph=not self.first_order)
        return ops.mean(self.task_losses(phi, xq, yq))

    def _checkpointed_inner_loop(self, params, x, y, steps):
        """The second-order inner loop, one ``tm.checkpoint`` per step: the graph keeps
        phi_0..phi_k and no step's intermediates."""
        names = list(params)

        def step(*phi):
            # Under no_grad (the first run) the step need not be differentiable, so its
            # inner gradient is plain; rerun in backward, it is built with create_graph.
            create = is_grad_enabled()
            with enable_grad():
                loss = ops.sum(self.task_losses(dict(zip(names, phi)), x, y))
                grads = grad(loss, list(phi), create_graph=create)
            new, _ = optim_f.sgd(list(phi), grads, lr=self.inner_lr)
            return tuple(new)

        phi = tuple(params[n] for n in names)
        for _ in range(steps):
            phi = _checkpoint(step, *phi)
        return dict(zip(names, phi))

    def adapt(self, x: Tensor | np.ndarray, y: Tensor | np.ndarray,
              steps: int | None = None) -> dict[str, Tensor]:
        """The adapted parameters theta' after ``steps`` inner SGD steps on the support set (x, y).

        Args:
            x: support inputs, (shots, ...) for one task or (tasks, shots, ...).
            y: support targets, shaped alike.
            steps: the number of steps (default: ``inner_steps``).

        Returns:
            Parameter name -> adapted tensor; run the model with them by ``predict``.
        """
        return self.adapt_with(x, y, self.inner_steps if steps is None else steps, self.inner_lr)

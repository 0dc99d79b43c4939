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
from .. import ops
from ..checkpoint import checkpoint as _checkpoint
from ..engine import enable_grad, grad, is_grad_enabled
from ..nn.module import Module
from ..optim import functional as optim_f
from .base import MetaLearner, check_int, check_number


class MAML(MetaLearner):
    def __init__(self, model: Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, loss="mse", checkpoint: bool = False):
        super().__init__(model, loss)
        self.inner_lr = check_number("MAML", "inner_lr", inner_lr)
        self.inner_steps = check_int("MAML", "inner_steps", inner_steps)
        self.first_order = bool(first_order)
        self.checkpoint = bool(checkpoint)

    def meta_loss(self, batch, inner_steps=None):
        """Mean query loss after adapting to each task's support set; ``backward()`` on it
        accumulates the meta-gradient into the model's parameters."""
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

    def adapt(self, x, y, steps=None):
        return self.adapt_with(x, y, self.inner_steps if steps is None else steps, self.inner_lr)

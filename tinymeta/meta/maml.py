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

    maml = meta.MAML(model, inner_lr=0.01, inner_steps=1)
    opt = optim.Adam(maml.parameters(), lr=1e-3)
    loss = maml.meta_loss(tasks.sample(25, rng)); opt.zero_grad(); loss.backward(); opt.step()
"""
from .. import ops
from .base import MetaLearner, check_int, check_number


class MAML(MetaLearner):
    def __init__(self, model, inner_lr=0.01, inner_steps=1, first_order=False, loss="mse"):
        super().__init__(model, loss)
        self.inner_lr = check_number("MAML", "inner_lr", inner_lr)
        self.inner_steps = check_int("MAML", "inner_steps", inner_steps)
        self.first_order = bool(first_order)

    def meta_loss(self, batch, inner_steps=None):
        """Mean query loss after adapting to each task's support set; ``backward()`` on it
        accumulates the meta-gradient into the model's parameters."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        theta_t = self.expand(self.init_params(), xs.shape[0])
        phi = self.inner_loop(theta_t, xs, ys, inner_steps or self.inner_steps, self.inner_lr,
                              create_graph=not self.first_order)
        return ops.mean(self.task_losses(phi, xq, yq))

    def adapt(self, x, y, steps=None):
        return self.adapt_with(x, y, self.inner_steps if steps is None else steps, self.inner_lr)

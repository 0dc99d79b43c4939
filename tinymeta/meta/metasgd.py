"""Meta-SGD (Li, Zhou, Chen & Li, "Meta-SGD: Learning to Learn Quickly for Few-Shot
Learning", 2017): learn the update rule along with the initialisation.

Every parameter theta gets a learned learning-rate tensor alpha of the same shape; the
inner step is elementwise and both are meta-learned through it (second order):

    phi_i  = theta - alpha * grad_theta L_{S_i}(theta)       (* elementwise)
    (theta, alpha) <- (theta, alpha) - beta * grad_{theta, alpha} (1/n) sum_i L_{Q_i}(phi_i)
"""
import numpy as np

from .. import ops
from ..nn.module import Parameter
from .base import MetaLearner, check_int, check_number


class MetaSGD(MetaLearner):
    def __init__(self, model, inner_lr=0.01, inner_steps=1, loss="mse"):
        super().__init__(model, loss)
        inner_lr = check_number("MetaSGD", "inner_lr (the initial learning rates)", inner_lr)
        self.inner_steps = check_int("MetaSGD", "inner_steps", inner_steps)
        self.alphas = {n: Parameter(np.full(p.shape, inner_lr, dtype=p.dtype))
                       for n, p in model.named_parameters()}

    def parameters(self):
        return self.model.parameters() + list(self.alphas.values())

    def named_parameters(self):
        return list(self.model.named_parameters()) + [(f"alpha.{n}", a) for n, a in self.alphas.items()]

    def load_state_dict(self, state):
        self.model.load_state_dict({k: v for k, v in state.items() if not k.startswith("alpha.")})
        for n, a in self.alphas.items():
            a.data[...] = state[f"alpha.{n}"]
            a._bump_version()

    def _lrs(self):
        return [self.alphas[n] for n in self.names]

    def meta_loss(self, batch, inner_steps=None):
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        theta_t = self.expand(self.init_params(), xs.shape[0])
        phi = self.inner_loop(theta_t, xs, ys, inner_steps or self.inner_steps, self._lrs(),
                              create_graph=True)
        return ops.mean(self.task_losses(phi, xq, yq))

    def adapt(self, x, y, steps=None):
        lrs = [a.detach() for a in self._lrs()]
        return self.adapt_with(x, y, self.inner_steps if steps is None else steps, lrs)

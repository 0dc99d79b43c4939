"""ANIL: Almost No Inner Loop (Raghu, Raghu, Bengio & Vinyals, "Rapid Learning or Feature
Reuse? Towards Understanding the Effectiveness of MAML", ICLR 2020).

MAML with the inner loop restricted to the network's last layer (the head): the body's
features are reused as they are, and learned in the outer loop only.
"""
from .. import ops
from ..engine import Tensor
from ..errors import ArgumentError
from ..nn.layers import Sequential
from ..nn.module import functional_call
from .base import MetaLearner, check_int, check_number
from .tasks import TaskBatch


class ANIL(MetaLearner):
    """``ANIL(model, inner_lr=0.01, inner_steps=1, first_order=False, loss="mse")``.

    ANIL, Raghu, Raghu, Bengio & Vinyals, ICLR 2020. Split the parameters into the body
    theta_b (every layer but the last) and the head theta_h (the last layer that has
    parameters). Only the head adapts to task T_i:

        f_i     = body(x; theta_b)                                   (features, computed once)
        phi_i   = theta_h - alpha * grad_{theta_h} L_{S_i}(theta_b, theta_h)   (k steps)
        L_meta  = (1/n) sum_i L_{Q_i}(theta_b, phi_i)
        (theta_b, theta_h) <- outer optimiser step on grad L_meta

    The meta-gradient is second order, as in MAML: it differentiates through the head's
    inner steps, whose gradients depend on the body's features (``first_order=True`` treats
    the inner gradients as constants). With a ``Sequential`` model whose last module is the
    head, the body runs once per task set instead of once per inner step.

    ``adapt`` returns every parameter: the adapted head, and the body exactly as it is.
    """

    def __init__(self, model, inner_lr: float = 0.01, inner_steps: int = 1, first_order: bool = False,
                 loss="mse"):
        super().__init__(model, loss)
        self.inner_lr = check_number("ANIL", "inner_lr", inner_lr)
        self.inner_steps = check_int("ANIL", "inner_steps", inner_steps)
        self.first_order = bool(first_order)
        # The head: the parameters of the module that owns the last parameter.
        prefix = self.names[-1].rpartition(".")[0]
        self.head_names = [n for n in self.names if n.rpartition(".")[0] == prefix]
        self.body_names = [n for n in self.names if n not in self.head_names]
        if not self.body_names:
            raise ArgumentError(f"ANIL: the model's parameters {self.names} are all in its last layer; "
                                "ANIL needs a body (earlier layers) to reuse")
        self._split = None
        if isinstance(model, Sequential) and prefix == str(len(model) - 1):
            self._split = ([model[i] for i in range(len(model) - 1)], model[len(model) - 1])

    # -- running the model as body then head
    def features(self, x) -> Tensor:
        """The body's output on x (only with a Sequential model whose last module is the head)."""
        for m in self._split[0]:
            x = m(x)
        return x

    def _head_losses(self, head, feats, y):
        out = functional_call(self._split[1], {n.rpartition(".")[2]: p for n, p in head.items()}, feats)
        return self._task_loss(out, y)

    def _inner(self, head, xs, ys, steps, create_graph):
        if self._split is None:  # any model: the whole forward each step, only the head moves
            return self.inner_loop(head, xs, ys, steps, self.inner_lr, create_graph)
        feats = self.features(xs)
        saved = self.task_losses
        try:  # the base inner loop, on features: the body is not run again per step
            self.task_losses = lambda params, x, y: self._head_losses(params, feats, y)
            return self.inner_loop(head, xs, ys, steps, self.inner_lr, create_graph)
        finally:
            self.task_losses = saved

    def meta_loss(self, batch: "TaskBatch", inner_steps: "int | None" = None) -> Tensor:
        """Mean query loss after adapting the head to each task's support set."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        params = self.init_params()
        head = self.expand({n: params[n] for n in self.head_names}, xs.shape[0])
        phi = self._inner(head, xs, ys, self.inner_steps if inner_steps is None else inner_steps,
                          create_graph=not self.first_order)
        return ops.mean(self.task_losses(phi, xq, yq))

    def adapt(self, x, y, steps: "int | None" = None) -> dict:
        """Every parameter for the task(s) (x, y): the head after ``steps`` SGD steps, the
        body untouched (the same values, broadcast over the task axis when batched)."""
        steps = check_int("ANIL", "steps", self.inner_steps if steps is None else steps, minimum=0)
        xs, ys, single = self._batched_input(x, y)
        params = {n: p.detach() for n, p in self.init_params().items()}
        head = self.expand({n: params[n] for n in self.head_names}, xs.shape[0])
        phi = {n: p.detach() for n, p in self._inner(head, xs, ys, steps, create_graph=False).items()}
        if single:
            return {n: (phi[n][0] if n in phi else params[n]) for n in self.names}
        body = self.expand({n: params[n] for n in self.body_names}, xs.shape[0])
        return {n: (phi[n] if n in phi else body[n]) for n in self.names}

"""CAVIA: fast Context Adaptation VIA meta-learning (Zintgraf, Shiarlis, Kurin, Hofmann &
Whiteson, ICML 2019).

The network's weights are shared by all tasks and learned in the outer loop only; what a
task adapts is a small context vector fed to the network as extra inputs.
"""
import numpy as np

from .. import ops
from ..engine import Tensor
from ..errors import ShapeError
from .base import MetaLearner, check_int, check_number
from .tasks import TaskBatch


class CAVIA(MetaLearner):
    """``CAVIA(model, num_context=5, inner_lr=1.0, inner_steps=1, first_order=False, loss="mse")``.

    CAVIA, Zintgraf, Shiarlis, Kurin, Hofmann & Whiteson, ICML 2019. The model f_theta
    takes ``num_context`` inputs more than the data has: each task T_i gets a context
    vector c_i, concatenated to every input, which starts at zero and is the only thing
    adapted:

        c_i     = 0 - alpha * grad_c L_{S_i}(f_theta(., c))|_{c=0}       (k steps)
        L_meta  = (1/n) sum_i L_{Q_i}(f_theta(., c_i))
        theta  <- outer optimiser step on grad_theta L_meta              (second order)

    Fewer parameters adapt than in MAML (``num_context`` against all of them) and the
    inner learning rate can be large (1.0 in the paper). ``adapt`` returns
    ``{"context": c}``; ``predict`` runs the model on [x, c].

        cavia = meta.CAVIA(nn.MLP([1 + 5, 40, 40, 1]), num_context=5)
    """

    def __init__(self, model, num_context: int = 5, inner_lr: float = 1.0, inner_steps: int = 1,
                 first_order: bool = False, loss="mse"):
        super().__init__(model, loss)
        self.num_context = check_int("CAVIA", "num_context", num_context)
        self.inner_lr = check_number("CAVIA", "inner_lr", inner_lr)
        self.inner_steps = check_int("CAVIA", "inner_steps", inner_steps)
        self.first_order = bool(first_order)

    def forward(self, params, x):
        """The model on [x, context] for inputs x of shape (T, shots, features); ``params``
        holds "context" (T, num_context) and optionally replacement model weights."""
        ctx = params["context"]
        weights = {n: p for n, p in params.items() if n != "context"}
        first = self.model.parameters()[0]
        if first.ndim == 2 and x.shape[-1] + self.num_context != first.shape[-1]:
            raise ShapeError(f"CAVIA: the model's first layer takes {first.shape[-1]} inputs, but the "
                             f"data has {x.shape[-1]} features plus {self.num_context} context "
                             f"inputs; build the model with {x.shape[-1] + self.num_context} inputs")
        ctx = ops.broadcast_to(ops.unsqueeze(ctx, 1), (x.shape[0], x.shape[1], self.num_context))
        return super().forward(weights, ops.concatenate([x, ctx], axis=-1))

    def _context0(self, n_tasks):
        return Tensor(np.zeros((n_tasks, self.num_context), dtype=self.model.parameters()[0].dtype))

    def meta_loss(self, batch: "TaskBatch", inner_steps: "int | None" = None) -> Tensor:
        """Mean query loss after adapting each task's context from zero."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        ctx = {"context": self._context0(xs.shape[0]).requires_grad_()}
        ctx = self.inner_loop(ctx, xs, ys, self.inner_steps if inner_steps is None else inner_steps,
                              self.inner_lr, create_graph=not self.first_order)
        return ops.mean(self.task_losses(ctx, xq, yq))

    def adapt(self, x, y, steps: "int | None" = None) -> dict:
        """{"context": c} for the task(s) (x, y), shape (num_context,) or (tasks, num_context)."""
        steps = check_int("CAVIA", "steps", self.inner_steps if steps is None else steps, minimum=0)
        xs, ys, single = self._batched_input(x, y)
        ctx = {"context": self._context0(xs.shape[0])}
        ctx = self.inner_loop(ctx, xs, ys, steps, self.inner_lr, create_graph=False)
        c = ctx["context"].detach()
        return {"context": c[0] if single else c}

    def predict(self, params: dict, x) -> Tensor:
        """The model's output on [x, context] with ``params`` from ``adapt``."""
        x = self._as_tensor(x)
        ctx = params["context"]
        if ctx.ndim == 1:
            if x.ndim != 2:
                raise ShapeError(f"CAVIA.predict: one task's context {ctx.shape} needs x of shape "
                                 f"(points, features), got {x.shape}")
            return self.forward({"context": ops.unsqueeze(ctx, 0)}, ops.unsqueeze(x, 0))[0]
        if x.ndim != 3:
            raise ShapeError("CAVIA.predict: params carry a task axis but x has none; pass x with "
                             "shape (tasks, points, features)")
        return self.forward(params, x)

"""Prototypical Networks (Snell, Swersky & Zemel, "Prototypical Networks for Few-shot
Learning", NeurIPS 2017): the metric-based baseline gradient-based learners are judged against.

No inner loop: a new task is solved by averaging the embeddings of each class's support
examples and classifying queries by their distance to those averages.
"""
import numpy as np

from .. import ops
from ..engine import Tensor
from ..errors import ArgumentError, ShapeError
from .base import MetaLearner
from .tasks import TaskBatch


class ProtoNet(MetaLearner):
    """``ProtoNet(encoder)``: few-shot classification by class prototypes.

    Prototypical Networks, Snell, Swersky & Zemel, NeurIPS 2017. The encoder f_theta embeds
    every image. For an N-way task with support set S (S_k: the examples of class k):

        c_k          = (1/|S_k|) sum_{x in S_k} f_theta(x)                  (prototypes)
        logits_k(x)  = -|| f_theta(x) - c_k ||^2                            (squared Euclidean)
        p(y = k | x) = softmax_k(logits(x))
        L_meta       = (1/n) sum_i mean_{(x, y) in Q_i} -log p(y | x)       (cross-entropy)
        theta       <- outer optimiser step on grad_theta L_meta

    ``adapt(x, y)`` returns ``{"prototypes": c}`` (shape (N, d), or (tasks, N, d)); it
    takes no steps (``steps`` is accepted and ignored, so ``meta.evaluate`` works as for the
    other learners). ``predict(params, x)`` returns the logits. Labels are 0..N-1.
    """

    def __init__(self, encoder):
        super().__init__(encoder, loss="cross_entropy")

    def embed(self, x) -> Tensor:
        """f_theta(x) for inputs (T, shots, ...) -> (T, shots, d)."""
        return self.model(x)

    @staticmethod
    def prototypes(emb, y):
        """Class means: emb (T, shots, d), integer labels y (T, shots) -> (T, N, d)."""
        y = np.asarray(y.data if isinstance(y, Tensor) else y)
        if y.dtype.kind not in "iu":
            raise ArgumentError(f"ProtoNet: labels must be integers 0..N-1, got dtype {y.dtype}")
        n_way = int(y.max()) + 1
        onehot = (y[..., None] == np.arange(n_way)).astype(emb.dtype)  # (T, shots, N)
        counts = onehot.sum(axis=1, keepdims=True)
        if np.any(counts == 0):
            raise ArgumentError(f"ProtoNet: every class 0..{n_way - 1} needs at least one support "
                                "example in every task")
        weights = Tensor(np.swapaxes(onehot / counts, 1, 2))  # (T, N, shots): averaging weights
        return weights @ emb

    @staticmethod
    def logits(emb, protos):
        """-||f(x) - c_k||^2: emb (T, Q, d), protos (T, N, d) -> (T, Q, N)."""
        diff = ops.unsqueeze(emb, 2) - ops.unsqueeze(protos, 1)
        return -ops.sum(diff * diff, axis=-1)

    def meta_loss(self, batch: "TaskBatch", inner_steps: "int | None" = None) -> Tensor:
        """Mean query cross-entropy under the prototype classifier of each task."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        protos = self.prototypes(self.embed(xs), ys)
        return ops.mean(self._task_loss(self.logits(self.embed(xq), protos), yq))

    def adapt(self, x, y, steps: "int | None" = None) -> dict:
        """{"prototypes": class means of the embedded support set}; no gradient steps."""
        xs, ys, single = self._batched_input(x, y)
        protos = self.prototypes(self.embed(xs), ys).detach()
        return {"prototypes": protos[0] if single else protos}

    def predict(self, params: dict, x) -> Tensor:
        """Logits -||f(x) - c_k||^2 of inputs ``x`` against ``params["prototypes"]``."""
        x = self._as_tensor(x)
        protos = params["prototypes"]
        if protos.ndim == 2:
            if x.ndim < 2:
                raise ShapeError(f"ProtoNet.predict: x must be (points, features), got {x.shape}")
            return self.logits(self.embed(ops.unsqueeze(x, 0)), ops.unsqueeze(protos, 0))[0]
        if x.ndim < 3:
            raise ShapeError("ProtoNet.predict: prototypes carry a task axis but x has none; pass x "
                             "with shape (tasks, points, features)")
        return self.logits(self.embed(x), protos)

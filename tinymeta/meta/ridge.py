"""RidgeHead: a differentiable closed-form base learner (Bertinetto, Henriques, Torr &
Vedaldi, "Meta-learning with differentiable closed-form solvers", ICLR 2019: R2-D2).

A meta-learned feature extractor g_theta maps each task's support inputs to features
X = [g_theta(x), 1] (n x d, with a bias column); the task's linear head is ridge regression
onto the (one-hot) targets Y, solved exactly inside the graph:

    W = (X^T X + lambda I)^{-1} X^T Y          (d x d system)
      = X^T (X X^T + lambda I)^{-1} Y          (Woodbury: n x n system, used when n < d)
    y_hat(x') = s * [g_theta(x'), 1] W + b

lambda, s and b are meta-learned with theta by backpropagating the query loss through the
solve (``tm.linalg.solve``: its derivative rules are differentiable again, so second
derivatives flow through it too).
"""
import numpy as np

from .. import ops
from ..engine import Tensor
from ..errors import ArgumentError
from ..learners import ridge_solve
from ..nn.module import Module, Parameter, functional_call
from .base import MetaLearner


class _Head(Module):
    def __init__(self, features, lam, scale):
        super().__init__()
        self.features = features
        self.log_lambda = Parameter(np.array(np.log(lam)))
        self.log_scale = Parameter(np.array(np.log(scale)))
        self.bias = Parameter(np.array(0.0))


class RidgeHead(MetaLearner):
    """``RidgeHead(feature_extractor, n_outputs, lam=1.0, scale=1.0, loss="cross_entropy")``."""

    def __init__(self, feature_extractor, n_outputs, lam=1.0, scale=1.0, loss="cross_entropy"):
        if lam <= 0 or scale <= 0:
            raise ArgumentError(f"RidgeHead: lam and scale must be > 0, got {lam} and {scale}")
        dtype = feature_extractor.parameters()[0].dtype
        head = _Head(feature_extractor, lam, scale)
        for p in (head.log_lambda, head.log_scale, head.bias):
            p.data = p.data.astype(dtype)
        super().__init__(head, loss)
        self.n_outputs = n_outputs

    def _features(self, params, x):
        feats = functional_call(self.model.features, {k[len("features."):]: v for k, v in params.items()
                                                     if k.startswith("features.")}, x)
        ones = Tensor(np.ones(feats.shape[:-1] + (1,), dtype=feats.dtype))
        return ops.concatenate([feats, ones], axis=-1)

    def _targets(self, y, dtype):
        y = y.data if type(y) is Tensor else np.asarray(y)
        if self.loss == "cross_entropy":
            return np.eye(self.n_outputs, dtype=dtype)[y.astype(np.int64)]
        return y.astype(dtype)

    def solve_head(self, params, x, y):
        """The ridge solution W (T, d, outputs) for support sets x (T, n, ...)."""
        X = self._features(params, x)
        Y = Tensor(self._targets(y, X.dtype))
        return ridge_solve(X, Y, ops.exp(params["log_lambda"]))  # the dual (n x n) when n < d

    def forward(self, params, x):
        W = params["W"]
        out = self._features(params, x) @ W
        return ops.exp(params["log_scale"]) * out + params["bias"]

    def meta_loss(self, batch, inner_steps=None):
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        params = dict(self.model.named_parameters())
        params["W"] = self.solve_head(params, xs, ys)
        return ops.mean(self.task_losses(params, xq, yq))

    def adapt(self, x, y, steps=None):
        """The closed-form head for the support set (``steps`` is ignored)."""
        xs, ys, single = self._batched_input(x, y)
        params = {n: p.detach() for n, p in self.model.named_parameters()}
        params["W"] = self.solve_head(params, xs, ys).detach()
        if single:
            params["W"] = params["W"][0]
        return params

    def predict(self, params, x):
        return self.forward(params, self._as_tensor(x))

"""The mapping meta-learner: "everything is a mapping".

Instead of learning *how to adapt* (MAML), learn the map from a task's data straight to
the task model's parameters, and train it by backprop like any supervised model:

    phi_i = f_theta(S_i),   f_theta(S) = rho( (1/K) sum_{(x, y) in S} h([x, y]) )

h and rho are MLPs; the mean makes f_theta permutation-invariant in the support set (a
Deep Sets encoder, Zaheer et al. 2017; the same amortisation as neural processes,
Garnelo et al. 2018). phi_i is the *full* parameter vector of a base learner (a linear
model, or an MLP such as 1-40-40-1) run through ``nn.functional_call``. A new task is
solved by one forward pass instead of gradient steps.

Two ways to train theta (supervised on known optima, and end to end):

1. supervised:  min_theta sum_i || f_theta(S_i) - phi_i* ||^2, with phi_i* each task's
   optimum (closed form through the pseudo-inverse for linear tasks, or gradient descent).
   Right when phi* is unique and cheap: linear/ridge base learners.
2. end to end:  min_theta sum_i L_{Q_i}( f_theta(S_i) ), the base learner's query loss; no
   phi* needed. Right for an MLP base learner, whose optima are not unique (permuting
   hidden units, rescaling ReLU layers give the same function): the supervised targets of
   similar tasks can then be far apart in parameter space and regressing onto them averages
   incompatible solutions; end-to-end training only asks for *a* good function.
"""
import numpy as np

from .. import ops
from ..creation import as_rng
from ..engine import Tensor
from ..errors import ArgumentError, ShapeError
from ..nn.layers import MLP
from .base import MetaLearner


class MappingLearner(MetaLearner):
    """``MappingLearner(base_model, hidden=128, pair_layers=2, head_layers=2, mode="end_to_end")``.

    ``base_model`` is the task model whose parameters are generated. ``mode`` is
    "end_to_end" or "supervised" (then ``meta_loss`` needs ``targets`` or ``target_fn``)."""

    def __init__(self, base_model, hidden=128, pair_layers=2, head_layers=2, mode="end_to_end",
                 target_fn=None, loss="mse", in_features=None, out_features=None, rng=None):
        super().__init__(base_model, loss)
        if mode not in ("end_to_end", "supervised"):
            raise ArgumentError(f"MappingLearner: mode must be 'end_to_end' or 'supervised', got {mode!r}")
        rng = as_rng(rng)
        self.mode, self.target_fn = mode, target_fn
        named = list(base_model.named_parameters())
        self.shapes = [(n, p.shape) for n, p in named]
        self.sizes = [p.size for _, p in named]
        n_params = int(sum(self.sizes))
        first = named[0][1]
        self.in_features = in_features or (first.shape[-1] if first.ndim == 2 else None)
        self.out_features = out_features or (named[-1][1].shape[0] if loss == "mse" else 1)
        if self.in_features is None:
            raise ArgumentError("MappingLearner: cannot infer in_features from the base model; pass it")
        pair_in = self.in_features + (self.out_features if loss == "mse" else 1)
        self.pair_net = MLP([pair_in] + [hidden] * pair_layers, activation="relu", rng=rng)
        self.head = MLP([hidden] * head_layers + [n_params], activation="relu", rng=rng)
        # Start every task at the base model's own initialisation: zero output weights, and
        # the flattened initial parameters as the output bias.
        last = self.head[len(self.head) - 1]
        last.weight.data[...] = 0.0
        last.bias.data[...] = np.concatenate([p.data.reshape(-1) for _, p in named])

    def parameters(self):
        return self.pair_net.parameters() + self.head.parameters()

    def named_parameters(self):
        return ([(f"pair.{n}", p) for n, p in self.pair_net.named_parameters()]
                + [(f"head.{n}", p) for n, p in self.head.named_parameters()])

    def load_state_dict(self, state):
        self.pair_net.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("pair.")})
        self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})

    # -- the mapping
    def flat_params(self, x, y):
        """f_theta(S): (T, shots, ...) support sets -> (T, n_params) parameter vectors."""
        xs, ys, _ = self._batched_input(x, y)
        yv = ys if type(ys) is Tensor else Tensor(ys[..., None].astype(xs.dtype))
        if yv.ndim == 2:
            yv = ops.unsqueeze(yv, -1)
        pairs = ops.concatenate([xs, yv], axis=-1)
        pooled = ops.mean(self.pair_net(pairs), axis=1)  # mean over shots: order does not matter
        return self.head(pooled)

    def unflatten(self, flat):
        """``(T, n_params)`` -> ``{name: (T, *shape)}`` for ``functional_call``."""
        params, start = {}, 0
        for (name, shape), size in zip(self.shapes, self.sizes):
            params[name] = ops.reshape(flat[:, start:start + size], (flat.shape[0],) + tuple(shape))
            start += size
        return params

    def flatten_targets(self, targets):
        """Targets as ``(T, n_params)``: an array already flat, or a dict name -> ``(T, *shape)``."""
        if isinstance(targets, dict):
            targets = np.concatenate([np.asarray(targets[n]).reshape(len(targets[n]), -1)
                                      for n, _ in self.shapes], axis=1)
        targets = np.asarray(targets)
        if targets.ndim != 2 or targets.shape[1] != sum(self.sizes):
            raise ShapeError(f"MappingLearner: targets must have shape (tasks, {sum(self.sizes)}), "
                             f"got {targets.shape}")
        return targets

    # -- training objectives
    def supervised_loss(self, batch, targets):
        """(1/T) sum_i ||f_theta(S_i) - phi_i*||^2 / n_params."""
        pred = self.flat_params(batch.x_support, batch.y_support)
        d = pred - Tensor(self.flatten_targets(targets), dtype=pred.dtype)
        return ops.mean(d * d)

    def meta_loss(self, batch, targets=None):
        if self.mode == "supervised":
            if targets is None:
                if self.target_fn is None:
                    raise ArgumentError("MappingLearner(mode='supervised'): pass targets or target_fn")
                targets = self.target_fn(batch)
            return self.supervised_loss(batch, targets)
        params = self.unflatten(self.flat_params(batch.x_support, batch.y_support))
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        return ops.mean(self.task_losses(params, xq, yq))

    def adapt(self, x, y, steps=None):
        """One forward pass: the generated parameters (``steps`` is ignored)."""
        single = np.ndim(x) == 2
        params = self.unflatten(self.flat_params(x, y))
        params = {n: p.detach() for n, p in params.items()}
        return {n: p[0] for n, p in params.items()} if single else params


def linear_targets(task_family):
    """target_fn for a ``tasks.LinearFunctions`` family with a bias-free ``nn.Linear(dim, 1)``
    base model: each task's least-squares optimum through the pseudo-inverse, as (T, dim)."""
    def target_fn(batch):
        w = task_family.optimal_params(batch.x_support, batch.y_support)  # (T, dim, 1)
        return np.asarray(w)[..., 0]
    return target_fn

"""A learned optimizer (Andrychowicz, Denil, Gomez, Hoffman, Pfau, Schaul, Shillingford &
de Freitas, "Learning to learn by gradient descent by gradient descent", NeurIPS 2016):
learn the parameter-update rule itself, not just its step sizes (Meta-SGD) or its
starting point (MAML).
"""
import numpy as np

from .. import ops
from ..creation import as_rng
from ..engine import Tensor, enable_grad, grad, no_grad
from ..nn.layers import MLP
from ..nn.module import Parameter
from .base import MetaLearner, check_int
from .tasks import TaskBatch

BETA1, BETA2 = 0.9, 0.999  # the running statistics' decay rates (Adam's defaults)
N_FEATURES = 4


class LearnedOptimizer(MetaLearner):
    """``LearnedOptimizer(model, inner_steps=5, hidden=20, learn_init=False, first_order=False,
    loss="mse", rng=None)``.

    Coordinate-wise learned optimizer, after Andrychowicz et al., NeurIPS 2016 ("Learning
    to learn by gradient descent by gradient descent"; an MLP here where they use an LSTM).
    Every coordinate j of the task model's parameters phi is updated by the same small
    network m_w (one hidden layer of ``hidden`` tanh units) from its own gradient history. With
    g_t = grad L_S(phi_t) and Adam-style running statistics (bias-corrected)

        mom_t = (b1 mom_{t-1} + (1-b1) g_t) / (1 - b1^t),   v_t = (b2 v_{t-1} + (1-b2) g_t^2) / (1 - b2^t),

    each coordinate sees four preprocessed inputs (scale-free, as the paper's
    log-magnitude preprocessing is):

        x_t = [ g_t / sqrt(v_t + eps),  mom_t / sqrt(v_t + eps),
                log(g_t^2 + eps) / 20,  log(v_t + eps) / 20 ]

    and the update is

        phi_{t+1} = phi_t - exp(s) * ( mom_t / sqrt(v_t + eps) + m_w(x_t) ),

    a learned correction m_w (last layer zero at the start) around Adam's direction, with a
    learned global log step size s. The meta-objective is the query loss along the
    trajectory, L_meta = (1/n) sum_i (1/K) sum_{t=1..K} L_{Q_i}(phi_{i,t}), and (w, s) are
    meta-trained by backpropagating through the K = ``inner_steps`` unrolled steps
    (second order: the gradients g_t depend on w through phi_t; ``first_order=True`` treats
    them as constants, as the paper did). Every task starts from the model's parameters
    theta; with ``learn_init=True`` theta is meta-learned too (as in MAML).

    ``adapt(x, y, steps)`` runs the learned rule for ``steps`` steps (any number).
    """

    def __init__(self, model, inner_steps: int = 5, hidden: int = 20, learn_init: bool = False,
                 first_order: bool = False, loss="mse", rng=None):
        super().__init__(model, loss)
        self.inner_steps = check_int("LearnedOptimizer", "inner_steps", inner_steps)
        self.hidden = check_int("LearnedOptimizer", "hidden", hidden)
        self.learn_init = bool(learn_init)
        self.first_order = bool(first_order)
        dtype = model.parameters()[0].dtype
        self.rule = MLP([N_FEATURES, self.hidden, 1], activation="tanh", rng=as_rng(rng),
                        dtype=dtype)
        last = self.rule[len(self.rule) - 1]
        last.weight.data[...] = 0.0  # start as Adam with step exp(s): the network learns the rest
        last.bias.data[...] = 0.0
        self.log_step = Parameter(np.array(np.log(1e-2), dtype=dtype))

    # -- parameters: the update rule's, and the model's (meta-learned only with learn_init)
    def _rule_named(self):
        return ([(f"rule.{n}", p) for n, p in self.rule.named_parameters()]
                + [("rule.log_step", self.log_step)])

    def parameters(self):
        own = [p for _, p in self._rule_named()]
        return own + (self.model.parameters() if self.learn_init else [])

    def named_parameters(self):
        # The model's parameters are always part of the state: they are every task's start.
        return self._rule_named() + list(self.model.named_parameters())

    def load_state_dict(self, state):
        self.model.load_state_dict({k: v for k, v in state.items() if not k.startswith("rule.")})
        self.rule.load_state_dict({k[5:]: v for k, v in state.items()
                                   if k.startswith("rule.") and k != "rule.log_step"})
        self.log_step.data[...] = state["rule.log_step"]
        self.log_step._bump_version()

    # -- the learned rule
    def features(self, g, mom, v):
        """The network's per-coordinate inputs, stacked on a new last axis."""
        scale = ops.sqrt(v + 1e-12)
        return ops.stack([g / scale, mom / scale, ops.log(g * g + 1e-16) / 20.0,
                          ops.log(v + 1e-16) / 20.0], axis=-1)

    def update(self, g, state):
        """One step of the rule for flat gradients g (..., P): returns (delta, new state);
        phi_new = phi - delta. ``state`` = (t, raw first moment, raw second moment)."""
        t, m, v = state
        t += 1
        m = (1 - BETA1) * g if m is None else BETA1 * m + (1 - BETA1) * g
        v = (1 - BETA2) * g * g if v is None else BETA2 * v + (1 - BETA2) * g * g
        mom, vhat = m * (1.0 / (1 - BETA1 ** t)), v * (1.0 / (1 - BETA2 ** t))
        # One 2-D batch of coordinates: plain matrix products (fast BLAS) in the rule network.
        out = ops.reshape(self.rule(ops.reshape(self.features(g, mom, vhat), (-1, N_FEATURES))), g.shape)
        delta = ops.exp(self.log_step) * (mom / ops.sqrt(vhat + 1e-12) + out)
        return delta, (t, m, v)

    def _unroll(self, phi, xs, ys, steps, create_graph, xq=None, yq=None):
        """``steps`` learned steps from phi ({name: (T, ...)}), all tasks at once. Returns the
        final phi and the mean query loss after each step (when xq is given)."""
        names = list(phi)
        shapes = [phi[n].shape for n in names]
        sizes = [int(np.prod(s[1:])) for s in shapes]
        state, query = (0, None, None), []
        n_tasks = shapes[0][0]
        for _ in range(steps):
            loss = ops.sum(self.task_losses(phi, xs, ys))
            grads = grad(loss, [phi[n] for n in names], create_graph=create_graph, retain_graph=True)
            if not create_graph:
                grads = [g.detach() for g in grads]
            flat = ops.concatenate([ops.reshape(g, (n_tasks, -1)) for g in grads], axis=1)
            delta, state = self.update(flat, state)
            new, start = {}, 0
            for n, shape, size in zip(names, shapes, sizes):
                new[n] = phi[n] - ops.reshape(delta[:, start:start + size], shape)
                start += size
            phi = new
            if xq is not None:
                query.append(ops.mean(self.task_losses(phi, xq, yq)))
        return phi, query

    def meta_loss(self, batch: "TaskBatch", inner_steps: "int | None" = None) -> Tensor:
        """Query loss along the unrolled trajectory, (1/K) sum_t mean_i L_{Q_i}(phi_{i,t})."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        steps = check_int("LearnedOptimizer", "inner_steps",
                          self.inner_steps if inner_steps is None else inner_steps)
        theta = self.init_params()
        if not self.learn_init:  # a fresh leaf per call: the gradient needs phi_0, not theta
            theta = {n: p.detach().requires_grad_() for n, p in theta.items()}
        phi = self.expand(theta, xs.shape[0])
        with enable_grad():
            _, query = self._unroll(phi, xs, ys, steps, create_graph=not self.first_order, xq=xq, yq=yq)
        total = query[0]
        for q in query[1:]:
            total = total + q
        return total / float(len(query))

    def adapt(self, x, y, steps: "int | None" = None) -> dict:
        """The task model's parameters after ``steps`` steps of the learned rule from theta.
        Each step's graph is freed: cost and memory stay flat in ``steps``."""
        steps = check_int("LearnedOptimizer", "steps", self.inner_steps if steps is None else steps,
                          minimum=0)
        xs, ys, single = self._batched_input(x, y)
        phi = self.expand({n: p.detach() for n, p in self.init_params().items()}, xs.shape[0])
        state = (0, None, None)
        names = list(phi)
        for _ in range(steps):
            leaves = [Tensor(phi[n].data.copy()).requires_grad_() for n in names]
            with enable_grad():
                loss = ops.sum(self.task_losses(dict(zip(names, leaves)), xs, ys))
                grads = grad(loss, leaves)
            with no_grad():
                flat = ops.concatenate([ops.reshape(g, (g.shape[0], -1)) for g in grads], axis=1)
                delta, state = self.update(flat, state)
                start = 0
                for n, leaf in zip(names, leaves):
                    size = int(np.prod(leaf.shape[1:]))
                    phi[n] = leaf.detach() - ops.reshape(delta[:, start:start + size], leaf.shape)
                    start += size
        phi = {n: p.detach() for n, p in phi.items()}
        return {n: p[0] for n, p in phi.items()} if single else phi

    def update_curve(self, gradients) -> np.ndarray:
        """The learned first-step update as a function of the gradient: for each value g in
        ``gradients`` (a 1-D array), the delta the rule takes at step 1 from gradient g (so
        the first running statistics are g and g^2). For plots: SGD's would be lr g, Adam's
        lr sign(g)."""
        with no_grad():
            g = Tensor(np.asarray(gradients, dtype=self.log_step.dtype)[None, :])
            delta, _ = self.update(g, (0, None, None))
        return delta.data[0]

"""What every gradient-based meta-learner shares: running the task model with a given set
of parameters, over a leading task axis, and the inner loop of SGD steps.

Task batching. The meta-batch of T tasks runs as one computation: each parameter theta is
broadcast to theta_T of shape (T, *theta.shape), the task model maps inputs (T, shots, ...)
with per-task weights (batched matmul inside ``tm.linear``), and the inner loss is the
*sum* over tasks of each task's mean loss. Task i's loss depends only on slice i of
theta_T, so one ``tm.grad`` of that sum gives every task its own gradient at once, and
gradients flow back to theta through the broadcast (summed over tasks).
"""
import numpy as np

from .. import ops
from ..engine import Tensor, enable_grad, grad, no_grad
from ..checks import integer, number
from ..errors import ArgumentError, ShapeError
from ..nn import functional as F
from ..nn.module import Module, functional_call
from ..optim import functional as optim_f


def _loss_fn(loss):
    if callable(loss):
        return loss
    if loss == "mse":
        return _mse_per_task
    if loss == "cross_entropy":
        return _xent_per_task
    raise ArgumentError(f"loss must be 'mse', 'cross_entropy' or a callable "
                        f"(out, y) -> per-task losses, got {loss!r}")


def _mse_per_task(out, y):
    """Mean squared error of each task: (T, shots, d) -> (T,)."""
    F.check_same_shape(out, y, "mse")
    return ops.mse(out, y, axis=tuple(range(1, out.ndim)))


def _xent_per_task(logits, y):
    """Mean cross-entropy of each task: logits (T, shots, C), labels (T, shots) -> (T,)."""
    return ops.mean(F.cross_entropy(logits, y, reduction="none"), axis=1)


def check_number(owner, name, value, positive=True):
    return number(owner, name, value, low=0 if positive else None, strict_low=positive)


def check_int(owner, name, value, minimum=1):
    return integer(owner, name, value, minimum)


class MetaLearner:
    """Base: wraps a task model (an ``nn.Module``) and its loss."""

    # Whether meta.fit may compile the meta-step with tm.jit (its meta_loss uses tinymeta ops
    # only). A learner whose meta-gradient is computed outside the tape sets it False.
    traceable = True

    def __init__(self, model, loss="mse"):
        if not isinstance(model, Module):
            raise ArgumentError(f"{type(self).__name__}: model must be a tinymeta nn.Module, got "
                                f"{type(model).__name__}")
        self.model = model
        self.loss = loss
        self._task_loss = _loss_fn(loss)
        self.names = [n for n, _ in model.named_parameters()]

    # -- parameters
    def parameters(self):
        return self.model.parameters()

    def named_parameters(self):
        return list(self.model.named_parameters())

    def init_params(self):
        return dict(self.model.named_parameters())

    def state_dict(self):
        return {n: p.data.copy() for n, p in self.named_parameters()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state)

    # -- data
    def _as_tensor(self, x, labels=False):
        if type(x) is Tensor:
            return x
        x = np.asarray(x)
        if labels and x.dtype.kind in "iu":
            return x  # class labels stay integer arrays
        return Tensor(x, dtype=self.model.parameters()[0].dtype)

    def _batched_input(self, x, y):
        x, y = self._as_tensor(x), self._as_tensor(y, labels=True)
        single = x.ndim == 2
        if single:
            x = ops.unsqueeze(x, 0)
            y = y[None] if isinstance(y, np.ndarray) else ops.unsqueeze(y, 0)
        if x.shape[0] != y.shape[0] or x.shape[1] != y.shape[1]:
            raise ShapeError(f"{type(self).__name__}: inputs {x.shape} and targets {y.shape} must "
                             "share the task and shot axes: (tasks, shots, ...) or (shots, ...)")
        return x, y, single

    # -- running the task model
    def forward(self, params, x):
        """The task model on inputs (T, shots, ...) with (batched) parameters."""
        return functional_call(self.model, params, x)

    def task_losses(self, params, x, y):
        """Per-task losses, shape (T,)."""
        return self._task_loss(self.forward(params, x), y)

    @staticmethod
    def expand(params, n_tasks):
        """theta -> theta_T: one copy per task along a new leading axis (a broadcast view)."""
        return {n: ops.broadcast_to(p, (n_tasks,) + p.shape) for n, p in params.items()}

    def inner_loop(self, params, x, y, steps, lr, create_graph):
        """``steps`` SGD steps on each task's support loss, all tasks at once:
        phi <- phi - lr * grad_phi L_support(phi). ``lr``: a float, or one tensor per
        parameter (Meta-SGD). With ``create_graph`` the steps stay differentiable (second
        order); without, the result is first order: phi = theta + (a constant update), so
        gradients reach theta through the identity and memory does not grow with steps."""
        names = list(params)
        with enable_grad():  # adaptation is gradient descent, even when called in no_grad
            return self._inner_loop(params, names, x, y, steps, lr, create_graph)

    def _inner_loop(self, params, names, x, y, steps, lr, create_graph):
        if not create_graph:
            fast = [params[n].detach().requires_grad_() for n in names]
            for _ in range(steps):
                loss = ops.sum(self.task_losses(dict(zip(names, fast)), x, y))
                grads = grad(loss, fast)
                with no_grad():
                    fast, _ = optim_f.sgd(fast, grads, lr=lr)
                fast = [p.requires_grad_() for p in fast]
            if not any(params[n].requires_grad and not params[n].is_leaf for n in names):
                return {n: p.detach() for n, p in zip(names, fast)}
            # (in tinymeta ops, not on .data: tm.trace must see the update to replay it)
            return {n: params[n] + (p.detach() - params[n].detach()) for n, p in zip(names, fast)}
        for _ in range(steps):
            loss = ops.sum(self.task_losses(params, x, y))
            # retain_graph: the query loss shares this graph's first nodes (theta_T).
            grads = grad(loss, [params[n] for n in names], create_graph=True, retain_graph=True)
            new, _ = optim_f.sgd([params[n] for n in names], grads, lr=lr)
            params = dict(zip(names, new))
        return params

    # -- one meta-training step (Reptile overrides it)
    def meta_step(self, batch, meta_optimizer):
        """meta_loss, backward, optimizer step; returns the loss as a float."""
        loss = self.meta_loss(batch)
        meta_optimizer.zero_grad()
        loss.backward()
        meta_optimizer.step()
        return float(loss.item())

    # -- the public per-task API
    def adapt(self, x, y, steps=None):
        """Adapted parameters for the task(s) with support set (x, y): (shots, ...) for one
        task, or (tasks, shots, ...) for several (then parameters carry a task axis)."""
        raise NotImplementedError

    def adapt_with(self, x, y, steps, lr):
        """Plain (no meta-gradient) adaptation: ``steps`` inner SGD steps from theta.
        Each step builds the same small graph and frees it: cost and memory stay flat."""
        steps = check_int(type(self).__name__, "steps", steps, minimum=0)
        xs, ys, single = self._batched_input(x, y)
        theta = self.expand({n: p.detach() for n, p in self.init_params().items()}, xs.shape[0])
        params = self.inner_loop(theta, xs, ys, steps, lr, create_graph=False)
        return {n: p[0] for n, p in params.items()} if single else params

    def predict(self, params, x):
        """The task model's output with ``params`` (from ``adapt``) on inputs ``x``."""
        x = self._as_tensor(x)
        batched = next(iter(params.values())).ndim > self.init_params()[self.names[0]].ndim
        if batched and x.ndim == 2:
            raise ShapeError("predict: params carry a task axis but x has none; pass x with shape "
                             "(tasks, points, features)")
        return self.forward(params, x)

"""iMAML: implicit MAML (Rajeswaran, Finn, Kakade & Levine, "Meta-Learning with Implicit
Gradients", NeurIPS 2019). The meta-gradient without differentiating through the inner loop.

Model-agnostic like MAML, but the memory of the meta-gradient does not grow with the number
of inner steps: only the end point of the inner optimisation matters.
"""
import numpy as np

from .. import ops
from ..engine import Tensor, enable_grad, grad, is_grad_enabled
from ..function import Function
from .base import MetaLearner, check_int, check_number
from .tasks import TaskBatch


class _ImplicitMetaGradient(Function):
    """Value: the mean query loss (computed in ``forward``'s caller); gradient w.r.t. each
    theta: the implicit meta-gradient, solved beforehand and passed in ``ctx.grads``.

    The implicit gradient is a constant with respect to theta here (the linear solve is
    not differentiated again), so this op is first order: a third derivative of MAML's
    objective is not something iMAML defines."""

    @staticmethod
    def forward(ctx, value, grads, *thetas):
        ctx.grads = grads
        return value

    @staticmethod
    def backward(ctx, g):
        return (None, None) + tuple(g * Tensor(v) for v in ctx.grads)


class IMAML(MetaLearner):
    """``IMAML(model, inner_lr=0.01, inner_steps=10, lam=2.0, cg_steps=5, loss="mse")``.

    iMAML, Rajeswaran, Finn, Kakade & Levine, NeurIPS 2019 ("Meta-Learning with Implicit
    Gradients"). Each task T_i (support S_i, query Q_i) solves a proximally regularised
    inner problem from theta:

        phi_i = argmin_phi  L_{S_i}(phi) + (lam/2) ||phi - theta||^2

    approximately, by ``inner_steps`` gradient steps from phi = theta:

        phi <- phi - inner_lr * ( grad L_{S_i}(phi) + lam (phi - theta) )

    with L_S the per-task mean loss (the same as MAML's inner loop). At the optimum,
    d phi_i / d theta = (I + H_i / lam)^-1 with H_i = hess L_{S_i}(phi_i), so the
    meta-gradient of L_meta = (1/n) sum_i L_{Q_i}(phi_i) is

        grad_theta L_meta = (1/n) sum_i (I + H_i / lam)^-1 grad_phi L_{Q_i}(phi_i),

    each solve done by ``cg_steps`` of conjugate gradient on (I + H_i/lam) v = g_i using
    Hessian-vector products (two backward passes, never forming H). The inner loop keeps
    no graph, so memory is flat in ``inner_steps``.

    ``meta_loss(batch)`` returns L_meta; its value is the query loss and ``backward()`` on
    it puts the implicit meta-gradient into the model's parameters' ``.grad``, as with MAML.

        imaml = meta.IMAML(model, inner_lr=0.01, inner_steps=10, lam=2.0, cg_steps=5)
        opt = optim.Adam(imaml.parameters(), lr=1e-3)
        loss = imaml.meta_loss(batch); opt.zero_grad(); loss.backward(); opt.step()
    """

    traceable = False  # the implicit gradient is solved by CG on arrays, outside the tape

    def __init__(self, model, inner_lr: float = 0.01, inner_steps: int = 10, lam: float = 2.0,
                 cg_steps: int = 5, loss="mse"):
        super().__init__(model, loss)
        self.inner_lr = check_number("IMAML", "inner_lr", inner_lr)
        self.inner_steps = check_int("IMAML", "inner_steps", inner_steps)
        self.lam = check_number("IMAML", "lam", lam)
        self.cg_steps = check_int("IMAML", "cg_steps", cg_steps)

    # -- the inner problem
    def _proximal_inner_loop(self, theta, xs, ys, steps):
        """``steps`` gradient steps on L_S(phi) + lam/2 ||phi - theta||^2 for every task at
        once, from phi = theta; theta: {name: array (T, ...)}. No graph is kept."""
        names = list(theta)
        phi = [Tensor(theta[n].copy()).requires_grad_() for n in names]
        with enable_grad():
            for _ in range(steps):
                loss = ops.sum(self.task_losses(dict(zip(names, phi)), xs, ys))
                grads = grad(loss, phi)
                phi = [Tensor(p.data - self.inner_lr * (g.data + self.lam * (p.data - theta[n])))
                       .requires_grad_() for n, p, g in zip(names, phi, grads)]
        return dict(zip(names, phi))

    def _solve(self, phi, xs, ys, g):
        """Conjugate gradient on (I + H/lam) v = g, one system per task, all tasks batched.
        H v is the Hessian of the summed support loss, which is block diagonal over tasks,
        so one Hessian-vector product serves every task's system."""
        names = list(phi)
        with enable_grad():
            loss = ops.sum(self.task_losses(phi, xs, ys))
            grads = grad(loss, [phi[n] for n in names], create_graph=True)

        def matvec(v):
            dot = None
            for gr, vv in zip(grads, v):
                term = ops.sum(gr * Tensor(vv))
                dot = term if dot is None else dot + term
            with enable_grad():
                hv = grad(dot, [phi[n] for n in names], retain_graph=True, allow_unused=True)
            return [vv + (np.zeros_like(vv) if h is None else h.data) / self.lam for vv, h in zip(v, hv)]

        def tdot(a, b):  # per-task inner products, shape (T,)
            return sum((x * y).reshape(len(x), -1).sum(axis=1) for x, y in zip(a, b))

        def scale(c, a):  # c (T,) times each task's slice of a
            return [c.reshape((-1,) + (1,) * (x.ndim - 1)) * x for x in a]

        x = [np.zeros_like(gi) for gi in g]
        r = [gi.copy() for gi in g]
        p = [ri.copy() for ri in r]
        rs = tdot(r, r)
        for _ in range(self.cg_steps):
            if not np.any(rs > 0):
                break  # every system solved exactly
            ap = matvec(p)
            pap = tdot(p, ap)
            # A task whose residual is already zero (or whose curvature along p is not
            # positive: H can be indefinite away from a minimum) stops moving.
            ok = (rs > 0) & (pap > 0)
            alpha = np.where(ok, rs / np.where(ok, pap, 1.0), 0.0)
            x = [xi + ai for xi, ai in zip(x, scale(alpha, p))]
            r = [ri - ai for ri, ai in zip(r, scale(alpha, ap))]
            rs_new = tdot(r, r)
            beta = np.where(ok, rs_new / np.where(ok & (rs > 0), rs, 1.0), 0.0)
            p = [ri + bi for ri, bi in zip(r, scale(beta, p))]
            rs = np.where(ok, rs_new, 0.0)
        return x

    # -- the public API
    def meta_loss(self, batch: "TaskBatch", inner_steps: "int | None" = None) -> Tensor:
        """Mean query loss after the proximal inner loop; ``backward()`` on it accumulates
        the implicit meta-gradient (1/n) sum_i (I + H_i/lam)^-1 grad L_{Q_i}(phi_i)."""
        xs, ys, _ = self._batched_input(batch.x_support, batch.y_support)
        xq, yq, _ = self._batched_input(batch.x_query, batch.y_query)
        n_tasks = xs.shape[0]
        params = self.init_params()
        theta = {n: np.broadcast_to(p.data, (n_tasks,) + p.shape) for n, p in params.items()}
        phi = self._proximal_inner_loop(theta, xs, ys,
                                        self.inner_steps if inner_steps is None else inner_steps)
        with enable_grad():
            query = self.task_losses(phi, xq, yq)
            value = ops.mean(query)
        if not is_grad_enabled() or not any(p.requires_grad for p in params.values()):
            return value.detach()
        # Per-task query gradients: task i's loss depends only on slice i of phi.
        g_q = [gq.data for gq in grad(ops.sum(query), [phi[n] for n in params])]
        v = self._solve(phi, xs, ys, g_q)
        meta_grads = [vi.sum(axis=0) / n_tasks for vi in v]  # mean over tasks, summed to theta
        return _ImplicitMetaGradient.apply(value.detach(), meta_grads, *params.values())

    def adapt(self, x, y, steps: "int | None" = None) -> dict:
        """phi for the task(s) with support set (x, y): the proximal inner loop from theta."""
        steps = check_int("IMAML", "steps", self.inner_steps if steps is None else steps, minimum=0)
        xs, ys, single = self._batched_input(x, y)
        theta = {n: np.broadcast_to(p.data, (xs.shape[0],) + p.shape)
                 for n, p in self.init_params().items()}
        phi = {n: p.detach() for n, p in self._proximal_inner_loop(theta, xs, ys, steps).items()}
        return {n: p[0] for n, p in phi.items()} if single else phi

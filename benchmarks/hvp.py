"""Workload 4: a Hessian-vector product H v of a 1-40-40-1 ReLU MLP's MSE loss on 25
points (one sinusoid task), with respect to all parameters, by double backward
(reverse over reverse), float32, in microseconds. Check: v^T H v and |H v|^2."""
import numpy as np

import tinymeta as tm

from .common import mlp_init, mlp_jnp, sinusoid_batches, sq_norm, torch_thread_variants
from .harness import row
from .timing import measure, measure_interleaved

W, CASE = "hvp", "1-40-40-1 MSE, 25 points, f32"
SIZES = [1, 40, 40, 1]


def data():
    b = sinusoid_batches(1, 1, seed=5, k=25)[0]
    g = np.random.default_rng(6)
    init = mlp_init(SIZES, seed=0, dtype=np.float32)
    v = [g.standard_normal(a.shape).astype(np.float32) for a in init]
    return init, v, b.x_support[0], b.y_support[0]


def _check(hv, v):
    hv = [np.asarray(h, np.float64) for h in hv]
    return [float(sum(np.sum(h * vi) for h, vi in zip(hv, v))), sq_norm(hv)]


def tinymeta_runs(init, v, x, y):
    def loss(*ps):
        h = tm.relu(tm.linear(x, ps[0], ps[1]))
        h = tm.relu(tm.linear(h, ps[2], ps[3]))
        d = tm.linear(h, ps[4], ps[5]) - y
        return tm.mean(d * d)
    x, y = tm.tensor(x), tm.tensor(y)
    prim = tuple(tm.tensor(a) for a in init)
    tang = tuple(tm.tensor(a) for a in v)

    def via_func():
        return [h.data for h in tm.func.hvp(loss, prim, tang)]

    leaves = [tm.tensor(a, requires_grad=True) for a in init]

    def via_grad():
        gs = tm.grad(loss(*leaves), leaves, create_graph=True)
        dot = tm.sum(gs[0] * tang[0])
        for g, t in zip(gs[1:], tang[1:]):
            dot = dot + tm.sum(g * t)
        return [h.data for h in tm.grad(dot, leaves)]
    # Compiled: the same tm.func.hvp under tm.jit, its inputs passed as arrays.
    hvp_jit = tm.jit(lambda p, t: tm.func.hvp(loss, tuple(p), tuple(t)))
    prim_a, tang_a = [p.data for p in prim], [t.data for t in tang]

    def via_jit():
        return [h.data for h in hvp_jit(prim_a, tang_a)]
    return via_func, via_grad, via_jit


def torch_runs(torch, init, v, x, y):
    F = torch.nn.functional
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    vt = [torch.from_numpy(a) for a in v]

    def loss(ps):
        h = torch.relu(F.linear(x, ps[0], ps[1]))
        h = torch.relu(F.linear(h, ps[2], ps[3]))
        return F.mse_loss(F.linear(h, ps[4], ps[5]), y)
    leaves = [torch.from_numpy(a.copy()).requires_grad_() for a in init]

    def double_backward():
        gs = torch.autograd.grad(loss(leaves), leaves, create_graph=True)
        dot = sum((g * t).sum() for g, t in zip(gs, vt))
        return [h.numpy() for h in torch.autograd.grad(dot, leaves)]

    from torch.func import grad, vjp
    prim = tuple(torch.from_numpy(a.copy()) for a in init)
    g_fn = grad(lambda *ps: loss(ps), argnums=tuple(range(len(init))))

    def func_vjp():
        # reverse over reverse; forward over reverse (jvp of grad) fails in torch 2.13 on
        # this MLP ("ZeroTensors are immutable", relu's forward-mode derivative)
        return [h.numpy() for h in vjp(g_fn, *prim)[1](tuple(vt))]
    return double_backward, func_vjp


def jax_runs(jax, init, v, x, y):
    jnp = jax.numpy
    x, y = jnp.asarray(x), jnp.asarray(y)
    ps = [jnp.asarray(a) for a in init]
    vj = [jnp.asarray(a) for a in v]

    def loss(p):
        return jnp.mean((mlp_jnp(jnp, p, x) - y) ** 2)

    @jax.jit
    def rev_rev(p, t):
        return jax.grad(lambda q: sum(jnp.vdot(g, ti) for g, ti in zip(jax.grad(loss)(q), t)))(p)

    @jax.jit
    def fwd_rev(p, t):
        return jax.jvp(jax.grad(loss), (p,), (t,))[1]

    def run(fn):
        def go():
            out = fn(ps, vj)
            jax.block_until_ready(out)
            return [np.asarray(h) for h in out]
        return go
    return run(rev_rev), run(fwd_rev)


def autograd_run(init, v, x, y):
    import autograd
    import autograd.numpy as anp

    def loss(ps):
        h = anp.maximum(anp.dot(x, ps[0].T) + ps[1], 0)
        h = anp.maximum(anp.dot(h, ps[2].T) + ps[3], 0)
        return anp.mean((anp.dot(h, ps[4].T) + ps[5] - y) ** 2)
    g = autograd.grad(loss)
    hvp = autograd.grad(lambda ps, t: sum(anp.sum(gi * ti) for gi, ti in zip(g(ps), t)))
    ps = [a.copy() for a in init]
    return lambda: hvp(ps, v)


def run(ctx):
    init, v, x, y = data()
    rows = []

    def add(impl, fn, **kw):
        check = _check(fn(), v)
        rows.append(row(W, CASE, impl, measure(fn, ctx.budget, scale=1e6), "us", check=check,
                        rtol=2e-3, **kw))

    via_func, via_grad, via_jit = tinymeta_runs(init, v, x, y)
    # tinymeta, compiled and JAX in interleaved rounds: compiled/JAX is a goal, and a
    # neighbour's load must fall on both alike.
    fns = {"tinymeta": via_func, "tinymeta (compiled)": via_jit}
    jax = ctx.peer("jax")
    if jax is not None:
        fns["jax (jit, grad of grad)"], fns["jax (jit, jvp of grad)"] = jax_runs(jax, init, v, x, y)
    checked = {impl: _check(fn(), v) for impl, fn in fns.items()}
    timed = measure_interleaved(fns, ctx.budget, scale=1e6)
    notes = {"tinymeta": {"note": "tm.func.hvp"},
             "tinymeta (compiled)": {"goal": None, "note": "tm.jit replay of tm.func.hvp"}}
    for impl in fns:
        rows.append(row(W, CASE, impl, timed[impl], "us", check=checked[impl], rtol=2e-3,
                        **notes.get(impl, {})))
    add("tinymeta (tm.grad twice)", via_grad, goal=None)
    torch = ctx.peer("torch")
    if torch is not None:
        db, fj = torch_runs(torch, init, v, x, y)
        for suffix, cm in torch_thread_variants(torch):
            with cm():
                add(f"torch (autograd.grad twice{suffix})", db)
                add(f"torch (torch.func vjp of grad{suffix})", fj)
    else:
        ctx.skip_missing(rows, W, CASE, "torch", "torch")
    if jax is None:
        ctx.skip_missing(rows, W, CASE, "jax", "jax")
    if ctx.peer("autograd") is not None:
        add("autograd (HIPS, grad of grad)", autograd_run(init, v, x, y))
    else:
        ctx.skip_missing(rows, W, CASE, "autograd (HIPS)", "autograd")
    return rows

"""Workload 1: per-op overhead. Forward + backward of a chain of 200 small elementwise ops
on length-16 float64 vectors: 50 times (x = x * a; x = x + b; x = tanh(x); x = sin(x)),
then sum, then the gradient with respect to x. Reported in microseconds per op (the
chain's time / 200). Check: the sum and the squared norm of the gradient."""
import numpy as np

from .common import sq_norm, torch_thread_variants
from .harness import row
from .timing import measure

W, CASE, N_REP, N_OPS = "per_op", "200-op chain, float64", 50, 200


def data():
    g = np.random.default_rng(1)
    return g.standard_normal(16), g.standard_normal(16), g.standard_normal(16)


def chain(x, a, b, tanh, sin):
    """The 200 ops, written once for every library (``tanh``, ``sin``: that library's)."""
    for _ in range(N_REP):
        x = x * a
        x = x + b
        x = tanh(x)
        x = sin(x)
    return x


def numpy_floor(x0, a, b):
    """Forward keeping what the backward needs, then the backward by hand."""
    def run():
        tanhs = []
        x = x0
        for _ in range(N_REP):
            t = np.tanh(x * a + b)
            tanhs.append(t)
            x = np.sin(t)
        s = x.sum()
        g = np.ones_like(x0)
        for t in reversed(tanhs):
            g = g * np.cos(t)          # sin'
            g = g * (1.0 - t * t)      # tanh'
            g = g * a                  # the add passes g through; the mul scales by a
        return s, g
    return run


def tinymeta_run(x0, a, b):
    import tinymeta as tm
    a_t, b_t = tm.tensor(a), tm.tensor(b)

    def run():
        x = tm.tensor(x0, requires_grad=True)
        s = chain(x, a_t, b_t, tm.tanh, tm.sin).sum()
        s.backward()
        return float(s.item()), x.grad.data
    return run


def torch_run(torch, x0, a, b):
    a_t, b_t = torch.tensor(a), torch.tensor(b)

    def run():
        x = torch.tensor(x0, requires_grad=True)
        s = chain(x, a_t, b_t, torch.tanh, torch.sin).sum()
        s.backward()
        return float(s.item()), x.grad.numpy()
    return run


def jax_runs(jax, x0, a, b):
    jnp = jax.numpy
    a_j, b_j, x_j = jnp.asarray(a), jnp.asarray(b), jnp.asarray(x0)

    def f(x):
        return chain(x, a_j, b_j, jnp.tanh, jnp.sin).sum()
    vg = jax.value_and_grad(f)
    vg_jit = jax.jit(vg)

    def eager():
        s, g = vg(x_j)
        g.block_until_ready()
        return float(s), np.asarray(g)

    def jitted():
        s, g = vg_jit(x_j)
        g.block_until_ready()
        return float(s), np.asarray(g)
    return eager, jitted


def autograd_run(x0, a, b):
    import autograd
    import autograd.numpy as anp

    def f(x):
        return anp.sum(chain(x, a, b, anp.tanh, anp.sin))
    vg = autograd.value_and_grad(f)

    def run():
        s, g = vg(x0)
        return float(s), g
    return run


def run(ctx):
    x0, a, b = data()
    rows = []

    def add(impl, fn, **kw):
        s, g = fn()
        t = measure(fn, ctx.budget, per=N_OPS, scale=1e6)
        rows.append(row(W, CASE, impl, t, "us/op", check=[s, sq_norm([g])], **kw))

    add("tinymeta", tinymeta_run(x0, a, b))
    add("numpy (by hand)", numpy_floor(x0, a, b), note="hand-written forward + backward: the floor")
    torch = ctx.peer("torch")
    if torch is not None:
        for suffix, cm in torch_thread_variants(torch):
            with cm():
                add(f"torch (eager{suffix})", torch_run(torch, x0, a, b))
    else:
        ctx.skip_missing(rows, W, CASE, "torch (eager)", "torch")
    jax = ctx.peer("jax")
    if jax is not None:
        eager, jitted = jax_runs(jax, x0, a, b)
        add("jax (eager)", eager)
        add("jax (jit)", jitted)
    else:
        ctx.skip_missing(rows, W, CASE, "jax", "jax")
    if ctx.peer("autograd") is not None:
        add("autograd (HIPS)", autograd_run(x0, a, b))
    else:
        ctx.skip_missing(rows, W, CASE, "autograd (HIPS)", "autograd")
    return rows

"""Workload 3: one MAML meta-iteration on Finn et al.'s sinusoids: 1-40-40-1 ReLU MLP,
meta-batch 25, K = 10 support + 10 query points, inner lr 0.01, one inner step, MSE,
Adam (lr 1e-3) on the meta-loss, float32; second order and first order, in ms.

Every implementation starts from the same weights and runs the same pre-sampled task
batches in the same order. Check: the first meta-loss, the squared norm of the first
meta-gradient (this is where second and first order differ) and the third meta-loss."""
import numpy as np

import tinymeta as tm
from tinymeta import meta, optim

from .common import (Cycle, NumpyAdam, adam_jax, backward_step, bias_corrections, load_tinymeta_mlp,
                     mlp_init, mlp_jnp, sinusoid_batches, sq_norm, torch_thread_variants)
from .harness import row
from .timing import measure, measure_interleaved

W = "maml"
SIZES = [1, 40, 40, 1]
INNER_LR = 0.01
N_BATCHES = 10
CASES = (("second order", False), ("first order", True))


# ----------------------------------------------------------------------------- tinymeta

def tinymeta_maker(init, batches, first_order, inner_steps=1):
    """(step, gradients): one meta-iteration of tinymeta's MAML + Adam, and its last meta-gradient."""
    model = load_tinymeta_mlp(SIZES, init)
    maml = meta.MAML(model, inner_lr=INNER_LR, inner_steps=inner_steps, first_order=first_order)
    opt = optim.Adam(maml.parameters(), lr=1e-3)
    cyc = Cycle(batches)
    step = backward_step(lambda: maml.meta_loss(cyc.next()), opt)
    return step, lambda: [p.grad.data for p in maml.parameters()]


def tinymeta_compiled_maker(init, batches, first_order, fuse=True):
    """The same meta-iteration under tm.jit: traced once (and checked twice), then replayed
    (its elementwise chains fused once hot, unless not ``fuse``)."""
    model = load_tinymeta_mlp(SIZES, init)
    maml = meta.MAML(model, inner_lr=INNER_LR, first_order=first_order)
    opt = optim.Adam(maml.parameters(), lr=1e-3)
    cyc = Cycle(batches)

    @tm.jit(fuse=fuse)
    def body(batch):
        loss = maml.meta_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    step = lambda: float(body(cyc.next()).data)  # noqa: E731
    step.jitted = body
    return step, lambda: [p.grad.data for p in maml.parameters()]


def tinymeta_trace_seconds(init, batches):
    """Seconds from nothing to the first pure replay of the second-order step: the trace and
    its check, the check on the first new batch, and the first replay."""
    import time
    step, _ = tinymeta_compiled_maker(init, batches, False)
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    return time.perf_counter() - t0


# ----------------------------------------------------------------------------- NumPy by hand

def _fwd_bwd(ps, x, y, per_task, scale):
    """Batched over tasks: forward of the MLP and the gradient of scale * sum_i mse_i
    with respect to the parameters. ``per_task``: the parameters carry a task axis."""
    W1, b1, W2, b2, W3, b3 = ps
    K = x.shape[1]
    if per_task:
        z1 = x * W1[:, None, :, 0] + b1[:, None, :]              # in = 1: an outer product
        a1 = np.maximum(z1, 0)
        z2 = np.matmul(a1, W2.transpose(0, 2, 1)) + b2[:, None, :]
        a2 = np.maximum(z2, 0)
        out = np.matmul(a2, W3.transpose(0, 2, 1)) + b3[:, None, :]
    else:
        z1 = x * W1[:, 0] + b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ W2.T + b2
        a2 = np.maximum(z2, 0)
        out = a2 @ W3.T + b3
    diff = out - y
    losses = np.mean(diff[..., 0] ** 2, axis=1)
    d = diff * np.float32(2.0 * scale / K)                       # (T, K, 1)
    gW3 = np.matmul(d.transpose(0, 2, 1), a2)                    # (T, 1, 40)
    gb3 = d.sum(axis=1)
    da2 = d * (W3[:, None, 0, :] if per_task else W3[0])         # out = 1: a broadcast
    da2 *= z2 > 0
    gW2 = np.matmul(da2.transpose(0, 2, 1), a1)
    gb2 = da2.sum(axis=1)
    da1 = np.matmul(da2, W2) if per_task else da2 @ W2
    da1 *= z1 > 0
    gW1 = np.matmul(da1.transpose(0, 2, 1), x)
    gb1 = da1.sum(axis=1)
    return losses, [gW1, gb1, gW2, gb2, gW3, gb3]


def numpy_fo_maker(init, batches):
    params = [a.copy() for a in init]
    adam = NumpyAdam(params, lr=1e-3)
    cyc = Cycle(batches)
    lr = np.float32(INNER_LR)
    last = {}

    def step():
        b = cyc.next()
        T = b.x_support.shape[0]
        _, g = _fwd_bwd(params, b.x_support, b.y_support, False, 1.0)   # per-task gradients
        phi = [p - lr * gi for p, gi in zip(params, g)]                 # (T, ...) each
        losses, gq = _fwd_bwd(phi, b.x_query, b.y_query, True, 1.0 / T)
        meta_g = [gi.sum(axis=0) for gi in gq]                          # first order: dphi/dtheta = I
        last["g"] = meta_g
        adam.step(meta_g)
        return float(losses.mean())
    return step, lambda: last["g"]


# ----------------------------------------------------------------------------- PyTorch

def _torch_model(torch, init):
    nn = torch.nn
    model = nn.Sequential(nn.Linear(1, 40), nn.ReLU(), nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 1))
    with torch.no_grad():
        for p, a in zip(model.parameters(), init):
            p.copy_(torch.from_numpy(a))
    return model


def _torch_batches(torch, batches):
    f = torch.from_numpy
    return [(f(b.x_support), f(b.y_support), f(b.x_query), f(b.y_query)) for b in batches]


def torch_loop_maker(torch, init, batches, first_order):
    """learn2learn's way: a Python loop over tasks, torch.autograd.grad(create_graph=True)
    for the inner step, backward per task, gradients averaged."""
    F = torch.nn.functional
    model = _torch_model(torch, init)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    cyc = Cycle(_torch_batches(torch, batches))

    def fwd(ps, x):
        x = torch.relu(F.linear(x, ps[0], ps[1]))
        x = torch.relu(F.linear(x, ps[2], ps[3]))
        return F.linear(x, ps[4], ps[5])

    def step():
        xs, ys, xq, yq = cyc.next()
        T = xs.shape[0]
        opt.zero_grad()
        total = 0.0
        for i in range(T):
            ls = F.mse_loss(fwd(params, xs[i]), ys[i])
            g = torch.autograd.grad(ls, params, create_graph=not first_order)
            fast = [p - INNER_LR * gi for p, gi in zip(params, g)]
            lq = F.mse_loss(fwd(fast, xq[i]), yq[i]) / T
            lq.backward()
            total += lq.item()
        opt.step()
        return total
    return step, lambda: [p.grad.numpy() for p in params]


def torch_func_maker(torch, init, batches, first_order):
    """torch.func: functional_call + grad for the inner step, vmap over the tasks."""
    from torch.func import functional_call, grad, vmap
    F = torch.nn.functional
    model = _torch_model(torch, init)
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(params.values(), lr=1e-3)
    cyc = Cycle(_torch_batches(torch, batches))

    def task_loss(ps, x, y):
        return F.mse_loss(functional_call(model, ps, (x,)), y)

    def task_meta(ps, xs, ys, xq, yq):
        g = grad(task_loss)(ps, xs, ys)
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        fast = {k: ps[k] - INNER_LR * g[k] for k in ps}
        return task_loss(fast, xq, yq)
    batched = vmap(task_meta, in_dims=(None, 0, 0, 0, 0))
    step = backward_step(lambda: batched(params, *cyc.next()).mean(), opt)
    return step, lambda: [p.grad.numpy() for p in params.values()]


# ----------------------------------------------------------------------------- JAX

def jax_maker(jax, init, batches, first_order):
    jnp = jax.numpy
    adam = adam_jax(jnp)

    def task_loss(ps, x, y):
        return jnp.mean((mlp_jnp(jnp, ps, x) - y) ** 2)

    def task_meta(ps, xs, ys, xq, yq):
        g = jax.grad(task_loss)(ps, xs, ys)
        if first_order:
            g = jax.lax.stop_gradient(g)
        fast = [p - INNER_LR * gi for p, gi in zip(ps, g)]
        return task_loss(fast, xq, yq)

    def meta_loss(ps, xs, ys, xq, yq):
        return jnp.mean(jax.vmap(task_meta, in_axes=(None, 0, 0, 0, 0))(ps, xs, ys, xq, yq))

    @jax.jit
    def update(ps, m, v, bc1, bc2, xs, ys, xq, yq):
        loss, g = jax.value_and_grad(meta_loss)(ps, xs, ys, xq, yq)
        ps, m, v = adam(ps, g, m, v, bc1, bc2)
        return ps, m, v, loss, g

    jb = [tuple(jnp.asarray(a) for a in (b.x_support, b.y_support, b.x_query, b.y_query))
          for b in batches]
    cyc = Cycle(jb)
    st = {"p": [jnp.asarray(a) for a in init], "t": 0}
    st["m"] = [jnp.zeros_like(p) for p in st["p"]]
    st["v"] = [jnp.zeros_like(p) for p in st["p"]]

    def step():
        st["t"] += 1
        bc1, bc2 = bias_corrections(st["t"])
        st["p"], st["m"], st["v"], loss, st["g"] = update(st["p"], st["m"], st["v"], bc1, bc2,
                                                          *cyc.next())
        return float(loss)
    return step, lambda: [np.asarray(g) for g in st["g"]]


# ----------------------------------------------------------------------------- HIPS autograd

def autograd_maker(init, batches, first_order):
    import autograd
    import autograd.numpy as anp
    from autograd.tracer import getval

    def fwd(ps, x):
        x = anp.maximum(anp.dot(x, ps[0].T) + ps[1], 0)
        x = anp.maximum(anp.dot(x, ps[2].T) + ps[3], 0)
        return anp.dot(x, ps[4].T) + ps[5]

    def task_loss(ps, x, y):
        return anp.mean((fwd(ps, x) - y) ** 2)
    inner_grad = autograd.grad(task_loss)

    def meta_loss(ps, b):
        T = b.x_support.shape[0]
        total = 0.0
        for i in range(T):
            g = inner_grad(ps, b.x_support[i], b.y_support[i])
            if first_order:
                g = [getval(gi) for gi in g]
            fast = [p - INNER_LR * gi for p, gi in zip(ps, g)]
            total = total + task_loss(fast, b.x_query[i], b.y_query[i])
        return total / T
    vg = autograd.value_and_grad(meta_loss)
    params = [a.copy() for a in init]
    adam = NumpyAdam(params, lr=1e-3)
    cyc = Cycle(batches)
    last = {}

    def step():
        loss, g = vg(params, cyc.next())
        last["g"] = g = [np.asarray(gi, dtype=np.float32) for gi in g]
        adam.step(g)
        return float(loss)
    return step, lambda: last["g"]


# ----------------------------------------------------------------------------- the workload

def checks(step, grads):
    """The check values: first loss, first meta-gradient's squared norm, third loss."""
    l1 = step()
    g1 = sq_norm(grads())
    step()
    l3 = step()
    return [l1, g1, l3]


def check_and_time(ctx, step, grads, scale=1e3, time_it=True):
    """The check values, then (unless not ``time_it``) the timing of further steps."""
    if not time_it:
        return checks(step, grads)
    return checks(step, grads), measure(step, ctx.budget, scale=scale)


def run(ctx):
    init = mlp_init(SIZES, seed=0, dtype=np.float32)
    batches = sinusoid_batches(N_BATCHES, 25, seed=3)
    rows = []
    torch, jax, ag = ctx.peer("torch"), ctx.peer("jax"), ctx.peer("autograd")
    for case, fo in CASES:
        def add(impl, made, **kw):
            check, t = check_and_time(ctx, *made)
            rows.append(row(W, case, impl, t, "ms", check=check, rtol=2e-3, **kw))

        # tinymeta eager, compiled and JAX are timed in interleaved rounds: compiled/JAX is a
        # goal, and a neighbour's load must fall on both alike.
        made = {"tinymeta": tinymeta_maker(init, batches, fo),
                "tinymeta (compiled)": tinymeta_compiled_maker(init, batches, fo)}
        if jax is not None:
            made["jax (jit+vmap)"] = jax_maker(jax, init, batches, fo)
        checked = {impl: checks(*m) for impl, m in made.items()}
        timed = measure_interleaved({impl: m[0] for impl, m in made.items()}, ctx.budget, scale=1e3)
        for impl in made:
            rows.append(row(W, case, impl, timed[impl], "ms", check=checked[impl], rtol=2e-3,
                            **({"note": "tm.jit replay"} if impl == "tinymeta (compiled)" else {})))
        if jax is None:
            ctx.skip_missing(rows, W, case, "jax", "jax")
        if not fo:
            secs = tinymeta_trace_seconds(init, batches)
            rows.append(row(W, case, "tinymeta (trace + first replay)",
                            {"median": secs, "min": secs, "max": secs, "cpu_median": None, "reps": 1},
                            "s", note="one run: trace + check, check on new inputs, first replay"))
        if fo:
            add("numpy (by hand)", numpy_fo_maker(init, batches))
        if torch is not None:
            for suffix, cm in torch_thread_variants(torch):
                with cm():
                    add(f"torch (loop{suffix})", torch_loop_maker(torch, init, batches, fo))
                    add(f"torch (torch.func+vmap{suffix})", torch_func_maker(torch, init, batches, fo))
        else:
            ctx.skip_missing(rows, W, case, "torch", "torch")
        if ag is not None:
            add("autograd (HIPS loop)", autograd_maker(init, batches, fo))
        else:
            ctx.skip_missing(rows, W, case, "autograd (HIPS loop)", "autograd")
    return rows

"""Workload 2: one training step of a 784-256-256-10 ReLU MLP, softmax cross-entropy, Adam
(lr 1e-3), batch 128, float32, in milliseconds. Check: the losses of the first three
steps from the shared initialisation on the same batch (so the forward, the gradient and
Adam all have to agree).

Measured twice: with BLAS's thread count as the environment leaves it, and with one
thread (threadpoolctl for NumPy's OpenBLAS, torch.set_num_threads(1) for PyTorch; JAX's
XLA thread pool cannot be changed after import, so its row is the same program)."""
import contextlib

import numpy as np

import tinymeta as tm
from tinymeta import optim
from tinymeta.nn import functional as F

from .common import (NumpyAdam, adam_jax, backward_step, bias_corrections, load_tinymeta_mlp, mlp_init, mlp_jnp,
                     tinymeta_train_step, torch_threads)
from .harness import row
from .timing import measure, measure_interleaved

W = "mlp"
CASE = "784-256-256-10 b128 f32"
SIZES = [784, 256, 256, 10]


def data(batch=128, seed=2):
    g = np.random.default_rng(seed)
    return (g.standard_normal((batch, SIZES[0])).astype(np.float32),
            g.integers(0, SIZES[-1], batch).astype(np.int64))


def tinymeta_step(init, X, Y):
    return tinymeta_train_step(SIZES, init, X, Y, "cross_entropy")


def tinymeta_compiled_step(init, X, Y):
    """The same step under tm.jit: loss, zero_grad, backward and Adam's step, replayed."""
    model = load_tinymeta_mlp(SIZES, init)
    opt = optim.Adam(model.parameters(), lr=1e-3)

    @tm.jit
    def body(x, y):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return lambda: float(body(X, Y).data)


def numpy_step(init, X, Y):
    """The fastest plain NumPy we could write: preallocated buffers, in-place ops, BLAS."""
    params = [a.copy() for a in init]
    W1, b1, W2, b2, W3, b3 = params
    adam = NumpyAdam(params, lr=1e-3)
    n = X.shape[0]
    rows = np.arange(n)
    inv_n = np.float32(1.0 / n)

    def step():
        h1 = X @ W1.T
        h1 += b1
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ W2.T
        h2 += b2
        np.maximum(h2, 0, out=h2)
        z = h2 @ W3.T
        z += b3
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.log(s[:, 0]).sum() - z[rows, Y].sum()) / n
        e /= s
        e[rows, Y] -= 1
        e *= inv_n                                   # dL/dz
        gW3, gb3 = e.T @ h2, e.sum(axis=0)
        d2 = e @ W3
        d2 *= h2 > 0
        gW2, gb2 = d2.T @ h1, d2.sum(axis=0)
        d1 = d2 @ W2
        d1 *= h1 > 0
        gW1, gb1 = d1.T @ X, d1.sum(axis=0)
        adam.step([gW1, gb1, gW2, gb2, gW3, gb3])
        return loss
    return step


def torch_step(torch, init, X, Y):
    nn = torch.nn
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for p, a in zip(model.parameters(), init):
            p.copy_(torch.from_numpy(a))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    ce = torch.nn.functional.cross_entropy
    return backward_step(lambda: ce(model(Xt), Yt), opt)


def jax_step(jax, init, X, Y):
    jnp = jax.numpy
    adam = adam_jax(jnp)

    def loss_fn(params, x, y):
        z = mlp_jnp(jnp, params, x)
        lse = jax.nn.logsumexp(z, axis=1)
        return jnp.mean(lse - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0])

    @jax.jit
    def update(params, m, v, bc1, bc2, x, y):
        loss, g = jax.value_and_grad(loss_fn)(params, x, y)
        params, m, v = adam(params, g, m, v, bc1, bc2)
        return params, m, v, loss

    state = {"p": [jnp.asarray(a) for a in init], "t": 0}
    state["m"] = [jnp.zeros_like(p) for p in state["p"]]
    state["v"] = [jnp.zeros_like(p) for p in state["p"]]
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

    def step():
        state["t"] += 1
        bc1, bc2 = bias_corrections(state["t"])
        state["p"], state["m"], state["v"], loss = update(state["p"], state["m"], state["v"],
                                                          bc1, bc2, Xj, Yj)
        return float(loss)  # waits for the result
    return step


def autograd_step(init, X, Y):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp
    params = [a.copy() for a in init]
    adam = NumpyAdam(params, lr=1e-3)
    n = X.shape[0]

    def loss_fn(ps):
        z = X
        for i in range(3):
            z = anp.dot(z, ps[2 * i].T) + ps[2 * i + 1]
            if i < 2:
                z = anp.maximum(z, 0)
        return anp.mean(logsumexp(z, axis=1) - z[np.arange(n), Y])
    vg = autograd.value_and_grad(loss_fn)

    def step():
        loss, g = vg(params)
        adam.step([np.asarray(gi, dtype=np.float32) for gi in g])
        return float(loss)
    return step


@contextlib.contextmanager
def one_thread(torch):
    """NumPy's BLAS (threadpoolctl) and PyTorch, if given, on one thread inside the block."""
    import threadpoolctl
    with threadpoolctl.threadpool_limits(1):
        with torch_threads(torch, 1) if torch is not None else contextlib.nullcontext():
            yield


def _measure_all(ctx, case, init, X, Y, rows):
    # Every implementation's step is built and checked first, then tinymeta's two and NumPy's
    # are timed in interleaved rounds: the compiled/NumPy ratio is a goal, and a neighbour's
    # load that comes and goes must fall on both sides of it alike.
    makers = {"tinymeta": lambda: tinymeta_step(init, X, Y),
              "tinymeta (compiled)": lambda: tinymeta_compiled_step(init, X, Y),
              "numpy (by hand)": lambda: numpy_step(init, X, Y)}
    notes = {"tinymeta (compiled)": "tm.jit replay"}
    torch = ctx.peer("torch")
    if torch is not None:
        makers["torch"] = lambda: torch_step(torch, init, X, Y)
    else:
        ctx.skip_missing(rows, W, case, "torch", "torch")
    jax = ctx.peer("jax")
    if jax is not None:
        makers["jax (jit)"] = lambda: jax_step(jax, init, X, Y)
        if "1 thread" in case:
            notes["jax (jit)"] = "XLA's own thread pool, not limited by threadpoolctl"
    else:
        ctx.skip_missing(rows, W, case, "jax (jit)", "jax")
    if ctx.peer("autograd") is not None:
        makers["autograd (HIPS)"] = lambda: autograd_step(init, X, Y)
    else:
        ctx.skip_missing(rows, W, case, "autograd (HIPS)", "autograd")
    steps, checks = {}, {}
    for impl, make in makers.items():
        steps[impl] = make()
        checks[impl] = [steps[impl]() for _ in range(3)]  # the first three losses from the shared init
    # The peers come after, one by one: JAX's and PyTorch's thread pools keep spinning a
    # while after each call, and interleaved they would take the second core from
    # NumPy's BLAS threads in the rows the goal compares.
    ours = ("tinymeta", "tinymeta (compiled)", "numpy (by hand)")
    timings = measure_interleaved({impl: steps[impl] for impl in ours}, ctx.budget, scale=1e3)
    for impl in makers:
        if impl not in ours:
            timings[impl] = measure(steps[impl], ctx.budget, scale=1e3)
    for impl in makers:
        extra = {"note": notes[impl]} if impl in notes else {}
        rows.append(row(W, case, impl, timings[impl], "ms", check=checks[impl], rtol=2e-3, **extra))


def run(ctx):
    init = mlp_init(SIZES, seed=0, dtype=np.float32)
    X, Y = data()
    rows = []
    if ctx.threads:
        _measure_all(ctx, f"{CASE}, threads={ctx.threads}" if ctx.threads != 1 else
                     f"{CASE}, BLAS 1 thread", init, X, Y, rows)
        return rows
    _measure_all(ctx, CASE, init, X, Y, rows)
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        ctx.note("threadpoolctl not installed: the MLP step was not re-measured with one BLAS "
                 "thread (run with --threads 1 for that)")
        return rows
    with one_thread(ctx.peer("torch")):
        _measure_all(ctx, f"{CASE}, BLAS 1 thread", init, X, Y, rows)
    return rows

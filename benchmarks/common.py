"""The identical inputs every implementation starts from (initial weights, data, task
batches), the training step shared by tinymeta and PyTorch (their APIs match), Adam
written once in NumPy and once in jax.numpy, and the thread and kernel switches."""
import contextlib

import numpy as np
import tinymeta as tm
from tinymeta import meta, nn, optim
from tinymeta.nn import functional as F


# ----------------------------------------------------------------------------- identical inputs

def mlp_init(sizes, seed, dtype):
    """Weights as tinymeta's ``nn.MLP(sizes, rng=seed)`` draws them (PyTorch's default
    init): a list [W1, b1, W2, b2, ...], W of shape (out, in). Every implementation
    starts from these arrays."""
    model = nn.MLP(sizes, rng=seed, dtype=dtype)
    return [p.data.copy() for p in model.parameters()]


def load_tinymeta_mlp(sizes, init, activation="relu"):
    """A tinymeta MLP holding the weights ``init`` (from mlp_init)."""
    model = nn.MLP(sizes, activation=activation, rng=0, dtype=init[0].dtype)
    for p, a in zip(model.parameters(), init):
        p.data[...] = a
    return model


def sinusoid_batches(n_batches, meta_batch, seed, k=10):
    """Pre-sampled task batches (Finn's sinusoids), the same for everyone."""
    tasks = meta.tasks.Sinusoid(k_support=k, k_query=k, dtype=np.float32)
    gen = np.random.default_rng(seed)
    return [tasks.sample(meta_batch, gen) for _ in range(n_batches)]


class Cycle:
    """The task batches in order, from the first, for every implementation."""

    def __init__(self, batches):
        self.batches, self.i = batches, 0

    def next(self):
        b = self.batches[self.i % len(self.batches)]
        self.i += 1
        return b


# ----------------------------------------------------------------------------- training steps

def backward_step(compute_loss, opt):
    """One optimizer step as a function returning the loss: loss, zero_grad, backward,
    step. tinymeta's and PyTorch's APIs are the same here, so both run this code."""
    def step():
        loss = compute_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())
    return step


def tinymeta_train_step(sizes, init, x, y, loss):
    """One Adam training step of a tinymeta MLP on (x, y) with ``loss`` ("mse" or
    "cross_entropy"), as a function returning the loss: the step every MLP workload times."""
    model = load_tinymeta_mlp(sizes, init)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = F.mse_loss if loss == "mse" else F.cross_entropy
    return backward_step(lambda: loss_fn(model(x), y), opt)


def mlp_jnp(jnp, params, x):
    """The MLP forward in jax.numpy: ReLU between layers, params as from mlp_init."""
    n = len(params) // 2
    for i in range(n):
        x = x @ params[2 * i].T + params[2 * i + 1]
        if i < n - 1:
            x = jnp.maximum(x, 0)
    return x


class NumpyAdam:
    """PyTorch's Adam, in place, for the hand-written floors and the HIPS autograd peer:
    p -= lr * (m / bc1) / (sqrt(v / bc2) + eps)."""

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.tmp = [np.empty_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        dt = self.params[0].dtype.type
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        lr1, ib2, b1, b2 = dt(self.lr / bc1), dt(1 / bc2), dt(self.b1), dt(self.b2)
        omb1, omb2, eps = dt(1 - self.b1), dt(1 - self.b2), dt(self.eps)
        for p, g, m, v, tmp in zip(self.params, grads, self.m, self.v, self.tmp):
            m *= b1
            np.multiply(g, omb1, out=tmp)
            m += tmp
            v *= b2
            np.multiply(g, g, out=tmp)
            tmp *= omb2
            v += tmp
            np.multiply(v, ib2, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= lr1
            p -= tmp


def adam_jax(jnp):
    """Adam as a pure jnp function (to be jitted with the gradient)."""
    def update(params, grads, m, v, bc1, bc2, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        m = [b1 * mi + (1 - b1) * g for mi, g in zip(m, grads)]
        v = [b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads)]
        params = [p - lr * (mi / bc1) / (jnp.sqrt(vi / bc2) + eps) for p, mi, vi in zip(params, m, v)]
        return params, m, v
    return update


def bias_corrections(t, dtype=np.float32, b1=0.9, b2=0.999):
    """Adam's bias corrections 1 - b1^t and 1 - b2^t, as arrays (arguments of a jitted step)."""
    return np.asarray(1 - b1 ** t, dtype), np.asarray(1 - b2 ** t, dtype)


def sq_norm(arrays):
    """The squared norm of a list of arrays, in float64 (a check value)."""
    return float(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in arrays))


@contextlib.contextmanager
def torch_threads(torch, n: int):
    """PyTorch on ``n`` threads inside the block, then back to its previous count."""
    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def torch_thread_variants(torch):
    """[(impl suffix, context manager)]: torch as configured, and with one thread when it
    uses more (on a loaded 2-core machine its OpenMP pool can be 10-100x slower on small ops)."""
    out = [("", contextlib.nullcontext)]
    if torch.get_num_threads() > 1:
        out.append((", 1 thread", lambda: torch_threads(torch, 1)))
    return out


@contextlib.contextmanager
def kernels_enabled(on: bool):
    """tinymeta's compiled kernels on or off inside the block (``tm.kernels.set_enabled``;
    the dispatch reads the switch at every call), then back as they were."""
    was = tm.kernels.enabled()
    tm.kernels.set_enabled(on)
    try:
        yield
    finally:
        # enabled() is "wanted and numba usable": restoring it is exact when numba works,
        # and when it does not, either value runs NumPy.
        tm.kernels.set_enabled(was)

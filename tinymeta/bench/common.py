"""What every workload shares: the run context, the peers (imported on demand, a note when
one is missing), the identical initialisations and data, and Adam written once in NumPy."""
import importlib
import os

import numpy as np

from .harness import Budget, log

PEERS = ("torch", "jax", "autograd")

# The goals from the issues (tinymeta's median must be at most this, in the row's unit).
GOALS = {
    ("per_op", "200-op chain, float64"): 4.0,           # us per op
    ("mlp", "784-256-256-10 b128 f32"): 1.5,            # ms per step
    ("mlp", "784-256-256-10 b128 f32, BLAS 1 thread"): 1.5,
    ("maml", "second order"): 1.1,                      # ms per meta-iteration
    ("maml", "first order"): 0.7,
    ("hvp", "1-40-40-1 MSE, 25 points, f32"): 400.0,    # us
    ("cold", "warm numba cache"): 1.0,                  # s
    ("cold", "empty numba cache"): 4.0,
}


class Context:
    def __init__(self, quick, peers, threads=None, plots=None):
        self.quick = quick
        self.budget = Budget(quick)
        self.peers = list(peers)
        self.threads = threads
        self.plots = plots
        self.notes = []
        self._mods = {}

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)
            log(f"note: {text}")

    def peer(self, name):
        """The peer's module, or None (with a note) when it is not wanted or not installed."""
        if name not in self.peers:
            return None
        if name in self._mods:
            return self._mods[name]
        mod = None
        try:
            if name == "jax":
                os.environ.setdefault("JAX_PLATFORMS", "cpu")
                mod = importlib.import_module("jax")
                mod.config.update("jax_enable_x64", True)  # the per-op chain is float64
                importlib.import_module("jax.numpy")
            elif name == "torch":
                mod = importlib.import_module("torch")
                if self.threads:
                    mod.set_num_threads(self.threads)
            elif name == "autograd":
                mod = importlib.import_module("autograd")
                importlib.import_module("autograd.numpy")
        except Exception as e:  # ImportError, or a broken install
            self.note(f"{name} unavailable ({type(e).__name__}: {e}); its column is skipped "
                      "(pip install 'tinymeta[bench]')")
            mod = None
        self._mods[name] = mod
        return mod

    def versions(self):
        out = {}
        for name in self.peers:
            m = self._mods.get(name)
            if m is not None:
                out[name] = getattr(m, "__version__", "?")
                if name == "torch":
                    out["torch_threads"] = m.get_num_threads()
                    out["torch_interop_threads"] = m.get_num_interop_threads()
        return out


def row(workload, case, impl, timing, unit, check=None, **kw):
    r = {"workload": workload, "case": case, "impl": impl, "unit": unit, **timing}
    if check is not None:
        r["check"] = [float(c) for c in check]
    goal = GOALS.get((workload, case))
    if impl == "tinymeta" and goal is not None and "goal" not in kw:
        r["goal"] = goal
    r.update(kw)
    return r


def skipped(workload, case, impl, why):
    return {"workload": workload, "case": case, "impl": impl, "skipped": why}


# ----------------------------------------------------------------------------- identical inputs

def mlp_init(sizes, seed, dtype):
    """Weights as tinymeta's ``nn.MLP(sizes, rng=seed)`` draws them (PyTorch's default
    init): a list [W1, b1, W2, b2, ...], W of shape (out, in). Every implementation
    starts from these arrays."""
    from .. import nn
    model = nn.MLP(sizes, rng=seed, dtype=dtype)
    return [p.data.copy() for p in model.parameters()]


def load_tinymeta_mlp(sizes, init, activation="relu"):
    from .. import nn
    model = nn.MLP(sizes, activation=activation, rng=0, dtype=init[0].dtype)
    for p, a in zip(model.parameters(), init):
        p.data[...] = a
    return model


def tinymeta_train_step(sizes, init, x, y, loss):
    """One Adam training step of a tinymeta MLP on (x, y) with ``loss`` ("mse" or
    "cross_entropy"), as a function returning the loss: the step every MLP workload times."""
    from .. import optim
    from ..nn import functional as F
    model = load_tinymeta_mlp(sizes, init)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = F.mse_loss if loss == "mse" else F.cross_entropy

    def step():
        value = loss_fn(model(x), y)
        opt.zero_grad()
        value.backward()
        opt.step()
        return float(value.item())
    return step


def sinusoid_batches(n_batches, meta_batch, seed, k=10):
    """Pre-sampled task batches (Finn's sinusoids), the same for everyone."""
    from ..meta.tasks import Sinusoid
    tasks = Sinusoid(k_support=k, k_query=k, dtype=np.float32)
    gen = np.random.default_rng(seed)
    return [tasks.sample(meta_batch, gen) for _ in range(n_batches)]


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
    return np.asarray(1 - b1 ** t, dtype), np.asarray(1 - b2 ** t, dtype)


def sq_norm(arrays):
    return float(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in arrays))


def torch_thread_variants(torch):
    """[(impl suffix, context manager)]: torch as configured, and with one thread when it
    uses more (on a loaded 2-core machine its OpenMP pool can be 10-100x slower on small ops)."""
    import contextlib
    out = [("", contextlib.nullcontext)]
    n = torch.get_num_threads()
    if n > 1:
        @contextlib.contextmanager
        def one():
            torch.set_num_threads(1)
            try:
                yield
            finally:
                torch.set_num_threads(n)
        out.append((", 1 thread", one))
    return out

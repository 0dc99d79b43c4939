"""Every differentiable op with inputs where it is smooth: the table behind
``tinymeta gradcheck`` (first and second order against finite differences, float64)."""
import numpy as np

from . import linalg, ops
from .engine import Tensor
from .gradcheck import gradcheck, gradgradcheck, max_error


def _cases():
    r = np.random.default_rng(0)
    n = lambda *s: r.standard_normal(s)  # noqa: E731
    away = lambda *s: np.sign(n(*s)) * (0.2 + np.abs(n(*s)))  # noqa: E731  (no kinks at 0)
    pos = lambda *s: 0.5 + r.random(s)  # noqa: E731
    well = lambda k: n(k, k) + k * np.eye(k)  # noqa: E731
    labels = np.array([0, 2, 1])
    return [
        ("add (broadcast)", lambda a, b: a + b, [n(3, 4), n(4)]),
        ("sub (broadcast)", lambda a, b: a - b, [n(3, 1), n(1, 4)]),
        ("mul (broadcast)", lambda a, b: a * b, [n(2, 3, 4), n(3, 1)]),
        ("div", lambda a, b: a / b, [n(3, 4), pos(3, 4)]),
        ("neg", lambda a: -a, [n(5)]),
        ("pow (tensor ** 3)", lambda a: a ** 3, [n(4)]),
        ("pow (tensor ** tensor)", lambda a, b: a ** b, [pos(4), n(4)]),
        ("matmul 2-D", lambda a, b: a @ b, [n(3, 4), n(4, 2)]),
        ("matmul batched", lambda a, b: a @ b, [n(2, 3, 4), n(4, 2)]),
        ("matmul vector", lambda a, b: a @ b, [n(4), n(4, 3)]),
        ("matmul_nt (a @ b^T)", ops.matmul_nt, [n(2, 3, 4), n(5, 4)]),
        ("matmul_tn (a^T @ b)", ops.matmul_tn, [n(2, 4, 3), n(4, 5)]),
        ("linear", lambda x, w, b: ops.linear(x, w, b), [n(3, 4), n(2, 4), n(2)]),
        ("linear (task-batched)", lambda x, w, b: ops.linear(x, w, b), [n(2, 3, 4), n(2, 2, 4), n(2, 2)]),
        ("linear + relu (fused)", lambda x, w, b: ops.linear(x, w, b, activation="relu"),
         [n(3, 4), n(2, 4), n(2)]),
        ("linear + relu (task-batched)", lambda x, w, b: ops.linear(x, w, b, activation="relu"),
         [n(2, 3, 4), n(2, 2, 4), n(2, 2)]),
        ("mse (all axes)", lambda a, b: ops.mse(a, b), [n(3, 4), n(3, 4)]),
        ("mse (per task)", lambda a, b: ops.mse(a, b, axis=(1, 2)), [n(2, 3, 1), n(2, 3, 1)]),
        ("sub_scaled (p - lr d)", lambda p, lr, d: ops.sub_scaled(p, lr, d), [n(3, 2), pos(1), n(3, 2)]),
        ("exp", ops.exp, [n(4)]),
        ("log", ops.log, [pos(4)]),
        ("sqrt", ops.sqrt, [pos(4)]),
        ("abs", ops.abs, [away(4)]),
        ("sin", ops.sin, [n(4)]),
        ("cos", ops.cos, [n(4)]),
        ("tanh", ops.tanh, [n(4)]),
        ("sigmoid", ops.sigmoid, [n(4)]),
        ("relu", ops.relu, [away(4)]),
        ("leaky_relu", lambda a: ops.leaky_relu(a, 0.1), [away(4)]),
        ("softplus", ops.softplus, [n(4)]),
        ("clip", lambda a: ops.clip(a, -0.5, 0.5), [np.array([-1.0, -0.2, 0.3, 0.9])]),
        ("maximum", ops.maximum, [n(4), n(4) + 0.05]),
        ("minimum", ops.minimum, [n(4), n(4) + 0.05]),
        ("where", lambda a, b: ops.where(np.array([True, False, True]), a, b), [n(3), n(3)]),
        ("sum (axis, keepdims)", lambda a: ops.sum(a, axis=1, keepdims=True), [n(3, 4)]),
        ("mean", lambda a: ops.mean(a, axis=0), [n(3, 4)]),
        ("var", lambda a: ops.var(a, axis=-1), [n(3, 4)]),
        ("max", lambda a: ops.max(a, axis=1), [n(3, 4)]),
        ("min", lambda a: ops.min(a), [n(3, 4)]),
        ("logsumexp", lambda a: ops.logsumexp(a, axis=1), [n(3, 4)]),
        ("softmax", lambda a: ops.softmax(a, axis=-1), [n(3, 4)]),
        ("log_softmax", lambda a: ops.log_softmax(a, axis=0), [n(3, 4)]),
        ("softmax_cross_entropy", lambda a: ops.softmax_cross_entropy(a, labels), [n(3, 4)]),
        ("reshape", lambda a: ops.reshape(a, (4, 3)), [n(3, 4)]),
        ("transpose", lambda a: ops.transpose(a, 0, 2), [n(2, 3, 4)]),
        ("broadcast_to", lambda a: ops.broadcast_to(a, (3, 4)), [n(1, 4)]),
        ("squeeze/unsqueeze", lambda a: ops.unsqueeze(ops.squeeze(a, 1), 0), [n(3, 1, 2)]),
        ("getitem (slice)", lambda a: a[1:, ::-1], [n(3, 4)]),
        ("getitem (int array, repeats)", lambda a: a[np.array([0, 2, 0])], [n(3, 2)]),
        ("getitem (bool mask)", lambda a: a[np.array([True, False, True])], [n(3, 2)]),
        ("concatenate", lambda a, b: ops.concatenate([a, b], axis=1), [n(2, 3), n(2, 2)]),
        ("stack", lambda a, b: ops.stack([a, b], axis=0), [n(2, 3), n(2, 3)]),
        ("linalg.solve", linalg.solve, [well(3), n(3, 2)]),
        ("linalg.inv", linalg.inv, [well(3)]),
        ("linalg.pinv (tall)", linalg.pinv, [n(4, 2)]),
        ("linalg.pinv (wide)", linalg.pinv, [n(2, 4)]),
    ]


def run(name_filter=None):
    """Yield (op, first-order ok, second-order ok, max error) for every op."""
    for name, fn, arrays in _cases():
        if name_filter and name_filter not in name:
            continue
        def make():
            return [Tensor(a.copy(), dtype=np.float64, requires_grad=True) for a in arrays]
        ok1 = gradcheck(fn, make(), raise_exception=False)
        ok2 = gradgradcheck(fn, make(), raise_exception=False)
        err = max(max_error(fn, make(), order=1), max_error(fn, make(), order=2))
        yield name, ok1, ok2, err

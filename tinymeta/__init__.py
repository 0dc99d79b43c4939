"""tinymeta: reverse-mode autodiff to any order on NumPy, and meta-learning built on it.

    import tinymeta as tm
    x = tm.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x @ tm.randn(2, 3, rng=0)).tanh().sum()
    y.backward()                      # x.grad
    (gx,) = tm.grad(y, [x], create_graph=True)   # differentiable again

Layers (each imports only those before it): kernels -> engine, ops -> nn, optim ->
learners, train, data -> meta -> examples and the command line.
"""
import importlib

from . import errors, kernels
from .creation import (arange, as_rng, eye, full, linspace, manual_seed, ones, ones_like, rand,
                       randn, tensor, zeros, zeros_like)
from .engine import (Tensor, backward, detect_anomaly, enable_grad, get_default_dtype, grad,
                     is_grad_enabled, no_grad, set_default_dtype)
from .errors import (AnomalyError, ArgumentError, CheckpointError, DTypeError, GradcheckError,
                     GraphError, InplaceError, ShapeError, TinymetaError, TraceError)
from .function import Function
from .gradcheck import gradcheck, gradgradcheck
from .derivcheck import (DerivativeReport, PrecisionWarning, check_backward, check_grad,
                         check_hessian)
from .ops import (abs, add, astype, broadcast_to, clip, concatenate, cos, div, exp, expand,
                  flatten, leaky_relu, linear, log, log_softmax, logsumexp, matmul, max, maximum,
                  mean, min, minimum, mse, mul, neg, pow, relu, reshape, sigmoid, sin, softmax,
                  softmax_cross_entropy, softplus, sqrt, squeeze, stack, sub, sub_scaled, sum, tanh, transpose,
                  unsqueeze, var, where)
from . import func, linalg, viz  # noqa: E402  (they build on the names above)
from .checkpoint import checkpoint  # noqa: E402  (recomputes fn in backward; any order)
from .tape import Program, jit, trace

__version__ = "0.1.0"

_LAZY = {"nn", "optim", "meta", "learners", "train", "data", "metrics", "cli"}


def __getattr__(name):
    # The learning layers load on first use, so `import tinymeta` stays fast.
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tinymeta' has no attribute '{name}'")

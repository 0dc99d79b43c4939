"""The op table: every differentiable op, its forward beside its derivative.

Read in this order:

* ``core.py``: the machinery (``Op``, ``defop``, ``apply``) and the helpers every family
  shares; also ``broadcast_to``, ``sum_to`` and ``astype``, which the machinery itself
  uses to fit each gradient to its input;
* ``elementwise.py``: arithmetic, math functions, activations, ``where``, comparisons;
* ``reductions.py``: ``sum``, ``max``, ``min``, ``mean``, ``var``, ``logsumexp``, softmax;
* ``shape.py``: reshape, transpose, squeeze, indexing, concatenate, stack;
* ``linalg.py``: ``matmul`` and its transposed forms, ``solve``, ``inv``, ``pinv``;
* ``fused.py``: ``linear``, ``mse``, ``sub_scaled``, ``softmax_cross_entropy`` (kernel-backed);
* ``methods.py``: Tensor's operators (``+``, ``@``, ``.sum()``...) bound to these ops.

Derived ops (``mean``, ``stack``, ``squeeze``...) are compositions of primitives and need
no rule of their own.
"""
from . import methods  # noqa: F401  (gives Tensor its operators)
from .core import Op, apply, as_tensor, astype, broadcast_to, defop, defop_nondiff, sum_to
from .elementwise import (abs, add, clip, cos, div, equal, exp, greater, greater_equal, isfinite, leaky_relu,
                          less, less_equal, log, maximum, minimum, mul, neg, not_equal, pow, relu, relu_backward,
                          sigmoid, sigmoid_backward, sign, sin, softplus, sqrt, sub, tanh, tanh_backward, where)
from .fused import linear, mse, mse_grad, softmax_cross_entropy, sub_scaled
from .linalg import inv, matmul, matmul_nt, matmul_tn, pinv, solve
from .reductions import log_softmax, logsumexp, max, mean, min, softmax, sum, var
from .shape import (concatenate, expand, flatten, getitem, reshape, scatter, squeeze, stack, swap_last2,
                    transpose, unsqueeze)

index = getitem  # the name Tensor.__getitem__ had before the op table became a package

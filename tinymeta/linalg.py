"""Differentiable linear algebra (``tm.linalg``): ``solve``, ``inv``, ``pinv``, batched over
leading axes and differentiable to any order. Their rules are in ``tinymeta/ops/linalg.py``."""
from .ops.linalg import inv, pinv, solve

__all__ = ["solve", "inv", "pinv"]

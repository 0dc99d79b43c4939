"""Differentiable linear algebra: ``solve``, ``inv``, ``pinv`` (batched over leading axes).

Each rule is written with ``matmul``, ``transpose`` and the op itself, so second and
higher derivatives flow through a solve (what closed-form meta-learners like R2-D2 need).
"""
import numpy as np

from .errors import ArgumentError, ShapeError
from .ops import _swap, defop, matmul, squeeze, unsqueeze


def _square(name, a):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{name}: needs square matrices (..., n, n), got shape {a.shape}")


def _solve_fwd(a, b):
    _square("solve", a)
    vector = b.ndim == 1
    if (b.shape[0] if vector else b.shape[-2]) != a.shape[-1]:
        raise ShapeError(f"solve: A has shape {a.shape} and B has shape {b.shape}; B's "
                         f"{'length' if vector else 'second-to-last dimension'} must be {a.shape[-1]}")
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError as exc:
        raise ShapeError(f"solve: A (shape {a.shape}) is singular, so A X = B has no unique "
                         "solution; add a ridge term (A + lambda I) or use tm.linalg.pinv") from exc


def _solve_vjp_b(g, x, a, b):
    if b.ndim == 1:  # a vector right-hand side, possibly broadcast over a batch of A
        return squeeze(solve(_swap(a), unsqueeze(g, -1)), -1)
    return solve(_swap(a), g)


def _solve_vjp_a(g, x, a, b):
    gb = _solve_vjp_b(g, x, a, b)
    if b.ndim == 1:
        return -unsqueeze(gb, -1) * unsqueeze(x, -2)
    return -(gb @ _swap(x))


solve = defop("solve", _solve_fwd, _solve_vjp_a, _solve_vjp_b)
solve.__doc__ = """X with A X = B, differentiable in A and B (to any order).

Args: ``a`` square matrices (..., n, n); ``b`` right-hand sides (..., n, k) or a vector (n,).
Returns: X of B's shape (batched like A). A singular A raises ``ShapeError``.
Example: ``tm.linalg.solve(tm.tensor([[2.0, 0], [0, 4]]), tm.tensor([2.0, 2]))`` is [1, 0.5]."""


def _inv_fwd(a):
    _square("inv", a)
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError as exc:
        raise ShapeError(f"inv: the matrix (shape {a.shape}) is singular; use tm.linalg.pinv, or "
                         "add a ridge term (A + lambda I)") from exc


inv = defop("inv", _inv_fwd, lambda g, o, a: -(_swap(o) @ g @ _swap(o)))
inv.__doc__ = """The inverse of square matrices (..., n, n), differentiable: d(A^-1) = -A^-1 dA A^-1.

Prefer :func:`solve` for A^-1 B (faster and more accurate). A singular A raises ``ShapeError``."""


def _pinv_vjp(g, p, a):
    # Golub & Pereyra (1973), for a matrix of locally constant rank; P = A+:
    # dL/dA = -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)
    pt, gt = _swap(p), _swap(g)
    eye_m = np.eye(a.shape[-2], dtype=a.dtype)
    eye_n = np.eye(a.shape[-1], dtype=a.dtype)
    return (-(pt @ g @ pt)
            + (eye_m - a @ p) @ gt @ (p @ pt)
            + (pt @ p) @ gt @ (eye_n - p @ a))


def _pinv_fwd(a):
    if a.ndim < 2:
        raise ShapeError(f"pinv: needs matrices (..., m, n), got shape {a.shape}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        # LAPACK's SVD can loop forever on inf/NaN: refuse instead of hanging.
        raise ArgumentError(f"pinv: the matrix (shape {a.shape}) contains NaN or inf; it has no "
                            "pseudo-inverse")
    return np.linalg.pinv(a)


pinv = defop("pinv", _pinv_fwd, _pinv_vjp)
pinv.__doc__ = """Moore-Penrose pseudo-inverse A+ of (..., m, n) matrices, through the SVD.

Returns (..., n, m). pinv(X) @ y is the least-squares (minimum-norm) solution of X w = y, which
``learners.RidgeRegression`` and the mapping learner's targets use. Differentiable where the
rank is locally constant (Golub & Pereyra 1973)."""

__all__ = ["solve", "inv", "pinv", "matmul", "squeeze"]

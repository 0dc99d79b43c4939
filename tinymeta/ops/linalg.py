"""Linear algebra: matmul (and its two transposed forms), solve, inv, pinv.

Every rule is written with matmul, the transposes and the op itself, so second and
higher derivatives flow through a solve (what closed-form meta-learners like R2-D2 need).
Leading axes are batch axes and broadcast, as in NumPy.
"""
import numpy as np

from ..errors import ArgumentError, ShapeError
from .shape import squeeze, swap_last2, unsqueeze
from .core import defop


def _shared_matrix(b):
    """b itself if 2-D, or its one matrix if b only broadcasts it over leading axes
    (stride 0: every task's weights are the same view of theta), else None."""
    if b.ndim == 2:
        return b
    if b.ndim > 2 and not any(b.strides[:-2]):
        return b[(0,) * (b.ndim - 2)]
    return None


def matmul_arrays(a, b):
    """np.matmul with two shortcuts measured on meta-batches, and errors that say what fits."""
    if a.ndim >= 2 and b.ndim >= 2 and a.shape[-1] == 1 and b.shape[-2] == 1:
        # An outer product: a broadcast multiply is 5x faster than batched matmul here
        # (the 1 -> 40 input layer of the sinusoid MLP and its gradients).
        return np.multiply(a, b)
    if a.ndim > 2 and b.ndim >= 2 and a.ndim >= b.ndim and a.shape[-1] == b.shape[-2]:
        b2 = _shared_matrix(b)
        if b2 is not None and (b.ndim == 2 or np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) == a.shape[:-2]):
            # One BLAS call on (batch*n, k) @ (k, m) instead of a loop of small ones: 3.4x
            # faster for a meta-batch of 25 tasks sharing theta (NumPy does not collapse it).
            return (a.reshape(-1, a.shape[-1]) @ b2).reshape(a.shape[:-1] + (b2.shape[-1],))
    try:
        return np.matmul(a, b)
    except ValueError as exc:
        sa, sb = np.shape(a), np.shape(b)
        if len(sa) and len(sb) and sa[-1] != sb[-2 if len(sb) > 1 else 0]:
            hint = " (did you mean x @ W.T?)" if len(sb) > 1 and sa[-1] == sb[-1] else ""
            raise ShapeError(f"matmul: shapes {sa} and {sb} do not fit: the last dimension of the "
                             f"left ({sa[-1]}) must equal the {'first' if len(sb) == 1 else 'second-to-last'} "
                             f"of the right ({sb[-2 if len(sb) > 1 else 0]}){hint}") from exc
        raise
    except TypeError as exc:
        raise ShapeError(f"matmul: cannot multiply shapes {np.shape(a)} and {np.shape(b)}: "
                         "matmul needs at least one dimension on each side; use * for scalars") from exc


def _matmul_vjp_a(g, o, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * b
    if b.ndim == 1:
        return unsqueeze(g, -1) * b
    if a.ndim == 1:
        return squeeze(matmul_nt(unsqueeze(g, -2), b), -2)
    return matmul_nt(g, b)


def _matmul_vjp_b(g, o, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * a
    if b.ndim == 1:
        return squeeze(matmul_tn(a, unsqueeze(g, -1)), -1)
    if a.ndim == 1:
        return unsqueeze(a, -1) * unsqueeze(g, -2)
    return matmul_tn(a, g)


matmul = defop("matmul", matmul_arrays, _matmul_vjp_a, _matmul_vjp_b,
               doc="Matrix product a @ b; leading axes broadcast as batch axes.",
            src="{0} @ {1}")

# a @ b^T and a^T @ b (transposes of the last two axes) as primitives: every matmul and
# linear rule needs one, and a separate transpose node each time cost more than the math.
# Their rules are written in each other, so they are differentiable to any order too.
matmul_nt = defop("matmul_nt", lambda a, b: matmul_arrays(a, np.swapaxes(b, -1, -2)),
                  lambda g, o, a, b: g @ b,
                  lambda g, o, a, b: matmul_tn(g, a),
                  doc="a @ b^T (b's last two axes swapped), as one primitive.",
            src="{0} @ np.swapaxes({1}, -1, -2)")
matmul_tn = defop("matmul_tn", lambda a, b: matmul_arrays(np.swapaxes(a, -1, -2), b),
                  lambda g, o, a, b: matmul_nt(b, g),
                  lambda g, o, a, b: a @ g,
                  doc="a^T @ b (a's last two axes swapped), as one primitive.",
            src="np.swapaxes({0}, -1, -2) @ {1}")

# ----------------------------------------------------------------------------- solve, inv, pinv


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
        return squeeze(solve(swap_last2(a), unsqueeze(g, -1)), -1)
    return solve(swap_last2(a), g)


def _solve_vjp_a(g, x, a, b):
    gb = _solve_vjp_b(g, x, a, b)
    if b.ndim == 1:
        return -unsqueeze(gb, -1) * unsqueeze(x, -2)
    return -(gb @ swap_last2(x))


solve = defop("solve", _solve_fwd, _solve_vjp_a, _solve_vjp_b,
              doc="""X with A X = B, differentiable in A and B (to any order).

Args: ``a`` square matrices (..., n, n); ``b`` right-hand sides (..., n, k) or a vector (n,).
Returns: X of B's shape (batched like A). A singular A raises ``ShapeError``.
Example: ``tm.linalg.solve(tm.tensor([[2.0, 0], [0, 4]]), tm.tensor([2.0, 2]))`` is [1, 0.5].""",
            src="np.linalg.solve({0}, {1})")


def _inv_fwd(a):
    _square("inv", a)
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError as exc:
        raise ShapeError(f"inv: the matrix (shape {a.shape}) is singular; use tm.linalg.pinv, or "
                         "add a ridge term (A + lambda I)") from exc


inv = defop("inv", _inv_fwd, lambda g, o, a: -(swap_last2(o) @ g @ swap_last2(o)),
            doc="""The inverse of square matrices (..., n, n), differentiable: d(A^-1) = -A^-1 dA A^-1.

Prefer :func:`solve` for A^-1 B (faster and more accurate). A singular A raises ``ShapeError``.""",
            src="np.linalg.inv({0})")


def _pinv_vjp(g, p, a):
    # Golub & Pereyra (1973), for a matrix of locally constant rank; P = A+:
    # dL/dA = -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)
    pt, gt = swap_last2(p), swap_last2(g)
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


pinv = defop("pinv", _pinv_fwd, _pinv_vjp,
             doc="""Moore-Penrose pseudo-inverse A+ of (..., m, n) matrices, through the SVD.

Returns (..., n, m). pinv(X) @ y is the least-squares (minimum-norm) solution of X w = y.
Differentiable where the rank is locally constant (Golub & Pereyra 1973).""",
            src="np.linalg.pinv({0})")

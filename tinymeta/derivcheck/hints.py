"""Hints: the pattern of a hand derivative's errors, named (a factor, a sign, a transpose...)."""

import numpy as np

from .plumbing import _HINT_TOL


# ---------------------------------------------------------------------------------- hints

def _hint(h, r, fail, counted, args, names, others, shape_note, rtol, fail_kink):
    """Name the pattern in the errors of one input, in words a person can act on."""
    tol = max(_HINT_TOL, 10 * rtol)
    hc, rc = h[counted], r[counted]
    pre = "and besides the shape, " if shape_note else ""
    if not fail.any():
        if shape_note and "transpose" in shape_note:
            return ("the values are right but the array is transposed: a missing transpose "
                    "(e.g. dout.T @ x where x.T @ dout is meant)")
        return "the values are right but the shape is not: reshape to the input's shape"
    if fail_kink.any() and not (fail & ~fail_kink).any():
        return ("wrong only where f has a kink (a ReLU-like function at 0): there the hand value "
                "lies outside both one-sided slopes, so it is not a subgradient either")
    # a constant factor (sign, 1/N, 2, ...)
    rr = float(rc @ rc) if rc.size else 0.0
    if rr > 0:
        c = float(hc @ rc) / rr
        if np.abs(hc - c * rc).max() <= tol * max(np.abs(hc).max(), 1e-300) and abs(c - 1) > tol:
            return pre + _factor_words(c, args, names, tol)
    # a transpose (square matrices: same shape, transposed values)
    if h.ndim == 2 and h.shape[0] == h.shape[1] and h.shape[0] > 1 and counted.all():
        if np.abs(h.T - r).max() <= tol * max(np.abs(r).max(), 1e-300):
            return (pre + "the hand gradient is the transpose of the reference: a missing "
                    "transpose (e.g. dout.T @ x where x.T @ dout is meant)")
    # gradients returned in the wrong order
    for other, oh in others.items():
        if oh.shape == r.shape and np.abs(oh - r).max() <= tol * max(np.abs(r).max(), 1e-300):
            return (pre + f"the hand gradient of {other} matches this input's reference: "
                    "gradients returned in the wrong order?")
    # a missing or too strict mask
    zero_ref = np.abs(r) <= tol * max(np.abs(r).max(), 1e-300)
    zero_hand = np.abs(h) <= tol * max(np.abs(h).max(), 1e-300)
    n_bad, n = int(fail.sum()), int(counted.sum())
    if (fail <= zero_ref).all() and not zero_hand[fail].any():
        return (pre + f"wrong only at the {n_bad} element(s) where the reference is 0, and "
                "right elsewhere: a missing mask (such as ReLU's (x > 0) factor in backward)?")
    if (fail <= zero_hand).all():
        return (pre + f"the hand gradient is 0 at the {n_bad} wrong element(s): a missing term, "
                "or a mask that zeroes too much?")
    if fail[counted].all() and rc.size and np.abs(rc).max() > 0:
        return pre + (f"all {n} elements wrong, with no simple pattern (not a constant factor, "
                      "sign or transpose)")
    return pre + (f"{n_bad} of {n} elements wrong, with no simple pattern (not a constant factor, "
                  "sign or transpose); look at the elements listed")


def _factor_words(c, args, names, tol):
    """Words for hand = c * reference."""
    if abs(c + 1) <= tol:
        return ("hand = -1 x reference everywhere: a sign error (e.g. a dropped minus in "
                "-(1/N) sum ..., or y - p where p - y is meant)")
    if abs(c) <= tol:
        return "the hand gradient is 0 everywhere the reference is not"
    sign = "-" if c < 0 else ""
    a = abs(c)
    big, n = (a, round(a)) if a >= 1 else (1 / a, round(1 / a))
    words = f"hand = {c:.6g} x reference everywhere: off by a constant factor"
    if n >= 2 and abs(big - n) <= tol * n:
        sizes = [(names[k], x.shape[0]) for k, x in enumerate(args)
                 if isinstance(x, np.ndarray) and x.ndim >= 1 and x.shape[0] == n]
        where = f" (N = {n}, the first axis of {sizes[0][0]})" if sizes else f" (N = {n})"
        if n == 2 and not sizes:
            return words + (f" {sign}2: an extra 2 (1/2 ||r||^2 differentiated as if it were "
                            "||r||^2?)" if a >= 1 else
                            f" {sign}1/2: a missing 2 (d(x^2)/dx = 2x written as x?)")
        if a >= 1:
            return words + f" {sign}N: a missing 1/N{where}"
        return words + f" {sign}1/N: an extra 1/N, the mean taken twice{where}"
    return words + (" and a sign" if sign else "")


def _hessian_hint(hand, ref, fail, shape):
    tol = _HINT_TOL
    scale = max(np.abs(ref).max(), 1e-300)
    asym = np.abs(hand - hand.T).max()
    rr = float((ref * ref).sum())
    if rr > 0:
        c = float((hand * ref).sum()) / rr
        if np.abs(hand - c * ref).max() <= tol * max(np.abs(hand).max(), 1e-300):
            return _factor_words(c, [np.zeros(shape)], ["the input"], tol)
    if asym > tol * scale:
        return (f"the hand Hessian is not symmetric (max |H - H^T| = {asym:.3g}); a Hessian of a "
                "smooth f always is: a transposed or one-sided cross term?")
    if not fail[np.diag_indices_from(fail)].any():
        return "the diagonal agrees; only off-diagonal entries are wrong: missing cross terms?"
    if not (fail & ~np.eye(len(fail), dtype=bool)).any():
        return "only the diagonal is wrong: a missing or extra diagonal term (e.g. a ridge lam * I)?"
    return f"{int(fail.sum())} of {fail.size} entries wrong, with no simple pattern"

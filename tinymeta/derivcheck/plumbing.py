"""Argument handling and formatting shared by the checks."""
import inspect
import warnings

import numpy as np

from ..engine import Tensor
from ..errors import ArgumentError, DTypeError, PrecisionWarning, ShapeError


_C_NOISE = 16.0         # rounding of one f evaluation, in units of eps_machine * |f|
_AD_NOISE = 1000.0      # hand vs autodiff: rounding of two exact formulas, in eps_machine * max|r|
_HINT_TOL = 1e-3        # how exactly a pattern (factor, transpose...) must fit to be named
_MAX_SHOWN = 5          # worst elements printed per input

FD = "central differences"
AD = "tinymeta autodiff"


# ---------------------------------------------------------------------------------- plumbing

def _rel(values, ref, noise, rtol):
    """|a - r| / max(|a|, |r|, noise / rtol): the relative error of the module docstring."""
    values = np.asarray(values, np.float64)
    diff = np.abs(values - ref)
    den = np.maximum(np.maximum(np.abs(values), np.abs(ref)), noise / rtol)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(den > 0, diff / np.where(den > 0, den, 1.0), 0.0)
    return np.where(np.isfinite(values), rel, np.inf)


def _prepare(xs, wrt, where, pnames):
    """Float64 copies of the inputs to check, the indices to check, their names, notes."""
    if not xs:
        raise ArgumentError(f"{where}: no inputs given; pass the point to check at, e.g. "
                            "check_grad(f, grad_f, x) or check_grad(f, grad_f, theta, X, y, wrt=0)")
    n = len(xs)
    if wrt is None:
        idx = list(range(n))
    else:
        idx = [wrt] if isinstance(wrt, (int, np.integer)) else list(wrt)
        if not idx or any(not isinstance(i, (int, np.integer)) or not -n <= i < n for i in idx):
            raise ArgumentError(f"{where}: wrt={wrt!r} must be input indices in 0..{n - 1}")
        idx = sorted({int(i) % n for i in idx})
    names = [f"input {k}" + (f" ({pnames[k]})" if pnames and pnames[k] else "") for k in range(n)]
    args, notes = list(xs), []
    for i in idx:
        x = xs[i].data if isinstance(xs[i], Tensor) else xs[i]
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
            raise DTypeError(f"{where}: {names[i]} has dtype {arr.dtype}; it must hold numbers")
        if arr.dtype.kind in "iu":
            raise DTypeError(
                f"{where}: {names[i]} has integer dtype {arr.dtype}, which has no gradient (labels? "
                f"indices?); pass it as float64, or leave it out of the check with wrt= (e.g. "
                f"wrt={[k for k in range(n) if k != i] or 0})")
        if arr.dtype != np.float64:
            msg = (f"{where}: {names[i]} is {arr.dtype}; the check runs on a float64 copy, because "
                   f"in {arr.dtype} a finite difference is mostly rounding error ({arr.dtype} keeps "
                   f"~{int(-np.log10(np.finfo(arr.dtype).eps))} digits and a step of 1e-6 cancels "
                   "6 of them). Pass float64 arrays to check exactly the arithmetic you run")
            warnings.warn(msg, PrecisionWarning, stacklevel=3)
            notes.append(f"{names[i]} was {arr.dtype}: checked on a float64 copy")
        if arr.size == 0:
            raise ShapeError(f"{where}: {names[i]} is empty (shape {arr.shape}); nothing to check")
        if not np.isfinite(arr).all():
            raise ArgumentError(f"{where}: {names[i]} contains NaN or inf; check at a finite point")
        args[i] = np.array(arr, dtype=np.float64, copy=True)  # perturbed in place: never the user's
    return args, idx, names, notes


def _hand_gradients(res, args, idx, names, where, describe):
    """The hand gradients as float64 arrays of the inputs' shapes (transposed or reshaped
    arrays are accepted and compared, with a note: the hint names the mistake)."""
    if isinstance(res, (tuple, list)):
        res = list(res)
    else:
        res = [res]
    if len(res) == len(args) and len(idx) != len(args):
        res = [res[i] for i in idx]
    if len(res) != len(idx):
        expect = ", ".join(names[i] for i in idx)
        raise ArgumentError(
            f"{where}: {describe} returned {len(res)} array(s) for {len(idx)} checked input(s) "
            f"({expect}); return one gradient per input, in the order of the inputs "
            "(or choose the inputs with wrt=)")
    out, notes, f32 = [], [], False
    for k, (g, i) in enumerate(zip(res, idx)):
        g = _as_float_array(g, f"{where}: {describe}", f"gradient {k}")
        f32 |= g.dtype == np.float32
        g = g.astype(np.float64)
        shape = args[i].shape
        note = None
        if g.shape != shape:
            if g.ndim == 2 and g.shape == shape[::-1]:
                note = (f"{describe} returned shape {g.shape}, the transpose of {names[i]}'s "
                        f"shape {shape}; compared as its transpose")
                g = g.T
            elif g.size == args[i].size:
                note = (f"{describe} returned shape {g.shape} for {names[i]} of shape {shape} (same "
                        "number of elements); compared after reshaping")
                g = g.reshape(shape)
            else:
                shapes = [tuple(np.shape(r)) for r in res]
                order = ""
                if sorted(shapes) == sorted(args[j].shape for j in idx):
                    order = "; the shapes match the inputs in another order: gradients swapped?"
                raise ShapeError(
                    f"{where}: {describe} returned shape {g.shape} for {names[i]} of shape {shape}; "
                    f"a gradient has its input's shape (returned: {shapes}){order}")
        out.append(g)
        notes.append(note)
    return out, notes, f32


def _as_float_array(g, where, what):
    if isinstance(g, Tensor):
        g = g.data
    if g is None:
        raise DTypeError(f"{where}: {what} is None; return an array (zeros if it has no gradient)")
    arr = np.asarray(g)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise DTypeError(f"{where}: {what} has dtype {arr.dtype}; it must be a float array")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _scalar(v, where):
    """(value as float, computed in float32?) of a function's scalar output."""
    if isinstance(v, Tensor):
        v = v.data
    arr = np.asarray(v)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise DTypeError(f"{where} must return a number, got {type(v).__name__}"
                         + (f" of dtype {arr.dtype}" if hasattr(v, "dtype") else ""))
    if arr.size != 1:
        raise ShapeError(f"{where} must return a scalar (a loss), got an array of shape "
                         f"{arr.shape}; sum or average it, or use tm.check_backward for a "
                         "layer's forward/backward pair")
    val = float(arr.reshape(()))
    if not np.isfinite(val):
        raise ArgumentError(f"{where} is {val} at this point; check at a point where f is finite")
    return val, arr.dtype == np.float32


def _precision(f32, hand32, eps, rtol, where, notes, second=False):
    """Work out step and tolerance from the precision f and the hand code compute in."""
    if f32:
        msg = (f"{where}: f returns float32 for float64 inputs, so it computes in float32 "
               "(a float32 constant or .astype inside?). Finite differences then keep 2-3 digits: "
               "the check uses step 1e-3 and rtol 1e-2. Cast to float64 for a sharp check")
        warnings.warn(msg, PrecisionWarning, stacklevel=3)
        notes.append("f computes in float32: step 1e-3, rtol 1e-2")
        return "float32", eps or (1e-2 if second else 1e-3), rtol or 1e-2
    if hand32:
        msg = (f"{where}: the hand derivative is float32 for float64 inputs: it keeps ~7 digits, "
               "so the check uses rtol 1e-4. Compute it in float64 for a sharp check")
        warnings.warn(msg, PrecisionWarning, stacklevel=3)
        notes.append("the hand derivative is float32: rtol 1e-4")
        return "float32", eps or (1e-4 if second else 1e-6), rtol or 1e-4
    return "float64", eps or (1e-4 if second else 1e-6), rtol or 1e-6


def _param_names(fn, n):
    try:
        ps = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return None
    return [p.name for p in ps[:n]] + [None] * (n - len(ps)) if ps else None


def _need_callable(fn, what, where):
    if not callable(fn):
        raise DTypeError(f"{where}: {what} must be a function, got {type(fn).__name__}")


def _name(fn):
    return getattr(fn, "__name__", type(fn).__name__)


def _short(exc):
    text = str(exc).split("\n")[0]
    return text if len(text) <= 50 else text[:47] + "..."


def _fmt_index(e):
    return "[" + ", ".join(str(v) for v in e) + "]"


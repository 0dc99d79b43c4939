"""Check a derivative you worked out by hand and wrote in NumPy, and say where it is wrong.

``tm.gradcheck`` checks tinymeta ops. This module checks *your* derivation: a NumPy function
``f(*xs) -> scalar`` with its hand-written gradient, a layer's ``forward``/``backward`` pair
(the CS231n convention), or a hand-written Hessian. Each check returns a
:class:`DerivativeReport`: ``bool(report)`` is the verdict, ``print(report)`` shows each input's
largest relative error, the worst elements (hand value beside reference value), and a *hint*
read from the pattern of the errors: a constant factor (a missing 1/N), a sign, a transpose,
a missing mask, gradients returned in the wrong order.

References
----------
* **Central differences in float64**, always: ``(f(x + h e_i) - f(x - h e_i)) / 2h`` with
  ``h = eps * max(1, |x_i|)``. Elements that disagree are re-measured with ``h / 10``.
* **tinymeta's own autodiff of f**, when ``f`` also runs on ``tm.Tensor`` inputs (written with
  operators, ``@``, ``.sum()``, ``tm.*`` functions): the check calls ``f`` with float64 tensors
  and uses ``tm.grad``. A NumPy function such as ``np.exp`` turns a tensor into a plain array
  and drops the graph, so the autodiff result is used only if it agrees with the finite
  differences; the report says which references were used and why one was not.

The relative-error convention
-----------------------------
For one element, with hand value ``a`` and reference ``r``::

    rel = |a - r| / max(|a|, |r|, noise / rtol)

Dividing by the larger magnitude makes the error unit-free and symmetric (CS231n's
convention). ``noise`` is what the reference itself cannot resolve: for finite differences,
the rounding of ``f`` magnified by the step, ``16 * eps_machine * |f| / h`` (for an element
re-measured at ``h / 10``, plus a ninth of the change between the two steps: the truncation
error left, which is O(h) rather than O(h^2) where ``f''`` jumps, as for ``max(x, 0)**2`` at
0); for autodiff, ``1000 * eps_machine * max |r|``. An element counts as right when
``rel <= rtol``. Below the noise level elements are compared in absolute terms, so an exact
zero against 1e-12 of rounding is not a failure.

What to expect: in **float64** a correct derivation shows ~1e-16..1e-12 against autodiff and
~1e-11..1e-7 against central differences; the default ``rtol`` is 1e-6. A wrong one shows
errors near 1 (a sign gives 2, a factor N gives 1 - 1/N). In **float32** a finite difference
keeps only two or three digits (float32 keeps ~7 digits and a step of 1e-3 loses ~4 of them),
so float32 inputs are copied to float64 with a :class:`PrecisionWarning`; if ``f`` itself
computes in float32 (it returns float32 for float64 inputs) the step grows to 1e-3 and
``rtol`` to 1e-2, which still catches every mistake of the kinds above.

Kinks
-----
At a kink (ReLU or ``abs`` at 0, ``max`` at a tie) the derivative does not exist: the left and
right slopes differ, the central difference returns their average, and any value between
them is a valid subgradient (``relu'(0) = 0`` or ``1`` are both fine). Comparing there would
raise false alarms. The check detects kinks from ``f`` alone: where the one-sided differences
``(f(x+h) - f(x)) / h`` and ``(f(x) - f(x-h)) / h`` disagree, and keep disagreeing as ``h``
shrinks tenfold (for a smooth ``f`` their gap shrinks with ``h``), the element is *at a kink*.
This is examined wherever the hand value disagrees, and wherever the one-sided slopes differ
by more than 1e-3 of the input's largest derivative, even if the hand value happens to agree
(``abs`` at 0: central difference 0, ``sign(0) = 0``).
Such elements are listed separately and **not counted**, provided the hand value lies between
the one-sided slopes; outside them it is a failure. Random points almost never sit on a kink;
points with exact zeros (zero-initialised inputs, ``x = 0`` rows) do.
"""
import inspect
import warnings
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from .engine import Tensor, get_default_dtype, set_default_dtype
from .engine import grad as _tm_grad
from .errors import ArgumentError, DTypeError, GradcheckError, PrecisionWarning, ShapeError

_C_NOISE = 16.0         # rounding of one f evaluation, in units of eps_machine * |f|
_AD_NOISE = 1000.0      # hand vs autodiff: rounding of two exact formulas, in eps_machine * max|r|
_HINT_TOL = 1e-3        # how exactly a pattern (factor, transpose...) must fit to be named
_MAX_SHOWN = 5          # worst elements printed per input

FD = "central differences"
AD = "tinymeta autodiff"


class Failure(NamedTuple):
    """One element where the hand value disagrees with the reference."""
    element: Tuple[int, ...]
    hand: float
    reference: float
    rel_error: float
    at_kink: bool = False   # at a kink, but the hand value lies outside both one-sided slopes


class Kink(NamedTuple):
    """One element where f is not differentiable: its one-sided slopes ``left``/``right``."""
    element: Tuple[int, ...]
    hand: float
    left: float
    right: float


class InputCheck:
    """The result for one input: its verdict, errors, the worst elements and a hint.

    Attributes: ``name``, ``shape``, ``ok``, ``rel_error`` (dict: reference -> largest relative
    error over the counted elements), ``checked`` (elements counted), ``failures`` (list of
    :class:`Failure`, worst first), ``kinks`` (list of :class:`Kink`), ``hint`` (str or None),
    and the arrays ``hand`` and ``reference`` (the best reference used), both of the input's shape.
    """

    def __init__(self, name: str, shape: Tuple[int, ...], hand: np.ndarray, reference: np.ndarray,
                 rel_error: Dict[str, float], checked: int, failures: List[Failure], kinks: List[Kink],
                 hint: Optional[str], shape_note: Optional[str] = None):
        self.name, self.shape, self.hand, self.reference = name, tuple(shape), hand, reference
        self.rel_error, self.checked, self.failures, self.kinks = rel_error, checked, failures, kinks
        self.hint, self.shape_note = hint, shape_note
        self.ok = not failures and shape_note is None

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _lines(self) -> List[str]:
        errs = ", ".join(f"{v:.1e} vs {k}" for k, v in self.rel_error.items())
        head = f"  {self.name}, shape {self.shape}: {'ok' if self.ok else 'FAIL'}"
        lines = [head + (f"   max rel. error {errs}" if errs else "")]
        if self.shape_note:
            lines.append(f"    {self.shape_note}")
        if self.failures:
            lines.append(f"    {len(self.failures)} of {self.checked} elements wrong; worst:")
            lines.append(f"      {'element':<12}{'hand':>15}{'reference':>15}{'rel. error':>12}")
            for f in self.failures[:_MAX_SHOWN]:
                mark = "  (at a kink, outside both slopes)" if f.at_kink else ""
                lines.append(f"      {_fmt_index(f.element):<12}{f.hand:>15.6g}{f.reference:>15.6g}"
                             f"{f.rel_error:>12.1e}{mark}")
        if self.kinks:
            shown = ", ".join(_fmt_index(k.element) for k in self.kinks[:_MAX_SHOWN])
            more = ", ..." if len(self.kinks) > _MAX_SHOWN else ""
            k = self.kinks[0]
            lines.append(f"    {len(self.kinks)} element(s) at a kink, not counted: {shown}{more}")
            lines.append(f"      (f is not differentiable there, like a ReLU at 0: one-sided slopes "
                         f"e.g. {k.left:.4g} and {k.right:.4g}; the hand value {k.hand:.4g} lies "
                         "between them, so it is a valid subgradient)")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return lines


class DerivativeReport:
    """What a derivative check found. ``bool(report)`` is the verdict; ``print(report)`` reads it.

    Attributes: ``ok``, ``title`` (what was checked), ``references`` (the references used, e.g.
    ``["central differences", "tinymeta autodiff"]``), ``notes`` (why a reference was not used,
    precision warnings), ``precision`` ("float64" or "float32"), ``rtol``, ``eps`` (the
    finite-difference step scale) and ``inputs`` (one :class:`InputCheck` per checked input).
    ``report.raise_if_failed()`` raises ``tm.GradcheckError`` with the whole text.
    """

    def __init__(self, title: str, inputs: List[InputCheck], references: List[str],
                 notes: List[str], precision: str, rtol: float, eps: float):
        self.title, self.inputs, self.references, self.notes = title, inputs, references, notes
        self.precision, self.rtol, self.eps = precision, rtol, eps
        self.ok = all(c.ok for c in inputs)

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, key: Union[int, str]) -> InputCheck:
        """``report[0]`` or ``report["theta"]``: one input's result."""
        if isinstance(key, str):
            for c in self.inputs:
                if c.name == key or c.name.endswith(f"({key})"):
                    return c
            raise KeyError(f"no checked input named {key!r}; have {[c.name for c in self.inputs]}")
        return self.inputs[key]

    def __str__(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        lines = [f"{self.title}: {verdict}",
                 f"  references: {' and '.join(self.references)} ({self.precision}, "
                 f"step {self.eps:g} * max(1, |x|), rtol {self.rtol:g})"]
        lines += [f"  note: {n}" for n in self.notes]
        for c in self.inputs:
            lines += c._lines()
        return "\n".join(lines)

    __repr__ = __str__

    def raise_if_failed(self) -> "DerivativeReport":
        """Raise ``tm.GradcheckError`` carrying the report if the check failed; else return it."""
        if not self.ok:
            raise GradcheckError(str(self))
        return self


# ---------------------------------------------------------------------------------- public checks

def check_grad(f: Callable[..., Any], grad_f: Callable[..., Any], *xs: Any,
               wrt: Union[None, int, Sequence[int]] = None, eps: Optional[float] = None,
               rtol: Optional[float] = None, autodiff: bool = True) -> DerivativeReport:
    """Check a hand-derived gradient ``grad_f`` of the scalar NumPy function ``f`` at ``xs``.

    Args:
        f: ``f(*xs) -> scalar`` (a float, a 0-d or one-element array).
        grad_f: ``grad_f(*xs)`` -> one array per checked input (a single array if one), each of
            that input's shape. It may return gradients for all inputs even when ``wrt`` picks some.
        xs: the point to check at. Float arrays are copied to float64 (float32 with a
            :class:`PrecisionWarning`); inputs not in ``wrt`` (labels, data) are passed unchanged.
        wrt: index or indices of the inputs to check (default: all).
        eps: finite-difference step scale (default 1e-6; 1e-3 if ``f`` computes in float32).
        rtol: relative-error tolerance (default 1e-6 in float64; see the module docstring).
        autodiff: also use tinymeta's autodiff of ``f`` as a reference when ``f`` runs on tensors.

    Returns:
        A :class:`DerivativeReport`; ``bool(report)`` is True when every counted element agrees.

    Example::

        def loss(theta, X, y):                   # logistic regression, labels y in {0, 1}
            z = X @ theta
            return np.mean(np.logaddexp(0, z) - y * z)
        def grad(theta, X, y):                   # -(1/N) sum_i (y_i - sigmoid(theta^T x_i)) x_i
            return -X.T @ (y - 1 / (1 + np.exp(-X @ theta))) / len(y)
        print(tm.check_grad(loss, grad, theta, X, y, wrt=0))

    The relative error, the tolerances in float64 and float32, and how kinks (ReLU at 0) are
    detected and left out of the verdict are explained in ``tinymeta.derivcheck``'s docstring.
    """
    where = f"check_grad({_name(f)}, {_name(grad_f)})"
    _need_callable(f, "f", where)
    _need_callable(grad_f, "grad_f", where)
    args, idx, names, notes = _prepare(xs, wrt, where, _param_names(f, len(xs)))

    def fun(*a):
        return _scalar(f(*a), f"{where}: f")

    def hand(*a):
        return grad_f(*a)
    return _first_order(where, fun, hand, f, args, idx, names, notes, eps, rtol, autodiff,
                        describe="grad_f")


def check_backward(forward: Callable[..., Any], backward: Callable[..., Any], *xs: Any,
                   wrt: Union[None, int, Sequence[int]] = None, cache: Optional[bool] = None,
                   seed: int = 0, eps: Optional[float] = None, rtol: Optional[float] = None,
                   autodiff: bool = True) -> DerivativeReport:
    """Check a layer's hand-written ``backward`` against its ``forward`` (the CS231n convention).

    ``forward(*xs)`` returns ``out`` or ``(out, cache)``; ``backward(dout, cache)`` (or, with no
    cache, ``backward(dout, x)`` for one input and ``backward(dout, xs)`` for several) returns
    the gradients ``dx, dw, ...``, one per input. The check draws a random ``dout`` (seeded) and
    checks the vector-Jacobian products: the gradient of the scalar ``sum(forward(*xs) * dout)``
    is exactly what ``backward(dout, ...)`` must return. Everything else is as in
    :func:`check_grad` (references, relative error, kinks, hints).

    Args:
        forward, backward: the layer's two functions.
        xs: the layer's inputs (float arrays: data, weights, biases...).
        wrt: index or indices of the inputs to check (default: all).
        cache: True if ``forward`` returns ``(out, cache)``, False if only ``out``; None decides
            by whether it returns a 2-tuple.
        seed: seed of the random ``dout``.
        eps, rtol, autodiff: as in :func:`check_grad`.
    """
    where = f"check_backward({_name(forward)}, {_name(backward)})"
    _need_callable(forward, "forward", where)
    _need_callable(backward, "backward", where)
    args, idx, names, notes = _prepare(xs, wrt, where, _param_names(forward, len(xs)))

    def split(res):
        has_cache = (isinstance(res, tuple) and len(res) == 2) if cache is None else cache
        if has_cache:
            if not (isinstance(res, tuple) and len(res) == 2):
                raise ArgumentError(f"{where}: cache=True, but forward returned "
                                    f"{type(res).__name__}, not an (out, cache) pair")
            return res[0], res[1], True
        if isinstance(res, tuple):
            raise ArgumentError(f"{where}: forward returned a tuple of {len(res)} items; return "
                                "out or (out, cache), or pass cache=True/False")
        return res, None, False

    out0, cache0, has_cache = split(forward(*args))
    out0 = np.asarray(out0.data if isinstance(out0, Tensor) else out0)
    if out0.dtype.kind not in "fiu":
        raise DTypeError(f"{where}: forward's output has dtype {out0.dtype}; it must be numeric")
    dout = np.random.default_rng(seed).standard_normal(out0.shape)

    def fun(*a):
        out = split(forward(*a))[0]
        if isinstance(out, Tensor):
            out = out.data
        out = np.asarray(out)
        if out.shape != dout.shape:
            raise ShapeError(f"{where}: forward's output changed shape from {dout.shape} to "
                             f"{out.shape} when an input moved slightly")
        # computed in float32 if forward is: the finite differences then need a larger step
        return float(np.sum(out.astype(np.float64) * dout)), out.dtype == np.float32

    def fun_tensor(*a):
        out = split(forward(*a))[0]
        return (out * dout).sum() if isinstance(out, Tensor) else np.sum(out * dout)

    def hand(*a):
        if has_cache:
            return backward(dout, cache0)
        return backward(dout, a[0] if len(a) == 1 else a)
    title = f"{where} (random dout of shape {dout.shape}, seed {seed})"
    return _first_order(title, fun, hand, fun_tensor, args, idx, names, notes, eps, rtol,
                        autodiff, describe="backward")


def check_hessian(f: Callable[..., Any], hess_f: Callable[..., Any], x: Any,
                  grad_f: Optional[Callable[..., Any]] = None, eps: Optional[float] = None,
                  rtol: Optional[float] = None, autodiff: bool = True) -> DerivativeReport:
    """Check a hand-derived Hessian ``hess_f(x)`` of the scalar function ``f(x)``.

    ``hess_f(x)`` returns the matrix of second derivatives, shape ``(x.size, x.size)`` or
    ``x.shape + x.shape``. References: finite differences (of ``grad_f`` when given, which is
    sharper: ``(g(x + h e_j) - g(x - h e_j)) / 2h``; otherwise second differences of ``f``, with
    step ``1e-4 * max(1, |x|)``), and tinymeta's second-order autodiff of ``f`` when ``f`` runs
    on tensors. Hints name a constant factor, a sign, a missing 1/N, an asymmetric hand
    Hessian, and a right diagonal with wrong off-diagonal entries (missing cross terms).
    Kinks are not detected here: at a kink a second difference grows like 1/h, so an element
    there shows as a failure whose reference is huge.
    """
    where = f"check_hessian({_name(f)}, {_name(hess_f)})"
    _need_callable(f, "f", where)
    _need_callable(hess_f, "hess_f", where)
    if grad_f is not None:
        _need_callable(grad_f, "grad_f", where)
    args, idx, names, notes = _prepare((x,), None, where, _param_names(f, 1))
    x = args[0]
    n = x.size

    def fun(a):
        return _scalar(f(a), f"{where}: f")
    f0, f32 = fun(x)
    hand = _as_float_array(hess_f(x), f"{where}: hess_f", "the Hessian")
    hand32 = hand.dtype == np.float32
    hand = hand.astype(np.float64)
    if hand.shape not in ((n, n), x.shape + x.shape):
        raise ShapeError(f"{where}: hess_f returned shape {hand.shape}; the Hessian of an input "
                         f"of shape {x.shape} has shape ({n}, {n}) or {x.shape + x.shape}")
    hand = hand.reshape(n, n)
    precision, eps, rtol = _precision(f32, hand32, eps, rtol, where, notes, second=grad_f is None)
    eps_m = np.finfo(np.float32 if precision == "float32" else np.float64).eps
    # finite differences of the gradient, or second differences of f
    ref = np.zeros((n, n))
    noise = np.zeros((n, n))
    flat = x.reshape(-1)  # a view: x is our own contiguous float64 copy
    h = eps * np.maximum(1.0, np.abs(flat))
    if grad_f is not None:
        g0 = _as_float_array(grad_f(x), f"{where}: grad_f", "the gradient").reshape(-1)
        if g0.size != n:
            raise ShapeError(f"{where}: grad_f returned {g0.size} numbers for an input of {n}")
        for j in range(n):
            orig = flat[j]
            flat[j] = orig + h[j]
            gp = _as_float_array(grad_f(x), where, "the gradient").reshape(-1)
            flat[j] = orig - h[j]
            gm = _as_float_array(grad_f(x), where, "the gradient").reshape(-1)
            flat[j] = orig
            ref[:, j] = (gp - gm) / (2 * h[j])
            noise[:, j] = _C_NOISE * eps_m * np.maximum(np.abs(gp), np.abs(gm)).max() / h[j]
        ref = (ref + ref.T) / 2  # a Hessian is symmetric: average away half the noise
        fd_name = "central differences of grad_f"
    else:
        scale = abs(f0)
        for i in range(n):
            for j in range(i, n):
                vals = []
                for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                    oi, oj = flat[i], flat[j]
                    flat[i] = oi + si * h[i]
                    flat[j] = flat[j] + sj * h[j]
                    vals.append(fun(x)[0])
                    flat[i], flat[j] = oi, oj
                ref[i, j] = ref[j, i] = (vals[0] - vals[1] - vals[2] + vals[3]) / (4 * h[i] * h[j])
                noise[i, j] = noise[j, i] = (_C_NOISE * eps_m * max(scale, *map(abs, vals))
                                             / (h[i] * h[j]))
        fd_name = "second differences of f"
    refs = {fd_name: (ref, noise)}
    references = [fd_name]
    if autodiff:
        ad, why = _autodiff_hessian(f, x)
        if ad is None:
            notes.append(f"{AD} not used: {why}")
        else:
            bad = _rel(ad, ref, noise, rtol) > rtol
            if bad.any():
                notes.append(f"{AD} not used: it disagrees with {fd_name} (max rel. error "
                             f"{_rel(ad, ref, noise, rtol).max():.1e}), so part of f left tinymeta "
                             "(a NumPy function on a Tensor drops the graph)")
            else:
                ad_noise = np.full((n, n), _AD_NOISE * eps_m * max(np.abs(ad).max(), 1e-300))
                refs[AD] = (ad, ad_noise)
                references.append(AD)
    best = AD if AD in refs else fd_name
    rel_error, fail = {}, np.zeros((n, n), bool)
    for name, (r, nz) in refs.items():
        rel = _rel(hand, r, nz, rtol)
        rel_error[name] = float(rel.max()) if rel.size else 0.0
        fail |= ~(rel <= rtol)
    r_best, n_best = refs[best]
    rel_best = _rel(hand, r_best, n_best, rtol)
    failures = [Failure(tuple(int(v) for v in ij), float(hand[tuple(ij)]), float(r_best[tuple(ij)]),
                        float(rel_best[tuple(ij)])) for ij in np.argwhere(fail)]
    failures.sort(key=lambda fl: -fl.rel_error)
    hint = None
    if failures:
        hint = _hessian_hint(hand, r_best, fail, x.shape)
    check = InputCheck(f"Hessian w.r.t. {names[0]}", (n, n), hand, r_best, rel_error, n * n,
                       failures, [], hint)
    return DerivativeReport(where, [check], references, notes, precision, rtol, eps)


# ---------------------------------------------------------------------------------- first order

def _first_order(title, fun, hand_fn, f_for_tensors, args, idx, names, notes, eps, rtol,
                 autodiff, describe):
    """The shared core of check_grad and check_backward: fun(*args) -> (value, is_float32)."""
    f0, f32 = fun(*args)
    hands, shape_notes, hand32 = _hand_gradients(hand_fn(*args), args, idx, names, title, describe)
    precision, eps, rtol = _precision(f32, hand32, eps, rtol, title, notes)
    eps_m = np.finfo(np.float32 if precision == "float32" else np.float64).eps
    fds = [_CentralDifferences(fun, args, i, f0, eps, eps_m) for i in idx]

    references = [FD]
    ad = None
    if autodiff:
        ad, why = _autodiff_grads(f_for_tensors, args, idx, f0)
        if ad is None:
            notes.append(f"{AD} not used: {why}")
        else:
            # trusted only if it agrees with the finite differences wherever f is smooth
            worst = 0.0
            for fd, a in zip(fds, ad):
                status = fd.judge(a, rtol)
                worst = max(worst, float(status["rel"][~status["kink"]].max(initial=0.0)))
                if (~status["ok"] & ~status["kink"]).any():
                    ad = None
            if ad is None:
                notes.append(f"{AD} not used: f ran on tm.Tensor inputs, but its gradient "
                             f"disagrees with {FD} (max rel. error {worst:.1e}): part of f "
                             "probably left tinymeta (a NumPy function such as np.exp on a "
                             "Tensor returns a plain array and drops the graph)")
            else:
                references.append(AD)

    checks = []
    for m, (i, fd) in enumerate(zip(idx, fds)):
        h = hands[m]
        st = fd.judge(h, rtol)
        kink_mask = st["kink"]
        counted = ~kink_mask
        fail = ~st["ok"] & counted
        fail_kink = st["kink_outside"]
        rel_error = {FD: float(st["rel"][counted].max(initial=0.0))}
        best_ref, best_rel = st["ref"], st["rel"]
        if ad is not None:
            a = ad[m]
            scale = max(float(np.abs(a).max(initial=0.0)), 1e-300)
            noise = np.full(a.shape, _AD_NOISE * eps_m * scale)
            rel_ad = _rel(h, a, noise, rtol)
            rel_error[AD] = float(rel_ad[counted].max(initial=0.0))
            fail |= (rel_ad > rtol) & counted
            best_ref, best_rel = np.where(counted, a, st["ref"]), np.where(counted, rel_ad, best_rel)
        fail |= fail_kink
        failures = [Failure(tuple(int(v) for v in e), float(h[tuple(e)]), float(best_ref[tuple(e)]),
                            float(best_rel[tuple(e)]), bool(fail_kink[tuple(e)]))
                    for e in np.argwhere(fail)]
        failures.sort(key=lambda fl: -fl.rel_error)
        kinks = [Kink(tuple(int(v) for v in e), float(h[tuple(e)]), float(st["left"][tuple(e)]),
                      float(st["right"][tuple(e)])) for e in np.argwhere(kink_mask & ~fail_kink)]
        hint = None
        if failures or shape_notes[m]:
            others = {names[j]: hands[k] for k, j in enumerate(idx) if k != m}
            hint = _hint(h, best_ref, fail, counted, args, names, others, shape_notes[m], rtol,
                         fail_kink)
        elif kinks and (_rel(h, st["central"], fd.noise, rtol)[kink_mask] > rtol).any():
            hint = ("the hand values differ from the references only at the kinks (a ReLU-like "
                    "function at 0), where any value between the slopes is valid: not counted")
        checks.append(InputCheck(names[i], args[i].shape, h, best_ref, rel_error,
                                 int(counted.sum() + fail_kink.sum()), failures, kinks, hint,
                                 shape_notes[m]))
    return DerivativeReport(title, checks, references, notes, precision, rtol, eps)


class _CentralDifferences:
    """Central, forward and backward differences of ``fun`` w.r.t. every element of input i.

    ``judge(values)`` compares values (hand or autodiff) with them; elements that disagree are
    re-measured at h/10 (a near-miss kink or truncation error resolves there), and elements
    whose one-sided slopes keep disagreeing as h shrinks are classified as kinks.
    """

    def __init__(self, fun, args, i, f0, eps, eps_m):
        self.fun, self.args, self.i, self.f0, self.eps_m = fun, args, i, f0, eps_m
        x = args[i]
        self.h = eps * np.maximum(1.0, np.abs(x))
        self.central, self.fwd, self.bwd, self.noise = self._measure(self.h, range(x.size))
        self._fine = {}

    def _eval(self, j, step):
        x = self.args[self.i]
        orig = x.flat[j]
        x.flat[j] = orig + step
        fp = self.fun(*self.args)[0]
        x.flat[j] = orig - step
        fm = self.fun(*self.args)[0]
        x.flat[j] = orig  # restored exactly: the same float goes back
        return fp, fm

    def _measure(self, h, elements):
        shape = self.args[self.i].shape
        c, fw, bw, nz = (np.zeros(shape) for _ in range(4))
        for j in elements:
            hj = h.flat[j]
            fp, fm = self._eval(j, hj)
            c.flat[j] = (fp - fm) / (2 * hj)
            fw.flat[j] = (fp - self.f0) / hj
            bw.flat[j] = (self.f0 - fm) / hj
            nz.flat[j] = _C_NOISE * self.eps_m * max(abs(fp), abs(fm), abs(self.f0)) / hj
        return c, fw, bw, nz

    def _fine_at(self, j):
        if j not in self._fine:
            hj = self.h.flat[j] / 10
            fp, fm = self._eval(j, hj)
            self._fine[j] = ((fp - fm) / (2 * hj), (fp - self.f0) / hj, (self.f0 - fm) / hj,
                             _C_NOISE * self.eps_m * max(abs(fp), abs(fm), abs(self.f0)) / hj)
        return self._fine[j]

    def judge(self, values, rtol):
        """Per element: ok, kink, kink_outside (a kink, but values outside both slopes), the
        reference used, the relative error, and the one-sided slopes."""
        ref, noise = self.central.copy(), self.noise.copy()
        rel = _rel(values, ref, noise, rtol)
        ok = rel <= rtol
        kink = np.zeros(ref.shape, bool)
        outside = np.zeros(ref.shape, bool)
        left, right = self.bwd.copy(), self.fwd.copy()
        # Look closer where the values disagree, and where the one-sided slopes differ by much
        # more than a smooth f's h * f'' (a kink the values happen to agree with, like abs at 0).
        gap = np.abs(self.fwd - self.bwd)
        steep = gap > 1e-3 * max(float(np.abs(self.central).max(initial=0.0)), 1e-300)
        for j in np.flatnonzero(~ok | steep):
            c2, f2, b2, n2 = self._fine_at(j)
            gap1, gap2 = gap.flat[j], abs(f2 - b2)
            # a smooth f: the one-sided gap shrinks with h (gap2 ~ gap1 / 10); a kink: it stays
            if gap1 > 50 * n2 and gap2 > 0.2 * gap1:
                kink.flat[j] = True
                lo = min(self.fwd.flat[j], self.bwd.flat[j], f2, b2)
                hi = max(self.fwd.flat[j], self.bwd.flat[j], f2, b2)
                slack = rtol * max(abs(lo), abs(hi)) + n2
                v = values.flat[j]
                outside.flat[j] = not (lo - slack <= v <= hi + slack)
                left.flat[j], right.flat[j] = b2, f2
                ref.flat[j], rel.flat[j] = c2, _rel(v, c2, n2, rtol)
                continue
            if ok.flat[j]:
                continue
            # Truncation error: O(h^2) for a smooth f, but O(h) where f'' jumps (max(x, 0)^2
            # at 0). The change from h to h/10 bounds what is left at h/10 in either case.
            n2 = n2 + abs(self.central.flat[j] - c2) / 9
            r2 = _rel(values.flat[j], c2, n2, rtol)
            if r2 <= rtol or r2 < rel.flat[j]:
                ref.flat[j], rel.flat[j], ok.flat[j] = c2, r2, r2 <= rtol
        return {"ok": ok, "kink": kink, "kink_outside": outside, "ref": ref, "rel": rel,
                "central": self.central, "left": left, "right": right}


def _autodiff_grads(f, args, idx, f0):
    """Gradients of f by tinymeta autodiff, if f runs on float64 tensors; else (None, why)."""
    old = get_default_dtype()
    set_default_dtype("float64")  # constants f makes with tm.tensor(...) join in float64
    try:
        targs = list(args)
        for i in idx:
            targs[i] = Tensor(args[i].copy(), dtype=np.float64, requires_grad=True)
        try:
            out = f(*targs)
        except Exception as exc:  # any failure only means: this reference is unavailable
            return None, (f"f is NumPy code (on tm.Tensor inputs it raised "
                          f"{type(exc).__name__}); written with tinymeta ops it would give an "
                          "exact second reference")
        if not isinstance(out, Tensor):
            return None, ("f is NumPy code (on tm.Tensor inputs it returned a plain array: "
                          "NumPy functions drop the graph); written with tinymeta ops it would "
                          "give an exact second reference")
        if out.size != 1:
            return None, f"f returned a tensor of shape {out.shape} on tm.Tensor inputs"
        if abs(out.item() - f0) > 1e-8 * max(1.0, abs(f0)):
            return None, (f"f computes {out.item():.10g} on tm.Tensor inputs but {f0:.10g} on "
                          "arrays")
        ts = [targs[i] for i in idx]
        if not out.requires_grad:
            return None, "f's result on tm.Tensor inputs does not depend on them (no graph)"
        try:
            gs = _tm_grad(out.sum(), ts, allow_unused=True)
        except Exception as exc:
            return None, f"tm.grad raised {type(exc).__name__} ({_short(exc)})"
        return [np.zeros(t.shape) if g is None else np.asarray(g.data, np.float64)
                for g, t in zip(gs, ts)], None
    finally:
        set_default_dtype(old)


def _autodiff_hessian(f, x):
    """The Hessian of f by tinymeta's second-order autodiff, or (None, why)."""
    old = get_default_dtype()
    set_default_dtype("float64")
    try:
        t = Tensor(x.copy(), dtype=np.float64, requires_grad=True)
        try:
            out = f(t)
            if not isinstance(out, Tensor) or out.size != 1 or not out.requires_grad:
                return None, ("f is NumPy code (on a tm.Tensor input it returned a plain "
                              "array: NumPy functions drop the graph); written with tinymeta ops "
                              "it would give an exact second reference")
            (g,) = _tm_grad(out.sum(), [t], create_graph=True, allow_unused=True)
            if g is None:
                return np.zeros((x.size, x.size)), None
            g = g.reshape(-1)
            rows = []
            for j in range(x.size):
                (hj,) = _tm_grad(g[j], [t], retain_graph=True, allow_unused=True) \
                    if g.requires_grad else (None,)
                rows.append(np.zeros(x.size) if hj is None else hj.data.reshape(-1))
            return np.array(rows, dtype=np.float64), None
        except Exception as exc:
            return None, (f"f is NumPy code (on a tm.Tensor input it raised "
                          f"{type(exc).__name__}); written with tinymeta ops it would give an "
                          "exact second reference")
    finally:
        set_default_dtype(old)


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


__all__ = ["check_grad", "check_backward", "check_hessian", "DerivativeReport", "InputCheck",
           "Failure", "Kink", "PrecisionWarning"]

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

from ..engine import Tensor, get_default_dtype, set_default_dtype
from ..engine import grad as _tm_grad
from ..errors import ArgumentError, DTypeError, GradcheckError, PrecisionWarning, ShapeError
from .hints import _hessian_hint
from .plumbing import (AD, _AD_NOISE, _C_NOISE, _as_float_array, _name, _need_callable, _param_names, _precision,
                       _prepare, _rel, _scalar)
from .references import _autodiff_hessian, _first_order

from .report import DerivativeReport, Failure, InputCheck, Kink  # noqa: F401

__all__ = ["check_grad", "check_backward", "check_hessian", "DerivativeReport", "InputCheck", "Failure", "Kink",
           "PrecisionWarning"]


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

"""The references a hand derivative is compared with: central differences (with kinks
detected and set aside) and tinymeta's own autodiff."""

import numpy as np

from ..engine import Tensor, get_default_dtype, set_default_dtype
from ..engine import grad as _tm_grad
from .hints import _hint
from .plumbing import AD, FD, _AD_NOISE, _C_NOISE, _hand_gradients, _precision, _rel, _short
from .report import DerivativeReport, Failure, InputCheck, Kink


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

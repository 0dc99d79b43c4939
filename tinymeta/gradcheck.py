"""Check analytic derivatives against central finite differences, in float64.

``gradcheck`` compares the full Jacobian of ``fn`` built by backward passes with the one
built by perturbing each input element by +-eps. ``gradgradcheck`` does the same for the
function that maps (inputs, output-gradients) to input-gradients: it checks second order.
"""
import numpy as np

from .engine import Tensor, _wrap, grad
from .errors import GradcheckError


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _outputs(fn, inputs):
    outs = _as_tuple(fn(*inputs))
    for k, o in enumerate(outs):
        if type(o) is not Tensor:
            raise GradcheckError(f"gradcheck: fn must return Tensors, output {k} is {type(o).__name__}")
    return outs


def _diff_inputs(inputs, where):
    idx = [i for i, x in enumerate(inputs) if type(x) is Tensor and x.requires_grad]
    if not idx:
        raise GradcheckError(f"{where}: no input requires grad, so there is nothing to check; "
                             "pass tensors made with requires_grad=True")
    for i in idx:
        if inputs[i].dtype != np.float64:
            raise GradcheckError(
                f"{where}: input {i} is {inputs[i].dtype}; finite differences need float64 to mean "
                f"anything: pass tm.tensor(x, dtype='float64', requires_grad=True)")
    return idx


def _analytic(fn, inputs, diff):
    """J[o][i]: array of shape (out.size, in.size), one backward pass per output element."""
    outs = _outputs(fn, inputs)
    xs = [inputs[i] for i in diff]
    jac = [[np.zeros((o.size, x.size)) for x in xs] for o in outs]
    for k, o in enumerate(outs):
        if not o.requires_grad:
            continue
        for j in range(o.size):
            seed = np.zeros(o.shape, dtype=o.dtype)
            seed.flat[j] = 1.0
            gs = grad(o, xs, grad_outputs=[_wrap(seed)], retain_graph=True, allow_unused=True)
            for m, gi in enumerate(gs):
                if gi is not None:
                    jac[k][m][j] = gi.data.reshape(-1)
    return jac


def _numeric(fn, inputs, diff, eps):
    outs = _outputs(fn, inputs)
    jac = [[np.zeros((o.size, inputs[i].size)) for i in diff] for o in outs]
    # Not under no_grad: fn may itself differentiate (gradgradcheck's first derivative).
    for m, i in enumerate(diff):
        data = inputs[i].data  # perturbed in place (a reshape could be a copy)
        for j, idx in enumerate(np.ndindex(data.shape)):
            orig = data[idx]
            data[idx] = orig + eps
            plus = [o.data.copy() for o in _outputs(fn, inputs)]
            data[idx] = orig - eps
            minus = [o.data.copy() for o in _outputs(fn, inputs)]
            data[idx] = orig
            for k in range(len(outs)):
                jac[k][m][:, j] = ((plus[k] - minus[k]) / (2 * eps)).reshape(-1)
    return jac


def _compare(analytic, numeric, diff, names, atol, rtol, where, out_names=None):
    for k, (arow, nrow) in enumerate(zip(analytic, numeric)):
        for m, (a, n) in enumerate(zip(arow, nrow)):
            bad = np.abs(a - n) > atol + rtol * np.abs(n)
            if bad.any() or not np.isfinite(a).all():
                r, c = np.argwhere(bad | ~np.isfinite(a))[0]
                out = out_names[k] if out_names else f"output {k}"
                raise GradcheckError(
                    f"{where}: the derivative of {out} element {r} w.r.t. "
                    f"{names[diff[m]]} element {c} is wrong: analytic {a[r, c]:.8g}, numeric "
                    f"{n[r, c]:.8g} (difference {abs(a[r, c] - n[r, c]):.3g} > atol + rtol*|numeric| "
                    f"= {atol + rtol * abs(n[r, c]):.3g}); {int(bad.sum())} of {bad.size} entries "
                    "of this Jacobian block disagree")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, _names=None,
              _out_names=None, _where="gradcheck"):
    """True if ``fn``'s backward agrees with finite differences at ``inputs``; otherwise
    raises ``GradcheckError`` naming the input, the element, the analytic and numeric values."""
    inputs = _as_tuple(inputs)
    diff = _diff_inputs(inputs, _where)
    names = _names or [f"input {i} (shape {np.shape(x.data) if type(x) is Tensor else ()})"
                       for i, x in enumerate(inputs)]
    try:
        _compare(_analytic(fn, inputs, diff), _numeric(fn, inputs, diff, eps), diff, names,
                 atol, rtol, _where, _out_names)
    except GradcheckError:
        if raise_exception:
            raise
        return False
    return True


def _second_order_problem(fn, inputs, grad_outputs=None, seed=0):
    """(first_derivative, its inputs, names): checking first_derivative's gradient checks
    fn's second derivatives. first_derivative(*inputs, *v) = grad(fn(inputs), inputs, v)."""
    inputs = _as_tuple(inputs)
    diff = _diff_inputs(inputs, "gradgradcheck")
    outs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed)
        grad_outputs = [Tensor(rng.standard_normal(o.shape), dtype=np.float64, requires_grad=True)
                        for o in outs]
    grad_outputs = list(_as_tuple(grad_outputs))
    n = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:n], args[n:]
        outs = _outputs(fn, xs)
        live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        wrt = [xs[i] for i in diff]
        if not live:
            return tuple(_wrap(np.zeros(x.shape)) for x in wrt)
        gs = grad([o for o, _ in live], wrt, grad_outputs=[v for _, v in live],
                  create_graph=True, allow_unused=True)
        return tuple(_wrap(np.zeros(x.shape)) if g is None else g for g, x in zip(gs, wrt))

    names = [f"input {i} (shape {np.shape(x.data) if type(x) is Tensor else ()})"
             for i, x in enumerate(inputs)]
    names += [f"grad_output {k} (shape {v.shape})" for k, v in enumerate(grad_outputs)]
    out_names = [f"the first derivative (v^T J) w.r.t. {names[i]}" for i in diff]
    return first_derivative, tuple(inputs) + tuple(grad_outputs), names, out_names


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3,
                  raise_exception=True, seed=0):
    """Check second derivatives: gradcheck of (inputs, v) -> grad(fn(inputs), inputs, v)."""
    first, args, names, out_names = _second_order_problem(fn, inputs, grad_outputs, seed)
    return gradcheck(first, args, eps, atol, rtol, raise_exception, _names=names,
                     _out_names=out_names, _where="gradgradcheck (second derivatives)")


def max_error(fn, inputs, eps=1e-6, order=1):
    """The largest ``|analytic - numeric|`` entry over the Jacobian (order=1), or over the
    Jacobian of the first derivative (order=2)."""
    inputs = _as_tuple(inputs)
    if order == 2:
        fn, inputs, _, _ = _second_order_problem(fn, inputs)
    diff = _diff_inputs(inputs, "max_error")
    a, n = _analytic(fn, inputs, diff), _numeric(fn, inputs, diff, eps)
    return max((float(np.max(np.abs(x - y))) if x.size else 0.0)
               for ra, rn in zip(a, n) for x, y in zip(ra, rn))

"""Elementwise ops: arithmetic, the math functions and the activations.

Each line is a forward beside its derivative, written with these same ops (so the
derivative can be differentiated again). Binary ops broadcast as NumPy does; the
machinery sums each gradient back to its input's shape.
"""
import numpy as np

from .. import kernels
from ..engine import Tensor
from .core import data, defop, defop_nondiff, zeros_like

# ----------------------------------------------------------------------------- arithmetic

add = defop("add", np.add, lambda g, o, a, b: g, lambda g, o, a, b: g, reads_inputs=False,
            doc="a + b, broadcasting.",
            src="{0} + {1}",
            scalar=True)
sub = defop("sub", np.subtract, lambda g, o, a, b: g, lambda g, o, a, b: -g, reads_inputs=False,
            doc="a - b, broadcasting.",
            src="{0} - {1}",
            scalar=True)
mul = defop("mul", np.multiply, lambda g, o, a, b: g * b, lambda g, o, a, b: g * a,
            doc="a * b, elementwise, broadcasting.",
            src="{0} * {1}",
            scalar=True)
div = defop("div", np.true_divide, lambda g, o, a, b: g / b, lambda g, o, a, b: -g * o / b,
            doc="a / b, elementwise, broadcasting.",
            src="{0} / {1}",
            scalar=True)
neg = defop("neg", np.negative, lambda g, o, a: -g, doc="-a.",
            src="-{0}",
            scalar=True)


def _pow_vjp_a(g, o, a, b):
    if type(b) is not Tensor and np.ndim(b) == 0:
        # Exact small exponents get exact rules: b * a**(b-1) would compute 0 * inf = NaN
        # at a = 0 for b = 0, and its own derivative would for b = 1.
        if b == 0:
            return zeros_like(a)
        if b == 1:
            return g
        if b == 2:
            return g * 2.0 * a
    return g * b * a ** (b - 1)


def _pow_vjp_b(g, o, a, b):
    # d(a^b)/db = a^b log a; where a == 0 the limit of that product is 0.
    return g * o * log(where(greater(a, 0), a, 1.0))


pow = defop("pow", np.power, _pow_vjp_a, _pow_vjp_b,  # noqa: A001 (shadows builtin on purpose)
            doc="a ** b, elementwise, broadcasting.",
            src="{0} ** {1}")

# ----------------------------------------------------------------------------- math functions
# exp, log, sin, cos and tanh have no scalar form: NumPy's vectorised versions are 5-10x
# faster than the scalar libm calls a fused numba loop makes (64,000 floats: np.exp 29 us,
# numba's loop 149 us), so a replay leaves them to NumPy and fuses what is around them.

exp = defop("exp", np.exp, lambda g, o, a: g * o, doc="e ** x, elementwise.",
            src="np.exp({0})")
log = defop("log", np.log, lambda g, o, a: g / a, doc="Natural logarithm, elementwise.",
            src="np.log({0})")
sqrt = defop("sqrt", np.sqrt, lambda g, o, a: g * 0.5 / o, doc="Square root, elementwise.",
            src="np.sqrt({0})",
            scalar=True)
abs = defop("abs", np.abs, lambda g, o, a: g * sign(a),  # noqa: A001
            doc="|x|, elementwise (derivative 0 at 0).",
            src="np.abs({0})",
            scalar=True)
sin = defop("sin", np.sin, lambda g, o, a: g * cos(a), doc="Sine, elementwise.",
            src="np.sin({0})")
cos = defop("cos", np.cos, lambda g, o, a: -g * sin(a), doc="Cosine, elementwise.",
            src="np.cos({0})")

# ----------------------------------------------------------------------------- activations
# Their derivatives are written from their outputs, as primitives of their own so a numba
# kernel can compute them in one pass; each has a (differentiable) rule in turn.

tanh_backward = defop("tanh_backward", kernels.tanh_backward,
                      lambda gg, o, g, y: tanh_backward(gg, y),
                      lambda gg, o, g, y: -2.0 * gg * g * y,
                      doc="g * (1 - y**2), tanh's derivative from its output y.",
            src="{0} * (1 - {1} * {1})",
            scalar=True)
tanh = defop("tanh", np.tanh, lambda g, o, a: tanh_backward(g, o), doc="Hyperbolic tangent, elementwise.",
            src="np.tanh({0})")


def _float_like(result, x):
    """Keep a float input's dtype (float32 stays float32); integers promote as in NumPy."""
    return result.astype(x.dtype, copy=False) if x.dtype.kind == "f" else result


def _sigmoid_fwd(x):
    if x.dtype.kind != "f":
        x = x.astype(np.float64)  # -abs(x) of unsigned integers would wrap around
    # exp of a non-positive number only: no overflow for logits of +-1e4.
    e = np.exp(-np.abs(x))
    return _float_like(np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)), x)


sigmoid_backward = defop("sigmoid_backward", kernels.sigmoid_backward,
                         lambda gg, o, g, y: sigmoid_backward(gg, y),
                         lambda gg, o, g, y: gg * g * (1.0 - 2.0 * y),
                         doc="g * y * (1 - y), sigmoid's derivative from its output y.",
            src="{0} * {1} * (1 - {1})",
            scalar=True)
sigmoid = defop("sigmoid", _sigmoid_fwd, lambda g, o, a: sigmoid_backward(g, o),
                doc="1 / (1 + e**-x), elementwise, stable for large |x|.",
            src="sigmoid({0})")

# relu'' is zero almost everywhere: the rule for y is an explicit zero, not "unused".
relu_backward = defop("relu_backward", kernels.relu_backward,
                      lambda gg, o, g, y: relu_backward(gg, y),
                      lambda gg, o, g, y: zeros_like(y),
                      doc="g * (y > 0), relu's derivative from its output y.",
            src="{0} * ({1} > 0)",
            scalar=True)
relu = defop("relu", kernels.relu, lambda g, o, a: relu_backward(g, o), doc="max(x, 0), elementwise.",
            src="np.maximum({0}, 0)",
            # As the kernel: v <= 0 -> 0 (+0.0 for -0.0, as np.maximum(x, 0) gives), NaN passes.
            scalar="(0 if {0} <= 0 else {0})")


def _slope_args(x, negative_slope: float = 0.01):
    return (x,), {"negative_slope": float(negative_slope)}


leaky_relu = defop("leaky_relu", lambda x, negative_slope=0.01: _float_like(np.where(x > 0, x, x * negative_slope), x),
                   lambda g, o, a, negative_slope=0.01: where(greater(a, 0), g, g * negative_slope),
                   args=_slope_args,
                   doc="x where x > 0, else negative_slope * x.",
            src="np.where({0} > 0, {0}, {0} * {negative_slope})")
softplus = defop("softplus", lambda x: _float_like(np.logaddexp(0.0, x), x), lambda g, o, a: g * sigmoid(a),
                 doc="log(1 + e**x), elementwise, stable for large |x|.",
            src="np.logaddexp(0, {0})")


def _clip_vjp(g, o, a, min=None, max=None):  # noqa: A002
    # The gradient passes where a is inside [min, max] (the bounds included).
    if min is not None:
        g = where(less(a, min), 0.0, g)
    if max is not None:
        g = where(greater(a, max), 0.0, g)
    return g


def _clip_args(x, min: "float | None" = None, max: "float | None" = None):  # noqa: A002
    return (x,), {"min": min, "max": max}


clip = defop("clip", lambda x, min=None, max=None: np.clip(x, min, max),  # noqa: A002
             _clip_vjp,
             args=_clip_args,
             doc="x limited to [min, max]; the gradient passes only where x is inside.",
            src="np.clip({0}, {min}, {max})")

# Ties send the whole gradient to the first argument (a choice; the derivative is undefined there).
maximum = defop("maximum", np.maximum,
                lambda g, o, a, b: where(greater_equal(a, b), g, 0.0),
                lambda g, o, a, b: where(less(a, b), g, 0.0),
                doc="The larger of a and b, elementwise; ties send the gradient to a.",
            src="np.maximum({0}, {1})",
            # np.maximum: NaN if either is NaN, and the second on a tie (0.0 vs -0.0).
            scalar="({0} if {0} > {1} or {0} != {0} else {1})")
minimum = defop("minimum", np.minimum,
                lambda g, o, a, b: where(less_equal(a, b), g, 0.0),
                lambda g, o, a, b: where(greater(a, b), g, 0.0),
                doc="The smaller of a and b, elementwise; ties send the gradient to a.",
            src="np.minimum({0}, {1})",
            scalar="({0} if {0} < {1} or {0} != {0} else {1})")

where = defop("where", np.where,
              lambda g, o, c, a, b: None,
              lambda g, o, c, a, b: where(c, g, 0.0),
              lambda g, o, c, a, b: where(c, 0.0, g),
              args=lambda condition, x, y: ((np.asarray(data(condition), dtype=bool), x, y), {}),
              doc="``x`` where ``condition`` holds, else ``y``; the condition is not differentiated.",
            src="np.where({0}, {1}, {2})",
            scalar="({1} if {0} else {2})")

# ----------------------------------------------------------------------------- comparisons
# Not differentiable: boolean tensors with no graph. They are still ops, so the masks the
# rules above build with them are recorded by tm.trace and follow new inputs on replay.

less = defop_nondiff("less", np.less, "{0} < {1}", "a < b, elementwise (no gradient).", scalar=True)
less_equal = defop_nondiff("less_equal", np.less_equal, "{0} <= {1}", "a <= b, elementwise (no gradient).", scalar=True)
greater = defop_nondiff("greater", np.greater, "{0} > {1}", "a > b, elementwise (no gradient).", scalar=True)
greater_equal = defop_nondiff("greater_equal", np.greater_equal, "{0} >= {1}", "a >= b, elementwise (no gradient).",
                              scalar=True)
equal = defop_nondiff("equal", np.equal, "{0} == {1}", "a == b, elementwise (no gradient).", scalar=True)
not_equal = defop_nondiff("not_equal", np.not_equal, "{0} != {1}", "a != b, elementwise (no gradient).", scalar=True)
sign = defop_nondiff("sign", np.sign, "np.sign({0})", "-1, 0 or 1 by the sign of x (no gradient).")
isfinite = defop_nondiff("isfinite", np.isfinite, "np.isfinite({0})", "Whether x is finite, elementwise.")

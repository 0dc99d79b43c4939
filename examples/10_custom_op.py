"""Write your own op: a ``tm.Function`` with forward and backward, checked to second order.

We add Swish (also called SiLU), swish(x) = x * sigmoid(x), as a custom op:

* ``forward(ctx, x)`` computes the value and saves what backward needs;
* ``backward(ctx, g)`` returns the gradient of the loss w.r.t. x, given the gradient g
  w.r.t. the output: g * swish'(x), swish'(x) = s + x s (1 - s) with s = sigmoid(x).

Written with tinymeta ops, the backward is itself differentiable, so the op works to any
order; ``tm.gradcheck`` and ``tm.gradgradcheck`` compare first and second derivatives
with finite differences. Two broken versions show what each check catches: a wrong
derivative (caught by gradcheck), and a correct derivative computed in plain NumPy,
which passes gradcheck but cannot be differentiated again (caught by gradgradcheck).
"""
import numpy as np

import tinymeta as tm
from _common import parse_args, pyplot, savefig, section


class Swish(tm.Function):
    """swish(x) = x * sigmoid(x), with a hand-written (differentiable) backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x.sigmoid()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = x.sigmoid()
        return g * (s + x * s * (1 - s))  # tinymeta ops: this line records a graph too


class SwishWrong(Swish):
    """A typical slip: the product rule's second term forgotten."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.sigmoid()


class SwishNumPy(Swish):
    """The right derivative, but computed on raw NumPy arrays (.data): the value is
    correct, yet no graph connects it to x, so it cannot be differentiated again."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        xs = x.data
        s = 1.0 / (1.0 + np.exp(-xs))
        return tm.tensor(g.data * (s + xs * s * (1 - s)))


def check(name, fn, x):
    """Run gradcheck and gradgradcheck, print the verdict (and the error message)."""
    for check_fn in (tm.gradcheck, tm.gradgradcheck):
        try:
            check_fn(fn, [x])
            print(f"{name:<12} {check_fn.__name__:<14} passed")
        except tm.GradcheckError as err:
            print(f"{name:<12} {check_fn.__name__:<14} FAILED:\n    {err}")


def derivatives(op, x, order):
    """[f, f', f'', ...] on the points x, by repeated tm.grad with create_graph=True."""
    x = tm.tensor(x, dtype="float64", requires_grad=True)
    out, y = [], op(x)
    for _ in range(order + 1):
        out.append(y.numpy())
        if not y.requires_grad:  # the previous derivative is a constant: nothing to follow
            out.append(np.zeros_like(x.numpy()))
            break
        (y,) = tm.grad(y.sum(), [x], create_graph=True)  # elementwise op: sum gives f'
    return out


def main():
    args = parse_args("10_custom_op", __doc__)
    n = 5 if args.quick else 9  # gradcheck costs a backward pass per element

    section("1. Using the op")
    x = tm.tensor(np.linspace(-3, 3, n), dtype="float64", requires_grad=True)
    y = Swish.apply(x)
    y.sum().backward()
    print(f"x         = {np.round(x.numpy(), 3)}")
    print(f"swish(x)  = {np.round(y.numpy(), 4)}")
    print(f"d/dx      = {np.round(x.grad.numpy(), 4)}   (x.grad after backward)")
    # The same function from built-in ops needs no backward at all: the engine composes
    # the ops' rules. A custom op is for a derivation you want to check, or for speed.
    x2 = tm.tensor(x.numpy(), dtype="float64", requires_grad=True)
    (x2 * x2.sigmoid()).sum().backward()
    print(f"max |custom - built-in composition| = {np.abs(x.grad.numpy() - x2.grad.numpy()).max():.1e}")

    section("2. Gradient checks (float64, central differences)")
    # Checks need float64 inputs: in float32 a finite difference is mostly rounding noise.
    x = tm.tensor(args.rng.uniform(-3, 3, n), dtype="float64", requires_grad=True)
    check("Swish", Swish.apply, x)
    check("SwishWrong", SwishWrong.apply, x)
    check("SwishNumPy", SwishNumPy.apply, x)
    # What to notice:
    # * SwishWrong fails gradcheck, naming the element and both values.
    # * SwishWrong *passes* gradgradcheck: that check differentiates backward itself and
    #   only asks whether *that* is done right; it does not re-check backward. Run both.
    # * SwishNumPy passes gradcheck (its numbers are right) and fails gradgradcheck: its
    #   backward hands back a constant, so the derivative of the derivative comes out 0
    #   ("analytic 0"). MAML or a Hessian would silently get zeros.
    # (gradgradcheck runs gradcheck on the map (x, v) -> v . dswish/dx, so its message
    # says "gradcheck", and its "output 0" is that first derivative.)

    section("3. Derivatives to third order from one hand-written rule")
    grid = np.linspace(-6, 6, 241)
    good = derivatives(Swish.apply, grid, order=3)
    s = 1 / (1 + np.exp(-grid))
    d = s * (1 - s)  # sigmoid'(x)
    closed = [grid * s,                                                     # f
              s + grid * d,                                                 # f'
              d * (2 + grid * (1 - 2 * s)),                                 # f''
              d * (1 - 2 * s) * (3 + grid * (1 - 2 * s)) - 2 * grid * d ** 2]  # f'''
    for k in range(4):
        print(f"order {k}: max |tinymeta - closed form| = {np.abs(good[k] - closed[k]).max():.1e}")
    bad = derivatives(SwishNumPy.apply, grid, order=2)

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for k, label in enumerate(["swish(x)", "swish'(x)", "swish''(x)", "swish'''(x)"]):
        ax1.plot(grid, good[k], label=label)
    ax1.set(xlabel="x", title="Swish as a tm.Function: derivatives by repeated tm.grad")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(grid, good[2], lw=3, alpha=0.5, label="Swish (backward in tinymeta ops)")
    ax2.plot(grid, bad[2], "--", label="SwishNumPy (backward in NumPy)")
    ax2.set(xlabel="x", ylabel="second derivative", title="A NumPy backward loses second order")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    savefig(fig, args, "custom_op.png")


if __name__ == "__main__":
    main()

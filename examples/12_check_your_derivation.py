"""Check your own derivation: hand-written NumPy gradients, checked and diagnosed by tinymeta.

Two derivations, done by hand and written in plain NumPy:

* logistic regression, L(theta) = -(1/N) sum_i [y_i log s_i + (1 - y_i) log(1 - s_i)],
  s_i = sigmoid(theta^T x_i). With ds/dz = s (1 - s), the bracket's derivative in z_i is
  y_i - s_i, and dz_i/dtheta = x_i, so

      grad L = -(1/N) sum_i (y_i - sigmoid(theta^T x_i)) x_i = -(1/N) X^T (y - sigmoid(X theta));

* an affine + ReLU layer, out = max(0, x W + b), in the CS231n convention
  (forward -> out, cache; backward(dout, cache) -> dx, dW, db): with da = dout * [a > 0],
  dx = da W^T, dW = x^T da, db = sum over rows of da.

tm.check_grad and tm.check_backward compare them with central differences in float64 (and
with tinymeta's own autodiff when the function also runs on tinymeta tensors). Then three
classic mistakes are planted (a missing 1/N, a sign, a missing transpose), and each report
names its mistake. A last section puts a ReLU exactly at 0, where the derivative does not
exist: those elements are listed apart, not counted as failures. The plot shows hand values
against reference values, one panel per derivation: a right one lies on the diagonal.
"""
import numpy as np

import tinymeta as tm
from _common import parse_args, pyplot, savefig, section


# ---------------------------------------------------------------- logistic regression, by hand

def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def logreg_loss(theta, X, y):
    """Mean cross-entropy; log(1 + e^z) - y z is the same bracket, written stably."""
    z = X @ theta
    return np.mean(np.logaddexp(0.0, z) - y * z)


def logreg_grad(theta, X, y):
    """-(1/N) X^T (y - sigmoid(X theta)): the derivation above."""
    return -X.T @ (y - sigmoid(X @ theta)) / len(y)


def logreg_grad_no_mean(theta, X, y):
    """Mistake 1: the 1/N of the mean forgotten."""
    return -X.T @ (y - sigmoid(X @ theta))


def logreg_grad_sign(theta, X, y):
    """Mistake 2: the leading minus dropped (the gradient of the log-likelihood, not the loss)."""
    return X.T @ (y - sigmoid(X @ theta)) / len(y)


def logreg_loss_tm(theta, X, y):
    """The same loss with tinymeta ops: it runs on arrays and on tensors, so check_grad can
    also use tinymeta's autodiff as an exact reference."""
    z = X @ theta
    return (tm.softplus(z) - y * z).mean()


# ---------------------------------------------------------------- affine + ReLU layer, by hand

def affine_relu_forward(x, w, b):
    a = x @ w + b
    return np.maximum(a, 0.0), (x, w, a)


def affine_relu_backward(dout, cache):
    x, w, a = cache
    da = dout * (a > 0)              # the ReLU passes gradient where it was active
    return da @ w.T, x.T @ da, da.sum(axis=0)


def affine_relu_backward_no_transpose(dout, cache):
    """Mistake 3: dW = da^T x instead of x^T da (the transpose of the right answer)."""
    x, w, a = cache
    da = dout * (a > 0)
    return da @ w.T, da.T @ x, da.sum(axis=0)


def verdict(report, expect_ok, words=None):
    """One line under each report: was the mistake caught, and does a hint name it?"""
    hints = " ".join(c.hint or "" for c in report.inputs)
    named = words is None or words in hints
    good = bool(report) == expect_ok and named
    what = "passes, as it should" if expect_ok else f"caught, and the hint says '{words}'"
    print(f"--> {what}" if good else f"--> UNEXPECTED: ok={bool(report)}, hints: {hints}")
    return good


def main():
    args = parse_args("12_check_your_derivation", __doc__)
    n = 50 if args.quick else 200
    rng = args.rng
    X = rng.standard_normal((n, 8))
    y = (rng.random(n) < sigmoid(X @ rng.standard_normal(8))).astype(float)  # labels 0/1
    theta = 0.3 * rng.standard_normal(8)
    x, w, b = rng.standard_normal((4, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    ok = []

    section("1. Logistic regression: the hand-derived gradient")
    rep = tm.check_grad(logreg_loss, logreg_grad, theta, X, y, wrt=0)  # wrt=0: only theta
    print(rep)
    ok.append(verdict(rep, True))
    panels = [("logistic gradient, right", rep, None)]

    section("2. Affine + ReLU layer: backward against forward")
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward, x, w, b)
    print(rep)
    ok.append(verdict(rep, True))

    section("3a. Planted mistake: the 1/N of the mean forgotten")
    rep = tm.check_grad(logreg_loss, logreg_grad_no_mean, theta, X, y, wrt=0)
    print(rep)
    ok.append(verdict(rep, False, "missing 1/N"))
    panels.append(("missing 1/N", rep, "hint: a missing 1/N"))

    section("3b. Planted mistake: a sign")
    rep = tm.check_grad(logreg_loss, logreg_grad_sign, theta, X, y, wrt=0)
    print(rep)
    ok.append(verdict(rep, False, "sign error"))
    panels.append(("sign", rep, "hint: a sign error"))

    section("3c. Planted mistake: a missing transpose in dW")
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward_no_transpose, x, w, b)
    print(rep)
    ok.append(verdict(rep, False, "missing transpose"))
    panels.append(("missing transpose in dW", rep, "hint: a missing transpose"))

    section("4. A ReLU exactly at 0: a kink, reported apart")
    x0, b0 = x.copy(), b.copy()
    x0[0] = 0.0   # row 0's pre-activations are just b ...
    b0[1] = 0.0   # ... so unit 1 sits exactly on the kink
    rep = tm.check_backward(affine_relu_forward, affine_relu_backward, x0, w, b0)
    print(rep)
    ok.append(verdict(rep, True))
    # relu'(0) does not exist: (a > 0) takes 0 there, (a >= 0) would take 1; both lie between
    # the one-sided slopes, so neither is a mistake, and neither is counted.

    section("5. The same loss in tinymeta ops: autodiff as a second, exact reference")
    rep = tm.check_grad(logreg_loss_tm, logreg_grad, theta, X, y, wrt=0)
    print(rep)
    ok.append(verdict(rep, True))

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8))
    for ax, (title, r, label) in zip(axes, panels):
        c = r.inputs[0] if len(r.inputs) == 1 else r["w"]
        ref, hand = c.reference.ravel(), c.hand.ravel()
        if c.shape_note:  # the array as returned, shape (3, 5), read element by element
            hand = c.hand.T.ravel()
        # axes scaled to each cloud (a factor of N would squash it otherwise)
        lim = 1.1 * np.abs(ref).max()
        ax.plot([-lim, lim], [-lim, lim], color="0.7", lw=1, label="hand = reference")
        ax.scatter(ref, hand, s=18, color="tab:green" if r else "tab:red")
        ax.set(xlabel="reference (central differences)", ylabel="hand-derived", title=title,
               xlim=(-lim, lim))
        ax.grid(alpha=0.3)
        if label:
            ax.text(0.03, 0.95, label, transform=ax.transAxes, fontsize=9, va="top",
                    color="tab:red")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle("Hand-derived gradient vs reference, element by element")
    fig.tight_layout()
    savefig(fig, args, "check_your_derivation.png")
    print(f"\n{sum(ok)} of {len(ok)} checks came out as expected")
    if not all(ok):
        raise SystemExit(1)


if __name__ == "__main__":
    main()

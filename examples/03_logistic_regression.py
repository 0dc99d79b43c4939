"""Logistic regression, with the derivation's gradient checked three ways.

The textbook derivation gives, for p = sigmoid(theta^T x) and the mean cross-entropy
L(theta) = -(1/N) sum [y log p + (1-y) log(1-p)], the gradient

    dL/dtheta = -(1/N) sum_i (y_i - sigmoid(theta^T x_i)) x_i.

On a real binary task (handwritten 3s vs 8s) we check that formula against tinymeta's
autograd (``tm.grad``) and against central finite differences, train with it, and draw
what the model learned. A 2-D synthetic task shows the decision boundary.
"""
import numpy as np

import tinymeta as tm
from tinymeta.data import load_digits, train_val_test_split
from tinymeta.nn import functional as F
from _common import parse_args, pyplot, savefig, section


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def bce(theta, X, y):
    """The loss in plain NumPy (float64), for finite differences."""
    p = sigmoid(X @ theta)
    return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))


def formula_gradient(theta, X, y):
    """The derivation: -(1/N) sum (y - sigmoid(theta^T x)) x."""
    return -(X.T @ (y - sigmoid(X @ theta))) / len(y)


def autograd_gradient(theta, X, y):
    th = tm.tensor(theta, dtype="float64", requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(tm.tensor(X, dtype="float64") @ th, y)
    (g,) = tm.grad(loss, [th])
    return g.numpy()


def train_gd(X, y, X_test, y_test, lr, steps, use_autograd):
    """Plain gradient descent from theta = 0, the gradient from the formula or from tm.grad."""
    theta = np.zeros(X.shape[1])
    curve = []
    for _ in range(steps):
        curve.append((bce(theta, X, y), bce(theta, X_test, y_test)))
        g = autograd_gradient(theta, X, y) if use_autograd else formula_gradient(theta, X, y)
        theta = theta - lr * g
    return theta, np.array(curve)


def with_ones(X):
    return np.hstack([X, np.ones((len(X), 1))])  # the intercept as one more weight


def main():
    args = parse_args("03_logistic_regression", __doc__)
    steps = 40 if args.quick else 400

    # ------------------------------------------------------------------ data: 3 vs 8
    X, y = load_digits()
    keep = (y == 3) | (y == 8)
    X, y = X[keep], (y[keep] == 8).astype(np.float64)  # label 1 = "an eight"
    X_tr, y_tr, _, _, X_te, y_te = train_val_test_split(X, y, val=0.0, test=0.3, rng=args.seed,
                                                        stratify=True)
    Xa_tr, Xa_te = with_ones(X_tr), with_ones(X_te)
    print(f"digits 3 vs 8: {len(X_tr)} training and {len(X_te)} test images, 64 pixels + intercept")

    section("1. The gradient formula vs autograd vs finite differences")
    theta = args.rng.normal(scale=0.3, size=Xa_tr.shape[1])  # an arbitrary point
    g_formula = formula_gradient(theta, Xa_tr, y_tr)
    g_auto = autograd_gradient(theta, Xa_tr, y_tr)
    eps = 1e-6
    g_fd = np.array([(bce(theta + eps * e, Xa_tr, y_tr) - bce(theta - eps * e, Xa_tr, y_tr)) / (2 * eps)
                     for e in np.eye(len(theta))])
    print(f"|g| = {np.linalg.norm(g_formula):.6f}")
    print(f"max |formula - tm.grad|            = {np.max(np.abs(g_formula - g_auto)):.2e}  (rounding)")
    print(f"max |formula - finite differences| = {np.max(np.abs(g_formula - g_fd)):.2e}  "
          f"(truncation + rounding of eps={eps})")
    # tm.gradcheck does the finite-difference comparison for us, for any function.
    Xt = tm.tensor(Xa_tr, dtype="float64")
    ok = tm.gradcheck(lambda th: F.binary_cross_entropy_with_logits(Xt @ th, y_tr),
                      [tm.tensor(theta, dtype="float64", requires_grad=True)])
    print(f"tm.gradcheck on the loss: {ok}")

    # A variant often written by mistake carries an extra factor
    # sigmoid(1 - sigmoid). The check tells us at once that it is not this loss's gradient:
    # it is the gradient of a different loss, (1/2N) sum (y - p)^2 on the probabilities.
    s = sigmoid(Xa_tr @ theta)
    g_variant = -(Xa_tr.T @ ((y_tr - s) * s * (1 - s))) / len(y_tr)
    th = tm.tensor(theta, dtype="float64", requires_grad=True)
    p = (Xt @ th).sigmoid()
    (g_half_mse,) = tm.grad(0.5 * ((p - y_tr) ** 2).mean(), [th])
    print(f"variant with the extra s(1-s) factor: max |variant - cross-entropy gradient| = "
          f"{np.max(np.abs(g_variant - g_auto)):.3f} (wrong for this loss), but "
          f"max |variant - grad of half-MSE on p| = {np.max(np.abs(g_variant - g_half_mse.numpy())):.1e}")

    section("2. Training by gradient descent: the formula vs tm.grad")
    theta_f, curve = train_gd(Xa_tr, y_tr, Xa_te, y_te, lr=1.0, steps=steps, use_autograd=False)
    theta_a, _ = train_gd(Xa_tr, y_tr, Xa_te, y_te, lr=1.0, steps=steps, use_autograd=True)
    acc = np.mean((Xa_te @ theta_f > 0) == (y_te == 1))
    print(f"{steps} steps, lr 1.0: train loss {curve[-1, 0]:.4f}, test loss {curve[-1, 1]:.4f}, "
          f"test accuracy {acc:.3f}")
    print(f"the two trajectories end {np.max(np.abs(theta_f - theta_a)):.1e} apart (same algorithm)")
    # The library's learner (standardized features, L2 penalty, same autograd underneath):
    clf = tm.learners.LogisticRegression(epochs=200 if args.quick else 1000).fit(X_tr, y_tr)
    print(f"tinymeta.learners.LogisticRegression: test accuracy {clf.score(X_te, y_te):.3f}")

    # ------------------------------------------------------------------ 2-D boundary
    section("3. A 2-D task, to see the decision boundary")
    rng = args.rng
    n = 100
    X2 = np.vstack([rng.normal([-1.0, -0.5], 0.8, (n, 2)), rng.normal([1.0, 0.8], 0.8, (n, 2))])
    y2 = np.repeat([0.0, 1.0], n)
    theta2, curve2 = train_gd(with_ones(X2), y2, with_ones(X2), y2, lr=0.5, steps=steps,
                              use_autograd=True)
    print(f"theta = {np.round(theta2, 3)}; boundary: {theta2[0]:.2f} x1 + {theta2[1]:.2f} x2 + "
          f"{theta2[2]:.2f} = 0; training accuracy "
          f"{np.mean((with_ones(X2) @ theta2 > 0) == (y2 == 1)):.3f}")

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    axes[0].plot(curve[:, 0], label="train")
    axes[0].plot(curve[:, 1], "--", label="test")
    axes[0].set(xlabel="gradient-descent step", ylabel="cross-entropy", yscale="log",
                title="3 vs 8: loss")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    # Positive weights (red) vote "8": the left-hand strokes that close an 8 and a 3 lacks.
    lim = np.abs(theta_f[:64]).max()
    im = axes[1].imshow(theta_f[:64].reshape(8, 8), cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1].set(title="learned pixel weights (red: '8', blue: '3')", xticks=[], yticks=[])
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    g1, g2 = np.meshgrid(np.linspace(-4, 4, 200), np.linspace(-4, 4, 200))
    prob = sigmoid(theta2[0] * g1 + theta2[1] * g2 + theta2[2])
    cs = axes[2].contourf(g1, g2, prob, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.5)
    axes[2].contour(g1, g2, prob, levels=[0.5], colors="k", linewidths=2)
    axes[2].scatter(*X2[y2 == 0].T, c="tab:blue", s=12, label="class 0")
    axes[2].scatter(*X2[y2 == 1].T, c="tab:red", s=12, label="class 1")
    axes[2].set(xlabel="x1", ylabel="x2", title="2-D task: p(class 1) and the boundary p = 0.5")
    axes[2].legend(loc="upper left")
    fig.colorbar(cs, ax=axes[2], fraction=0.046)
    fig.tight_layout()
    savefig(fig, args, "logistic_regression.png")


if __name__ == "__main__":
    main()

"""Linear regression two ways: gradient descent vs the closed form.

The classic first program: 100 samples with 10 features, a linear model
``nn.Linear(10, 1)`` trained on the mean squared error. We fit it

1. by full-batch gradient descent, written out as a plain loop (forward, backward, step),
2. with the usual deep-learning recipe: Adam, mini-batches of 32, 100 epochs (``train.fit``),
3. in closed form: theta = pinv([X, 1]) y, the least-squares optimum through the
   Moore-Penrose pseudo-inverse (``tm.linalg.pinv``),

and check that the iterative fits converge to the closed-form optimum.
"""
import numpy as np

import tinymeta as tm
from tinymeta import nn, optim
from tinymeta.nn import functional as F
from tinymeta.train import fit
from _common import parse_args, pyplot, savefig, section


def main():
    args = parse_args("02_linear_regression", __doc__)
    rng = args.rng
    gd_steps = 60 if args.quick else 300
    adam_epochs = 10 if args.quick else 100

    # ------------------------------------------------------------------ data
    # y = X w_true + 0.5 + noise: a 100 x 10 training set with a known linear answer,
    # plus a test set.
    n_train, n_test, d = 100, 100, 10
    w_true = rng.normal(size=(d, 1))
    X = rng.normal(size=(n_train + n_test, d)).astype(np.float32)
    y = (X @ w_true + 0.5 + 0.3 * rng.normal(size=(n_train + n_test, 1))).astype(np.float32)
    X_tr, y_tr, X_te, y_te = X[:n_train], y[:n_train], X[n_train:], y[n_train:]

    section("1. Full-batch gradient descent, the loop written out")
    model = nn.Linear(d, 1, rng=args.seed)
    opt = optim.SGD(model.parameters(), lr=0.1)
    gd_losses = []
    for _ in range(gd_steps):
        loss = F.mse_loss(model(X_tr), y_tr)  # forward
        opt.zero_grad()
        loss.backward()                       # backward: fills .grad of weight and bias
        opt.step()                            # w <- w - lr * grad
        gd_losses.append(loss.item())
    gd_w, gd_b = model.weight.numpy()[0], model.bias.numpy()[0]
    print(f"{gd_steps} steps of SGD(lr=0.1): train MSE {gd_losses[0]:.4f} -> {gd_losses[-1]:.4f}")

    section("2. The usual recipe: Adam, batch 32 (tinymeta.train.fit)")
    adam_model = nn.Linear(d, 1, rng=args.seed)
    hist = fit(adam_model, F.mse_loss, optim.Adam(adam_model.parameters(), lr=0.01),
               (X_tr, y_tr), val=(X_te, y_te), epochs=adam_epochs, batch_size=32, rng=args.seed)
    print(f"{adam_epochs} epochs: train MSE {hist['train_loss'][-1]:.4f}, "
          f"test MSE {hist['val_loss'][-1]:.4f}")

    section("3. Closed form: theta = pinv([X, 1]) y")
    # A column of ones turns the bias into one more weight. pinv gives the least-squares
    # solution (the minimum-norm one if X^T X were singular), no iterations at all.
    Xa = tm.tensor(np.hstack([X_tr, np.ones((n_train, 1))]), dtype="float64")
    theta = (tm.linalg.pinv(Xa) @ tm.tensor(y_tr, dtype="float64")).numpy()[:, 0]
    cf_w, cf_b = theta[:d], theta[d]
    print(f"one pinv of a {Xa.shape} matrix, no iterations: bias {cf_b:.4f}, "
          f"|w| {np.linalg.norm(cf_w):.4f}")

    def mse(w, b, X, y):
        return float(np.mean((X @ w + b - y[:, 0]) ** 2))

    section("Solutions side by side")
    print(f"{'':>10} {'true':>8} {'grad. descent':>14} {'Adam (docs)':>12} {'pinv':>9}")
    aw, ab = adam_model.weight.numpy()[0], adam_model.bias.numpy()[0]
    for i in range(d):
        print(f"{f'w[{i}]':>10} {w_true[i, 0]:>8.4f} {gd_w[i]:>14.4f} {aw[i]:>12.4f} {cf_w[i]:>9.4f}")
    print(f"{'bias':>10} {0.5:>8.4f} {gd_b:>14.4f} {ab:>12.4f} {cf_b:>9.4f}")
    print(f"{'train MSE':>10} {'':>8} {mse(gd_w, gd_b, X_tr, y_tr):>14.5f} "
          f"{mse(aw, ab, X_tr, y_tr):>12.5f} {mse(cf_w, cf_b, X_tr, y_tr):>9.5f}")
    print(f"{'test MSE':>10} {'':>8} {mse(gd_w, gd_b, X_te, y_te):>14.5f} "
          f"{mse(aw, ab, X_te, y_te):>12.5f} {mse(cf_w, cf_b, X_te, y_te):>9.5f}")
    # What to notice: gradient descent walks to the same point pinv jumps to; nothing
    # iterative can beat the closed form's *training* MSE, it can only match it. Adam on
    # mini-batches with a constant lr hovers near the optimum (each batch pulls its own way).
    print(f"|theta_GD - theta_pinv| = {np.linalg.norm(np.append(gd_w, gd_b) - theta):.2e}")

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    optimum = mse(cf_w, cf_b, X_tr, y_tr)
    # The gap bottoms out near 1e-8: float32 rounding of the loss itself.
    gap = np.maximum(np.array(gd_losses) - optimum, 1e-9)
    ax1.semilogy(np.arange(1, gd_steps + 1), gap, label="gradient descent")
    ax1.set(xlabel="step", ylabel="train MSE - closed-form MSE (log)",
            title="Gradient descent converges to the pinv optimum (linearly)")
    ax1.grid(alpha=0.3)
    ax1.legend()
    pred_gd = X_te @ gd_w + gd_b
    pred_cf = X_te @ cf_w + cf_b
    lim = [float(y_te.min()) - 0.5, float(y_te.max()) + 0.5]
    ax2.plot(lim, lim, "k-", lw=1, label="perfect fit")
    ax2.plot(y_te[:, 0], pred_cf, "o", ms=6, mfc="none", label="closed form (pinv)")
    ax2.plot(y_te[:, 0], pred_gd, "x", ms=5, label="gradient descent")
    ax2.set(xlabel="true y (test set)", ylabel="predicted y", title="The fit on held-out data")
    ax2.grid(alpha=0.3)
    ax2.legend()
    savefig(fig, args, "linear_regression.png")
    savefig(hist.plot(), args, "adam_train_curve.png")


if __name__ == "__main__":
    main()

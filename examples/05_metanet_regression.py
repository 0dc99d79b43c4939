""""MetaNet", a classic first network: 10-5-1 ReLU regression trained with SGD.

The beginner's program, line for line on tinymeta: ``class MetaNet(nn.Module)`` with
``layer1 = Linear(10, 5)``, ``layer2 = Linear(5, 1)``, ReLU between them, the MSE loss,
``optim.SGD(lr=0.01)`` and full-batch steps on 100 samples.

Two changes, each for a reason the output shows:

* the usual toy data are ``randn`` inputs *and* ``randn`` targets: there is nothing to
  learn. We train on that too, and see the test loss never beat "predict the mean";
  the main run uses targets from a hidden "teacher" 10-5-1 network plus noise;
* the usual toy script scores the model by ``round(output) == target``, an accuracy that means
  nothing for real-valued targets; we report the test MSE and R^2 instead.
"""
import numpy as np

import tinymeta as tm
from tinymeta import metrics, nn, optim
from tinymeta.nn import functional as F
from _common import parse_args, pyplot, savefig, section


class MetaNet(nn.Module):
    """The network, written as a Module subclass (as one would in PyTorch)."""

    def __init__(self, rng=None):
        super().__init__()
        rng = tm.as_rng(rng)  # one generator for both layers: different weights each
        self.layer1 = nn.Linear(10, 5, rng=rng)
        self.layer2 = nn.Linear(5, 1, rng=rng)

    def forward(self, x):
        x = self.layer1(x).relu()
        return self.layer2(x)


def train(model, X, y, X_test, y_test, epochs, lr):
    """The training loop: zero_grad, forward, loss, backward, step (full batch)."""
    optimizer = optim.SGD(model.parameters(), lr=lr)
    train_curve, test_curve = [], []
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), y)
        loss.backward()
        optimizer.step()
        train_curve.append(loss.item())
        with tm.no_grad():  # evaluation needs no graph
            test_curve.append(F.mse_loss(model(X_test), y_test).item())
    return np.array(train_curve), np.array(test_curve)


def main():
    args = parse_args("05_metanet_regression", __doc__)
    rng = args.rng
    epochs = 200 if args.quick else 5000
    n_train, n_test = 100, 1000

    # ------------------------------------------------------------------ data
    X = rng.normal(size=(n_train + n_test, 10)).astype(np.float32)
    teacher = MetaNet(rng=args.seed + 100)
    for p in teacher.parameters():  # larger weights: a clearly nonlinear target
        p.data *= 3.0
    with tm.no_grad():
        y_teacher = teacher(X).numpy()
    y_teacher = (y_teacher - y_teacher.mean()) / y_teacher.std()
    y_signal = (y_teacher + 0.1 * rng.normal(size=y_teacher.shape)).astype(np.float32)
    y_noise = rng.normal(size=(n_train + n_test, 1)).astype(np.float32)  # targets with nothing to learn

    runs = {}
    for name, y in (("teacher targets", y_signal), ("pure-noise targets", y_noise)):
        section(f"MetaNet 10-5-1, SGD lr 0.01, {epochs} full-batch epochs: {name}")
        model = MetaNet(rng=args.seed)
        tr, te = train(model, X[:n_train], y[:n_train], X[n_train:], y[n_train:], epochs, lr=0.01)
        with tm.no_grad():
            pred = model(X[n_train:]).numpy()
        baseline = float(np.mean((y[n_train:] - y[:n_train].mean()) ** 2))  # predict the train mean
        r2 = metrics.r2_score(y[n_train:], pred)
        print(f"{'epoch':>6} {'train MSE':>10} {'test MSE':>9}")
        for e in sorted({0, min(99, epochs - 1), epochs // 4, epochs // 2, epochs - 1}):
            print(f"{e + 1:>6} {tr[e]:>10.4f} {te[e]:>9.4f}")
        print(f"test MSE {te[-1]:.4f} vs {baseline:.4f} for predicting the mean; test R^2 {r2:.3f}")
        runs[name] = (tr, te, baseline, pred, y[n_train:])
    # What to notice: with a teacher, the test loss falls with the train loss (R^2 near 1).
    # With noise targets the train loss falls too (61 parameters memorising 100 points)
    # while the test loss climbs far above the baseline: overfitting, nothing to learn.
    # And the toy script's usual 100 epochs at lr 0.01 is far from converged either way.

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (name, (tr, te, baseline, _, _)) in zip(axes[:2], runs.items()):
        ax.plot(np.arange(1, epochs + 1), tr, label="train")
        ax.plot(np.arange(1, epochs + 1), te, "--", label="test")
        ax.axhline(baseline, color="gray", lw=1, ls=":", label="predict the mean")
        ax.axvline(100, color="tab:red", lw=0.8, label="100 epochs (the toy script's usual stop)")
        ax.set(xscale="log", xlabel="epoch", ylabel="MSE", title=f"MetaNet on {name}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _, _, _, pred, y_true = runs["teacher targets"]
    axes[2].plot(y_true[:, 0], pred[:, 0], ".", ms=3, alpha=0.5)
    lim = [float(y_true.min()), float(y_true.max())]
    axes[2].plot(lim, lim, "k-", lw=1)
    axes[2].set(xlabel="true y (test)", ylabel="MetaNet prediction", title="Teacher targets: test fit")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    savefig(fig, args, "metanet.png")


if __name__ == "__main__":
    main()

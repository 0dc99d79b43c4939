"""Hyperparameters by gradient descent: differentiate through a whole training run.

Train a small network with 20 steps of SGD, w_{t+1} = w_t - lr (grad L_train(w_t) + wd w_t),
and measure the validation loss L_val(w_20). Every step is made of differentiable ops,
so L_val is a differentiable function of lr and wd: one backward pass through the 20
steps gives dL_val/dlr and dL_val/dwd, the *hypergradients* (Maclaurin et al. 2015;
they involve the training loss's Hessian: second order).

1. ``meta.hypergradient`` checked against finite differences.
2. ``meta.tune``: descend on log(lr) with it, from a far too small (1e-4) and a far too
   large (1.0, diverging) start, against a 20-point grid search.
3. Online: ``optim.SGD(hypergrad_lr=...)`` adapts lr *during* one run (Baydin et al. 2018).
"""
import numpy as np

from tinymeta import meta, nn, optim
from tinymeta.data import DataLoader
from tinymeta.nn import functional as F
from _common import parse_args, pyplot, savefig, section


def main():
    args = parse_args("09_hypergradient", __doc__)
    rng = args.rng
    steps = 20                       # the length of the unrolled training run
    n_grid = 8 if args.quick else 20
    runs = 4 if args.quick else 15
    epochs = 3 if args.quick else 40

    # ------------------------------------------------------------------ the problem
    # Regression with a 10-32-1 tanh network (float64: finite differences need it).
    X = rng.normal(size=(300, 10))
    y = 2 * np.tanh(X @ rng.normal(size=(10, 1)) / 2) + 0.1 * rng.normal(size=(300, 1))
    train, val = (X[:200], y[:200]), (X[200:], y[200:])
    model = nn.MLP([10, 32, 1], activation="tanh", rng=args.seed, dtype="float64")

    def val_loss(lr, wd=0.0):
        """L_val after `steps` SGD steps from the model's initial weights (model unchanged)."""
        return meta.unrolled_validation_loss(model, F.mse_loss, train, val, lr, wd, steps).item()

    section("1. The hypergradient vs finite differences")
    lr0, wd0, eps = 0.05, 0.01, 1e-6
    loss, g_lr, g_wd = meta.hypergradient(model, F.mse_loss, train, val, lr0, wd0, steps)
    fd_lr = (val_loss(lr0 + eps, wd0) - val_loss(lr0 - eps, wd0)) / (2 * eps)
    fd_wd = (val_loss(lr0, wd0 + eps) - val_loss(lr0, wd0 - eps)) / (2 * eps)
    print(f"at lr={lr0}, wd={wd0}: L_val after {steps} steps = {loss:.6f}")
    print(f"  dL_val/dlr: backprop through training {g_lr:+.8f}, finite differences {fd_lr:+.8f}, "
          f"relative difference {abs(g_lr - fd_lr) / abs(fd_lr):.1e}")
    print(f"  dL_val/dwd: backprop through training {g_wd:+.8f}, finite differences {fd_wd:+.8f}, "
          f"relative difference {abs(g_wd - fd_wd) / abs(fd_wd):.1e}")
    # Negative dL/dlr: a larger learning rate would end with a lower validation loss.

    section(f"2. Grid search: {n_grid} learning rates, log-spaced in [1e-4, 1]")
    grid = np.logspace(-4, 0, n_grid)
    with np.errstate(all="ignore"):  # the largest rates diverge, on purpose
        grid_loss = np.array([val_loss(float(lr)) for lr in grid])
    grid_loss = np.where(np.isfinite(grid_loss), grid_loss, np.inf)
    best = float(grid_loss.min())
    print("  " + "  ".join(f"{lr:.1e}:{v:.3g}" for lr, v in zip(grid, grid_loss)))
    print(f"best grid point: lr {grid[grid_loss.argmin()]:.3g}, L_val {best:.4f} ({n_grid} runs); "
          f"target: within 5%, L_val <= {1.05 * best:.4f}")

    section(f"   meta.tune: hypergradient descent on log(lr), {runs} runs from each start")
    tuned = {}
    for start in (1e-4, 1.0):
        with np.errstate(all="ignore"):
            hist = meta.tune(model, F.mse_loss, train, val, lr=start, steps=steps, runs=runs)
        tuned[start] = hist
        hit = next((h["run"] for h in hist if h["val_loss"] <= 1.05 * best), None)
        top = min(hist, key=lambda h: h["val_loss"])
        print(f"from lr={start:g}: " + " -> ".join(f"{h['lr']:.2g}" for h in hist))
        print(f"  within 5% of the grid's best after {hit if hit else f'more than {runs}'} runs "
              f"(grid: {n_grid}); best L_val {top['val_loss']:.4f} at lr {top['lr']:.3g}")
    # What to notice: from 1e-4 each run multiplies lr by a growing factor (the sign of the
    # hypergradient holds, so Rprop's step grows) until it overshoots into divergence;
    # from 1.0 the first run diverges. A diverged run's hypergradient means nothing, so
    # the safeguard simply lowers lr. Near the best lr the loss is jagged (the edge of
    # stability): runs alternate around it with shrinking steps.

    section("3. Online: SGD(hypergrad_lr=0.01) adapts lr during one run")
    best_lr = float(grid[grid_loss.argmin()])
    online = {}
    for label, lr, beta in (("SGD, fixed lr 1e-3", 1e-3, 0.0),
                            (f"SGD, fixed lr {best_lr:.2g} (grid's best)", best_lr, 0.0),
                            ("hypergradient SGD from lr 1e-3", 1e-3, 0.01)):
        net = nn.MLP([10, 32, 1], activation="tanh", rng=args.seed, dtype="float64")
        opt = optim.SGD(net.parameters(), lr=lr, hypergrad_lr=beta)
        lrs, losses = [], []
        for epoch in range(epochs):
            for xb, yb in DataLoader(*train, batch_size=32, shuffle=True, rng=epoch):
                loss = F.mse_loss(net(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()  # with hypergrad_lr > 0: lr += beta * g_t . g_{t-1}, then the step
                lrs.append(opt.param_groups[0]["lr"])
                losses.append(loss.item())
        online[label] = (np.array(lrs), np.array(losses), F.mse_loss(net(val[0]), val[1]).item())
        print(f"{label:<34} final lr {lrs[-1]:.4f}, validation MSE {online[label][2]:.4f}")
    # The rule: since w_t = w_{t-1} - lr g_{t-1}, dL(w_t)/dlr = -g_t . g_{t-1}. Successive
    # gradients pointing the same way mean "steps too short": lr grows until they don't.
    # (The grid's best was tuned for 20 full-batch steps; on mini-batches it may be too hot.)

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    ax = axes[0]
    ok = np.isfinite(grid_loss) & (grid_loss < 10)
    ax.plot(grid[ok], grid_loss[ok], "k.-", label="grid search")
    ax.plot(grid[~ok], np.full((~ok).sum(), 3.0), "kx", label="grid: diverged")
    for start, color in ((1e-4, "tab:blue"), (1.0, "tab:red")):
        h = tuned[start]
        lr_path = [r["lr"] for r in h]
        loss_path = [min(r["val_loss"], 3.0) if np.isfinite(r["val_loss"]) else 3.0 for r in h]
        ax.plot(lr_path, loss_path, "o", color=color, ms=5, alpha=0.6, label=f"tune from {start:g}")
        for r, lr, v in zip(h, lr_path, loss_path):  # each run numbered
            ax.annotate(str(r["run"]), (lr, v), xytext=(3, 3), textcoords="offset points",
                        fontsize=7, color=color)
    ax.set(xscale="log", xlabel="learning rate", ylabel=f"validation loss after {steps} steps",
           ylim=(0, 3.2), title="Unrolled validation loss (diverged runs drawn at 3)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    for label, (lrs, losses, _) in online.items():
        axes[1].plot(lrs, label=label)
        axes[2].plot(np.convolve(losses, np.ones(10) / 10, mode="valid"), label=label)
    axes[1].set(yscale="log", xlabel="SGD step", ylabel="learning rate", title="Online adaptation of lr")
    axes[2].set(yscale="log", xlabel="SGD step", ylabel="train MSE (10-step mean)",
                title="Training loss")
    for a in axes[1:]:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    fig.tight_layout()
    savefig(fig, args, "hypergradient.png")


if __name__ == "__main__":
    main()

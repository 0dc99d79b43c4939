"""Higher-order derivatives: Hessians, Hessian-vector products, third derivatives, Newton.

Every tinymeta op's derivative rule is written with tinymeta ops, so a gradient computed
with ``create_graph=True`` is itself a graph and can be differentiated again, to any order.
``tm.func`` wraps that in transforms that compose like JAX's:

* ``tm.func.hessian(f)``: the full matrix of second derivatives (one backward per row);
* ``tm.func.hvp(f, x, v)``: H v by double backward, never forming H (what MAML and
  Newton-CG need: cost of about two gradients, whatever the dimension);
* ``tm.func.grad(tm.func.grad(tm.func.grad(f)))``: a third derivative;
* Newton's method, x <- x - H^{-1} grad f, on the Rosenbrock function, against gradient
  descent.
"""
import time

import numpy as np

import tinymeta as tm
from _common import parse_args, pyplot, savefig, section


def rosenbrock(p):
    """The banana-shaped valley, minimum 0 at (1, 1)."""
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def rosenbrock_hessian(x, y):
    return np.array([[2 - 400 * (y - x ** 2) + 800 * x ** 2, -400 * x], [-400 * x, 200.0]])


def as64(x):
    return tm.tensor(x, dtype="float64")


def main():
    args = parse_args("11_higher_order", __doc__)
    rng = args.rng
    dim = 10 if args.quick else 50
    gd_steps = 2000 if args.quick else 20000

    section("1. Hessian: tm.func.hessian vs the closed form")
    p = np.array([-1.2, 1.0])
    H = tm.func.hessian(rosenbrock)(as64(p)).numpy()
    print(f"Rosenbrock at {p}:\n{H}\nclosed form:\n{rosenbrock_hessian(*p)}")
    print(f"max difference {np.abs(H - rosenbrock_hessian(*p)).max():.1e}")

    section(f"2. Hessian-vector product vs hessian @ v ({dim} parameters)")
    # Logistic-regression loss: H = X^T diag(s (1 - s)) X / N, known in closed form too.
    X = rng.normal(size=(200, dim))
    t = (rng.random(200) < 0.5).astype(np.float64)

    def loss(theta):
        z = as64(X) @ theta
        return (z.softplus() - t * z).mean()  # binary cross-entropy on logits

    theta, v = rng.normal(size=dim) * 0.1, rng.normal(size=dim)
    tm.func.hessian(loss)(as64(theta))  # warm-up: the first call compiles kernels; time the rest
    tm.func.hvp(loss, as64(theta), as64(v))
    t0 = time.perf_counter()
    H = tm.func.hessian(loss)(as64(theta)).numpy()
    t_hess = time.perf_counter() - t0
    t0 = time.perf_counter()
    hv = tm.func.hvp(loss, as64(theta), as64(v)).numpy()
    t_hvp = time.perf_counter() - t0
    s = 1 / (1 + np.exp(-X @ theta))
    H_closed = X.T @ (X * (s * (1 - s))[:, None]) / len(X)
    print(f"max |hessian - closed form|   = {np.abs(H - H_closed).max():.1e}")
    print(f"max |hvp(f, x, v) - H @ v|    = {np.abs(hv - H @ v).max():.1e}")
    print(f"time: full Hessian {t_hess * 1e3:.1f} ms ({dim} backward passes), "
          f"one hvp {t_hvp * 1e3:.1f} ms ({t_hess / t_hvp:.0f}x faster)")

    section("3. Third derivative of tanh vs the closed form")
    # grad of grad of grad: each tm.func.grad differentiates the graph the inner one built.
    d1 = tm.func.grad(lambda x: x.tanh())
    d2 = tm.func.grad(d1)
    d3 = tm.func.grad(d2)
    grid = np.linspace(-3, 3, 25 if args.quick else 121)
    ours = np.array([[float(d(as64(x)).item()) for x in grid] for d in (d1, d2, d3)])
    th = np.tanh(grid)
    closed = np.array([1 - th ** 2, -2 * th * (1 - th ** 2), -2 * (1 - th ** 2) * (1 - 3 * th ** 2)])
    for k in range(3):
        err = np.abs(ours[k] - closed[k]).max()
        print(f"d^{k + 1}/dx^{k + 1} tanh: max |tinymeta - closed form| = {err:.1e}")
    # The same on a whole array at once: sum() makes it scalar; the op is elementwise,
    # so the gradient of the sum is the elementwise derivative.
    x = tm.tensor(grid, dtype="float64", requires_grad=True)
    g = x.tanh()
    for _ in range(3):
        (g,) = tm.grad(g.sum(), [x], create_graph=True)
    print(f"vectorised, nested tm.grad(create_graph=True): max difference "
          f"{np.abs(g.numpy() - closed[2]).max():.1e}")

    section("4. Newton's method vs gradient descent on Rosenbrock, from (-1.2, 1)")
    grad_f, hess_f = tm.func.grad(rosenbrock), tm.func.hessian(rosenbrock)
    newton = [np.array([-1.2, 1.0])]
    for _ in range(8):
        x = as64(newton[-1])
        step = tm.linalg.solve(hess_f(x), grad_f(x))  # H^{-1} g without forming the inverse
        newton.append(newton[-1] - step.numpy())
    gd = [np.array([-1.2, 1.0])]
    for _ in range(gd_steps):  # lr 1e-3: about the largest that does not blow up here
        gd.append(gd[-1] - 1e-3 * grad_f(as64(gd[-1])).numpy())
    f_newton = [rosenbrock(p) for p in newton]
    f_gd = [rosenbrock(p) for p in gd]
    print(f"{'iteration':>9} {'Newton f(x)':>13} {'gradient descent f(x)':>22}")
    for k in range(len(newton)):
        print(f"{k:>9} {f_newton[k]:>13.3e} {f_gd[k]:>22.3e}")
    print(f"gradient descent after {gd_steps} steps: f = {f_gd[-1]:.3e} at {np.round(gd[-1], 4)}")
    # What to notice: Newton takes one wild step (the quadratic model is poor far from
    # the valley floor), then converges quadratically: the error squares each step.
    # Gradient descent crawls along the curved valley; its step is limited by the
    # steepest direction (curvature ~1000) while the valley floor has curvature ~1.

    # ------------------------------------------------------------------ plots
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    for k, label in enumerate(["tanh'", "tanh''", "tanh'''"]):
        axes[0].plot(grid, ours[k], label=f"{label} (tinymeta)")
        axes[0].plot(grid, closed[k], "k:", lw=1)
    axes[0].plot(grid, th, color="gray", lw=1, label="tanh")
    axes[0].set(xlabel="x", title="Derivatives of tanh (dotted: closed forms)")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    a, b = np.meshgrid(np.linspace(-2, 2, 300), np.linspace(-4, 3, 300))
    axes[1].contour(a, b, np.log10(rosenbrock(np.array([a, b])) + 1e-3), levels=20, cmap="Greys")
    gd_arr, nt = np.array(gd), np.array(newton)
    axes[1].plot(gd_arr[:, 0], gd_arr[:, 1], "-", color="tab:blue",
                 label=f"gradient descent ({gd_steps} steps)")
    axes[1].plot(nt[:, 0], nt[:, 1], "o-", color="tab:red", label="Newton (8 steps)")
    axes[1].plot(1, 1, "k*", ms=12)
    axes[1].set(xlabel="x", ylabel="y", xlim=(-2, 2), ylim=(-4, 3), title="Rosenbrock: paths to (1, 1)")
    axes[1].legend(fontsize=8, loc="lower right")
    eps = 1e-30  # plot f + eps: Newton reaches exactly 0
    axes[2].loglog(np.arange(1, len(f_gd) + 1), np.array(f_gd) + eps, label="gradient descent")
    axes[2].loglog(np.arange(1, len(f_newton) + 1), np.array(f_newton) + eps, "o-", label="Newton")
    axes[2].set(xlabel="iteration (+1)", ylabel="f(x)", title="Convergence", ylim=(1e-25, 1e4))
    axes[2].legend()
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    savefig(fig, args, "higher_order.png")


if __name__ == "__main__":
    main()

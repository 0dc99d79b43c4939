"""Backprop by hand vs the engine.

A tiny network, x -> tanh(x W1 + b1) W2 + b2 -> mean squared error, differentiated twice:
once by hand in NumPy, applying the chain rule one line at a time (each step printed),
and once by tinymeta's reverse mode. The two must agree to rounding. Then we look inside
the engine: ``tm.viz.trace_backward`` prints what every backward step received and sent,
and ``tm.viz.draw`` draws the graph with its gradients (``tm.viz.to_dot`` gives it as Graphviz
text). Last, micrograd's classic scalar example, L = (a*b + c)*f, traced and drawn.
"""
import os
import numpy as np

import tinymeta as tm
from _common import parse_args, savefig, section


def show(name, value, formula):
    """One chain-rule step: its formula, shape and values."""
    print(f"{name:<9} = {formula:<38} shape {str(value.shape):<8}")
    print("    " + np.array2string(value, precision=4, suppress_small=True).replace("\n", "\n    "))


def main():
    args = parse_args("01_backprop_by_hand", __doc__)
    rng = args.rng

    # ------------------------------------------------------------------ the network
    # 4 samples, 2 features -> 3 hidden tanh units -> 1 output. float64 so that
    # "agree to rounding" means ~1e-16, not ~1e-7.
    N, D, H = 4, 2, 3  # instant either way: --quick changes nothing here
    x = rng.normal(size=(N, D))
    y = rng.normal(size=(N, 1))
    W1, b1 = rng.normal(size=(D, H)), np.zeros(H) + 0.1
    W2, b2 = rng.normal(size=(H, 1)), np.zeros(1)

    section("Forward pass (NumPy)")
    a = x @ W1 + b1            # pre-activation
    h = np.tanh(a)             # hidden layer
    yhat = h @ W2 + b2         # output
    loss = np.mean((yhat - y) ** 2)
    print(f"a = x W1 + b1 {a.shape},  h = tanh(a) {h.shape},  yhat = h W2 + b2 {yhat.shape}")
    print(f"L = mean((yhat - y)^2) = {loss:.6f}")

    section("Backward pass by hand: the chain rule, one step at a time")
    # Each line multiplies the gradient arriving from above by the local derivative.
    # Read it bottom-up through the forward pass above.
    d_yhat = 2.0 * (yhat - y) / N
    show("dL/dyhat", d_yhat, "2 (yhat - y) / N")
    d_W2 = h.T @ d_yhat
    show("dL/dW2", d_W2, "h^T dL/dyhat")
    d_b2 = d_yhat.sum(axis=0)
    show("dL/db2", d_b2, "sum over samples of dL/dyhat")
    d_h = d_yhat @ W2.T
    show("dL/dh", d_h, "dL/dyhat W2^T")
    d_a = d_h * (1.0 - h ** 2)
    show("dL/da", d_a, "dL/dh * (1 - tanh(a)^2)")
    d_W1 = x.T @ d_a
    show("dL/dW1", d_W1, "x^T dL/da")
    d_b1 = d_a.sum(axis=0)
    show("dL/db1", d_b1, "sum over samples of dL/da")

    section("The same network in tinymeta")
    # Leaves get names so the graph drawn below labels them.
    t = {k: tm.tensor(v, dtype="float64", requires_grad=True, name=k)
         for k, v in dict(W1=W1, b1=b1, W2=W2, b2=b2).items()}
    tx = tm.tensor(x, dtype="float64", name="x")
    ty = tm.tensor(y, dtype="float64", name="y")
    t_yhat = (tx @ t["W1"] + t["b1"]).tanh() @ t["W2"] + t["b2"]
    t_loss = ((t_yhat - ty) ** 2).mean()
    print(f"L = {t_loss.item():.6f} (NumPy said {loss:.6f})")

    # trace_backward runs loss.backward() and prints every step. Read it top-down: the
    # order is the reverse of the forward pass, exactly like the hand derivation above.
    # Notice: mean() is sum() then mul by 1/N (two steps); "-" means "no gradient needed"
    # (x and y are constants); and the add for b2 sends a (4, 1) gradient that the engine
    # then sums over the sample axis to b2's shape (1,), our "sum over samples" above.
    print("\ntm.viz.trace_backward(loss): what each op received and what it sent to each input")
    tm.viz.trace_backward(t_loss, retain_graph=True)  # keep the graph so we can draw it

    section("Hand-derived vs tinymeta gradients")
    print(f"{'param':<6} {'shape':<8} {'max |by hand - tinymeta|':>26}")
    worst = 0.0
    for name, mine in dict(W1=d_W1, b1=d_b1, W2=d_W2, b2=d_b2).items():
        err = float(np.max(np.abs(mine - t[name].grad.numpy())))
        worst = max(worst, err)
        print(f"{name:<6} {str(mine.shape):<8} {err:>26.2e}")
    print(f"agree to rounding: {worst < 1e-12}")

    section("The graph, drawn")
    # tm.viz.draw lays the graph out left to right (leaves first) with matplotlib alone:
    # each box shows its op, shape and, after backward, its gradient (|g| for large ones).
    title = "the loss's graph: parameters blue, data grey, gradients after backward"
    fig = tm.viz.draw(t_loss, title=title)
    savefig(fig, args, "graph.png")
    dot_path = os.path.join(args.out, "graph.dot")
    with open(dot_path, "w") as f:
        f.write(tm.viz.to_dot(t_loss) + "\n")
    print(f"  wrote {dot_path} (the same graph as Graphviz DOT text: dot -Tpng {dot_path} -o g.png)")

    section("micrograd's classic example: L = (a*b + c) * f")
    # Scalars, so every box and trace line shows signed values: dL/dc = f = -2 and
    # dL/da = f*b = 6, as in Karpathy's micrograd walkthrough.
    a, b, c, f = (tm.tensor(v, dtype="float64", requires_grad=True, name=n)
                  for v, n in ((2.0, "a"), (-3.0, "b"), (10.0, "c"), (-2.0, "f")))
    e = a * b
    e.name = "e"
    d = e + c
    d.name = "d"
    L = d * f
    L.name = "L"
    tm.viz.trace_backward(L, retain_graph=True, legend=False)  # legend printed above
    print(f"dL/da = {a.grad.item():g}, dL/db = {b.grad.item():g}, dL/dc = {c.grad.item():g}, "
          f"dL/df = {f.grad.item():g}")
    savefig(tm.viz.draw(L, title="micrograd's example, drawn by tm.viz.draw"), args, "micrograd.png")


if __name__ == "__main__":
    main()

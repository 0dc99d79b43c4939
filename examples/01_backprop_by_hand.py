"""Backprop by hand vs the engine.

A tiny network, x -> tanh(x W1 + b1) W2 + b2 -> mean squared error, differentiated twice:
once by hand in NumPy, applying the chain rule one line at a time (each step printed),
and once by tinymeta's reverse mode. The two must agree to rounding. Then we look inside
the engine: ``tm.viz.trace_backward`` prints what every backward step received and sent,
and ``tm.viz.to_dot`` writes the graph as Graphviz DOT text (rendered to PNG here).
"""
import os
import re
import shutil
import subprocess

import numpy as np

import tinymeta as tm
from _common import parse_args, pyplot, savefig, section


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
    print("\ntm.viz.trace_backward(loss): each op's incoming gradient norm and what it sends on")
    tm.viz.trace_backward(t_loss, retain_graph=True)  # keep the graph so we can draw it

    section("Hand-derived vs tinymeta gradients")
    print(f"{'param':<6} {'shape':<8} {'max |by hand - tinymeta|':>26}")
    worst = 0.0
    for name, mine in dict(W1=d_W1, b1=d_b1, W2=d_W2, b2=d_b2).items():
        err = float(np.max(np.abs(mine - t[name].grad.numpy())))
        worst = max(worst, err)
        print(f"{name:<6} {str(mine.shape):<8} {err:>26.2e}")
    print(f"agree to rounding: {worst < 1e-12}")

    section("The graph, as Graphviz DOT")
    # After backward, leaves show the norm of their gradient.
    dot = tm.viz.to_dot(t_loss)
    dot_path = os.path.join(args.out, "graph.dot")
    with open(dot_path, "w") as f:
        f.write(dot + "\n")
    print(f"  wrote {dot_path} ({dot.count('->')} edges); render with: dot -Tpng {dot_path} -o graph.png")
    png_path = os.path.join(args.out, "graph.png")
    if shutil.which("dot"):
        subprocess.run(["dot", "-Tpng", dot_path, "-o", png_path], check=True)
        print(f"  wrote {png_path} (Graphviz)")
    else:
        # No Graphviz here: draw the same DOT text with matplotlib, layered by depth.
        savefig(draw_dot(dot), args, "graph.png")


def draw_dot(dot):
    """A small matplotlib drawing of tinymeta's DOT output (nodes and edges only):
    leaves at the bottom, each op one row above its highest input, the loss on top."""
    labels = dict(re.findall(r'^\s*(t\d+) \[label="([^"]*)"', dot, flags=re.M))
    edges = re.findall(r"^\s*(t\d+) -> (t\d+);", dot, flags=re.M)
    params = set(re.findall(r"^\s*(t\d+) \[.*fillcolor", dot, flags=re.M))
    inputs = {n: [a for a, b in edges if b == n] for n in labels}
    depth = {}

    def level(n):
        if n not in depth:
            depth[n] = 0 if not inputs[n] else 1 + max(level(a) for a in inputs[n])
        return depth[n]

    for n in labels:
        level(n)
    rows = {}
    for n in sorted(labels, key=lambda n: labels[n]):
        rows.setdefault(depth[n], []).append(n)
    pos = {n: (i - (len(r) - 1) / 2, d) for d, r in rows.items() for i, n in enumerate(r)}

    plt = pyplot()
    width = max(len(r) for r in rows.values())
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * width), 1.25 * (len(rows) + 1)))
    for a, b in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1, y1 - 0.22), xytext=(x0, y0 + 0.22),
                    arrowprops=dict(arrowstyle="->", color="0.4"))
    for n, (px, py) in pos.items():
        color = "#dbe9ff" if n in params else "white"
        ax.text(px, py, labels[n].replace("\\n", "\n"), ha="center", va="center", fontsize=8,
                family="monospace", bbox=dict(boxstyle="round", fc=color, ec="0.3"))
    ax.set_xlim(-width / 2 - 0.2, width / 2 + 0.2)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")
    ax.set_title("tinymeta graph of the loss (blue: parameters, with |grad| after backward)")
    return fig


if __name__ == "__main__":
    main()

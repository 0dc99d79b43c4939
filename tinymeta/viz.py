"""Seeing the machinery: the graph as Graphviz DOT text, and a step-by-step backward trace."""
import numpy as np

from .engine import Tensor, _run_backward, _seed_grads
from .errors import DTypeError


def _need_tensor(t, where):
    if type(t) is not Tensor:
        raise DTypeError(f"viz.{where}: expected a Tensor, got {type(t).__name__}")


def _walk(root):
    """Every tensor in the graph of ``root`` (including constants' absence), outputs first."""
    order, seen, stack = [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        order.append(t)
        node = t._node
        if node is not None and node.inputs is not None:
            stack.extend(p for p in node.inputs if type(p) is Tensor)
    return order


def _esc(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _label(t):
    if t._node is not None:
        freed = " (freed)" if t._node.inputs is None else ""
        return f"{t._node.op.name}{freed}\\n{t.shape}"
    kind = _esc(t.name) if t.name else ("param" if t.requires_grad else "const")
    g = f"\\n|grad|={np.linalg.norm(t.grad.data):.4g}" if t.grad is not None else ""
    return f"{kind}\\n{t.shape}{g}"


def to_dot(tensor):
    """Graphviz DOT text of the graph that produced ``tensor``: op names and shapes,
    leaves' gradient norms once ``backward`` has run (use ``retain_graph=True`` to keep the
    graph after backward). Render with ``dot -Tpng``."""
    _need_tensor(tensor, "to_dot")
    lines = ["digraph tinymeta {", "  rankdir=BT;", '  node [shape=box, fontname="monospace"];']
    for t in _walk(tensor):
        style = ', style=filled, fillcolor="#dbe9ff"' if t._node is None and t.requires_grad else ""
        lines.append(f'  t{id(t)} [label="{_label(t)}"{style}];')
        if t._node is not None and t._node.inputs is not None:
            for p in t._node.inputs:
                if type(p) is Tensor:
                    lines.append(f"  t{id(p)} -> t{id(t)};")
    lines.append("}")
    return "\n".join(lines)


def _norm(x):
    return "-" if x is None else f"{np.linalg.norm(np.asarray(x.data if type(x) is Tensor else x)):.4g}"


def trace_backward(loss, retain_graph=False, file=None):
    """Run ``loss.backward()`` and print, op by op, the gradient each backward step received
    and the gradients it sent to its inputs. Returns the printed lines."""
    _need_tensor(loss, "trace_backward")
    lines = []

    def hook(t, node, g, gins):
        sent = ", ".join(f"{_norm(gi)}{'' if gi is None else ' ' + str(gi.shape)}"
                         for gi, p in zip(gins, node.inputs) if type(p) is Tensor)
        lines.append(f"{node.op.name:<22} out {str(t.shape):<12} received |g|={_norm(g):<10} "
                     f"sent |g_in|= [{sent}]")
        print(lines[-1], file=file)

    seeds = _seed_grads([loss], None, "trace_backward")
    _run_backward([loss], seeds, None, retain_graph, False, hook=hook)
    return lines

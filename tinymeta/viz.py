"""Seeing the machinery: the graph as a picture, as Graphviz DOT text, and a step-by-step
backward trace.

- :func:`draw` draws the graph with matplotlib alone (no Graphviz): one box per tensor with
  its op, shape, value (small tensors) and signed gradient after ``backward``, laid out left
  to right in layers, leaves named.
- :func:`to_dot` returns the same graph as DOT text for Graphviz users.
- :func:`trace_backward` runs ``backward`` and prints what every op received and sent.

micrograd's classic example reads like this::

    a = tm.tensor(2.0, requires_grad=True, name="a")
    b = tm.tensor(-3.0, requires_grad=True, name="b")
    c = tm.tensor(10.0, requires_grad=True, name="c")
    f = tm.tensor(-2.0, requires_grad=True, name="f")
    L = (a * b + c) * f
    L.backward(retain_graph=True)      # keep the graph to draw it
    tm.viz.draw(L, "graph.png")        # c's box says grad -2, a's says grad 6
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, TextIO

import numpy as np

from .engine import Tensor, _run_backward, _seed_grads
from .errors import ArgumentError, DTypeError

if TYPE_CHECKING:  # matplotlib loads only when a picture is drawn
    from matplotlib.figure import Figure

__all__ = ["draw", "layout", "to_dot", "trace_backward", "Layout", "Box"]

SMALL = 4  # tensors with at most this many elements show their values, signed


def _need_tensor(t, where):
    if type(t) is not Tensor:
        raise DTypeError(f"viz.{where}: expected a Tensor, got {type(t).__name__}")


def _walk(root):
    """Every tensor in the graph of ``root``, outputs first (depth-first)."""
    order, seen, stack = [], set(), [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        order.append(t)
        node = t._node
        if node is not None and node.inputs is not None:
            stack.extend(p for p in reversed(node.inputs) if type(p) is Tensor)
    return order


def _fmt_array(x, small=SMALL):
    """Signed values of a small array ('-2', '[1, -3.5]'); None when it is too large."""
    x = np.asarray(x)
    if x.size > small:
        return None
    if x.ndim == 0:
        return f"{x.item():.4g}"
    return np.array2string(x, precision=4, separator=", ", suppress_small=True,
                           formatter={"float_kind": lambda v: f"{v:.4g}"}).replace("\n", "")


def _fmt_grad(g, small=SMALL):
    """A gradient for printing: signed values when small, else its norm and shape."""
    arr = np.asarray(g.data if type(g) is Tensor else g)
    text = _fmt_array(arr, small)
    return text if text is not None else f"|g|={np.linalg.norm(arr):.4g} {arr.shape}"


def _names(names):
    """id(tensor) -> name, from a module (its named_parameters) or a dict name -> tensor."""
    if names is None:
        return {}
    if hasattr(names, "named_parameters"):
        items = names.named_parameters()
    elif isinstance(names, Mapping):
        items = names.items()
    else:
        raise ArgumentError(f"viz: names must be a Module or a dict name -> Tensor, got "
                            f"{type(names).__name__}")
    out = {}
    for k, t in items:
        if type(t) is not Tensor:
            raise ArgumentError(f"viz: names[{k!r}] is a {type(t).__name__}, not a Tensor")
        out[id(t)] = str(k)
    return out


def _const_text(p):
    if p is None:
        return "not kept"
    if isinstance(p, (int, float, np.number)):
        return f"{float(p):.4g}"
    if isinstance(p, np.ndarray):
        text = _fmt_array(p)
        return text if text is not None else f"array{p.shape}"
    return type(p).__name__


def _op_title(t):
    """'mul', or 'pow(·, 2)' when the op took constants besides tensors."""
    node = t._node
    if node.inputs is None:
        return f"{node.op.name} (freed)"
    if all(type(p) is Tensor for p in node.inputs):
        return node.op.name
    args = ", ".join("·" if type(p) is Tensor else _const_text(p) for p in node.inputs)
    return f"{node.op.name}({args})"


def _leaf_title(t, names):
    name = names.get(id(t)) or t.name
    if name:
        return str(name)
    return "param" if t.requires_grad else "const"


def _shape_text(shape):
    return "scalar" if shape == () else "shape " + "x".join(str(n) for n in shape)


def _node_grads(root):
    """d root / d (every tensor in its graph), for a scalar root whose graph is intact."""
    if root.data.size != 1 or not root.requires_grad:
        return {}
    targets = [t for t in _walk(root) if t.requires_grad]
    if any(t._node is not None and t._node.inputs is None for t in targets):
        return {}
    seeds = _seed_grads([root], None, "viz.draw")
    found = _run_backward([root], seeds, targets, True, False)
    return {id(t): g for t, g in found.items()}


# ----------------------------------------------------------------------------- layout


@dataclass
class Box:
    """One drawn box: its text lines, its centre (x, y), width and height (inches), and
    whether it is a leaf, a parameter, or a summary group."""

    key: Any
    lines: list[str]
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    kind: str = "op"   # "op", "param", "const", "group"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1): left, bottom, right, top."""
        return (self.x - self.w / 2, self.y - self.h / 2, self.x + self.w / 2, self.y + self.h / 2)


@dataclass
class Layout:
    """A layered left-to-right drawing of a graph, in inches.

    ``boxes`` maps a key to its :class:`Box`; ``edges`` lists ``(src, dst, points)`` with
    ``points`` the polyline from ``src``'s right side to ``dst``'s left side. Edges cross the
    gaps between columns and run through a column only in a lane kept free for them, so no
    edge passes through a box other than its two ends. ``note`` says what was summarised."""

    boxes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)
    width: float = 0.0
    height: float = 0.0
    note: str = ""


_FONT = 8.0                       # points
_CHAR_W = 0.62 * _FONT / 72       # monospace character width, inches
_LINE_H = 1.3 * _FONT / 72        # line height, inches
_PAD = 0.08                       # inside a box, inches
_VGAP = 0.22                      # between boxes in a column
_HGAP = 0.9                       # between columns (where edges bend)
_LANE = 0.14                      # height of an edge's lane through a column


def _place(items, edges):
    """Layered layout. ``items``: key -> (lines, kind, layer); ``edges``: (src, dst) with
    layer(src) < layer(dst). Long edges get one dummy lane per column they cross."""
    lay = Layout()
    layer = {k: v[2] for k, v in items.items()}
    for k, (lines, kind, _) in items.items():
        w = max(len(s) for s in lines) * _CHAR_W + 2 * _PAD
        lay.boxes[k] = Box(k, list(lines), w=w, h=len(lines) * _LINE_H + 2 * _PAD, kind=kind)
    n_layers = max(layer.values()) + 1
    columns = [[] for _ in range(n_layers)]
    for k in items:  # insertion order: roughly the order tensors were found
        columns[layer[k]].append(k)
    # Each edge becomes a chain src -> lane -> lane -> ... -> dst, one lane per column crossed.
    chains, succ, pred = [], {}, {}
    for src, dst in edges:
        chain = [src] + [("lane", src, dst, L) for L in range(layer[src] + 1, layer[dst])] + [dst]
        for L, lane in zip(range(layer[src] + 1, layer[dst]), chain[1:-1]):
            columns[L].append(lane)
        for a, b in zip(chain, chain[1:]):
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
        chains.append((src, dst, chain))

    def height(k):
        return lay.boxes[k].h if k in lay.boxes else _LANE

    def stack(col, ys=None):
        """y positions: stacked top to bottom, centred on 0, no overlap."""
        total = sum(height(k) for k in col) + _VGAP * (len(col) - 1)
        y, out = total / 2, {}
        for k in col:
            out[k] = y - height(k) / 2
            y -= height(k) + _VGAP
        return out

    # Order within columns: a few barycentre sweeps (sources left of targets) cut crossings.
    pos = {}
    for col in columns:
        pos.update({k: i for i, k in enumerate(col)})
    for sweep in range(4):
        forward = sweep % 2 == 0
        for L in (range(1, n_layers) if forward else range(n_layers - 2, -1, -1)):
            nbr = pred if forward else succ
            col = columns[L]
            bary = {k: (np.mean([pos[n] for n in nbr[k]]) if nbr.get(k) else pos[k]) for k in col}
            col.sort(key=lambda k: bary[k])
            pos.update({k: i for i, k in enumerate(col)})
    ypos = {}
    for col in columns:
        ypos.update(stack(col))
    colw = [max((lay.boxes[k].w for k in col if k in lay.boxes), default=0.5) for col in columns]
    xs, x = [], 0.0
    for w in colw:
        xs.append(x + w / 2)
        x += w + _HGAP
    for L, col in enumerate(columns):
        for k in col:
            if k in lay.boxes:
                lay.boxes[k].x, lay.boxes[k].y = xs[L], ypos[k]

    for src, dst, chain in chains:
        b0, b1 = lay.boxes[src], lay.boxes[dst]
        L0 = layer[src]
        # Leave the source from its right side and reach its column's right edge.
        pts = [(b0.x + b0.w / 2, b0.y), (xs[L0] + colw[L0] / 2, b0.y)]
        for lane in chain[1:-1]:  # straight through the column, in the lane kept for it
            L = lane[3]
            pts += [(xs[L] - colw[L] / 2, ypos[lane]), (xs[L] + colw[L] / 2, ypos[lane])]
        # Arrive at the target's left side; inputs spread top to bottom in argument order.
        ins = [e for e in edges if e[1] == dst]
        i = ins.index((src, dst))
        yin = b1.y + b1.h / 2 * (0.6 - 1.2 * (i + 0.5) / len(ins)) if len(ins) > 1 else b1.y
        L1 = layer[dst]
        pts += [(xs[L1] - colw[L1] / 2, yin), (b1.x - b1.w / 2, yin)]
        # Drop zero-length pieces (a box as wide as its column).
        clean = [pts[0]] + [p for a, p in zip(pts, pts[1:]) if p != a]
        lay.edges.append((src, dst, clean))
    top = max(ypos[k] + height(k) / 2 for k in ypos)
    bottom = min(ypos[k] - height(k) / 2 for k in ypos)
    lay.width, lay.height = x - _HGAP, top - bottom
    return lay


def layout(t: Tensor, names: Any = None, grads: bool | str = "auto",
           max_nodes: int = 40) -> Layout:
    """The layout :func:`draw` draws: boxes and edge polylines in inches (see :class:`Layout`).

    Arguments are those of :func:`draw`. Useful to test a drawing or to draw it your own way.
    """
    _need_tensor(t, "layout")
    if grads not in (True, False, "auto"):
        raise ArgumentError(f"viz.draw: grads must be True, False or 'auto', got {grads!r}")
    if not (isinstance(max_nodes, int) and max_nodes >= 2):
        raise ArgumentError(f"viz.draw: max_nodes must be an int >= 2, got {max_nodes!r}")
    named = _names(names)
    nodes = _walk(t)
    leaves = [u for u in nodes if u._node is None]
    backward_ran = any(u.grad is not None for u in leaves)
    show_grads = grads is True or (grads == "auto" and backward_ran)
    inner = _node_grads(t) if show_grads else {}

    depth = {}  # longest path from a leaf; creation order visits inputs before outputs
    for u in sorted(nodes, key=lambda u: u._node.seq if u._node is not None else -1):
        node = u._node
        ins = [p for p in node.inputs if type(p) is Tensor] if node is not None and node.inputs else []
        depth[id(u)] = 1 + max((depth[id(p)] for p in ins), default=-1) if ins else 0

    edges = []
    for u in nodes:
        if u._node is not None and u._node.inputs is not None:
            for p in u._node.inputs:
                if type(p) is Tensor and (id(p), id(u)) not in edges:
                    edges.append((id(p), id(u)))

    # A leaf sits just left of its first consumer, so its edge stays short.
    first_use = {}
    for a, b in edges:
        first_use[a] = min(first_use.get(a, depth[b]), depth[b])
    for u in leaves:
        if id(u) in first_use:
            depth[id(u)] = first_use[id(u)] - 1

    if len(nodes) > max_nodes:
        return _summary(t, nodes, edges, depth, named, max_nodes)

    items = {}
    for u in nodes:
        if u._node is None:
            kind = "param" if u.requires_grad else "const"
            lines = [_leaf_title(u, named)]
        else:
            kind = "op"
            lines = [(f"{u.name} = " if u.name else "") + _op_title(u)]
        lines.append(_shape_text(u.shape))
        val = _fmt_array(u.data)
        if val is not None:
            lines.append("value " + val)
        g = u.grad if (u._node is None and u.grad is not None) else inner.get(id(u))
        if show_grads and g is not None:
            lines.append("grad " + _fmt_grad(g))
        items[id(u)] = (lines, kind, depth[id(u)])
    lay = _place(items, edges)
    freed = [u for u in nodes if u._node is not None and u._node.inputs is None]
    lay.note = ("" if not freed else
                f"{len(freed)} op(s) marked (freed): backward() released the graph there; call "
                "backward(retain_graph=True), or draw before backward, to see all of it")
    return lay


def _summary(t, nodes, edges, depth, named, max_nodes):
    """A graph too large to read, drawn as groups: layers binned into at most 8 columns,
    and within a column one box per op (leaves grouped by module prefix)."""
    n_layers = max(depth.values()) + 1
    n_cols = min(n_layers, 8)
    col_of = {k: min(n_cols - 1, d * n_cols // n_layers) for k, d in depth.items()}
    groups, members = {}, {}
    for u in nodes:
        if u._node is None:
            name = named.get(id(u)) or u.name
            if name:  # parameters of one module go together: "0.weight" -> "0.*"
                label = name.rsplit(".", 1)[0] + ".*" if "." in name else name
            else:
                label = "parameters" if u.requires_grad else "constants"
        else:
            label = u._node.op.name if u._node.inputs is not None else "freed"
        key = (col_of[id(u)], label)
        groups.setdefault(key, []).append(u)
        members[id(u)] = key
    # Keep each column to a few boxes: the largest groups, and the rest as "other ops".
    by_col = {}
    for key in groups:
        by_col.setdefault(key[0], []).append(key)
    remap = {}
    for c, keys in by_col.items():
        keys.sort(key=lambda k: -len(groups[k]))
        for k in keys[5:]:
            remap[k] = (c, "other ops")
    items, gedges = {}, {}
    merged = {}
    for key, us in groups.items():
        merged.setdefault(remap.get(key, key), []).extend(us)
    for key, us in merged.items():
        shapes = sorted({str(u.shape) for u in us})
        lines = [f"{key[1]} x{len(us)}" if len(us) > 1 else key[1],
                 "shapes " + ", ".join(shapes[:2]) + (" ..." if len(shapes) > 2 else "")]
        kinds = {("param" if u.requires_grad else "const") if u._node is None else "group" for u in us}
        items[key] = (lines, kinds.pop() if len(kinds) == 1 else "group", key[0])
    for a, b in edges:
        ka, kb = members[a], members[b]
        ka, kb = remap.get(ka, ka), remap.get(kb, kb)
        if ka[0] < kb[0]:
            gedges[(ka, kb)] = gedges.get((ka, kb), 0) + 1
    lay = _place(items, list(gedges))
    lay.note = (f"summarised: {len(nodes)} tensors drawn as {len(items)} groups (one box per op "
                f"kind in each of {n_cols} bands of layers; edges inside a band not drawn); "
                f"pass max_nodes={len(nodes)} to draw every tensor")
    return lay


# ----------------------------------------------------------------------------- draw

_FILL = {"param": "#dbe9ff", "const": "#eeeeee", "op": "white", "group": "#fff4d6"}


def draw(t: Tensor, path: str | None = None, names: Any = None, grads: bool | str = "auto",
         max_nodes: int = 40, title: str | None = None, dpi: int = 120) -> "Figure":
    """Draw the graph that produced ``t`` with matplotlib (no Graphviz needed).

    One box per tensor, left to right from the leaves to ``t``: the op (with any constants
    it took, e.g. ``pow(·, 2)``), the shape, the value when it has at most 4 elements, and,
    once ``backward`` has run, the signed gradient (leaves show their ``.grad``; the boxes
    of intermediate results show d t / d box, recomputed for a scalar ``t``). Leaves are
    named by their ``name=`` or by ``names``. Parameters are blue, constants grey.

    Args:
        t: the output whose graph to draw. Call ``backward(retain_graph=True)`` (or draw
            before backward) so the graph is still there.
        path: when given, the figure is also saved there as a PNG.
        names: a Module (its ``named_parameters()`` name the leaves) or a dict name -> Tensor.
        grads: ``"auto"`` shows gradients when some leaf has one; True or False forces it.
        max_nodes: graphs with more tensors are summarised: layers binned into bands, one box
            per op kind per band, with a note saying so.
        title: the figure title (a default one explains the colours).
        dpi: resolution of the PNG.

    Returns:
        The matplotlib ``Figure``.

    Example::

        x = tm.tensor([1.0, -2.0], requires_grad=True, name="x")
        y = (x * x).sum()
        y.backward(retain_graph=True)
        fig = tm.viz.draw(y, "graph.png")   # x's box: value [1, -2], grad [2, -4]
    """
    _need_tensor(t, "draw")
    lay = layout(t, names=names, grads=grads, max_nodes=max_nodes)
    from .plotting import pyplot
    from matplotlib.patches import FancyBboxPatch

    plt = pyplot()
    margin = 0.3
    head = 0.55 if lay.note else 0.35
    fig = plt.figure(figsize=(lay.width + 2 * margin, lay.height + 2 * margin + head))
    # One data unit is one inch, so the text sizes computed in the layout fit their boxes.
    ax = fig.add_axes([0, 0, 1, 1])
    top = max(b.y + b.h / 2 for b in lay.boxes.values())
    left = min(b.x - b.w / 2 for b in lay.boxes.values())
    ax.set_xlim(left - margin, left - margin + lay.width + 2 * margin)
    ax.set_ylim(top + margin + head - fig.get_figheight(), top + margin + head)
    ax.axis("off")
    for src, dst, pts in lay.edges:
        xs, ys = zip(*pts)
        ax.plot(xs[:-1] + (xs[-1] - 0.06,), ys, color="0.45", lw=1.0, gid="edge", solid_capstyle="butt")
        ax.annotate("", xy=pts[-1], xytext=(pts[-1][0] - 0.12, pts[-1][1]),
                    arrowprops=dict(arrowstyle="-|>", color="0.45", lw=1.0, shrinkA=0, shrinkB=0))
    for b in lay.boxes.values():
        x0, y0, x1, y1 = b.bounds
        patch = FancyBboxPatch((x0, y0), b.w, b.h, boxstyle="round,pad=0,rounding_size=0.04",
                               fc=_FILL[b.kind], ec="0.25", lw=0.9, gid="box")
        ax.add_patch(patch)
        ax.text(b.x, b.y, "\n".join(b.lines), ha="center", va="center", fontsize=_FONT,
                family="monospace", linespacing=1.3, gid="label")
    if title is None:
        title = "graph of the output, leaves on the left (blue: requires grad, grey: constant)"
    fig.text(0.5, 1 - 0.12 / fig.get_figheight(), title, ha="center", va="top", fontsize=9)
    if lay.note:
        fig.text(0.5, 1 - 0.32 / fig.get_figheight(), lay.note, ha="center", va="top",
                 fontsize=7, color="0.3")
    fig._tinymeta_layout = lay  # what the boxes and edges were placed from (for tests)
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


# ----------------------------------------------------------------------------- DOT


def _esc(text):
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _label(t):
    if t._node is not None:
        freed = " (freed)" if t._node.inputs is None else ""
        return f"{t._node.op.name}{freed}\\n{t.shape}"
    kind = _esc(t.name) if t.name else ("param" if t.requires_grad else "const")
    g = f"\\n|grad|={np.linalg.norm(t.grad.data):.4g}" if t.grad is not None else ""
    return f"{kind}\\n{t.shape}{g}"


def to_dot(tensor: Tensor) -> str:
    """Graphviz DOT text of the graph that produced ``tensor``: op names and shapes,
    leaves' gradient norms once ``backward`` has run (use ``retain_graph=True`` to keep the
    graph after backward). Render with ``dot -Tpng``; without Graphviz use :func:`draw`."""
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


# ----------------------------------------------------------------------------- trace

LEGEND = (
    "how to read it (one line per op, in the order backward visits them: output first):",
    "  op          the op whose derivative rule runs (its forward output's name in brackets)",
    "  out         that op's output shape (() is a scalar)",
    "  got         the gradient of the loss w.r.t. that output, arriving from later ops",
    "  sent        what the rule passes to each input, in argument order, as name=gradient",
    "  -           that input needs no gradient (a constant, or requires_grad=False): nothing sent",
    "  |g|=N (s)   a gradient with more than 4 elements: its norm N and shape s; small ones are",
    "              printed with their signs",
)


def trace_backward(loss: Tensor, retain_graph: bool = False, file: TextIO | None = None,
                   names: Any = None, legend: bool = True) -> list[str]:
    """Run ``loss.backward()`` and print, op by op, the gradient each backward step received
    and the signed gradient it sent to each (named) input.

    Args:
        loss: a scalar tensor.
        retain_graph: keep the graph (e.g. to :func:`draw` it afterwards).
        file: where to print (default stdout).
        names: a Module or a dict name -> Tensor naming the leaves (else their ``name=``).
        legend: also print a line explaining every symbol used.

    Returns:
        The step lines, one per op (without the legend).

    Example: micrograd's ``L = (a*b + c)*f`` with a=2, b=-3, c=10, f=-2 (and ``e = a*b``,
    ``d = e + c`` named by setting ``.name``) prints::

        mul [L]    out ()    got 1     sent d=-2, f=4
        add [d]    out ()    got -2    sent e=-2, c=-2
        mul [e]    out ()    got -2    sent a=6, b=-4

    then the legend (``LEGEND``), one line per symbol.
    """
    _need_tensor(loss, "trace_backward")
    named = _names(names)
    lines = []
    labels = {}

    def name_of(p):
        if type(p) is not Tensor:
            return _const_text(p)
        if id(p) in labels:
            return labels[id(p)]
        if p._node is None:
            text = _leaf_title(p, named)
        else:
            text = p.name or f"{p._node.op.name}#{len(labels) + 1}"
        labels[id(p)] = text
        return text

    def hook(t, node, g, gins):
        out = name_of(t)  # first, so names number in the order backward meets them
        sent = []
        for gi, p, need in zip(gins, node.inputs, node.need):
            if type(p) is not Tensor:
                sent.append(f"const({_const_text(p)})=-" if p is not None else "const=-")
                continue
            if gi is None or not need:
                sent.append(f"{name_of(p)}=-")
                continue
            # Already in the input's shape: an op sums a broadcast gradient back itself
            # (tm.trace's printed program shows those sum_to lines).
            sent.append(f"{name_of(p)}={_fmt_grad(gi)}")
        lines.append(f"{node.op.name + ' [' + out + ']':<22} out {str(t.shape):<9} "
                     f"got {_fmt_grad(g):<16} sent {', '.join(sent)}")
        print(lines[-1], file=file)

    seeds = _seed_grads([loss], None, "trace_backward")
    _run_backward([loss], seeds, None, retain_graph, False, hook=hook)
    if legend:
        for line in LEGEND:
            print(line, file=file)
    return lines

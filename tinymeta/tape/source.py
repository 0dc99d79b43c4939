"""A program as plain NumPy source: one line per primitive, named after the user's arguments
and parameters, each derivative line naming the op whose rule it came from."""
import numpy as np

from .recording import _identifier

# ----------------------------------------------------------------------------- printing as NumPy

_HELPERS = {
    "sigmoid": "def sigmoid(x):\n    return 1 / (1 + np.exp(-x))",
    "sum_to": ("def sum_to(x, shape):  # undo broadcasting: sum the axes that were added or stretched\n"
               "    lead = x.ndim - len(shape)\n"
               "    axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)\n"
               "                                      if s == 1 and x.shape[lead + i] != 1)\n"
               "    return np.sum(x, axis=axes, keepdims=True).reshape(shape)"),
    "logsumexp": ("def logsumexp(x, axis, keepdims):\n    m = np.max(x, axis=axis, keepdims=True)\n"
                  "    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m\n"
                  "    if keepdims:\n        return out\n"
                  "    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())"),
    "softmax": ("def softmax(x, axis):\n    e = np.exp(x - np.max(x, axis=axis, keepdims=True))\n"
                "    return e / np.sum(e, axis=axis, keepdims=True)"),
    "log_softmax": "def log_softmax(x, axis):\n    return x - logsumexp(x, axis, True)",
    "scatter": ("def scatter(g, idx, shape):  # zeros with g added at idx\n    out = np.zeros(shape, g.dtype)\n"
                "    np.add.at(out, idx, g)\n    return out"),
    "linear": ("def linear(x, w, b=None, activation=None):\n    y = x @ np.swapaxes(w, -1, -2)\n"
               "    if b is not None:\n        y = y + (b if b.ndim == 1 else np.expand_dims(b, -2))\n"
               "    return np.maximum(y, 0) if activation == 'relu' else y"),
    "mse": "def mse(pred, target, axis):\n    return np.mean((pred - target) ** 2, axis=axis)",
    "mse_grad": ("def mse_grad(g, pred, target, axis):  # d mse / d pred, times g\n    d = pred - target\n"
                 "    n = d.size if axis is None else np.prod([d.shape[a] for a in axis])\n"
                 "    keep = tuple(1 if axis is None or i in axis else s for i, s in enumerate(d.shape))\n"
                 "    return np.reshape(g, keep) * (2.0 / n) * d"),
    "softmax_cross_entropy": ("def softmax_cross_entropy(logits, labels):\n"
                              "    return -log_softmax(logits, -1)[np.arange(len(labels)), labels]"),
}
_NEEDS = {"log_softmax": ("logsumexp",), "softmax_cross_entropy": ("log_softmax", "logsumexp")}


def _literal(value):
    """``value`` as Python source that needs only numpy, or None if it is too big for that."""
    if isinstance(value, np.ndarray):
        if value.size <= 12 or (value.size and (value == value.flat[0]).all()):
            if value.size and (value == value.flat[0]).all():
                return f"np.full({value.shape}, {value.flat[0].item()!r}, dtype=np.{value.dtype.name})"
            return f"np.array({value.tolist()!r}, dtype=np.{value.dtype.name})"
        return None
    if isinstance(value, slice):
        return repr(value)
    if isinstance(value, tuple):
        parts = [_literal(v) for v in value]
        return None if None in parts else "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, (np.generic,)):
        return repr(value.item())
    if value is Ellipsis:
        return "..."
    return repr(value)


_SECTIONS = ("forward", "backward", "backward of the backward")


def _source(prog, rec):
    """``prog`` as plain NumPy: ``def program(<flat inputs>, <captured>): ... return <outputs>``."""
    taken, slot_name, params = set(_HELPERS), {}, []
    for s, (kind, payload) in enumerate(rec.slots):
        if kind == "in":
            slot_name[s] = _identifier(prog._in_names[payload], taken)
    params = [slot_name[s] for s, (kind, _) in enumerate(rec.slots) if kind == "in"]
    for s, t in prog._captured:
        lit = _literal(t.data) if t.name is None and not t.requires_grad else None
        if lit is not None:  # a constant made while tracing (a backward pass's seed of ones)
            slot_name[s] = lit
            continue
        slot_name[s] = _identifier(t.name or f"captured_{len(params)}", taken)
        params.append(slot_name[s])
    for s, leaf in prog._grads:
        slot_name[s] = _identifier(f"grad_{leaf.name or 'leaf'}", taken)
        params.append(slot_name[s])
    big = []
    for s, c in prog._consts:
        lit = _literal(c)
        if lit is None:
            slot_name[s] = _identifier(f"const_{len(big)}", taken)
            params.append(slot_name[s])
            big.append(c)
        else:
            slot_name[s] = lit
    prog._source_consts = big
    prog._source_caps = [slot_name[s] in params for s, _ in prog._captured]
    body, helpers, section, counts = [], [], None, {}
    for n, st in enumerate(prog._steps):
        if st.order != section:
            section = st.order
            title = _SECTIONS[section] if section < len(_SECTIONS) else f"derivative of order {section}"
            body.append(f"    # {'-' * 8} {title}")
        names = [slot_name[a] if type(a) is int else _literal(a.value) for a in st.ins]
        kw = {k: _literal(v) if not isinstance(v, np.dtype) else v.name for k, v in st.kwargs.items()}
        src = st.op.src
        if src is None:
            expr = f"{st.op.name}({', '.join(names)})  # no NumPy form recorded for this op"
        elif callable(src):
            expr = src(names, **kw)
        else:
            padded = names + ["None"] * 3
            expr = src.format(*padded, **kw)
        head = expr.split("(")[0].strip()
        if head in _HELPERS:
            for h in _NEEDS.get(head, ()) + (head,):
                if h not in helpers:
                    helpers.append(h)
        prefix = "" if st.order == 0 else "g" * st.order + "_"
        counts[prefix + st.op.name] = counts.get(prefix + st.op.name, 0) + 1
        name = _identifier(f"{prefix}{st.op.name}{counts[prefix + st.op.name]}", taken)
        slot_name[st.out] = name
        note = f"  # rule of {st.rule}" if st.rule else ""
        body.append(f"    {name} = {expr}{note}")
    outs = [slot_name[t] if type(t) is int else repr(t.value) for t in prog._targets]
    what = [f"output {i}" for i in range(len(prog._out_kinds))]
    what += [f"{leaf.name or 'a tensor'}.grad" for leaf in prog._grad_leaves]
    body.append("    # returns " + ", ".join(f"{w}: {o}" for w, o in zip(what, outs)))
    head = [_HELPERS[h] for h in sorted(helpers, key=list(_HELPERS).index)]
    text = "import numpy as np\n\n"
    if head:
        text += "\n\n".join(head) + "\n\n\n"
    text += f"def program({', '.join(params)}):\n" + "\n".join(body)
    text += f"\n    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})\n"
    return text

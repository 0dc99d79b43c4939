"""The tape: trace a computation once, read it as NumPy code, replay it without a graph.

``tm.trace(fn, *args)`` runs ``fn`` eagerly and records every primitive it executes, the
ones ``backward()`` and ``tm.grad(..., create_graph=True)`` run included: tinymeta's
derivative rules are themselves primitives, so the derivative program and the derivative of
the derivative are just more lines. The result is a ``Program``:

* ``prog(*args)`` replays it on new arrays of the same shapes and dtypes: one Python
  function calling each primitive's forward on plain arrays, with no Tensor, no graph and no
  per-op checks (dead code removed first);
* ``prog.source`` prints it as plain NumPy, one line per primitive, each derivative line
  naming the op whose rule it comes from: the derivative program, to read.

``tm.jit(fn)`` traces on the first call for each key (shapes, dtypes, Python arguments),
checks the replay against the eager result, and replays on later calls.

What a replay cannot follow is frozen at trace time: random numbers drawn inside ``fn``,
Python numbers, and arrays ``fn`` builds from its inputs by copying them (``np.asarray(x,
dtype=...)``): pass arrays of the dtype ``fn`` uses. What a replay would get silently wrong
is refused: ``.item()``, ``float()`` and ``bool()`` on a tensor while tracing (a Python branch
on the value would be frozen), and inputs of another shape or dtype.
"""
import dataclasses
import inspect
import re
import warnings

import numpy as np

from .engine import Tensor, _mode, _wrap
from .errors import ArgumentError, DTypeError, ShapeError, TraceError

# ----------------------------------------------------------------------------- inputs and outputs


def _flatten(obj, path, leaves, names):
    """Arrays and Tensors inside ``obj`` (dicts, lists, tuples, dataclasses), appended to
    ``leaves`` (with a readable name each in ``names``, unless it is None); returns the
    structure with leaves replaced by their index and everything else kept (it is part of
    the cache key)."""
    if type(obj) is Tensor or isinstance(obj, np.ndarray):
        leaves.append(obj)
        if names is not None:
            names.append(path)
        return ("leaf", len(leaves) - 1)
    sub = (lambda k: f"{path}_{k}") if names is not None else (lambda k: "")
    if isinstance(obj, dict):
        return ("dict", tuple(obj), tuple(_flatten(v, sub(k), leaves, names) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_flatten(v, sub(i), leaves, names) for i, v in enumerate(obj)))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = [f.name for f in dataclasses.fields(obj)]
        return ("dataclass", type(obj), tuple(fields),
                tuple(_flatten(getattr(obj, f), sub(f), leaves, names) for f in fields))
    try:
        hash(obj)
    except TypeError:
        raise ArgumentError(f"tm.trace: cannot follow an argument of type {type(obj).__name__} at {path}; "
                            "pass arrays, Tensors, numbers, or dicts/lists/tuples/dataclasses of them") from None
    return ("static", obj)


def _rebuild(tree, values):
    kind = tree[0]
    if kind == "leaf":
        return values[tree[1]]
    if kind == "dict":
        return {k: _rebuild(v, values) for k, v in zip(tree[1], tree[2])}
    if kind in ("list", "tuple"):
        items = [_rebuild(v, values) for v in tree[1]]
        return items if kind == "list" else tuple(items)
    if kind == "dataclass":
        return tree[1](**{f: _rebuild(v, values) for f, v in zip(tree[2], tree[3])})
    return tree[1]


def _identifier(text, taken):
    name = re.sub(r"\W+", "_", str(text)).strip("_") or "v"
    if name[0].isdigit():
        name = "p" + name  # a parameter "0.weight" reads p0_weight
    if name in _RESERVED:
        name = name + "_"
    base, k = name, 1
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    taken.add(name)
    return name


_RESERVED = {"np", "program", "def", "return", "lambda", "in", "is", "if", "else", "for", "class", "from",
             "import", "and", "or", "not", "None", "True", "False", "pass", "with", "as", "del", "global",
             "sum", "pow", "max", "min", "abs", "len", "range", "list", "dict", "type", "slice"}

# ----------------------------------------------------------------------------- recording


class _Step:
    __slots__ = ("op", "ins", "kwargs", "out", "order", "rule", "shapes")

    def __init__(self, op, ins, kwargs, out, order, rule, shapes):
        self.op, self.ins, self.kwargs, self.out, self.order, self.rule = op, ins, kwargs, out, order, rule
        self.shapes = shapes  # (input shapes, output shape) when traced: for the replay's rewrites


class _Lit:
    """A Python value (a number, None, a tuple of them) used as an op's argument."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Recorder:
    """What ``tm.trace`` learns while ``fn`` runs. Slots are the program's values: inputs,
    captured tensors (read by reference at every replay), the current ``.grad`` of a leaf,
    constants, and the output of each step."""

    def __init__(self):
        self.slots = []        # (kind, payload): "in" index, "cap" tensor, "grad" leaf, "const" array, "step" index
        self.by_tensor = {}    # id(tensor) -> slot
        self.by_array = {}     # id(array) -> slot
        self.keep = []         # keeps every object whose id is a key alive while tracing
        self.steps = []
        self.order_of = {}     # slot -> 0 forward, 1 backward, 2 backward of the backward...
        self.order, self.rule = 0, None
        self.grad_leaves = {}  # id(leaf) -> leaf whose .grad fn wrote
        self.grad_before = {}  # slot of a leaf's .grad -> its value when the trace read it
        self.events = []       # in order: ("grad", leaf, tensor), ("zero", leaves), ("step", optimizer)
        self.stepped = None    # the optimizer whose step() ran: no op may follow it
        self.pre_step = []     # (parameter, its array before the traced step)
        self.first_touch = {}  # id(leaf) -> (leaf, "read" | "fresh" | "zero"): how fn first met its .grad

    def _new(self, kind, payload, *objs):
        self.slots.append((kind, payload))
        slot = len(self.slots) - 1
        for o in objs:
            self.keep.append(o)
            if type(o) is Tensor:
                self.by_tensor[id(o)] = slot
                self.by_array.setdefault(id(o.data), slot)
                self.keep.append(o.data)
            else:
                self.by_array[id(o)] = slot
        return slot

    def add_input(self, k, x):
        return self._new("in", k, x)

    def ref(self, a):
        """The slot (or literal) an op's argument reads."""
        if type(a) is Tensor:
            slot = self.by_tensor.get(id(a))
            if slot is None:
                slot = self.by_array.get(id(a.data))
                if slot is None:
                    return self._new("cap", a, a)
                self.by_tensor[id(a)] = slot
                self.keep.append(a)
            return slot
        if isinstance(a, np.ndarray):
            slot = self.by_array.get(id(a))
            return self._new("const", a, a) if slot is None else slot
        return _Lit(a)

    def record(self, op, args, kwargs, res):
        if self.stepped is not None:
            raise TraceError(f"{op.name} after {type(self.stepped).__name__}.step() inside a function being traced: "
                             "a replay runs the step after the whole computation, so end the function "
                             "with step() (return the loss computed before it)")
        for value in kwargs.values():
            self._refuse_traced_option(op, value)
        ins = [self.ref(a) for a in args]
        out = self._new("step", len(self.steps), res)
        self.order_of[out] = self.order
        shapes = ([np.shape(a.data if type(a) is Tensor else a) for a in args], res.data.shape)
        self.steps.append(_Step(op, ins, kwargs, out, self.order, self.rule, shapes))

    def _refuse_traced_option(self, op, value):
        """An option (an index array, say) that is an input or a computed value would be
        frozen at its traced value: refuse it."""
        if isinstance(value, tuple):
            for v in value:
                self._refuse_traced_option(op, v)
        elif isinstance(value, np.ndarray) and id(value) in self.by_array and \
                self.slots[self.by_array[id(value)]][0] in ("in", "step"):
            raise TraceError(f"{op.name}: an index or option array that is an input of the traced function "
                             "(or computed in it) would be frozen at its traced value; index with "
                             "arrays fixed when tracing, or compute the selection with tensors "
                             "(tm.where, a one-hot product)")

    # -- what the engine tells the tape during backward
    def enter_rule(self, t, name):
        outer = (self.order, self.rule)
        self.order = self.order_of.get(self.by_tensor.get(id(t)), 0) + 1
        self.rule = name
        return outer

    def leave_rule(self, outer):
        self.order, self.rule = outer

    def _touch(self, leaf, how):
        self.first_touch.setdefault(id(leaf), (leaf, how))

    def reading_grad(self, leaf):
        self._touch(leaf, "read")
        g = leaf.grad
        if id(g) not in self.by_tensor and id(g.data) not in self.by_array:
            slot = self._new("grad", leaf, g)
            self.grad_before[slot] = g.data

    def same_value(self, copy, g):
        slot = self.ref(g)
        self.by_tensor[id(copy)] = slot
        self.by_array[id(copy.data)] = slot
        self.keep.append(copy)

    def wrote_grad(self, leaf):
        self._touch(leaf, "fresh")  # first touched by a write that read nothing: .grad was None
        self.grad_leaves[id(leaf)] = leaf
        self.events.append(("grad", leaf, leaf.grad))

    def zeroed_grads(self, leaves):
        leaves = list(leaves)
        for leaf in leaves:
            self._touch(leaf, "zero")
        self.events.append(("zero", leaves))

    def optimizer_step(self, optimizer):
        self.events.append(("step", optimizer))
        self.stepped = optimizer
        # The parameters as the traced computation saw them, for tm.jit's check of the trace.
        self.pre_step.extend((p, p.data.copy()) for g in optimizer.param_groups for p in g["params"])

    def refuse_inplace(self, what):
        raise TraceError(
            f"{what}: an in-place write inside a function being traced is not recorded, so a replay "
            "would skip it; write it out of place (x = x + y) and return the result")

    def refuse_python_value(self, t, what):
        raise TraceError(
            f"{what} on a tensor (shape {t.shape}) inside a function being traced: the Python value "
            "would be frozen into the program, and any branch on it could not follow new inputs. "
            "Return the tensor from the function and read it outside, or keep the decision in "
            "tensors (tm.where, tm.maximum)")


# ----------------------------------------------------------------------------- the program


class Program:
    """A traced computation: ``prog(*args)`` replays it, ``prog.source`` prints it as NumPy.

    Built by ``tm.trace``; see the module docstring for what is followed and what is frozen."""

    def __init__(self, fn, rec, in_tree, in_specs, in_names, out_tree, out_slots, out_kinds, events):
        self.fn_name = getattr(fn, "__name__", "fn")
        self._in_tree, self._in_specs, self._in_names = in_tree, in_specs, in_names
        self._out_tree, self._out_kinds = out_tree, out_kinds
        # Effects, replayed in order after the computation: ("grad", leaf, slot) sets leaf.grad,
        # ("zero", leaves) sets them to None, ("step", optimizer) runs optimizer.step().
        self._events = events
        grad_slots = [e[2] for e in events if e[0] == "grad"]
        self._grad_leaves = [e[1] for e in events if e[0] == "grad"]
        targets = list(out_slots) + grad_slots
        self._steps = self._live(rec, targets)
        used = {i for st in self._steps for i in st.ins if type(i) is int} | {t for t in targets if type(t) is int}
        self._slots = rec.slots
        kinds = {"cap": [], "grad": [], "const": []}
        for s in sorted(used):
            kind = rec.slots[s][0]
            if kind in kinds:
                kinds[kind].append(s)
        self._captured = [(s, rec.slots[s][1]) for s in kinds["cap"]]
        self._cap_specs = [(t.shape, t.dtype) for _, t in self._captured]
        self._grads = [(s, rec.slots[s][1]) for s in kinds["grad"]]
        self._grad_before = [rec.grad_before[s] for s, _ in self._grads]
        self._consts = [(s, rec.slots[s][1]) for s in kinds["const"]]
        self._targets = targets
        self._replay, self._py = _compile(self)
        self.source = _source(self, rec)

    @staticmethod
    def _live(rec, targets):
        """The steps the targets depend on (dead code removed), in order."""
        live = {t for t in targets if type(t) is int}
        keep = []
        for st in reversed(rec.steps):
            if st.out in live:
                keep.append(st)
                live.update(i for i in st.ins if type(i) is int)
        keep.reverse()
        return keep

    def __len__(self):
        return len(self._steps)

    def __repr__(self):
        return self.source

    # -- replay
    def _arrays(self, args, kwargs):
        leaves = []
        tree = _flatten((args, kwargs), "", leaves, None)
        if tree != self._in_tree:
            raise TraceError(f"{self.fn_name}: the arguments' structure or Python values differ from the "
                             "traced call; trace again (tm.jit does this by itself)")
        return self._leaf_arrays(leaves, check=True)

    def _leaf_arrays(self, leaves, check):
        """The replay's arguments; ``check`` compares each input with the traced shape and dtype
        (tm.jit's cache key has done that already)."""
        if not check:
            arrays = [x.data if type(x) is Tensor else x for x in leaves]
        else:
            arrays = self._checked(leaves)
        for (_, t), (shape, dtype) in zip(self._captured, self._cap_specs):
            if t.data.shape != shape or t.data.dtype != dtype:
                raise TraceError(f"{self.fn_name}: a tensor the program reads ({t.name or 'unnamed'}) now has shape "
                                 f"{t.data.shape} and dtype {t.data.dtype}, not {shape} {dtype} as when traced: its "
                                 "array was replaced; trace again")
            arrays.append(t.data)
        for _, leaf in self._grads:
            if leaf.grad is None:
                raise TraceError(f"{self.fn_name}: the program adds into the .grad of a tensor "
                                 f"({leaf.name or leaf.shape}) that is None now but was set when traced; "
                                 "call zero_grad() the same way before tracing and replaying")
            arrays.append(leaf.grad.data)
        for leaf in self._fresh:
            if leaf.grad is not None:
                raise TraceError(f"{self.fn_name}: the program sets the .grad of a tensor ({leaf.name or leaf.shape}) "
                                 "that was None when traced but holds a gradient now, so a replay would drop "
                                 "it instead of adding to it; call zero_grad() the same way before tracing and "
                                 "replaying (tm.jit traces a second program for this case by itself)")
        arrays.extend(c for _, c in self._consts)
        return arrays

    def guards_hold(self) -> bool:
        """Whether the gradients are in the state (None or set) the program was traced in."""
        return all(leaf.grad is None for leaf in self._fresh) and all(leaf.grad is not None for _, leaf in self._grads)

    def _checked(self, leaves):
        arrays = []
        for x, (shape, dtype), name in zip(leaves, self._in_specs, self._in_names):
            a = x.data if type(x) is Tensor else x
            if a.shape != shape:
                raise ShapeError(f"{self.fn_name}: argument {name} has shape {a.shape}, the program was traced "
                                 f"with shape {shape}; trace again for the new shape (tm.jit does this by itself)")
            if a.dtype != dtype:
                raise DTypeError(f"{self.fn_name}: argument {name} has dtype {a.dtype}, the program was traced "
                                 f"with {dtype}; convert it, or trace again for the new dtype")
            arrays.append(a)
        return arrays

    def __call__(self, *args, **kwargs):
        return self._run(self._arrays(args, kwargs))

    def _run(self, arrays):
        outs = self._replay(*arrays)
        n = len(self._out_kinds)
        grads = iter(outs[n:])
        for event in self._events:
            if event[0] == "grad":
                event[1].grad = _wrap(next(grads))
            elif event[0] == "zero":
                for leaf in event[1]:
                    leaf.grad = None
            else:
                event[1].step()
        values = [_wrap(o) if kind == "tensor" else o for o, kind in zip(outs[:n], self._out_kinds)]
        return _rebuild(self._out_tree, values)

    def _final_grads(self, grad_values):
        """{id(leaf): (leaf, array or None)}: each leaf's .grad after the events, from the
        values of the grad events."""
        final, values = {}, iter(grad_values)
        for event in self._events:
            if event[0] == "grad":
                final[id(event[1])] = (event[1], next(values))
            elif event[0] == "zero":
                for leaf in event[1]:
                    final[id(leaf)] = (leaf, None)
        return final

    def dry_run(self, *args, **kwargs):
        """Replay without writing any ``.grad``, reading each leaf's ``.grad`` as it was when
        traced: (outputs, gradients written) as arrays. ``tm.jit`` checks the trace with it."""
        arrays = self._arrays_as_traced(args, kwargs)
        outs = self._replay(*arrays)
        n = len(self._out_kinds)
        return list(outs[:n]), list(outs[n:])

    def _arrays_as_traced(self, args, kwargs):
        leaves = [leaf for _, leaf in self._grads] + self._fresh
        saved = [leaf.grad for leaf in leaves]
        try:
            for (_, leaf), before in zip(self._grads, self._grad_before):
                leaf.grad = _wrap(before)
            for leaf in self._fresh:
                leaf.grad = None
            return self._arrays(args, kwargs)
        finally:
            for leaf, g in zip(leaves, saved):
                leaf.grad = g

    def source_args(self, *args, **kwargs):
        """The arguments ``program`` in ``prog.source`` takes, in order, for these arguments."""
        arrays = self._arrays(args, kwargs)
        n_in = len(self._in_specs)
        caps = [a for a, keep in zip(arrays[n_in:n_in + len(self._captured)], self._source_caps) if keep]
        rest = arrays[n_in + len(self._captured):len(arrays) - len(self._consts)]
        return arrays[:n_in] + caps + rest + list(self._source_consts)


def _fmt_kw(value):
    if isinstance(value, np.dtype):
        return f"'{value.name}'"
    return repr(value)


# Ops that broadcast their operands themselves: an explicit broadcast_to feeding only them
# can be dropped from the replay when the result's shape does not change (np.broadcast_to
# costs a few microseconds a call, more than many of the ops of a small network).
_BROADCASTING = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "where", "sub_scaled",
                 "less", "less_equal", "greater", "greater_equal", "equal", "not_equal"}


def _elide_broadcasts(steps, targets):
    """{slot of a droppable broadcast_to's output: slot of its input}."""
    users = {}
    for st in steps:
        for j, a in enumerate(st.ins):
            if type(a) is int:
                users.setdefault(a, []).append((st, j))
    out = {}
    for st in steps:
        if st.op.name != "broadcast_to" or st.out in targets or type(st.ins[0]) is not int:
            continue
        ok = bool(users.get(st.out))
        for user, j in users.get(st.out, ()):
            if user.op.name not in _BROADCASTING:
                ok = False
                break
            shapes = list(user.shapes[0])
            shapes[j] = st.shapes[0][0]
            try:
                ok = np.broadcast_shapes(*shapes) == user.shapes[1]
            except ValueError:
                ok = False
            if not ok:
                break
        if ok:
            out[st.out] = st.ins[0]
    return out


def _compile(prog):
    """The replay: one Python function, each line a primitive's forward on arrays."""
    ns, lines, slot_name = {}, [], {}
    targets = {t for t in prog._targets if type(t) is int}
    elided = _elide_broadcasts(prog._steps, targets)
    for s, (kind, payload) in enumerate(prog._slots):
        if kind == "in":
            slot_name[s] = f"a{payload}"
    params = [f"a{k}" for k in range(len(prog._in_specs))]
    for group, prefix in ((prog._captured, "c"), (prog._grads, "g"), (prog._consts, "k")):
        for i, (s, _) in enumerate(group):
            slot_name[s] = f"{prefix}{i}"
            params.append(f"{prefix}{i}")
    for n, st in enumerate(prog._steps):
        if st.out in elided:
            slot_name[st.out] = slot_name[elided[st.out]]
            continue
        fn = f"f{n}"
        ns[fn] = st.op.forward
        args = []
        for j, a in enumerate(st.ins):
            if type(a) is int:
                args.append(slot_name[a])
            else:
                lit = f"l{n}_{j}"
                ns[lit] = a.value
                args.append(lit)
        for key, value in st.kwargs.items():
            opt = f"o{n}_{key}"
            ns[opt] = value
            args.append(f"{key}={opt}")
        slot_name[st.out] = f"v{n}"
        lines.append(f"    v{n} = {fn}({', '.join(args)})")
    rets = ", ".join(slot_name[t] if type(t) is int else f"r{i}" for i, t in enumerate(prog._targets))
    for i, t in enumerate(prog._targets):
        if type(t) is not int:
            ns[f"r{i}"] = t.value
    text = f"def replay({', '.join(params)}):\n" + "\n".join(lines) + f"\n    return ({rets}{',' if rets else ''})\n"
    exec(compile(text, f"<tinymeta replay of {prog.fn_name}>", "exec"), ns)
    return ns["replay"], text


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


# ----------------------------------------------------------------------------- trace and jit


def trace(fn, *args, **kwargs) -> Program:
    """Run ``fn(*args, **kwargs)`` once, eagerly, recording every primitive it executes
    (backward passes included), and return the ``Program``.

    Inputs are ``fn``'s arguments: arrays or Tensors, in dicts, lists, tuples or dataclasses.
    Tensors ``fn`` reads without receiving them (a model's parameters) are read again at every
    replay. Outputs are ``fn``'s return value and the ``.grad`` of every tensor ``fn``'s
    backward passes write. The eager result is in ``prog.result``."""
    prog, _ = _trace(fn, args, kwargs)
    return prog


def _trace(fn, args, kwargs):
    if _mode.tape is not None:
        raise TraceError("tm.trace inside a function being traced: trace the outer function only")
    leaves, names = [], []
    in_tree = _flatten((args, kwargs), "", leaves, names)
    sig_names = _argument_names(fn, args, kwargs)
    names = [sig_names.get(n, n) for n in names]
    rec = _Recorder()
    for k, x in enumerate(leaves):
        rec.add_input(k, x)
    _mode.tape = rec
    try:
        result = fn(*args, **kwargs)
    finally:
        _mode.tape = None
    out_leaves = []
    out_tree = _flatten(result, "out", out_leaves, [])
    out_slots = [rec.ref(o) for o in out_leaves]
    kinds = ["tensor" if type(o) is Tensor else "array" for o in out_leaves]
    events = [(e[0], e[1], rec.ref(e[2])) if e[0] == "grad" else e for e in rec.events]
    specs = [((x.data if type(x) is Tensor else x).shape, (x.data if type(x) is Tensor else x).dtype) for x in leaves]
    prog = Program(fn, rec, in_tree, specs, names, out_tree, out_slots, kinds, events)
    prog._pre_step = rec.pre_step
    # The replay assigns these .grad afresh: right only when they are None, as when traced.
    prog._fresh = [leaf for leaf, how in rec.first_touch.values() if how == "fresh"]
    prog.result = result
    return prog, result


def _argument_names(fn, args, kwargs):
    """Map the flattened paths of positional arguments ("_0_0...") to parameter names."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}
    out = {}
    for i in range(len(args)):
        if i < len(params) and params[i].kind is not params[i].VAR_POSITIONAL:
            out[f"_0_{i}"] = params[i].name
        else:
            star = next((p for p in params if p.kind is p.VAR_POSITIONAL), None)
            if star is not None:
                out[f"_0_{i}"] = f"{star.name}{i - params.index(star)}"
    for k in kwargs:
        out[f"_1_{k}"] = k
    return _Prefix(out)


class _Prefix(dict):
    """Looks a flattened path up by its longest known prefix ("_0_1_x_support" -> "batch_x_support")."""

    def get(self, key, default=None):
        for prefix, name in self.items():
            if key == prefix or key.startswith(prefix + "_"):
                return name + key[len(prefix):]
        return default


def _key(args, kwargs):
    """(the cache key: structure, Python values, shapes and dtypes; the leaves)."""
    leaves = []
    tree = _flatten((args, kwargs), "", leaves, None)
    specs = []
    for x in leaves:
        a = x.data if type(x) is Tensor else x
        specs.append((a.shape, a.dtype))
    return (tree, tuple(specs)), leaves


def _close(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    tol = 1e-5 if a.dtype == np.float32 else 1e-10
    return np.allclose(a, b, rtol=tol, atol=tol, equal_nan=True)


def jit(fn=None, *, check: bool = True, fallback: bool = False):
    """``@tm.jit``: trace ``fn`` on its first call for each key (argument structure, shapes,
    dtypes and Python values), then replay.

    With ``check`` (the default) the first replay is compared with the eager result, and the
    first call with new values runs ``fn`` eagerly once more and compares it with the replay: a
    difference means the trace froze something, and raises ``TraceError``, or with
    ``fallback=True`` warns once and runs ``fn`` eagerly for that key from then on."""
    if fn is None:
        return lambda f: jit(f, check=check, fallback=fallback)
    cache = {}

    def run(*args, **kwargs):
        key, leaves = _key(args, kwargs)
        progs = cache.setdefault(key, [])
        if progs and progs[0] is _EAGER:
            return fn(*args, **kwargs)
        # One program per state of the gradients it meets (None, or set and added to).
        prog = next((p for p in progs if p.guards_hold()), None)
        if prog is None:
            prog, result = _trace(fn, args, kwargs)
            if check:
                _check_replay(prog, args, kwargs, result)
            prog.verified = not check
            progs.append(prog)
            return result
        if not prog.verified:
            # Once, on the first new inputs: the replay must match an eager run. This is what
            # catches a value the tape froze (an input copied with NumPy inside fn).
            prog.verified = True
            try:
                return _verify_on_new_inputs(prog, fn, args, kwargs)
            except _Mismatch as exc:
                if not fallback:
                    raise TraceError(str(exc)) from None
                warnings.warn(f"tm.jit: {exc}; running {prog.fn_name} eagerly instead", RuntimeWarning,
                              stacklevel=2)
                cache[key] = [_EAGER]
                return exc.eager
        return prog._run(prog._leaf_arrays(leaves, check=False))

    run.__name__ = getattr(fn, "__name__", "jitted")
    run.__doc__ = getattr(fn, "__doc__", None)
    run.__wrapped__ = fn
    run.cache = cache
    return run


class _Snapshot:
    """What a traced function's effects change (gradients, and the parameters and state of the
    optimizers it steps), saved so one eager run can be undone."""

    def __init__(self, prog):
        self.leaves = {id(leaf): leaf for leaf in prog._grad_leaves + [leaf for _, leaf in prog._grads]}
        opts = [e[1] for e in prog._events if e[0] == "step"]
        for e in prog._events:
            if e[0] == "zero":
                self.leaves.update((id(leaf), leaf) for leaf in e[1])
        self.grads = {k: leaf.grad for k, leaf in self.leaves.items()}
        self.opts = [(o, o.state_dict(), [(p, p.data.copy()) for g in o.param_groups for p in g["params"]])
                     for o in opts]

    def restore(self):
        for k, leaf in self.leaves.items():
            leaf.grad = self.grads[k]
        for opt, state, params in self.opts:
            opt.load_state_dict(state)
            for p, data in params:
                p.data[...] = data


_EAGER = object()  # a jit cache entry meaning "this key runs eagerly"


class _Mismatch(Exception):
    """The replay differed from the eager run; ``eager`` is the eager result (and state)."""

    def __init__(self, message, eager):
        super().__init__(message)
        self.eager = eager


def _verify_on_new_inputs(prog, fn, args, kwargs):
    snap = _Snapshot(prog)
    eager = fn(*args, **kwargs)
    eager_grads = {k: (leaf.grad.data if leaf.grad is not None else None) for k, leaf in snap.leaves.items()}
    eager_params = [[p.data.copy() for p, _ in params] for _, _, params in snap.opts]
    snap.restore()
    result = prog(*args, **kwargs)
    got, want = [], []
    _flatten(result, "out", got, [])
    _flatten(eager, "out", want, [])
    pairs = [(g.data if type(g) is Tensor else g, w.data if type(w) is Tensor else w) for g, w in zip(got, want)]
    pairs += [(leaf.grad.data if leaf.grad is not None else None, eager_grads[k]) for k, leaf in snap.leaves.items()]
    pairs += [(p.data, e) for (_, _, params), es in zip(snap.opts, eager_params) for (p, _), e in zip(params, es)]
    for g, w in pairs:
        if (g is None) != (w is None) or (g is not None and not _close(g, w)):
            # Put back the eager run's state: the replay's is the wrong one.
            snap.restore()
            eager = fn(*args, **kwargs)
            raise _Mismatch(
                f"{prog.fn_name}: on new inputs the replay differs from running the function: something "
                "it computes was frozen when traced (an input copied or converted with NumPy inside the "
                "function, a .data computation, random numbers drawn inside it). Pass inputs in the "
                "dtype the function uses and compute with tinymeta ops; if the randomness is meant, "
                "use tm.jit(fn, check=False)", eager)
    return result


def _check_replay(prog, args, kwargs, result):
    # The traced run already stepped its optimizers: replay on the parameters it saw.
    post = [(p, p.data.copy()) for p, _ in prog._pre_step]
    try:
        for p, before in prog._pre_step:
            p.data[...] = before
        outs, grads = prog.dry_run(*args, **kwargs)
    finally:
        for p, after in post:
            p.data[...] = after
        prog._pre_step = []
    leaves = []
    _flatten(result, "out", leaves, [])
    for i, (o, r) in enumerate(zip(outs, leaves)):
        if not _close(o, r.data if type(r) is Tensor else r):
            raise TraceError(f"{prog.fn_name}: the replay's output {i} differs from the eager result; the "
                             "function depends on something the tape cannot follow (a copy of an input, "
                             "Python state that changed); see tm.trace's documentation")
    for leaf, g in prog._final_grads(grads).values():
        now = leaf.grad
        if (g is None) != (now is None) or (g is not None and not _close(g, now.data)):
            raise TraceError(f"{prog.fn_name}: the replayed gradient of {leaf.name or leaf.shape} differs from "
                             "the eager one")

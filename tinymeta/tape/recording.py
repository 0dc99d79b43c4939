"""Recording: what ``tm.trace`` learns while the traced function runs (the engine and the op
machinery report to the recorder in ``_mode.tape``), and the flattening of arguments."""
import dataclasses
import re

import numpy as np

from ..engine import Tensor
from ..errors import ArgumentError, TraceError
from ..ops.core import astype

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
        self.shapes = shapes  # (input shapes, output shape, output dtype) when traced: for the replay's rewrites


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
        shapes = ([np.shape(a.data if type(a) is Tensor else a) for a in args], res.data.shape, res.data.dtype)
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

    def converted(self, src, t):
        """``Tensor(src, dtype=...)`` copied a traced array (an input, or computed): record the
        conversion as the ``astype`` op, so a replay converts the new array too."""
        slot = self.by_array.get(id(src))
        if slot is not None and self.slots[slot][0] in ("in", "step"):
            self.record(astype.op, (src,), {"dtype": t.data.dtype}, t)

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

"""Fusing chains of elementwise ops into one compiled loop.

A replay calls each primitive's NumPy forward, and each call of an elementwise op walks its
whole array once and writes a new one: ``g * (1 - y * y)`` is three passes and three
arrays. A fused kernel computes the chain element by element in one pass, writing only the
values the rest of the program reads. Each op says how it computes one element (its
``scalar`` form, next to its forward in the op table); this module groups the steps and
writes the loop, and ``tinymeta.kernels.fuse`` compiles it with numba (cached on disk).

Where a kernel earns it (``python benchmarks/run.py --only fusion``): calling a compiled loop
from the replay costs about 0.6 us, less than the NumPy ufunc calls it replaces, and it
walks memory once instead of once per op: a chain of two ops ran 1.6-1.8x faster fused at
every size measured (10 to 1,000,000 float32), five ops 3.2-4.2x. So every chain of two or
more fusible ops is fused; a single op stays a ufunc call (nothing to save). exp, log, sin,
cos and tanh have no scalar form: NumPy's vectorised versions beat the scalar calls a loop
makes by 5-10x, so they stay NumPy's and the chains around them are fused.

A group is a set of steps of one output shape, each reading only the group's values,
arrays that broadcast to that shape, and numbers. It runs where its last step ran, so a
value another step reads earlier cannot be inside a group. Every intermediate is converted
to the dtype NumPy gave it (a bool stays a bool: True + True is True), and numbers are typed
as NumPy 2 types them (a Python number takes the array's dtype, a NumPy scalar keeps its
own), so a fused replay equals the unfused one bit for bit, signed zeros included (the
ops' scalar forms say how they pick on ties); only the payload of a NaN may differ.
Unsigned integers stay unfused: numba compares them with signed ones through float64,
where NumPy is exact.
"""
import collections
import math
import re
from typing import Callable

import numpy as np

from .. import kernels
from ..kernels import fuse as _fuse

failures = collections.deque(maxlen=100)  # why programs kept chains unfused, newest last

MIN_OPS = 2  # the shortest chain fused (a single op has nothing to save)

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_BOOL = np.dtype(bool)
# A number written in a scalar template ("1 - {1} * {1}"), not inside a name or a {0}.
_NUMBER = re.compile(r"(?<![\w.{])(\d+\.?\d*(?:[eE][-+]?\d+)?)(?![\w.}])")


class Group:
    """Steps fused into one kernel: ``members`` (indices into the program's steps), the
    external inputs (slots or literals) it reads, and the slots it writes."""

    __slots__ = ("members", "shape", "ins", "outs", "kernel", "body", "label")

    def __init__(self, first, shape):
        self.members, self.shape = [first], shape
        self.ins, self.outs, self.kernel, self.body, self.label = [], [], None, None, "fused"

    @property
    def end(self):
        return self.members[-1]


def _fusible(st, root, spec):
    op = st.op
    if op.scalar is None or st.kwargs or len(st.shapes) < 3:
        return False
    shape, dtype = st.shapes[1], st.shapes[2]
    if not shape or 0 in shape or (dtype not in _FLOATS and dtype != _BOOL):
        return False
    for a in st.ins:
        if type(a) is int:
            s = spec.get(root(a))
            if s is None or len(s[0]) > len(shape) or not _loop_dtype(s[1]):
                return False
        elif not isinstance(a.value, (bool, int, float, np.bool_, np.signedinteger, np.float32, np.float64)):
            return False
    return True


def _loop_dtype(dtype):
    """Whether a fused loop reads this dtype as NumPy would: float32/64, bool, signed ints
    (not float16, which numba lacks, nor unsigned ints, see above)."""
    return dtype in _FLOATS or dtype == _BOOL or dtype.kind == "i"


def plan(steps: list, targets: set, root: Callable[[int], int], spec: dict) -> "list[Group]":
    """The groups worth a kernel, in program order. ``root(slot)`` resolves dropped
    broadcasts; ``spec[slot]`` is (shape, dtype) of every value."""
    producer = {st.out: n for n, st in enumerate(steps)}
    users = {}
    for n, st in enumerate(steps):
        for a in st.ins:
            if type(a) is int:
                users.setdefault(root(a), []).append(n)
    group_of, groups = {}, []
    for n, st in enumerate(steps):
        if not _fusible(st, root, spec):
            continue
        joined = None
        for a in st.ins:
            if type(a) is not int:
                continue
            g = group_of.get(producer.get(root(a)))
            if g is None or g is joined or g.shape != st.shapes[1]:
                continue
            # The group would now run at step n: no other step may read its values before.
            if all(u >= n or group_of.get(u) is g
                   for m in g.members for u in users.get(steps[m].out, ())):
                joined = g
                break
        if joined is None:
            joined = Group(n, st.shapes[1])
            groups.append(joined)
        else:
            joined.members.append(n)
        group_of[n] = joined
    out = []
    for g in groups:
        if len(g.members) >= MIN_OPS:
            _wire(g, steps, targets, root, users, group_of)
            out.append(g)
    return out


def _wire(g, steps, targets, root, users, group_of):
    inside = {steps[m].out for m in g.members}
    for m in g.members:
        for a in steps[m].ins:
            if type(a) is int and root(a) not in inside and root(a) not in g.ins:
                g.ins.append(root(a))
    for m in g.members:
        s = steps[m].out
        if s in targets or any(group_of.get(u) is not g for u in users.get(s, ())):
            g.outs.append(s)


def _float_type(dtype):
    """The loop's name for a float dtype (None for any other)."""
    return "np.float32" if dtype == _FLOATS[0] else "np.float64" if dtype == _FLOATS[1] else None


def _cast(dtype):
    """How the loop converts a value to ``dtype`` (None: no conversion)."""
    return "bool" if dtype == _BOOL else _float_type(dtype)


def _number(value, weak_as):
    """A literal as loop source. NumPy 2 gives a Python number the dtype of the array it meets
    (``weak_as``, None for none); a NumPy scalar keeps its own dtype."""
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    typ = f"np.{value.dtype.name}" if isinstance(value, np.generic) else weak_as
    v = value.item() if isinstance(value, np.generic) else value
    text = repr(v) if not isinstance(v, float) or math.isfinite(v) else \
        ("np.nan" if v != v else "np.inf" if v > 0 else "-np.inf")
    return f"{typ}({text})" if typ else text


def _index(shape, out_shape):
    """How an input of ``shape`` is read at the loop's indices j0, j1, ... (broadcast axes at 0)."""
    lead = len(out_shape) - len(shape)
    parts = [f"j{lead + i}" if s == out_shape[lead + i] else "0" for i, s in enumerate(shape)]
    return "[" + ", ".join(parts) + "]"


def kernel_source(g: Group, steps: list, root: Callable[[int], int], spec: dict, name: str) -> str:
    """The loop of group ``g`` as Python source for numba: ``name(inputs..., outputs...)``."""
    ins = [f"i{k}" for k in range(len(g.ins))]
    outs = [f"o{k}" for k in range(len(g.outs))]
    local = {s: f"x{k}" for k, s in enumerate(g.ins)}
    lines = [f"def {name}({', '.join(ins + outs)}):"]
    depth = "    "
    for k, s in enumerate(g.ins):  # 0-d values are read once, before the loops
        if not spec[s][0]:
            lines.append(f"{depth}x{k} = value(i{k})")
    for d in range(len(g.shape)):
        lines.append(f"{depth}for j{d} in range(o0.shape[{d}]):")
        depth += "    "
    for k, s in enumerate(g.ins):
        if spec[s][0]:
            lines.append(f"{depth}x{k} = i{k}{_index(spec[s][0], g.shape)}")
    for m in g.members:
        st = steps[m]
        cast = _cast(st.shapes[2])
        # The float type a Python number here takes: the result's (x * 0.5 in float32), or
        # for a comparison the first float operand's (x > 0.5 compares in x's float32).
        num = _float_type(st.shapes[2]) or next(
            (_float_type(spec[root(a)][1]) for a in st.ins if type(a) is int and _float_type(spec[root(a)][1])), None)
        args = [local[root(a)] if type(a) is int else _number(a.value, num) for a in st.ins]
        template = st.op.scalar
        if num is not None:  # numbers written in the template itself ("1 - {1} * {1}") too
            template = _NUMBER.sub(lambda mt: f"{num}({mt.group(1)})", template)
        expr = template.format(*args)
        var = f"t{m}"
        local[st.out] = var
        lines.append(f"{depth}{var} = {cast}({expr})" if cast else f"{depth}{var} = {expr}")
    index = "[" + ", ".join(f"j{d}" for d in range(len(g.shape))) + "]"
    for k, s in enumerate(g.outs):
        lines.append(f"{depth}o{k}{index} = {local[s]}")
    return "\n".join(lines) + "\n"


def fuse(steps: list, targets: set, root: Callable[[int], int], spec: dict) -> "list[Group]":
    """The groups of ``plan`` whose kernels compiled (each with ``kernel`` and ``body`` set);
    none when the compiled kernels are off."""
    if not kernels.enabled():
        return []
    done = []
    for g in plan(steps, targets, root, spec):
        body = kernel_source(g, steps, root, spec, "kernel")
        fn = _fuse.compile_kernel(body, "kernel")
        if fn is not None:
            g.kernel, g.body = fn, body
            done.append(g)
    return done

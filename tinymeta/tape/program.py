"""The program: the recorded steps, replayed as one generated Python function over the ops'
forwards (dead code removed, needless broadcasts dropped), and printed as NumPy."""
from typing import Any, Callable

import numpy as np

from .. import kernels
from ..engine import Tensor, _wrap
from ..errors import DTypeError, ShapeError, TraceError
from . import fusion
from .recording import _Recorder, _flatten, _rebuild
from .source import _source

# ----------------------------------------------------------------------------- the program


class Program:
    """A traced computation: ``prog(*args)`` replays it, ``prog.source`` prints it as NumPy.

    Built by ``tm.trace``; see the module docstring for what is followed and what is frozen."""

    def __init__(self, fn: Callable, rec: "_Recorder", in_tree: tuple, in_specs: list, in_names: list,
                 out_tree: tuple, out_slots: list, out_kinds: list, events: list):
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
        self._spec = _specs(self, rec)
        self._replay, self._py = _compile(self)
        self._unfused = self._replay
        self.fused = []  # the fusion.Group of each fused kernel, once fuse() has run
        self.replays = 0  # counted by tm.jit, which fuses a program once it is hot
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

    @property
    def replay_source(self) -> str:
        """The replay as it runs: one line per primitive or fused kernel, each kernel's loop
        after it (what ``fuse`` wrote)."""
        loops = "".join(f"\n\n# {g.label}: {', '.join(self._steps[m].op.name for m in g.members)}\n{g.body}"
                        for g in self.fused)
        return self._py + loops

    @property
    def fused_ops(self) -> list:
        """The op names each fused kernel computes, one list per kernel, in replay order."""
        return [[self._steps[m].op.name for m in g.members] for g in self.fused]

    def fuse(self, *args: Any, **kwargs: Any) -> int:
        """Fuse the program's chains of elementwise ops into compiled loops (where a kernel
        earns it: see ``tinymeta.tape.fusion``) and replay with them from now on.

        The fused replay is run once on these arguments and compared with the unfused one; a
        difference, or a kernel numba cannot compile, keeps the program as it was. Returns
        the number of kernels now in use (0 with the compiled kernels off)."""
        return self._fuse_on(self._arrays(args, kwargs))

    def _fuse_on(self, arrays):
        if self.fused:
            return len(self.fused)
        targets, _, root = _roots(self)
        groups = fusion.fuse(self._steps, targets, root, self._spec)
        if not groups:
            return 0
        replay, text = _compile(self, groups)
        try:
            got, want = replay(*arrays), self._unfused(*arrays)
        except Exception as exc:  # a kernel numba could not type or compile
            fusion.failures.append(f"{self.fn_name}: {type(exc).__name__}: {exc}")
            return 0
        if not all(_same_bits(a, b) for a, b in zip(got, want)):
            fusion.failures.append(f"{self.fn_name}: the fused replay differed from the unfused one")
            return 0
        self._replay, self._py, self.fused = replay, text, groups
        return len(groups)

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

    def _replayer(self):
        """The replay to run: the fused one, unless the compiled kernels were turned off since."""
        return self._replay if not self.fused or kernels.enabled() else self._unfused

    def _run(self, arrays):
        outs = self._replayer()(*arrays)
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
        outs = self._replayer()(*arrays)
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


def _same_bits(a, b):
    """Equal to the last bit, signed zeros included (a NaN's payload aside): what a fused
    replay promises against the unfused one."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    zeros = a == 0
    return bool(np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a[zeros]), np.signbit(b[zeros])))


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


_UFUNCS = frozenset(v for v in vars(np).values() if isinstance(v, np.ufunc))


class _Item:
    """One line of the replay: a step, or a fused group of steps (``fusion.Group``).
    ``outs``: (slot, buffer key or None when the line cannot write into a given buffer);
    ``fresh``: its results are new arrays (else they may be views of its inputs)."""

    __slots__ = ("step", "group", "ins", "outs", "fresh")

    def __init__(self, step, group, ins, outs, fresh):
        self.step, self.group, self.ins, self.outs, self.fresh = step, group, ins, outs, fresh


def _items(steps, elided, groups, spec):
    """The replay's lines in order: steps, with each fused group in place of its last step."""
    in_group = {m: g for g in groups for m in g.members}
    items = []
    for n, st in enumerate(steps):
        if st.out in elided:
            continue
        g = in_group.get(n)
        if g is not None:
            if n == g.end:
                items.append(_Item(None, g, list(g.ins), [(s, spec[s]) for s in g.outs], True))
            continue
        ufunc = st.op.forward in _UFUNCS and not st.kwargs
        # (0-d results are left alone: a ufunc returns a NumPy scalar there, no buffer.)
        key = (st.shapes[1], st.shapes[2]) if ufunc and len(st.shapes) > 2 and st.shapes[1] else None
        items.append(_Item(st, None, [a for a in st.ins if type(a) is int], [(st.out, key)], ufunc))
    return items


def _buffer_plan(items, targets, root):
    """{(item index, output position): slot whose dead buffer that output is written into}.

    Liveness over one replay: a ufunc's result (or a fused kernel's) is a fresh array, which
    can be written again once nothing reads it any more. Anything else may return a view of
    its inputs, so its output and inputs count as one memory until all of them are dead.
    Values the program returns are never reused (nor is anything that aliases them)."""
    parent = {}

    def find(s):
        while parent.get(s, s) != s:
            s = parent[s]
        return s

    def union(a, b):
        parent[find(a)] = find(b)

    last = {}
    for n, it in enumerate(items):
        for a in it.ins:
            last[root(a)] = n
            if not it.fresh:
                for s, _ in it.outs:
                    union(s, root(a))
    forever = len(items) + 1
    for t in targets:
        last[root(t)] = forever
    group_last = {}
    for s, n in last.items():
        g = find(s)
        group_last[g] = max(group_last.get(g, -1), n)
    plan, pool, owned = {}, {}, []
    for n, it in enumerate(items):
        still = []
        for s, key in owned:  # buffers whose memory nothing reads any more
            if group_last.get(find(s), -1) < n:
                pool.setdefault(key, []).append(s)
            else:
                still.append((s, key))
        owned = still
        for k, (s, key) in enumerate(it.outs):
            if key is None:
                continue
            if pool.get(key):
                plan[(n, k)] = pool[key].pop()
            owned.append((s, key))
    return plan


def _specs(prog, rec):
    """{slot: (shape, dtype)} of every value the program reads or computes."""
    spec = {}
    for s, (kind, payload) in enumerate(rec.slots):
        if kind == "in":
            spec[s] = prog._in_specs[payload]
        elif kind in ("cap", "grad"):
            a = payload.data if kind == "cap" else rec.grad_before.get(s)
            if a is not None:
                spec[s] = (a.shape, a.dtype)
        elif kind == "const":
            spec[s] = (payload.shape, payload.dtype)
    for st in prog._steps:
        if len(st.shapes) > 2:
            spec[st.out] = (st.shapes[1], st.shapes[2])
    return spec


def _roots(prog):
    """(the slots the program returns, {dropped broadcast: its input}, root): ``root(slot)``
    is the value a replay really reads for ``slot`` (through dropped broadcasts)."""
    targets = {t for t in prog._targets if type(t) is int}
    elided = _elide_broadcasts(prog._steps, targets)

    def root(s):
        while s in elided:
            s = elided[s]
        return s
    return targets, elided, root


def _compile(prog, groups=()):
    """The replay: one Python function, each line a primitive's forward on arrays (or one
    fused kernel for a group of them), results written into dead buffers of the same shape
    where a ufunc or kernel allows (``out=``)."""
    ns, lines, slot_name = {"_empty": np.empty}, [], {}
    targets, elided, root = _roots(prog)
    items = _items(prog._steps, elided, groups, prog._spec)
    plan = _buffer_plan(items, targets, root)
    for s, (kind, payload) in enumerate(prog._slots):
        if kind == "in":
            slot_name[s] = f"a{payload}"
    params = [f"a{k}" for k in range(len(prog._in_specs))]
    for group, prefix in ((prog._captured, "c"), (prog._grads, "g"), (prog._consts, "k")):
        for i, (s, _) in enumerate(group):
            slot_name[s] = f"{prefix}{i}"
            params.append(f"{prefix}{i}")
    for s in elided:
        slot_name[s] = None  # named once its root is
    for n, it in enumerate(items):
        if it.group is not None:
            g = it.group
            fn = f"fused{n}"
            ns[fn], g.label = g.kernel, fn  # the name replay_source prints the kernel under
            outs = []
            for k, (s, (shape, dtype)) in enumerate(it.outs):
                slot_name[s] = f"v{n}_{k}"
                if (n, k) in plan:
                    lines.append(f"    v{n}_{k} = {slot_name[plan[(n, k)]]}")
                else:
                    ns[f"d{n}_{k}"] = (shape, dtype)
                    lines.append(f"    v{n}_{k} = _empty(*d{n}_{k})")
                outs.append(f"v{n}_{k}")
            args = [slot_name[root(a)] for a in g.ins]
            lines.append(f"    {fn}({', '.join(args + outs)})  # fused: "
                         + ", ".join(prog._steps[m].op.name for m in g.members))
            continue
        st = it.step
        fn = f"f{n}"
        ns[fn] = st.op.forward
        args = []
        for j, a in enumerate(st.ins):
            if type(a) is int:
                args.append(slot_name[root(a)])
            else:
                lit = f"l{n}_{j}"
                ns[lit] = a.value
                args.append(lit)
        for key, value in st.kwargs.items():
            opt = f"o{n}_{key}"
            ns[opt] = value
            args.append(f"{key}={opt}")
        if (n, 0) in plan:
            args.append(f"out={slot_name[plan[(n, 0)]]}")
        slot_name[st.out] = f"v{n}"
        lines.append(f"    v{n} = {fn}({', '.join(args)})")
    rets = ", ".join(slot_name[root(t)] if type(t) is int else f"r{i}" for i, t in enumerate(prog._targets))
    for i, t in enumerate(prog._targets):
        if type(t) is not int:
            ns[f"r{i}"] = t.value
    text = f"def replay({', '.join(params)}):\n" + "\n".join(lines) + f"\n    return ({rets}{',' if rets else ''})\n"
    exec(compile(text, f"<tinymeta replay of {prog.fn_name}>", "exec"), ns)
    return ns["replay"], text

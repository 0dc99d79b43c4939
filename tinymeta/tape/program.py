"""The program: the recorded steps, replayed as one generated Python function over the ops'
forwards (dead code removed, needless broadcasts dropped), and printed as NumPy."""
from typing import Callable

import numpy as np

from ..engine import Tensor, _wrap
from ..errors import DTypeError, ShapeError, TraceError
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


def _buffer_plan(steps, targets, elided):
    """{step index: slot whose dead buffer that step's ufunc writes into (``out=``)}.

    Liveness over one replay: a ufunc's result is a fresh array, which can be written again
    once nothing reads it any more. Anything else may return a view of its inputs, so its
    output and inputs count as one memory until all of them are dead. Values the program
    returns are never reused (nor is anything that aliases them)."""
    def root(s):
        while s in elided:
            s = elided[s]
        return s

    parent = {}

    def find(s):
        while parent.get(s, s) != s:
            s = parent[s]
        return s

    def union(a, b):
        parent[find(a)] = find(b)

    last = {}
    for n, st in enumerate(steps):
        if st.out in elided:
            continue
        for a in st.ins:
            if type(a) is int:
                last[root(a)] = n
                if st.op.forward not in _UFUNCS or st.kwargs:
                    union(st.out, root(a))
    forever = len(steps) + 1
    for t in targets:
        last[root(t)] = forever
    group_last = {}
    for s, n in last.items():
        g = find(s)
        group_last[g] = max(group_last.get(g, -1), n)
    plan, pool, owned = {}, {}, []
    for n, st in enumerate(steps):
        if st.out in elided:
            continue
        still = []
        for s, key in owned:  # buffers whose memory nothing reads any more
            if group_last.get(find(s), -1) < n:
                pool.setdefault(key, []).append(s)
            else:
                still.append((s, key))
        owned = still
        # (0-d results are left alone: a ufunc returns a NumPy scalar there, no buffer.)
        if st.op.forward in _UFUNCS and not st.kwargs and len(st.shapes) > 2 and st.shapes[1]:
            key = (st.shapes[1], st.shapes[2])
            if pool.get(key):
                plan[n] = pool[key].pop()
            owned.append((st.out, key))
    return plan


def _compile(prog):
    """The replay: one Python function, each line a primitive's forward on arrays, results
    written into dead buffers of the same shape where a ufunc allows (``out=``)."""
    ns, lines, slot_name = {}, [], {}
    targets = {t for t in prog._targets if type(t) is int}
    elided = _elide_broadcasts(prog._steps, targets)
    plan = _buffer_plan(prog._steps, targets, elided)
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
        if n in plan:
            args.append(f"out={slot_name[plan[n]]}")
        slot_name[st.out] = f"v{n}"
        lines.append(f"    v{n} = {fn}({', '.join(args)})")
    rets = ", ".join(slot_name[t] if type(t) is int else f"r{i}" for i, t in enumerate(prog._targets))
    for i, t in enumerate(prog._targets):
        if type(t) is not int:
            ns[f"r{i}"] = t.value
    text = f"def replay({', '.join(params)}):\n" + "\n".join(lines) + f"\n    return ({rets}{',' if rets else ''})\n"
    exec(compile(text, f"<tinymeta replay of {prog.fn_name}>", "exec"), ns)
    return ns["replay"], text

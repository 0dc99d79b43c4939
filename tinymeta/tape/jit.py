"""``tm.trace`` and ``tm.jit``: run a function once while recording, build its program, and
(for jit) check the replay against eager before trusting it."""
import inspect
import warnings
from typing import Any, Callable

import numpy as np

from ..engine import Tensor, _mode
from ..errors import TraceError
from .program import Program
from .recording import _Recorder, _flatten

# ----------------------------------------------------------------------------- trace and jit


def trace(fn: Callable, *args: Any, **kwargs: Any) -> Program:
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


FUSE_AFTER = 20  # replays of a program before tm.jit fuses its elementwise chains


def jit(fn: "Callable | None" = None, *, check: bool = True, fallback: bool = False,
        fuse: bool = True) -> Callable:
    """``@tm.jit``: trace ``fn`` on its first call for each key (argument structure, shapes,
    dtypes and Python values), then replay.

    With ``check`` (the default) the first replay is compared with the eager result, and the
    first call with new values runs ``fn`` eagerly once more and compares it with the replay: a
    difference means the trace froze something, and raises ``TraceError``, or with
    ``fallback=True`` warns once and runs ``fn`` eagerly for that key from then on.

    With ``fuse`` (the default) a program replayed ``FUSE_AFTER`` times has its chains of
    elementwise ops compiled into fused kernels (``Program.fuse``): a program run only a few
    times never waits for numba, and one in a training loop pays the compilation once (numba
    caches the kernels on disk for the next process)."""
    if fn is None:
        return lambda f: jit(f, check=check, fallback=fallback, fuse=fuse)
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
        arrays = prog._leaf_arrays(leaves, check=False)
        prog.replays += 1
        if fuse and prog.replays == FUSE_AFTER:
            prog._fuse_on(arrays)
        return prog._run(arrays)

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

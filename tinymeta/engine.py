"""The autograd engine: ``Tensor``, the graph, and the one backward pass.

Reverse mode in three ideas:

1. Every op returns a ``Tensor`` and, when gradients are wanted, attaches a ``Node``
   that remembers the op and its inputs.
2. ``backward`` visits the graph from the output in reverse topological order and asks
   each node's op for the vector-Jacobian products of its inputs (``Op.backward``).
3. Those products are computed with the same differentiable ops. Run with
   ``create_graph=False`` they execute as plain NumPy under ``no_grad`` (fast, no graph);
   run with ``create_graph=True`` they record a graph of their own, which can be
   differentiated again: gradients of gradients, to any order, from one rule per op.

The op table (every forward beside its derivative) lives in ``tinymeta/ops/``; it is built
on this module, which knows no op by name.
"""
import numpy as np

from .errors import AnomalyError, DTypeError, GraphError, InplaceError, ShapeError, translate

# ----------------------------------------------------------------------------- modes


class _Mode:
    grad_enabled = True
    anomaly = False
    default_dtype = np.dtype(np.float32)
    seq = 0           # creation counter: a node's inputs always have smaller numbers
    last_inplace = -1  # seq value at the latest in-place write anywhere
    tape = None       # the recorder of tm.trace while one runs (see tape.py), else None


_mode = _Mode()


class no_grad:
    """Context manager (and decorator) in which ops record no graph."""

    _enable = False

    def __enter__(self):
        self._prev = _mode.grad_enabled
        _mode.grad_enabled = self._enable

    def __exit__(self, *exc):
        _mode.grad_enabled = self._prev

    def __call__(self, fn):
        def wrapped(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
        return wrapped


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside ``no_grad``."""

    _enable = True


def is_grad_enabled():
    return _mode.grad_enabled


class detect_anomaly:
    """Within this context, backward raises ``AnomalyError`` at the first op whose
    backward produces NaN or inf, naming the op and the input."""

    def __enter__(self):
        self._prev = _mode.anomaly
        _mode.anomaly = True

    def __exit__(self, *exc):
        _mode.anomaly = self._prev


def set_default_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise DTypeError(f"set_default_dtype: {dtype!r} is not a dtype; use 'float32' or 'float64'") from exc
    if dt.kind != "f":
        raise DTypeError(f"set_default_dtype: the default dtype must be a float dtype, got {dt}; "
                         "use 'float32' or 'float64'")
    _mode.default_dtype = dt


def get_default_dtype():
    return _mode.default_dtype


# ----------------------------------------------------------------------------- tensor


class Node:
    """How a tensor was made: the op, its inputs (tensors or constants), the op's keyword
    arguments, which inputs need a gradient, and when it was made.

    ``seq`` orders the graph: inputs are always older than the node that uses them, so
    sorting by ``seq`` is a topological sort, and an input written in place after ``seq``
    means the saved value is stale."""

    __slots__ = ("op", "inputs", "kwargs", "need", "seq")

    def __init__(self, op, inputs, kwargs, need):
        self.op = op
        self.inputs = inputs
        self.kwargs = kwargs
        self.need = need
        _mode.seq += 1
        self.seq = _mode.seq

    def __repr__(self):
        return f"<{self.op.name}Backward>"


def _check_float(data, where):
    if data.dtype.kind != "f":
        raise DTypeError(
            f"{where}: only floating-point tensors can require gradients, got dtype {data.dtype}; "
            f"convert first, e.g. tm.tensor(x, dtype='float32', requires_grad=True)")


class Tensor:
    """An n-dimensional array that can remember how it was computed.

    ``data`` is the ``np.ndarray``; ``grad`` is filled by ``backward()`` on leaves that
    require gradients (and accumulates across calls until ``zero_grad``)."""

    __slots__ = ("data", "requires_grad", "grad", "_node", "_vc", "name", "__weakref__")
    __array_priority__ = 1000  # make ndarray <op> Tensor call our reflected operators

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        if type(data) is Tensor:
            data = data.data
        arr = _to_array(data, dtype)
        self.data = arr
        self.grad = None
        self._node = None
        self._vc = [0, -1]  # [version, seq of last in-place write], shared with views
        self.name = name
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- properties users know from PyTorch
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._node is None)
    grad_fn = property(lambda self: self._node)
    _version = property(lambda self: self._vc[0])

    def __len__(self):
        if self.data.ndim == 0:
            raise DTypeError("len() of a 0-d tensor: it has no first axis; use .item()")
        return len(self.data)

    def __iter__(self):
        if self.data.ndim == 0:
            raise DTypeError("iteration over a 0-d tensor: it has no first axis; use .item()")
        return (self[i] for i in range(len(self.data)))

    def numel(self):
        return self.data.size

    def requires_grad_(self, flag=True):
        if flag:
            _check_float(self.data, "requires_grad")
        if self._node is not None and not flag:
            raise GraphError("requires_grad_(False) on a non-leaf tensor; use .detach() instead")
        self.requires_grad = bool(flag)
        return self

    def detach(self):
        """A tensor sharing this one's data but cut from the graph."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t._node, t._vc, t.name, t.requires_grad = self.data, None, None, self._vc, None, False
        return t

    def numpy(self):
        return self.data

    def item(self):
        if _mode.tape is not None:
            _mode.tape.refuse_python_value(self, "item()")
        if self.data.size != 1:
            raise GraphError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def __repr__(self):
        extra = f", grad_fn={self._node!r}" if self._node is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20, prefix="tensor(")
        return f"tensor({body}{extra}, dtype={self.dtype})"

    def __bool__(self):
        if _mode.tape is not None:
            _mode.tape.refuse_python_value(self, "bool()")
        if self.data.size != 1:
            raise ShapeError(f"the truth value of a tensor with {self.data.size} elements (shape "
                             f"{self.shape}) is ambiguous; use (t > 0).any() or .all() style "
                             "reductions, or .item() for one element")
        return bool(self.data)

    def __float__(self):
        if _mode.tape is not None:
            _mode.tape.refuse_python_value(self, "float()")
        return float(self.item())

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    __hash__ = object.__hash__  # comparisons are elementwise, identity hashing stays

    # -- the public entry points to the backward pass
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf requiring grad."""
        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    # -- in-place updates: allowed only where no gradient can be corrupted
    def _write(self, what, fn, value):
        """Run an in-place NumPy write; its errors become tinymeta's, naming the method."""
        if _mode.tape is not None:
            _mode.tape.refuse_inplace(what)
        self._inplace(what, value)
        try:
            fn(self.data, _data(value))
        except Exception as exc:
            raise translate(what, (self, value), exc) from exc
        return self

    def _inplace(self, what, value=None):
        if _mode.grad_enabled and type(value) is Tensor and value.requires_grad:
            raise InplaceError(
                f"{what}: writing a tensor that requires grad into another in place records no "
                "graph, so its gradient would be silently lost; build the result out of place "
                "(tm.where, tm.concatenate, tm.stack), or detach() the value if no gradient is meant")
        if _mode.grad_enabled and self.requires_grad:
            raise InplaceError(
                f"{what}: in-place change of a tensor that requires grad would corrupt its "
                "gradient; write it out of place (x = x + y), or wrap parameter updates in "
                "`with tm.no_grad():`")
        self._bump_version()

    def _bump_version(self):
        """Record an in-place write (optimizers call this after updating ``data``)."""
        vc = self._vc
        vc[0] += 1
        vc[1] = _mode.last_inplace = _mode.seq

    def zero_(self):
        return self._write("zero_", _assign, 0)

    def fill_(self, value):
        return self._write("fill_", _assign, value)

    def copy_(self, other):
        return self._write("copy_", _assign, other)

    def add_(self, other, alpha=1.0):
        if alpha == 1.0:
            return self._write("add_", np.ndarray.__iadd__, other)
        return self._write("add_", lambda d, v: d.__iadd__(alpha * np.asarray(v)), other)

    def sub_(self, other, alpha=1.0):
        if alpha == 1.0:
            return self._write("sub_", np.ndarray.__isub__, other)
        return self._write("sub_", lambda d, v: d.__isub__(alpha * np.asarray(v)), other)

    def mul_(self, other):
        return self._write("mul_", np.ndarray.__imul__, other)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self._write("div_", np.ndarray.__itruediv__, other)

    def __setitem__(self, idx, value):
        key = _data(idx) if type(idx) is Tensor else idx
        self._write("__setitem__", lambda d, v: d.__setitem__(key, v), value)


def _data(x):
    return x.data if type(x) is Tensor else x


def _assign(d, v):
    d[...] = v


_FORBIDDEN_KINDS = {"c": "complex", "O": "object", "U": "string", "S": "bytes", "V": "void",
                    "M": "datetime", "m": "timedelta"}


def _to_array(data, dtype=None):
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError as exc:
            raise DTypeError(f"tensor: {dtype!r} is not a dtype NumPy understands; use e.g. "
                             "'float32', 'float64' or 'int64'") from exc
    if isinstance(data, np.ndarray):
        arr = data if dtype is None or data.dtype == dtype else data.astype(dtype)
    else:
        try:
            arr = np.asarray(data)
        except ValueError as exc:  # NumPy >= 1.24 refuses ragged nesting outright
            raise ShapeError(f"tensor: cannot make a tensor from a ragged nested list (rows of "
                             f"different lengths): {exc}; pad the rows to one length") from exc
        if arr.dtype.kind == "O" and dtype is None:
            raise DTypeError(f"tensor: cannot make a numeric tensor from {type(data).__name__} "
                             "(ragged nested lists, or non-numbers); pass a rectangular list of numbers")
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype.kind == "f":  # Python floats take the default dtype, as in PyTorch
            arr = arr.astype(_mode.default_dtype)
    if arr.dtype.kind in _FORBIDDEN_KINDS:
        raise DTypeError(f"tensor: {_FORBIDDEN_KINDS[arr.dtype.kind]} dtype {arr.dtype} is not supported; "
                         "tinymeta tensors hold bool, integer or floating-point numbers")
    return arr


def _wrap(data, node=None, vc=None):
    """Fast constructor used by ops: no checks, data already an ndarray."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t._node = node
    t._vc = [0, -1] if vc is None else vc
    t.name = None
    t.requires_grad = node is not None
    return t


# ----------------------------------------------------------------------------- backward


def _toposort(roots):
    """Tensors reachable from ``roots`` through ``requires_grad`` edges, newest first.
    Creation order is a topological order, so no recursion and no post-order bookkeeping:
    collect, then sort (a chain of 100,000 ops is fine). Sets and dicts here hold tensors
    themselves: they hash by identity (``__hash__ = object.__hash__``)."""
    found, leaves, seen, stack = [], [], set(), list(roots)
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        node = t._node
        if node is None:
            leaves.append(t)
            continue
        found.append((node.seq, t))
        ins = node.inputs
        if ins is None:
            raise GraphError(
                f"backward through a graph that was already freed (at op '{node.op.name}'): "
                "the first backward() released it to save memory; pass retain_graph=True to "
                "that first call if you need to backward through the same graph again")
        for p in ins:
            if p is not None and type(p) is Tensor and p.requires_grad and p not in seen:
                stack.append(p)
    found.sort(key=_first)
    found.reverse()
    return [t for _, t in found] + leaves


def _first(pair):
    return pair[0]


def _check_versions(t, node):
    for i, p in enumerate(node.inputs):
        if type(p) is Tensor and p._vc[1] >= node.seq:
            raise InplaceError(
                f"input {i} (shape {p.shape}) of op '{node.op.name}' was modified in place after "
                f"the graph saved it (now at version {p._vc[0]}), so its gradient would be wrong. "
                "Recompute the forward pass after changing it, or change a copy (x.detach() + 0)")
    if t._vc[1] >= node.seq:
        raise InplaceError(
            f"the output of op '{node.op.name}' (shape {t.shape}) was modified in place after the "
            "graph saved it; recompute the forward pass after changing it")


def _run_backward(roots, root_grads, inputs, retain_graph, create_graph, hook=None):
    """The backward pass shared by ``Tensor.backward`` and ``tm.grad``, in four steps:
    order the graph, prune it to what leads to ``inputs``, then walk it newest first,
    each node's op turning its output gradient into its inputs' gradients.

    Returns a dict tensor -> gradient for the tensors in ``inputs`` (when given),
    otherwise accumulates into ``.grad`` of every leaf reached. ``hook(t, node, g, gins)``,
    when given, sees every step (``tm.viz.trace_backward`` prints them)."""
    order = _toposort(roots)
    masks = {}
    if inputs is not None:
        order, masks = _prune(order, set(inputs))
    grads = {}
    for r, g in zip(roots, root_grads):
        grads[r] = grads[r] + g if r in grads else g
    results, given = {}, set()
    want = set(inputs) if inputs is not None else None
    prev_mode = _mode.grad_enabled
    _mode.grad_enabled = create_graph  # the rules record a graph only when asked to
    # Non-finite gradients are detect_anomaly's to report, with the op named; NumPy's
    # anonymous "divide by zero" warnings from inside derivative rules would only confuse.
    errstate = np.errstate(divide="ignore", invalid="ignore", over="ignore")
    errstate.__enter__()
    try:
        for t in order:
            g = grads.pop(t, None)
            if g is None:
                continue
            if want is not None and t in want:
                results[t] = g
            if t._node is not None:
                _step(t, g, grads, masks, retain_graph, hook, order)
            elif want is None:
                _accumulate(t, g, create_graph, given)
    finally:
        _mode.grad_enabled = prev_mode
        errstate.__exit__(None, None, None)
    return results


def _prune(order, want):
    """Keep only tensors from which some tensor in ``want`` is reachable; a node with an input
    that requires grad but leads nowhere wanted gets a narrower need-mask (in ``masks``)."""
    needed = set(want)
    for t in reversed(order):  # oldest first: a node's inputs are decided before it
        node = t._node
        if node is None or t in needed:
            continue
        for p in node.inputs:
            if type(p) is Tensor and p in needed:
                needed.add(t)
                break
    order = [t for t in order if t in needed]
    masks = {}
    for t in order:
        node = t._node
        if node is not None:
            mask = tuple(n and type(p) is Tensor and p in needed for p, n in zip(node.inputs, node.need))
            if mask != node.need:
                masks[node] = mask
    return order, masks


def _step(t, g, grads, masks, retain_graph, hook, order):
    """One backward step: the gradients of ``t``'s node's inputs, added into ``grads``."""
    node = t._node
    if _mode.last_inplace >= node.seq:
        _check_versions(t, node)
    ins = node.inputs
    need = masks.get(node, node.need) if masks else node.need
    if True not in need:
        return  # an input of tm.grad that leads to no other input: its own graph stays intact
    tape = _mode.tape
    if tape is not None:  # tm.trace labels what the rule runs with the op it belongs to
        outer = tape.enter_rule(t, node.op.name)
    gins = node.op.backward(g, t, ins, need, node.kwargs)  # in each input's shape and dtype
    if tape is not None:
        tape.leave_rule(outer)
    if hook is not None:
        hook(t, node, g, gins)
    if _mode.anomaly and any(gi is not None and not np.isfinite(gi.data).all() for gi in gins):
        _raise_anomaly(order, node, t)
    for p, gi in zip(ins, gins):
        if gi is not None:
            prev = grads.get(p)
            grads[p] = gi if prev is None else prev + gi
    if not retain_graph:
        node.inputs = None  # free what the graph saved, as soon as it is used


def _accumulate(leaf, g, create_graph, given):
    """Add ``g`` into ``leaf.grad``."""
    tape = _mode.tape
    if leaf.grad is not None:
        if tape is not None:
            tape.reading_grad(leaf)
        leaf.grad = leaf.grad + g
    elif create_graph:
        leaf.grad = g
    else:
        # .grad is the leaf's own writable buffer, as in PyTorch: never a read-only
        # broadcast view, never shared with another leaf (``given`` remembers).
        gd = g.data
        if g in given or not (gd.flags.owndata and gd.flags.writeable):
            copy = _wrap(np.array(gd))
            if tape is not None:
                tape.same_value(copy, g)
            g = copy
        given.add(g)
        leaf.grad = g
    if tape is not None:
        tape.wrote_grad(leaf)


def _raise_anomaly(order, node, t):
    """Name the op to blame: the oldest op in the graph whose forward turned finite inputs
    into NaN/inf, if any (NaN flows downstream, so the newest op only carries it); else the
    op whose backward produced the non-finite gradient."""
    culprit = None
    for u in reversed(order):  # oldest first
        n = u._node
        if n is None or n.inputs is None or np.isfinite(u.data).all():
            continue
        if all(np.isfinite(_data(p)).all() for p in n.inputs
               if type(p) is Tensor or isinstance(p, np.ndarray)):
            culprit = u
            break
    if culprit is not None:
        d = culprit.data
        raise AnomalyError(
            f"detect_anomaly: op '{culprit._node.op.name}' (output shape {culprit.shape}) turned "
            f"finite inputs into {int(np.isnan(d).sum())} NaN and {int(np.isinf(d).sum())} inf "
            f"values; every gradient that flows through it is non-finite. Check that op's inputs "
            f"(log/sqrt of negatives, division by zero, overflow)")
    raise AnomalyError(
        f"detect_anomaly: the backward of op '{node.op.name}' (output shape {t.shape}) produced "
        "NaN/inf gradients from finite values; its derivative is infinite there (e.g. sqrt or "
        "log at 0)")


def _seed_grads(outputs, grad_outputs, where):
    seeds = []
    for i, y in enumerate(outputs):
        g = None if grad_outputs is None else grad_outputs[i]
        if g is None:
            if y.data.size != 1:
                raise GraphError(
                    f"{where}: output {i} has shape {y.shape}, not a scalar, so its gradient is "
                    "ambiguous; reduce it first (y.sum() or y.mean()), or pass the gradient of "
                    "the final result w.r.t. it (y.backward(gradient=...) / grad_outputs=...)")
            g = _wrap(np.ones_like(y.data))
        else:
            if type(g) is not Tensor:
                try:
                    g = _wrap(np.asarray(g, dtype=y.dtype))
                except (TypeError, ValueError) as exc:
                    raise DTypeError(f"{where}: the gradient for output {i} must be a Tensor or an "
                                     f"array of numbers, got {type(g).__name__}") from exc
            if g.shape != y.shape:
                raise ShapeError(f"{where}: the gradient for output {i} has shape {g.shape} but the "
                                 f"output has shape {y.shape}; they must match")
        seeds.append(g)
    return seeds


def _tensor_list(xs, where, what):
    xs = [xs] if type(xs) is Tensor else xs
    if not isinstance(xs, (list, tuple)) or not all(type(x) is Tensor for x in xs):
        raise DTypeError(f"{where}: {what} must be a Tensor or a list/tuple of Tensors, got "
                         f"{type(xs).__name__}")
    return list(xs)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on."""
    tensors = _tensor_list(tensors, "backward", "the outputs")
    if grad_tensors is not None and (type(grad_tensors) is Tensor or
                                     not isinstance(grad_tensors, (list, tuple))):
        grad_tensors = [grad_tensors]
    for y in tensors:
        if not y.requires_grad:
            raise GraphError(
                "backward(): this tensor does not require grad and has no graph; did you forget "
                "requires_grad=True on the inputs, or compute it inside tm.no_grad()?")
    seeds = _seed_grads(tensors, grad_tensors, "backward")
    retain = create_graph if retain_graph is None else retain_graph
    _run_backward(tensors, seeds, None, retain, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned (not accumulated), as in
    ``torch.autograd.grad``. With ``create_graph=True`` the results can be differentiated again."""
    inputs = _tensor_list(inputs, "grad", "inputs")
    outputs = _tensor_list(outputs, "grad", "outputs")
    if grad_outputs is not None and type(grad_outputs) is not list and type(grad_outputs) is not tuple:
        grad_outputs = [grad_outputs]
    for i, x in enumerate(inputs):
        if type(x) is not Tensor or not x.requires_grad:
            raise GraphError(f"grad: input {i} does not require grad; create it with "
                             "requires_grad=True (or call .requires_grad_())")
    live = [y.requires_grad for y in outputs]
    seeds = _seed_grads(outputs, grad_outputs, "grad")
    roots = [y for y, ok in zip(outputs, live) if ok]
    seeds = [s for s, ok in zip(seeds, live) if ok]
    retain = create_graph if retain_graph is None else retain_graph
    found = _run_backward(roots, seeds, inputs, retain, create_graph) if roots else {}
    result = []
    for i, x in enumerate(inputs):
        g = found.get(x)
        if g is None and not allow_unused:
            raise GraphError(
                f"grad: input {i} (shape {x.shape}) was not used to compute the outputs, so it has "
                "no gradient; pass allow_unused=True to get None for it")
        result.append(g)
    return tuple(result)

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
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from .errors import AnomalyError, DTypeError, GraphError, InplaceError, ShapeError
from .tensor import (Node, Tensor, _check_float, _data, _mode, _to_array, _wrap, detect_anomaly,  # noqa: F401
                     enable_grad, get_default_dtype, is_grad_enabled, no_grad, set_default_dtype)

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
    """The backward pass shared by ``Tensor.backward`` and ``tm.grad``, in three steps:
    order the graph (``_toposort``), prune it to what leads to ``inputs`` (``_prune``), then
    walk it newest first: each node's op turns its output's gradient into its inputs'
    gradients, which add up in ``grads``; a leaf's ends in its ``.grad`` (``_accumulate``).

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
    anomaly = _mode.anomaly
    tape = _mode.tape  # tm.trace's recorder, if one runs (it cannot change during a pass)
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
            node = t._node
            if node is None:
                if want is None:
                    _accumulate(t, g, create_graph, given)
                continue
            # One step: the node's op turns t's gradient into its inputs' (in their shapes).
            if _mode.last_inplace >= node.seq:
                _check_versions(t, node)
            ins = node.inputs
            need = masks.get(node, node.need) if masks else node.need
            if True not in need:
                continue  # an input of tm.grad that leads to no other input: its graph stays
            if tape is not None:  # tm.trace labels what the rule runs with its op
                outer = tape.enter_rule(t, node.op.name)
            gins = node.op.backward(g, t, ins, need, node.kwargs)
            if tape is not None:
                tape.leave_rule(outer)
            if hook is not None:
                hook(t, node, g, gins)
            if anomaly and any(gi is not None and not np.isfinite(gi.data).all() for gi in gins):
                _raise_anomaly(order, node, t)
            for p, gi in zip(ins, gins):
                if gi is not None:
                    prev = grads.get(p)
                    grads[p] = gi if prev is None else prev + gi
            if not retain_graph:
                node.inputs = None  # free what the graph saved, as soon as it is used
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


def backward(tensors: Tensor | Sequence[Tensor], grad_tensors: Tensor | ArrayLike | Sequence | None = None,
             retain_graph: bool | None = None, create_graph: bool = False) -> None:
    """Accumulate gradients of ``tensors`` into the ``.grad`` of the leaves they depend on.

    Args:
        tensors: one output or several; their gradients add up in the leaves.
        grad_tensors: dL/d(output) for each output (``None``: 1 for scalar outputs).
        retain_graph: keep the graph for another backward (defaults to ``create_graph``).
        create_graph: record the backward pass, so ``.grad`` can be differentiated again.

    Example:
        >>> x = tm.tensor(3.0, requires_grad=True)
        >>> tm.backward(x ** 2); x.grad.item()
        6.0
    """
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


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Tensor | ArrayLike | Sequence | None = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` w.r.t. ``inputs``, returned (not accumulated), as in
    ``torch.autograd.grad``. With ``create_graph=True`` the results can be differentiated again.

    Args:
        outputs: the tensor(s) to differentiate; scalars unless ``grad_outputs`` is given.
        inputs: the tensor(s) to differentiate with respect to (they must require grad).
        grad_outputs: the vector of the vector-Jacobian product for each output (``None``: 1).
        retain_graph: keep the graph for another pass (defaults to ``create_graph``).
        create_graph: record the backward pass, so the results carry a graph of their own
            (what MAML's second-order meta-gradient needs).
        allow_unused: give ``None`` for an input the outputs do not depend on instead of
            raising ``GraphError``.

    Returns:
        One gradient per input, in order, each with its input's shape.

    Example:
        >>> x = tm.tensor(2.0, requires_grad=True)
        >>> (g,) = tm.grad(x ** 3, x, create_graph=True)   # 3 x^2 = 12
        >>> tm.grad(g, x)[0].item()                         # 6 x = 12
        12.0
    """
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


def _tensor_backward(self, gradient: Tensor | ArrayLike | None = None, retain_graph: bool | None = None,
             create_graph: bool = False) -> None:
    """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf requiring grad.

    Args:
        gradient: dL/d(self), needed when ``self`` is not a scalar (the vector of the
            vector-Jacobian product); ``None`` means 1 for a scalar.
        retain_graph: keep the graph for another backward (defaults to ``create_graph``).
        create_graph: record the backward pass itself, so the gradients can be
            differentiated again (second order and beyond).
    """
    backward([self], None if gradient is None else [gradient], retain_graph, create_graph)


Tensor.backward = _tensor_backward
Tensor.backward.__name__ = Tensor.backward.__qualname__ = "backward"

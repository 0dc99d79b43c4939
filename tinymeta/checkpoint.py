"""Gradient checkpointing: trade compute for memory, to any order.

``y = tm.checkpoint(fn, *tensors)`` computes ``fn(*tensors)`` but keeps none of fn's
intermediate values: the graph holds one node whose inputs are ``tensors``. When a
gradient reaches that node, fn runs again on the saved inputs, this time recording its
graph, and that short-lived graph gives the vector-Jacobian product. A chain of k
checkpointed segments then holds k boundaries plus one segment's graph at a time,
instead of all k segments' graphs.

Second order and beyond. When the backward pass through the node must itself be
differentiable (``create_graph=True``: MAML's meta-gradient, a Hessian-vector product),
the VJP is returned as the output of *another* checkpoint, of the function
(g, *tensors) -> J(tensors)^T g. Its own backward recomputes that function in turn, so
checkpointing holds at every order and no derivative rule is written here: the VJPs
come from the op table through ``tm.grad``.
"""
from typing import Callable, Tuple, Union

import numpy as np

from .engine import Tensor, enable_grad, grad, is_grad_enabled
from .errors import DTypeError, GraphError
from .function import Function
from .ops import concatenate, reshape


def checkpoint(fn: Callable[..., Union[Tensor, Tuple[Tensor, ...]]],
               *tensors: Tensor) -> Union[Tensor, Tuple[Tensor, ...]]:
    """``checkpoint(fn, *tensors)``: ``fn(*tensors)`` without keeping fn's intermediate
    values; they are recomputed when the gradient passes through. Returns what fn returns
    (a Tensor or a tuple of Tensors of one dtype). Differentiable to any order.

    Rules for ``fn``:

    * Every tensor that requires grad and that fn uses must be passed in ``tensors``
      and taken as an argument, parameters included: ``tm.checkpoint(lambda x, *w:
      nn.functional_call(block, dict(zip(names, w)), x), x, *block.parameters())``.
      A tensor fn only closes over would lose its gradient (fn is rerun from
      ``tensors`` alone), so checkpoint raises ``GraphError`` when it finds one.
      Constants (data, labels) may be closed over.
    * fn must compute the same thing when rerun: no random draws, no state it changes.
    * fn runs under ``no_grad`` the first time and under ``enable_grad`` when rerun in
      backward. A fn that differentiates inside (an inner SGD step) should pass
      ``create_graph=tm.is_grad_enabled()`` to ``tm.grad``: cheap the first time, and
      differentiable when it counts. The tensors it receives require grad exactly when
      the ones passed in do.

    Cost: one extra forward of fn per backward through it (and per order of
    differentiation). Memory: the inputs and output of each checkpoint, plus one fn's
    graph during backward.
    """
    if not callable(fn):
        raise DTypeError(f"checkpoint: fn must be callable, got {type(fn).__name__}; "
                         "call it as tm.checkpoint(fn, *tensors)")
    for i, t in enumerate(tensors):
        if type(t) is not Tensor:
            raise DTypeError(f"checkpoint: argument {i} is a {type(t).__name__}, not a Tensor; pass "
                             "tensors only (tm.tensor(...)), and let fn close over other constants")
    if not (is_grad_enabled() and any(t.requires_grad for t in tensors)):
        # No gradient can flow through ``tensors``: nothing to save or recompute.
        out = fn(*tensors)
        outs = _as_outputs(out)
        if is_grad_enabled() and any(o.requires_grad for o in outs):
            raise _closure_error(next(o for o in outs if o.requires_grad))
        return out
    seg = _Segment(fn)
    packed = Checkpoint.apply(seg, *tensors)
    return seg.unpack(packed)


class _Segment:
    """fn, and how its outputs are packed into one flat tensor (``tm.Function`` has one
    output): the shapes seen on the first run, checked again on every rerun."""

    def __init__(self, fn):
        self.fn, self.shapes, self.single = fn, None, None

    def run(self, *xs):
        out = self.fn(*xs)
        outs = _as_outputs(out)
        shapes = [o.shape for o in outs]
        if self.shapes is None:
            self.shapes, self.single = shapes, type(out) is not tuple
            dtypes = {o.dtype for o in outs}
            if len(dtypes) > 1:
                raise DTypeError(f"checkpoint: fn returned tensors of dtypes {sorted(map(str, dtypes))}; "
                                 "return one dtype (cast with tm.astype)")
        elif shapes != self.shapes:
            raise GraphError(f"checkpoint: fn returned shapes {shapes} when rerun in backward but "
                             f"{self.shapes} the first time; fn must compute the same thing each "
                             "time it runs")
        if any(o.requires_grad for o in outs):
            _check_closure(outs, xs)
        if self.single:
            return outs[0]
        return concatenate([reshape(o, (-1,)) for o in outs])

    def unpack(self, packed):
        if self.single:
            return packed
        outs, start = [], 0
        for shape in self.shapes:
            n = int(np.prod(shape, dtype=np.int64))
            outs.append(reshape(packed[start:start + n], shape))
            start += n
        return tuple(outs)


def _as_outputs(out):
    outs = out if isinstance(out, tuple) else (out,)
    for k, o in enumerate(outs):
        if type(o) is not Tensor:
            raise DTypeError(f"checkpoint: fn must return a Tensor or a tuple of Tensors; output {k} "
                             f"is a {type(o).__name__}")
    return outs


def _check_closure(outs, own):
    """Walk fn's graph back from its outputs, stopping at fn's own inputs: any other tensor
    that requires grad came from outside fn, and its gradient would be lost."""
    own = {id(t) for t in own}
    stack, seen = [o for o in outs if o.requires_grad], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or id(t) in own:
            continue
        seen.add(id(t))
        node = t.grad_fn
        if node is None or node.inputs is None:  # a leaf, or an older graph already used
            raise _closure_error(t)
        stack.extend(p for p in node.inputs if type(p) is Tensor and p.requires_grad)


def _closure_error(t):
    return GraphError(
        f"checkpoint: fn uses a tensor of shape {t.shape} that requires grad but was not passed "
        "to checkpoint, so its gradient would be lost (fn is rerun from the tensors it is given). "
        "Pass it and take it as an argument, e.g. tm.checkpoint(lambda x, *w: "
        "nn.functional_call(model, dict(zip(names, w)), x), x, *model.parameters())")


def _leaf_copies(xs):
    """Fresh leaves sharing the inputs' data: fn's graph stops at them, not in the caller's."""
    return [x.detach().requires_grad_() if x.requires_grad else x.detach() for x in xs]


class Checkpoint(Function):
    """The graph node of ``tm.checkpoint``: saves only the inputs; backward reruns fn."""

    @staticmethod
    def forward(ctx, seg, *xs):
        ctx.seg = seg
        ctx.save_for_backward(*xs)
        return seg.run(*_leaf_copies(xs))  # under no_grad: intermediates are dropped at once

    @staticmethod
    def backward(ctx, g):
        xs = ctx.saved_tensors
        mask = tuple(x.requires_grad for x in xs)
        vjp = _VJP(ctx.seg, mask)
        if is_grad_enabled():  # the caller builds a graph of this backward: checkpoint it too
            grads = checkpoint(vjp, g, *xs)
        else:
            grads = vjp(g, *_leaf_copies(xs))
        it = iter(grads)
        return (None,) + tuple(next(it) if m else None for m in mask)


class _VJP:
    """(g, *xs) -> J(xs)^T g for the inputs in ``mask``, by rerunning the segment. Under
    ``enable_grad`` (a rerun inside a higher-order backward) the result is differentiable."""

    def __init__(self, seg, mask):
        self.seg, self.mask = seg, mask

    def __call__(self, g, *xs):
        create = is_grad_enabled()
        with enable_grad():
            out = self.seg.run(*xs)
            wrt = [x for x, m in zip(xs, self.mask) if m]
            gs = (grad(out, wrt, grad_outputs=[g], create_graph=create, allow_unused=True)
                  if out.requires_grad else [None] * len(wrt))
        return tuple(Tensor(np.zeros(x.shape, dtype=x.dtype)) if gi is None else gi
                     for gi, x in zip(gs, wrt))

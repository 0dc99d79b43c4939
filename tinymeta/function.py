"""Custom differentiable ops: subclass ``tm.Function``.

``forward`` runs without recording a graph; ``backward`` is given the gradient of the
output and returns one gradient per input. Write ``backward`` with tinymeta ops and your
op is differentiable to any order, and ``tm.gradgradcheck`` can check its second derivative.
"""
import numpy as np

from .engine import Node, Tensor, _mode, _wrap, no_grad
from .errors import GraphError
from .ops.core import Op


class Context:
    """What ``forward`` leaves for ``backward``: saved tensors and any attributes you set."""

    def __init__(self):
        self.saved_tensors = ()
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


class _FunctionOp(Op):
    """A user's Function as an op: its ``backward`` is the rule (the machinery then fits each
    gradient to its input, and names the Function if one cannot fit)."""

    __slots__ = ("fn", "ctx")

    def __init__(self, fn, ctx):
        super().__init__(fn.__name__, None, None)
        self.fn, self.ctx = fn, ctx

    def vjp(self, g, out, inputs, need, kwargs):
        self.ctx.needs_input_grad = need
        grads = self.fn.backward(self.ctx, g)
        grads = grads if isinstance(grads, (tuple, list)) else (grads,)
        if len(grads) != len(inputs):
            raise GraphError(f"{self.name}.backward returned {len(grads)} gradient(s) but forward "
                             f"took {len(inputs)} input(s); return one per input (None for "
                             "inputs without a gradient)")
        return list(grads)


class Function:
    """Subclass with ``@staticmethod forward(ctx, *inputs)`` and ``backward(ctx, grad)``;
    call ``MyOp.apply(*inputs)``."""

    @staticmethod
    def forward(ctx, *inputs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, grad_output):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs):
        ctx = Context()
        with no_grad():
            out = cls.forward(ctx, *inputs)
        out = out.data if type(out) is Tensor else np.asarray(out)
        track = _mode.grad_enabled and any(type(t) is Tensor and t.requires_grad for t in inputs)
        if not track:
            return _wrap(out)
        need = tuple(type(t) is Tensor and t.requires_grad for t in inputs)
        return _wrap(out, Node(_FunctionOp(cls, ctx), inputs, {}, need))

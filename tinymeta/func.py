"""Functional transforms, for the math-minded: ``grad``, ``value_and_grad``, ``vjp``,
``jacobian``, ``hessian``, ``hvp``. They compose (``hessian = jacobian(grad(f))``)
because each one builds a graph when it is called inside another.
"""
import numpy as np

from .engine import Tensor, _mode, _wrap, enable_grad, grad as _grad
from .errors import DTypeError, GraphError, ShapeError
from .ops import reshape, stack, sum


def _prep(args, argnums):
    """Make the differentiated arguments leaves that require grad. ``nested`` is True when
    an argument already carries a graph: then results must be differentiable again."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    args, nested = list(args), False
    for i in nums:
        a = args[i]
        if type(a) is Tensor and a.requires_grad and _mode.grad_enabled:
            nested = True
        else:
            a = Tensor(a, dtype=a.dtype if type(a) is Tensor else None)
            if a.dtype.kind != "f":
                a = Tensor(a.data, dtype=_mode.default_dtype)
            a.requires_grad_()
            args[i] = a
    return args, nums, nested


def _check_out(y, where):
    if type(y) is not Tensor:
        raise DTypeError(f"{where}: f must return a Tensor (built from its arguments with tinymeta "
                         f"ops), got {type(y).__name__}")
    return y


def _zeros_if_none(gs, xs):
    return [(_wrap(np.zeros_like(x.data)) if g is None else g) for g, x in zip(gs, xs)]


def value_and_grad(f, argnums=0):
    """``value_and_grad(f)(*args) -> (f(*args), df/dargs[argnums])``; f returns a scalar."""
    def run(*args):
        with enable_grad():
            args, nums, nested = _prep(args, argnums)
            y = f(*args)
            if type(y) is not Tensor or y.size != 1:
                raise GraphError(f"grad: f must return a scalar Tensor, got "
                                 f"{getattr(y, 'shape', type(y).__name__)}; use jacobian for "
                                 "vector outputs")
            xs = [args[i] for i in nums]
            gs = _grad(y, xs, create_graph=nested, allow_unused=True) if y.requires_grad else [None] * len(xs)
            gs = _zeros_if_none(gs, xs)
        g = gs[0] if isinstance(argnums, int) else tuple(gs)
        return (y if nested else y.detach()), g
    return run


def grad(f, argnums=0):
    """``grad(f)(*args)``: the gradient of scalar-valued ``f`` w.r.t. ``args[argnums]``."""
    vg = value_and_grad(f, argnums)
    return lambda *args: vg(*args)[1]


def vjp(f, *primals):
    """``out, vjp_fn = vjp(f, *primals)``; ``vjp_fn(v)`` returns v^T J for every primal."""
    with enable_grad():
        args, nums, nested = _prep(primals, tuple(range(len(primals))))
        out = _check_out(f(*args), "vjp")

    def vjp_fn(v):
        with enable_grad():
            if not out.requires_grad:
                return tuple(_wrap(np.zeros_like(a.data)) for a in args)
            gs = _grad(out, args, grad_outputs=[v], retain_graph=True, create_graph=nested,
                       allow_unused=True)
            return tuple(_zeros_if_none(gs, args))
    return (out if nested else out.detach()), vjp_fn


def jacobian(f, argnums=0):
    """``jacobian(f)(*args)``: shape out.shape + arg.shape; a tuple for several argnums, and
    for a tuple of outputs a tuple of those (so ``hessian(f, (0, 1))`` gives ((H00, H01), (H10, H11)))."""
    def run(*args):
        with enable_grad():
            args, nums, nested = _prep(args, argnums)
            out = f(*args)
            for y in (out if isinstance(out, tuple) else (out,)):
                _check_out(y, "jacobian")
            xs = [args[i] for i in nums]
            blocks = [_jacobian_blocks(y, xs, nested) for y in (out if isinstance(out, tuple) else (out,))]
        if not nested:
            blocks = [[j.detach() for j in b] for b in blocks]
        blocks = [b[0] if isinstance(argnums, int) else tuple(b) for b in blocks]
        return tuple(blocks) if isinstance(out, tuple) else blocks[0]
    return run


def _jacobian_blocks(y, xs, nested):
    """d y / d x for each x: arrays of shape y.shape + x.shape, one backward per element of y."""
    rows = [[] for _ in xs]
    for j in range(y.size):
        seed = np.zeros(y.shape, dtype=y.dtype)
        seed.flat[j] = 1.0
        gs = (_grad(y, xs, grad_outputs=[_wrap(seed)], retain_graph=True, create_graph=nested,
                    allow_unused=True) if y.requires_grad else [None] * len(xs))
        for r, g in zip(rows, _zeros_if_none(gs, xs)):
            r.append(g)
    return [reshape(stack(r), y.shape + x.shape) if r else _wrap(np.zeros(y.shape + x.shape))
            for r, x in zip(rows, xs)]


def hessian(f, argnums=0):
    """``hessian(f)(*args)``: the Jacobian of the gradient, shape arg.shape + arg.shape."""
    return jacobian(grad(f, argnums), argnums)


def hvp(f, primals, tangents):
    """Hessian-vector product H v of scalar ``f`` at ``primals``, by double backward
    (never forming H). ``primals``/``tangents``: a tensor each, or matching tuples."""
    single = not isinstance(primals, (tuple, list))
    primals = (primals,) if single else tuple(primals)
    tangents = (tangents,) if not isinstance(tangents, (tuple, list)) else tuple(tangents)
    with enable_grad():
        args, nums, nested = _prep(primals, tuple(range(len(primals))))
        y = _check_out(f(*args), "hvp")
        if y.size != 1:
            raise ShapeError(f"hvp: f must return a scalar, got shape {y.shape}")
        gs = _zeros_if_none(_grad(y, args, create_graph=True, allow_unused=True), args)
        dot = None
        for g, v in zip(gs, tangents):
            term = sum(g * v)
            dot = term if dot is None else dot + term
        if not dot.requires_grad:
            hv = [_wrap(np.zeros_like(a.data)) for a in args]
        else:
            hv = _zeros_if_none(_grad(dot, args, create_graph=nested, allow_unused=True), args)
    if not nested:
        hv = [h.detach() for h in hv]
    return hv[0] if single else tuple(hv)

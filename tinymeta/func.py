"""Functional transforms, for the math-minded: ``grad``, ``value_and_grad``, ``vjp``,
``jacobian``, ``hessian``, ``hvp``, and forward mode: ``jvp``, ``jacfwd``. They compose
(``hessian = jacobian(grad(f))``) because each one builds a graph when it is called inside
another.
"""
from typing import Callable, Sequence, Union

import numpy as np

from .engine import Tensor, _mode, _wrap, enable_grad, grad as _grad
from .errors import ArgumentError, DTypeError, GraphError, ShapeError
from .ops import reshape, stack, sum, transpose


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


def hvp(f: Callable[..., Tensor], primals: Union[Tensor, Sequence[Tensor]],
        tangents: Union[Tensor, Sequence[Tensor]], mode: str = "reverse") -> Union[Tensor, tuple]:
    """Hessian-vector product H v of scalar ``f`` at ``primals``, never forming H.
    ``primals``/``tangents``: a tensor each, or matching tuples.

    ``mode="reverse"`` (the default), reverse-over-reverse: H v = grad_x <grad_x f(x), v>,
    two backward passes. ``mode="forward"``, forward-over-reverse: H v = jvp(grad f, x, v),
    JAX's recommended composition. tinymeta's ``jvp`` is itself built from backward passes
    (see ``jvp``), so here forward-over-reverse costs one backward pass more than the
    default; it is there to cross-check the two and for code written the JAX way."""
    if mode not in ("reverse", "forward"):
        raise ArgumentError(f"hvp: mode must be 'reverse' or 'forward', got {mode!r}")
    single = not isinstance(primals, (tuple, list))
    primals = (primals,) if single else tuple(primals)
    tangents = (tangents,) if not isinstance(tangents, (tuple, list)) else tuple(tangents)
    if mode == "forward":
        _, hv = jvp(_scalar(f, "hvp"), primals, tangents)
        hv = hv if isinstance(hv, tuple) else (hv,)
        return hv[0] if single else hv
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


# ----------------------------------------------------------------------------- forward mode
#
# Forward mode here is the transpose of reverse mode, not a second set of rules. For
# y = f(x), the VJP u -> J^T u is linear in u, and every op's VJP is written with
# differentiable ops, so J^T u can be recorded as a graph with u as a leaf. Then
#     J t = grad_u <J^T u, t>,
# one more backward pass, through that (linear) graph. The value of u never matters.


def _scalar(f, where):
    """grad of every argument of scalar ``f``: the map whose Jacobian is the Hessian."""
    def g(*args):
        y = _check_out(f(*args), where)
        if y.size != 1:
            raise ShapeError(f"{where}: f must return a scalar, got shape {y.shape}")
        gs = _grad(y, list(args), create_graph=True, allow_unused=True) if y.requires_grad else [None] * len(args)
        gs = _zeros_if_none(gs, args)
        return gs[0] if len(gs) == 1 else tuple(gs)
    return g


def _check_tangents(args, tangents, where):
    """One tangent per primal, each of the primal's exact shape and dtype (a tangent lives in
    the primal's space: no broadcasting, no silent casts). Python numbers and lists take the
    primal's dtype."""
    if len(tangents) != len(args):
        raise ArgumentError(f"{where}: got {len(args)} primal(s) but {len(tangents)} tangent(s); "
                            "pass one tangent per primal, in the same order (tuples for several)")
    out = []
    for i, (a, t) in enumerate(zip(args, tangents)):
        if type(t) is not Tensor:
            arr = np.asarray(t) if isinstance(t, np.ndarray) else None
            if arr is None:
                try:
                    arr = np.asarray(t, dtype=a.dtype)
                except (TypeError, ValueError) as exc:
                    raise DTypeError(f"{where}: tangent {i} must be a Tensor, an array or numbers, "
                                     f"got {type(t).__name__}") from exc
            t = Tensor(arr)
        if t.dtype != a.dtype:
            raise DTypeError(f"{where}: tangent {i} has dtype {t.dtype} but primal {i} has dtype "
                             f"{a.dtype}; a tangent must have its primal's dtype: convert it, e.g. "
                             f"tm.tensor(t, dtype='{a.dtype}')")
        if t.shape != a.shape:
            raise ShapeError(f"{where}: tangent {i} has shape {t.shape} but primal {i} has shape "
                             f"{a.shape}; a tangent must have exactly its primal's shape (no "
                             "broadcasting)")
        out.append(t)
    return out


def _outputs(out, where):
    outs = out if isinstance(out, tuple) else (out,)
    for y in outs:
        _check_out(y, where)
    return outs


def _transposed(outs, xs):
    """Dummy cotangents u (leaves, one per output) and J^T u for each x, recorded as a graph."""
    us = [Tensor(np.zeros(y.shape, dtype=y.dtype), requires_grad=True) for y in outs]
    live = [(y, u) for y, u in zip(outs, us) if y.requires_grad]
    if not live:
        return us, [None] * len(xs)
    gs = _grad([y for y, _ in live], xs, grad_outputs=[u for _, u in live], create_graph=True,
               allow_unused=True)
    return us, list(gs)


def jvp(f: Callable[..., Union[Tensor, tuple]], primals: Union[Tensor, Sequence[Tensor]],
        tangents: Union[Tensor, np.ndarray, Sequence]) -> tuple:
    """``jvp(f, primals, tangents) -> (f(primals), J tangents)``: the Jacobian-vector product
    (directional derivative of ``f`` at ``primals`` along ``tangents``), as in JAX.

    ``primals``/``tangents``: a tensor each, or matching tuples (one tangent per primal, of
    its exact shape and dtype). ``f`` returns a Tensor or a tuple of Tensors; J t has the
    same structure. Differentiable again, in the primals and in the tangents.

    How: by transposing reverse mode, not by a forward-mode rule per op. The VJP
    u -> J^T u is linear in u and recorded as a graph (every derivative rule is built from
    differentiable ops), so J t = grad_u <J^T u, t>. Why: every derivative in tinymeta stays
    written once, as a VJP in the op table; a forward rule per op would be a second table
    that could disagree with the first. Higher orders come free, as for ``grad``. The price:
    about two backward passes instead of one forward pass, and the graph is kept while the
    product is computed. ``jacfwd`` builds J^T u once and reuses it for every direction.
    """
    single = not isinstance(primals, (tuple, list))
    primals = (primals,) if single else tuple(primals)
    # The tangents follow the primals' structure: one primal, one tangent (even a list).
    tangents = (tangents,) if single else (tuple(tangents) if isinstance(tangents, (tuple, list))
                                           else (tangents,))
    with enable_grad():
        args, nums, primal_graph = _prep(primals, tuple(range(len(primals))))
        ts = _check_tangents(args, tangents, "jvp")
        # Differentiable in the tangents too: a graph is needed when they carry one.
        nested = primal_graph or any(t.requires_grad for t in ts)
        out = f(*args)
        outs = _outputs(out, "jvp")
        us, gs = _transposed(outs, args)
        dot = None
        for g, t in zip(gs, ts):
            if g is not None:
                term = sum(g * t)
                dot = term if dot is None else dot + term
        if dot is None or not dot.requires_grad:
            jts = [_wrap(np.zeros_like(y.data)) for y in outs]
        else:
            jts = _zeros_if_none(_grad(dot, us, create_graph=nested, allow_unused=True), us)
    if not nested:
        jts = [j.detach() for j in jts]
    if not primal_graph:
        outs = tuple(y.detach() for y in outs)
    if isinstance(out, tuple):
        return tuple(outs), tuple(jts)
    return outs[0], jts[0]


def jacfwd(f: Callable[..., Union[Tensor, tuple]],
           argnums: Union[int, Sequence[int]] = 0) -> Callable[..., Union[Tensor, tuple]]:
    """``jacfwd(f)(*args)``: the Jacobian, as ``jacobian`` gives it (shape out.shape + arg.shape;
    tuples for several argnums or outputs), built column by column: one pass per *input*
    element, where ``jacobian`` takes one per *output* element. Use it when f has fewer
    inputs than outputs.

    Forward mode by transposing reverse mode (see ``jvp``): J^T u is recorded once as a graph
    in a dummy cotangent u, and column k of J is grad_u of element k of J^T u."""
    def run(*args):
        with enable_grad():
            args, nums, nested = _prep(args, argnums)
            out = f(*args)
            outs = _outputs(out, "jacfwd")
            xs = [args[i] for i in nums]
            us, gs = _transposed(outs, xs)
            # blocks[o][x]: d out_o / d x, shape out_o.shape + x.shape.
            blocks = [[None] * len(xs) for _ in outs]
            for m, (x, g) in enumerate(zip(xs, gs)):
                if g is None:
                    cols = [_wrap(np.zeros(x.shape + y.shape, dtype=y.dtype)) for y in outs]
                else:  # d (J^T u)_x / d u = J^T: shape x.shape + out.shape, then transposed
                    cols = _jacobian_blocks(g, us, nested)
                for k, (y, c) in enumerate(zip(outs, cols)):
                    perm = tuple(range(x.ndim, x.ndim + y.ndim)) + tuple(range(x.ndim))
                    blocks[k][m] = transpose(c, axes=perm) if perm != tuple(range(len(perm))) else c
        if not nested:
            blocks = [[j.detach() for j in b] for b in blocks]
        blocks = [b[0] if isinstance(argnums, int) else tuple(b) for b in blocks]
        return tuple(blocks) if isinstance(out, tuple) else blocks[0]
    return run

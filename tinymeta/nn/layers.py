"""Layers: ``Linear``, activations, ``Sequential`` and ``MLP``."""
import math

import numpy as np

from .. import ops
from ..creation import as_rng
from ..engine import Tensor, get_default_dtype
from ..errors import ArgumentError, ShapeError
from .module import Module, Parameter


def as_input(x, like):
    """NumPy arrays and lists become tensors of the parameters' dtype."""
    if type(x) is Tensor:
        return x
    a = np.asarray(x)
    if a.dtype != like.dtype and a.dtype.kind in "fiub":
        return ops.astype(a, like.dtype)  # an op, so tm.trace follows the conversion on replay
    return Tensor(a, dtype=like.dtype)


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features); with ``activation="relu"``,
    y = relu(x W^T + b) as one fused node (one pass over memory, same numbers).

    Initialised as PyTorch does: W and b uniform in [-1/sqrt(in), 1/sqrt(in)] (PyTorch's
    kaiming_uniform with a=sqrt(5) reduces to exactly that bound)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, rng=None, dtype=None,
                 activation: str | None = None):
        super().__init__()
        if activation not in (None, "relu"):
            raise ArgumentError(f"Linear: activation must be None or 'relu', got {activation!r}")
        self.activation = activation
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ArgumentError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng, dtype = as_rng(rng), np.dtype(dtype or get_default_dtype())
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def forward(self, x):
        return _linear(self, x, self.activation)

    def extra_repr(self):
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}{act}"


def _linear(layer, x, activation):
    x = as_input(x, layer.weight)
    if x.ndim == 0 or x.shape[-1] != layer.in_features:
        raise ShapeError(f"{layer!r}: the input has shape {x.shape}, but this layer takes "
                         f"{layer.in_features} features on its last axis; check the model's first "
                         "layer size against the data, or reshape the input")
    return ops.linear(x, layer.weight, layer.bias, activation=activation)


class _Activation(Module):
    fn = None

    def forward(self, x):
        return type(self).fn(x)


class ReLU(_Activation):
    fn = staticmethod(ops.relu)


class Tanh(_Activation):
    fn = staticmethod(ops.tanh)


class Sigmoid(_Activation):
    fn = staticmethod(ops.sigmoid)


class Softplus(_Activation):
    fn = staticmethod(ops.softplus)


class Identity(_Activation):
    fn = staticmethod(lambda x: x)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.floating)):
            raise ArgumentError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        return ops.leaky_relu(x, self.negative_slope)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus,
               "leaky_relu": LeakyReLU, "identity": Identity, None: Identity}


class Sequential(Module):
    """Modules applied in order; their parameters are named "0.weight", "2.bias", ..."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise ArgumentError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)


class MLP(Sequential):
    """``MLP([1, 40, 40, 1], activation="relu")``: Linear layers with the activation
    between them (not after the last), named like the equivalent ``Sequential``
    ("0.weight", "2.weight", ...). With ReLU each Linear and its ReLU run as one fused node."""

    def __init__(self, sizes, activation="relu", output_activation=None, rng=None, dtype=None):
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ArgumentError(f"MLP: sizes needs at least an input and an output size, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ArgumentError(f"MLP: unknown activation {activation!r}; choose one of "
                                f"{[k for k in ACTIVATIONS if k]}")
        rng = as_rng(rng)
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, rng=rng, dtype=dtype))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        if output_activation is not None:
            layers.append(ACTIVATIONS[output_activation]())
        super().__init__(*layers)
        self.sizes = sizes

    def forward(self, x):
        # An MLP fuses each Linear with the ReLU after it (one node, one pass over memory,
        # the same numbers): what ``activation="relu"`` asks for. Sequential never fuses.
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            if type(m) is Linear and m.activation is None and i + 1 < len(mods) and type(mods[i + 1]) is ReLU:
                x = _linear(m, x, "relu")
                i += 2
            else:
                x = m(x)
                i += 1
        return x

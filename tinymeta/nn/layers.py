"""Layers: ``Linear``, activations, ``Sequential`` and ``MLP``."""
import math

import numpy as np

from .. import ops
from ..creation import as_rng
from ..engine import Tensor, get_default_dtype
from ..errors import ArgumentError
from .module import Module, Parameter


def as_input(x, like):
    """NumPy arrays and lists become tensors of the parameters' dtype."""
    if type(x) is Tensor:
        return x
    return Tensor(np.asarray(x), dtype=like.dtype)


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features).

    Initialised as PyTorch does: W and b uniform in [-1/sqrt(in), 1/sqrt(in)] (PyTorch's
    kaiming_uniform with a=sqrt(5) reduces to exactly that bound)."""

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=None):
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ArgumentError(f"Linear: {name} must be a positive int, got {v!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng, dtype = as_rng(rng), np.dtype(dtype or get_default_dtype())
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def forward(self, x):
        return ops.linear(as_input(x, self.weight), self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


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
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            if type(m) is Linear and i + 1 < len(mods) and type(mods[i + 1]) is ReLU:
                # Linear then ReLU runs as one fused op: one graph node, one pass over memory.
                x = ops.linear(as_input(x, m.weight), m.weight, m.bias, activation="relu")
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)


class MLP(Sequential):
    """``MLP([1, 40, 40, 1], activation="relu")``: Linear layers with the activation
    between them (not after the last), named like the equivalent ``Sequential``."""

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

"""Layers: ``Linear``, activations, ``Sequential`` and ``MLP``."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from numpy.typing import DTypeLike

from .. import ops
from ..creation import as_rng
from ..engine import Tensor, get_default_dtype
from ..errors import ArgumentError, ShapeError
from .module import Module, Parameter


def as_input(x, like):
    """NumPy arrays and lists become tensors of the parameters' dtype."""
    if type(x) is Tensor:
        return x
    return Tensor(np.asarray(x), dtype=like.dtype)


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features); with ``activation="relu"``,
    y = relu(x W^T + b) as one fused node (one pass over memory, same numbers).

    Initialised as PyTorch does: W and b uniform in [-1/sqrt(in), 1/sqrt(in)] (PyTorch's
    kaiming_uniform with a=sqrt(5) reduces to exactly that bound).

    Args:
        in_features: the size of the input's last axis.
        out_features: the size of the output's last axis.
        bias: learn the bias b (``False``: y = x W^T).
        rng: an int seed or a ``np.random.Generator`` for the initial weights (``None``:
            tinymeta's global generator).
        dtype: the parameters' dtype (default: ``tm.get_default_dtype()``).
        activation: ``None`` or ``"relu"`` (fused).

    Example:
        >>> layer = nn.Linear(3, 5, rng=0)
        >>> layer(tm.randn(8, 3)).shape
        (8, 5)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: int | np.random.Generator | None = None, dtype: DTypeLike | None = None,
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

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """x (..., in_features) -> (..., out_features); NumPy input takes the weights' dtype."""
        return _linear(self, x, self.activation)

    def extra_repr(self) -> str:
        act = f", activation={self.activation!r}" if self.activation else ""
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}{act}"


def _linear(layer, x, activation):
    x = as_input(x, layer.weight)
    if x.ndim == 0 or x.shape[-1] != layer.in_features:
        raise ShapeError(f"{layer!r}: the input has shape {x.shape}, but this layer takes "
                         f"{layer.in_features} features on its last axis; check the model's first "
                         "layer size against the data, or reshape the input")
    # The checks ops.linear would make are made: call it with its options as they are.
    if layer.bias is None:
        return ops.linear.call(x, layer.weight, activation=activation)
    return ops.linear.call(x, layer.weight, layer.bias, activation=activation)


class _Activation(Module):
    fn = None

    def forward(self, x: Tensor) -> Tensor:
        """The activation, elementwise."""
        return type(self).fn(x)


class ReLU(_Activation):
    """relu(x) = max(x, 0), elementwise (its derivative taken as 0 at 0)."""

    fn = staticmethod(ops.relu)


class Tanh(_Activation):
    """tanh(x), elementwise; its derivative is 1 - tanh(x)^2."""

    fn = staticmethod(ops.tanh)


class Sigmoid(_Activation):
    """sigmoid(x) = 1 / (1 + e^-x), elementwise; its derivative is s (1 - s)."""

    fn = staticmethod(ops.sigmoid)


class Softplus(_Activation):
    """softplus(x) = log(1 + e^x), elementwise (a smooth ReLU); its derivative is sigmoid(x)."""

    fn = staticmethod(ops.softplus)


class Identity(_Activation):
    """Returns its input unchanged (a placeholder where an activation is optional)."""

    fn = staticmethod(lambda x: x)


class LeakyReLU(Module):
    """leaky_relu(x) = x for x > 0, ``negative_slope * x`` otherwise, elementwise.

    Args:
        negative_slope: the slope for negative inputs.
    """

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float, np.floating)):
            raise ArgumentError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        """leaky_relu(x), elementwise."""
        return ops.leaky_relu(x, self.negative_slope)


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus,
               "leaky_relu": LeakyReLU, "identity": Identity, None: Identity}


class Sequential(Module):
    """Modules applied in order; their parameters are named "0.weight", "2.bias", ...

    Args:
        modules: the modules, called one after the other on the output of the previous one.

    Example:
        >>> model = nn.Sequential(nn.Linear(2, 8, rng=0), nn.Tanh(), nn.Linear(8, 1, rng=1))
        >>> [name for name, _ in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise ArgumentError(f"Sequential: item {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x: Tensor) -> Tensor:
        """Each module in turn on the output of the one before."""
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
    ("0.weight", "2.weight", ...). With ReLU each Linear and its ReLU run as one fused node.

    Args:
        sizes: the layer widths, input first, output last (at least two).
        activation: between the layers: ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"softplus"``,
            ``"leaky_relu"`` or ``"identity"``.
        output_activation: one of the same names after the last layer, or ``None``.
        rng: an int seed or a ``np.random.Generator`` for the initial weights.
        dtype: the parameters' dtype (default: ``tm.get_default_dtype()``).

    Example:
        >>> model = nn.MLP([1, 40, 40, 1], rng=0)   # the sinusoid regressor of the MAML paper
        >>> model(tm.zeros(5, 1)).shape
        (5, 1)
    """

    def __init__(self, sizes: Iterable[int], activation: str | None = "relu",
                 output_activation: str | None = None, rng: int | np.random.Generator | None = None,
                 dtype: DTypeLike | None = None):
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

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """The layers in turn (each Linear and the ReLU after it as one fused node)."""
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

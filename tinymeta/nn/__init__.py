"""Neural-network modules, hand-written on tinymeta's autograd (``from tinymeta import nn``)."""
from . import functional
from .layers import (ACTIVATIONS, MLP, Identity, LeakyReLU, Linear, ReLU, Sequential, Sigmoid,
                     Softplus, Tanh)
from .module import Module, Parameter, functional_call
from .serialization import load, load_arrays, save, save_arrays

__all__ = ["Module", "Parameter", "Linear", "Sequential", "MLP", "ReLU", "Tanh", "Sigmoid",
           "Softplus", "LeakyReLU", "Identity", "ACTIVATIONS", "functional", "functional_call",
           "save", "load", "save_arrays", "load_arrays"]

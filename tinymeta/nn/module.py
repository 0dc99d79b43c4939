"""``Module``: a container of parameters and sub-modules, as in PyTorch, plus
``functional_call``, which runs a module with another set of parameters (MAML's core)."""
from collections import OrderedDict

import numpy as np

from ..engine import Tensor, _mode, no_grad
from ..errors import ArgumentError, CheckpointError, ShapeError


def Parameter(data, dtype=None):  # noqa: N802 (reads like PyTorch's class)
    """A leaf tensor that requires grad; assigned to a Module attribute, it is a parameter.
    (tinymeta parameters are plain Tensors: the engine's fast paths test ``type(x) is Tensor``.)"""
    t = data.detach() if isinstance(data, Tensor) else Tensor(data, dtype=dtype)
    return t.requires_grad_(True)


_structure = [0]  # bumped whenever any module gains or loses a parameter or sub-module


class Module:
    """Base class: assign Tensors requiring grad and sub-Modules as attributes; define
    ``forward``. Parameters are named by attribute path (``"0.weight"``)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() in __init__ "
                                 "before assigning parameters or sub-modules")
        registered = name in self._parameters or name in self._modules
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Tensor) and value.requires_grad and value.is_leaf:
            self._parameters[name] = value
            if value.name is None:
                value.name = name
            registered = True
        elif isinstance(value, Module):
            self._modules[name] = value
            # Parameters take their path in the outermost module they join ("0.weight"), so
            # tm.viz and tm.trace can name them; a name given by the user stays.
            for path, p in value.named_parameters(name + "."):
                if p.name is None or p.name == path[len(name) + 1:]:
                    p.name = path
            registered = True
        if registered:
            _structure[0] += 1
        object.__setattr__(self, name, value)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix=""):
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m.named_parameters(prefix + name + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix=""):
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m.named_modules(prefix + name + ".")

    def children(self):
        return list(self._modules.values())

    def zero_grad(self) -> None:
        """Forget every parameter's accumulated gradient (``.grad = None``)."""
        params = self.parameters()
        if _mode.tape is not None:
            _mode.tape.zeroed_grads(params)
        for p in params:
            p.grad = None

    def train(self, mode=True):
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def num_parameters(self):
        return int(sum(p.size for p in self.parameters()))

    def state_dict(self):
        """Parameter name -> a copy of its array."""
        return OrderedDict((n, p.data.copy()) for n, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays into the parameters. Everything is checked before anything is
        written, so a mismatched state never leaves the module half-loaded."""
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state]
        extra = [k for k in state if k not in own]
        if strict and (missing or extra):
            raise CheckpointError(
                f"load_state_dict: the state does not match {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {extra}")
        for k, p in own.items():
            if k in state and np.shape(state[k]) != p.shape:
                raise CheckpointError(f"load_state_dict: '{k}' has shape {np.shape(state[k])} in the "
                                      f"state but {p.shape} in the model")
        with no_grad():
            for k, p in own.items():
                if k in state:
                    p.data[...] = np.asarray(state[k], dtype=p.dtype)
                    p._bump_version()
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def functional_call(module, params, *args, **kwargs):
    """Run ``module(*args)`` with the tensors in ``params`` (name -> Tensor) in place of
    its own parameters, without changing the module. Parameters not named keep their
    value. The tensors may carry a leading task axis (a meta-batch of weights): layers
    that use ``tm.linear`` broadcast over it."""
    slots = _slots(module)
    unknown = [k for k in params if k not in slots]
    if unknown:
        raise ArgumentError(f"functional_call: {type(module).__name__} has no parameters named "
                            f"{unknown}; its parameters are {list(slots)}")
    swapped = []
    try:
        for name, value in params.items():
            owner, attr = slots[name]
            swapped.append((owner, attr, owner.__dict__[attr]))
            object.__setattr__(owner, attr, value)  # not via __setattr__: no registration
        return module(*args, **kwargs)
    finally:
        for owner, attr, value in reversed(swapped):
            object.__setattr__(owner, attr, value)


def _slots(module):
    """name -> (owning module, attribute), cached until any module's structure changes
    (a MAML iteration calls functional_call several times; walking the tree each time
    showed up in profiles)."""
    cache = module.__dict__.get("_slots_cache")
    if cache is None or cache[0] != _structure[0]:
        slots = {}
        for name in (n for n, _ in module.named_parameters()):
            owner, (*path, attr) = module, name.split(".")
            for part in path:
                owner = owner._modules[part]
            slots[name] = (owner, attr)
        cache = (_structure[0], slots)
        object.__setattr__(module, "_slots_cache", cache)
    return cache[1]


def check_same_shape(a, b, where):
    if a.shape != b.shape:
        raise ShapeError(f"{where}: input shape {a.shape} and target shape {b.shape} differ; they "
                         "must match exactly (a (N, 1) prediction against an (N,) target would "
                         "silently broadcast to (N, N)): reshape one of them")

"""Optimizers (``from tinymeta import optim``): stateful ones for training loops, and in
``optim.functional`` the same update rules as differentiable pure functions."""
from . import functional, lr_scheduler
from .optimizers import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, clip_grad_norm_

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm_",
           "functional", "lr_scheduler"]

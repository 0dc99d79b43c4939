"""Learning-rate schedules: call ``scheduler.step()`` once per epoch (or iteration), after
``optimizer.step()``. Each sets every group's ``lr`` from its closed form."""
import math

from .optimizers import Optimizer

from ..checks import number
from ..errors import ArgumentError


def _positive(where, name, value):
    # A negative factor would make the learning rate negative.
    number(where, name, value, low=0, strict_low=True)


class LRScheduler:
    """Base class: sets each parameter group's ``lr`` to ``lr_at(base, epoch)`` at every
    ``step()``, where ``base`` is the group's lr when the scheduler was made.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.

    Example:
        >>> sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        >>> for epoch in range(30):
        ...     train_one_epoch(); sched.step()
    """

    def __init__(self, optimizer: Optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def lr_at(self, base: float, epoch: int) -> float:
        """The learning rate at ``epoch`` for a group whose initial rate is ``base`` (subclasses)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set every group's ``lr``."""
        self.last_epoch += 1
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self) -> list[float]:
        """The current learning rate of each parameter group."""
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """``{"last_epoch": ..., "base_lrs": [...]}``, numbers only (saved in checkpoints)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, sd: dict) -> None:
        """Restore what ``state_dict()`` returned."""
        self.last_epoch = int(sd["last_epoch"])
        self.base_lrs = [float(x) for x in sd["base_lrs"]]


class StepLR(LRScheduler):
    """lr = base * gamma ** (epoch // step_size): multiplied by gamma every ``step_size`` epochs.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        step_size: epochs between decays (>= 1).
        gamma: the factor (> 0).
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        if step_size < 1:
            raise ArgumentError(f"StepLR: step_size must be >= 1, got {step_size}")
        _positive("StepLR", "gamma", gamma)
        super().__init__(optimizer)
        self.step_size, self.gamma = step_size, gamma

    def lr_at(self, base: float, epoch: int) -> float:
        """base * gamma ** (epoch // step_size)."""
        return base * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = base * gamma ** epoch.

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        gamma: the factor per epoch (> 0).
    """

    def __init__(self, optimizer: Optimizer, gamma: float):
        _positive("ExponentialLR", "gamma", gamma)
        super().__init__(optimizer)
        self.gamma = gamma

    def lr_at(self, base: float, epoch: int) -> float:
        """base * gamma ** epoch."""
        return base * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2 (Loshchilov & Hutter 2017).

    Args:
        optimizer: the optimizer whose learning rates are scheduled.
        T_max: the epochs of the half cosine, from base down to eta_min (>= 1).
        eta_min: the smallest learning rate (>= 0).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):  # noqa: N803 (PyTorch's name)
        if T_max < 1:
            raise ArgumentError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        if eta_min < 0:
            raise ArgumentError(f"CosineAnnealingLR: eta_min must be >= 0, got {eta_min}")
        super().__init__(optimizer)
        self.T_max, self.eta_min = T_max, eta_min

    def lr_at(self, base: float, epoch: int) -> float:
        """The cosine schedule at ``epoch``."""
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

"""Meta-learning on tinymeta (``from tinymeta import meta``): learners that learn to learn,
by backpropagating through the learning process itself.

Each learner lives in its own file, its docstring naming the paper and its update in math:
``MAML`` (maml.py), ``Reptile`` (reptile.py), ``MetaSGD`` (metasgd.py),
``MappingLearner`` (mapping.py), ``RidgeHead`` (ridge.py); task families in ``tasks``.
"""
from . import tasks
from .base import MetaLearner
from .hypergrad import hypergradient, tune, unrolled_validation_loss
from .maml import MAML
from .mapping import MappingLearner, linear_targets
from .metasgd import MetaSGD
from .reptile import Reptile
from .ridge import RidgeHead
from .tasks import TaskBatch
from .training import evaluate, fit, format_evaluation, train

__all__ = ["tasks", "TaskBatch", "MetaLearner", "MAML", "MetaSGD", "Reptile", "MappingLearner",
           "linear_targets", "RidgeHead", "hypergradient", "tune", "unrolled_validation_loss",
           "fit", "train", "evaluate",
           "format_evaluation"]

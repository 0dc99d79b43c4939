"""Meta-learning on tinymeta (``from tinymeta import meta``): learners that learn to learn,
by backpropagating through the learning process itself.

Each learner lives in its own file, its docstring naming the paper and its update in math:
``MAML`` (maml.py), ``Reptile`` (reptile.py), ``MetaSGD`` (metasgd.py),
``MappingLearner`` (mapping.py), ``RidgeHead`` (ridge.py), ``IMAML`` (imaml.py), ``ANIL``
(anil.py), ``CAVIA`` (cavia.py), ``ProtoNet`` (protonet.py), ``LearnedOptimizer``
(learned_optimizer.py); task families in ``tasks``.
"""
from . import tasks
from .base import MetaLearner
from .anil import ANIL
from .cavia import CAVIA
from .hypergrad import hypergradient, tune, unrolled_validation_loss
from .imaml import IMAML
from .learned_optimizer import LearnedOptimizer
from .maml import MAML
from .mapping import MappingLearner, linear_targets
from .metasgd import MetaSGD
from .protonet import ProtoNet
from .reptile import Reptile
from .ridge import RidgeHead
from .tasks import TaskBatch
from .training import evaluate, fit, format_evaluation, train

__all__ = ["tasks", "TaskBatch", "MetaLearner", "MAML", "MetaSGD", "Reptile", "MappingLearner",
           "linear_targets", "RidgeHead", "IMAML", "ANIL", "CAVIA", "ProtoNet", "LearnedOptimizer",
           "hypergradient", "tune", "unrolled_validation_loss", "fit", "train", "evaluate", "format_evaluation"]

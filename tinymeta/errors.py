"""Every error tinymeta raises.

Each class derives from ``TinymetaError`` *and* from the built-in a user would
catch for the same mistake (a shape mismatch is also a ``ValueError``), so both
``except tm.TinymetaError`` and ``except ValueError`` work. Messages name the op,
the shapes or dtypes involved, and how to fix the problem.
"""


class TinymetaError(Exception):
    """Base class of every error raised by tinymeta."""


class ShapeError(TinymetaError, ValueError):
    """Shapes that do not fit together (broadcasting, matmul, reshape, axis)."""


class DTypeError(TinymetaError, TypeError):
    """A dtype or Python type tinymeta cannot use here."""


class IndexError_(TinymetaError, IndexError):
    """An index out of range or of an unsupported kind."""


class GraphError(TinymetaError, RuntimeError):
    """Misuse of the autograd graph (freed graph, non-scalar backward, unused input)."""


class InplaceError(GraphError):
    """A tensor was changed in place where that would corrupt a gradient."""


class AnomalyError(TinymetaError, FloatingPointError):
    """Raised under ``tm.detect_anomaly()`` when a backward step produces NaN or inf."""


class GradcheckError(TinymetaError, RuntimeError):
    """Analytic and numerical derivatives disagree."""


class CheckpointError(TinymetaError, ValueError):
    """A checkpoint file that is missing, corrupt, foreign or does not match the model."""


class ArgumentError(TinymetaError, ValueError):
    """An argument with an invalid value (negative learning rate, zero shots, ...)."""


__all__ = [
    "TinymetaError", "ShapeError", "DTypeError", "IndexError_", "GraphError", "InplaceError",
    "AnomalyError", "GradcheckError", "CheckpointError", "ArgumentError",
]

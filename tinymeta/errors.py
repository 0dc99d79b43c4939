"""Every error tinymeta raises, and the one place NumPy's errors are translated.

Each class derives from ``TinymetaError`` *and* from the built-in a user would
catch for the same mistake (a shape mismatch is also a ``ValueError``), so both
``except tm.TinymetaError`` and ``except ValueError`` work. Messages name the op,
the shapes or dtypes involved, and how to fix the problem.

``translate`` turns a bare NumPy/Python exception raised inside an op into the
matching tinymeta error, naming the op and its inputs' shapes; ``guard`` does the same
for a whole public function. This module imports nothing from tinymeta, so every layer
can use it.
"""
import functools
import warnings

import numpy as np


class TinymetaError(Exception):
    """Base class of every error raised by tinymeta."""


class ShapeError(TinymetaError, ValueError):
    """Shapes that do not fit together (broadcasting, matmul, reshape, axis)."""


class DTypeError(TinymetaError, TypeError):
    """A dtype or Python type tinymeta cannot use here."""


class IndexingError(TinymetaError, IndexError):
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


class TraceError(TinymetaError, RuntimeError):
    """A traced program (``tm.trace``, ``tm.jit``) would replay something wrongly: a Python
    value read from a traced tensor, or inputs of another shape or dtype."""


class NotFittedError(TinymetaError, ValueError, AttributeError):
    """``predict``/``score`` before ``fit``; also a ValueError and AttributeError, as in scikit-learn."""


class MissingDependencyError(TinymetaError, ImportError):
    """An optional third-party package needed for this feature is not installed."""


class DatasetError(TinymetaError, ValueError):
    """A dataset file that is missing, malformed or inconsistent."""


class PrecisionWarning(UserWarning):
    """A derivative check was asked to run in less than float64 precision (``tm.check_grad``)."""


# ----------------------------------------------------------------------------- translation


def _shape_of(a):
    try:
        return str(np.shape(getattr(a, "data", a)))
    except Exception:  # a ragged list has no shape; say what it is instead
        return type(a).__name__


def translate(where, args, exc):
    """The tinymeta error for a NumPy/Python exception raised in ``where`` (an op or
    function name) on ``args``; tinymeta's own errors pass through unchanged."""
    if isinstance(exc, TinymetaError):
        return exc
    shapes, msg = ", ".join(_shape_of(a) for a in args), str(exc)
    if isinstance(exc, np.exceptions.AxisError):
        return ShapeError(f"{where}: {msg} (input shape {shapes}); axes count from 0, or from -1 "
                          "at the end")
    if isinstance(exc, ValueError) and "broadcast" in msg:
        return ShapeError(f"{where}: shapes {shapes} cannot be broadcast together (NumPy rules: "
                          "aligned from the right, each dimension equal or 1); reshape or unsqueeze "
                          "one operand so they line up")
    if isinstance(exc, ValueError):
        return ShapeError(f"{where}: {msg} (input shapes {shapes})")
    if isinstance(exc, IndexError):
        return IndexingError(f"{where}: {msg} (tensor shape {shapes})")
    if isinstance(exc, (TypeError, AttributeError)):
        dtypes = ", ".join(str(getattr(a, "dtype", type(a).__name__)) for a in args)
        return DTypeError(f"{where}: {msg} (argument types/dtypes {dtypes})")
    if isinstance(exc, (ZeroDivisionError, OverflowError)):
        return ArgumentError(f"{where}: {msg} (input shapes {shapes})")
    return TinymetaError(f"{where}: {type(exc).__name__}: {msg} (input shapes {shapes})")


_CAUGHT = (ValueError, TypeError, IndexError, AttributeError, KeyError, ZeroDivisionError, OverflowError)


def guard(fn):
    """Decorator for public functions: a bare NumPy/Python error raised inside becomes the
    matching tinymeta error, naming the function and its inputs."""
    name = fn.__name__

    @functools.wraps(fn)
    def run(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TinymetaError:
            raise
        except _CAUGHT as exc:
            raise translate(name, args, exc) from exc
    return run


__all__ = [
    "TinymetaError", "ShapeError", "DTypeError", "IndexingError", "GraphError", "InplaceError",
    "AnomalyError", "GradcheckError", "CheckpointError", "ArgumentError", "TraceError", "NotFittedError",
    "MissingDependencyError", "DatasetError", "PrecisionWarning", "translate", "guard",
]


def __getattr__(name):
    # Old name, kept working for one release.
    if name == "IndexError_":
        warnings.warn("tinymeta.errors.IndexError_ is renamed IndexingError; the old name goes in "
                      "the next release", DeprecationWarning, stacklevel=2)
        return IndexingError
    raise AttributeError(f"module 'tinymeta.errors' has no attribute {name!r}")

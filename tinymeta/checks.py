"""Argument checks and random generators, shared by every layer (one place for each).

Every check names the function or class it guards, the argument and what it must be, and
returns the value in canonical form (a float, an int, a Generator). ``rng`` arguments all
mean the same thing everywhere: an int seed, a ``np.random.Generator``, or None for
tinymeta's global generator (reseeded by ``tm.manual_seed``).
"""
import numpy as np

from .errors import ArgumentError, DTypeError

_global_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed the generator used wherever no ``rng`` is given."""
    global _global_rng
    _global_rng = as_rng(seed)


def as_rng(rng=None) -> np.random.Generator:
    """An int seed, a Generator, or None (tinymeta's global generator) -> a Generator."""
    if rng is None:
        return _global_rng
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        if rng < 0:
            raise ArgumentError(f"rng: a seed must be a non-negative int, got {rng}")
        return np.random.default_rng(int(rng))
    raise DTypeError(f"rng must be an int seed, a np.random.Generator or None, got {type(rng).__name__}")


def _is_number(value):
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating))


def number(where: str, name: str, value, low: float | None = None, high: float | None = None,
           strict_low: bool = False) -> float:
    """``value`` as a float, if it is a finite number in [low, high) ((low, high) with
    ``strict_low``); else an ArgumentError saying so."""
    ok = _is_number(value) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict_low else value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        if low is None and high is None:
            want = "a finite number"
        elif high is None and low == 0:
            want = "a positive number" if strict_low else "a number >= 0"
        else:
            lo = "-inf" if low is None else low
            want = f"a number in {'(' if strict_low else '['}{lo}, {'inf' if high is None else high})"
        raise ArgumentError(f"{where}: {name} must be {want}, got {value!r}")
    return float(value)


def integer(where: str, name: str, value, minimum: int = 1) -> int:
    """``value`` as an int, if it is a whole number >= ``minimum``; else an ArgumentError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{where}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def low_high(where: str, name: str, value) -> tuple[float, float]:
    """A finite (low, high) pair with low <= high."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ArgumentError(f"{where}: {name} must be a (low, high) pair, got {value!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ArgumentError(f"{where}: {name} must be a finite (low, high) pair with low <= high, got {value!r}")
    return lo, hi

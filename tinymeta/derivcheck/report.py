"""The report a check returns: per input, the errors against each reference, the elements
that fail, the kinks set aside, and a hint."""
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import numpy as np

from ..errors import GradcheckError
from .plumbing import _MAX_SHOWN, _fmt_index


class Failure(NamedTuple):
    """One element where the hand value disagrees with the reference."""
    element: Tuple[int, ...]
    hand: float
    reference: float
    rel_error: float
    at_kink: bool = False   # at a kink, but the hand value lies outside both one-sided slopes


class Kink(NamedTuple):
    """One element where f is not differentiable: its one-sided slopes ``left``/``right``."""
    element: Tuple[int, ...]
    hand: float
    left: float
    right: float


class InputCheck:
    """The result for one input: its verdict, errors, the worst elements and a hint.

    Attributes: ``name``, ``shape``, ``ok``, ``rel_error`` (dict: reference -> largest relative
    error over the counted elements), ``checked`` (elements counted), ``failures`` (list of
    :class:`Failure`, worst first), ``kinks`` (list of :class:`Kink`), ``hint`` (str or None),
    and the arrays ``hand`` and ``reference`` (the best reference used), both of the input's shape.
    """

    def __init__(self, name: str, shape: Tuple[int, ...], hand: np.ndarray, reference: np.ndarray,
                 rel_error: Dict[str, float], checked: int, failures: List[Failure], kinks: List[Kink],
                 hint: Optional[str], shape_note: Optional[str] = None):
        self.name, self.shape, self.hand, self.reference = name, tuple(shape), hand, reference
        self.rel_error, self.checked, self.failures, self.kinks = rel_error, checked, failures, kinks
        self.hint, self.shape_note = hint, shape_note
        self.ok = not failures and shape_note is None

    def __repr__(self) -> str:
        return "\n".join(self._lines())

    def _lines(self) -> List[str]:
        errs = ", ".join(f"{v:.1e} vs {k}" for k, v in self.rel_error.items())
        head = f"  {self.name}, shape {self.shape}: {'ok' if self.ok else 'FAIL'}"
        lines = [head + (f"   max rel. error {errs}" if errs else "")]
        if self.shape_note:
            lines.append(f"    {self.shape_note}")
        if self.failures:
            lines.append(f"    {len(self.failures)} of {self.checked} elements wrong; worst:")
            lines.append(f"      {'element':<12}{'hand':>15}{'reference':>15}{'rel. error':>12}")
            for f in self.failures[:_MAX_SHOWN]:
                mark = "  (at a kink, outside both slopes)" if f.at_kink else ""
                lines.append(f"      {_fmt_index(f.element):<12}{f.hand:>15.6g}{f.reference:>15.6g}"
                             f"{f.rel_error:>12.1e}{mark}")
        if self.kinks:
            shown = ", ".join(_fmt_index(k.element) for k in self.kinks[:_MAX_SHOWN])
            more = ", ..." if len(self.kinks) > _MAX_SHOWN else ""
            k = self.kinks[0]
            lines.append(f"    {len(self.kinks)} element(s) at a kink, not counted: {shown}{more}")
            lines.append(f"      (f is not differentiable there, like a ReLU at 0: one-sided slopes "
                         f"e.g. {k.left:.4g} and {k.right:.4g}; the hand value {k.hand:.4g} lies "
                         "between them, so it is a valid subgradient)")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return lines


class DerivativeReport:
    """What a derivative check found. ``bool(report)`` is the verdict; ``print(report)`` reads it.

    Attributes: ``ok``, ``title`` (what was checked), ``references`` (the references used, e.g.
    ``["central differences", "tinymeta autodiff"]``), ``notes`` (why a reference was not used,
    precision warnings), ``precision`` ("float64" or "float32"), ``rtol``, ``eps`` (the
    finite-difference step scale) and ``inputs`` (one :class:`InputCheck` per checked input).
    ``report.raise_if_failed()`` raises ``tm.GradcheckError`` with the whole text.
    """

    def __init__(self, title: str, inputs: List[InputCheck], references: List[str],
                 notes: List[str], precision: str, rtol: float, eps: float):
        self.title, self.inputs, self.references, self.notes = title, inputs, references, notes
        self.precision, self.rtol, self.eps = precision, rtol, eps
        self.ok = all(c.ok for c in inputs)

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, key: Union[int, str]) -> InputCheck:
        """``report[0]`` or ``report["theta"]``: one input's result."""
        if isinstance(key, str):
            for c in self.inputs:
                if c.name == key or c.name.endswith(f"({key})"):
                    return c
            raise KeyError(f"no checked input named {key!r}; have {[c.name for c in self.inputs]}")
        return self.inputs[key]

    def __str__(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        lines = [f"{self.title}: {verdict}",
                 f"  references: {' and '.join(self.references)} ({self.precision}, "
                 f"step {self.eps:g} * max(1, |x|), rtol {self.rtol:g})"]
        lines += [f"  note: {n}" for n in self.notes]
        for c in self.inputs:
            lines += c._lines()
        return "\n".join(lines)

    __repr__ = __str__

    def raise_if_failed(self) -> "DerivativeReport":
        """Raise ``tm.GradcheckError`` carrying the report if the check failed; else return it."""
        if not self.ok:
            raise GradcheckError(str(self))
        return self

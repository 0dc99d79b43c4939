"""Sphinx configuration of tinymeta's API reference, built from the docstrings.

Build: ``python -m sphinx -W --keep-going -b html docs/api docs/api/_build`` (from the repo root).
"""
import os
import re
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

project = "tinymeta"
author = "tinymeta contributors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
suppress_warnings = ["ref.python"]  # several modules re-export the same names

# Annotations are written with these names (under ``from __future__ import annotations``):
# show the names, not NumPy's expansion of them into a page-long Union.
autodoc_type_aliases = {
    "ArrayLike": "numpy.typing.ArrayLike",
    "DTypeLike": "numpy.typing.DTypeLike",
    "Params": "tinymeta.optim.optimizers.Params",
    "LR": "tinymeta.optim.functional.LR",
    "Metrics": "tinymeta.train.Metrics",
    "Data": "tinymeta.meta.hypergrad.Data",
    "LossFn": "tinymeta.meta.hypergrad.LossFn",
}

# Sphinx 8-9 print an alias inside a union (``Tensor | ArrayLike``) by its repr,
# "TypeAliasForwardRef('numpy.typing.ArrayLike')" (sphinx-doc/sphinx#14004); print its name.
try:
    from sphinx.util.inspect import TypeAliasForwardRef
except ImportError:  # a Sphinx without the class has nothing to mend
    TypeAliasForwardRef = None
if TypeAliasForwardRef is not None:
    TypeAliasForwardRef.__repr__ = lambda self: self.name

# Docstrings write math as plain text, where |x| is an absolute value and |S_k| a size; to
# reStructuredText those are substitution references (and undefined ones are errors). Escape the
# bars outside ``literals`` before the docstring is parsed.
_LITERAL = re.compile(r"(``.+?``)")
_BARS = re.compile(r"(?<![\\|])\|(?=\S)([^|`]*?\S)\|(?!_)")


def _indent(line):
    return len(line) - len(line.lstrip())


def _escape_bars(app, what, name, obj, options, lines):
    block = None  # the indentation of the paragraph that opened a literal block (``::``)
    for i, line in enumerate(lines):
        if block is not None and line.strip() and _indent(line) <= block:
            block = None  # the literal block ended: its text is shown as written, so left alone
        if block is None and "|" in line:
            parts = _LITERAL.split(line)
            lines[i] = "".join(p if p.startswith("``") else _BARS.sub(r"\\|\1\\|", p) for p in parts)
        if block is None and line.rstrip().endswith("::"):
            block = _indent(line)


def setup(app):
    app.connect("autodoc-process-docstring", _escape_bars)

"""The tape: trace a computation once, read it as NumPy code, replay it without a graph.

``tm.trace(fn, *args)`` runs ``fn`` eagerly and records every primitive it executes, the
ones ``backward()`` and ``tm.grad(..., create_graph=True)`` run included: tinymeta's
derivative rules are themselves primitives, so the derivative program and the derivative of
the derivative are just more lines. The result is a ``Program``:

* ``prog(*args)`` replays it on new arrays of the same shapes and dtypes: one Python
  function calling each primitive's forward on plain arrays, with no Tensor, no graph and no
  per-op checks (dead code removed first);
* ``prog.source`` prints it as plain NumPy, one line per primitive, each derivative line
  naming the op whose rule it comes from: the derivative program, to read.

``tm.jit(fn)`` traces on the first call for each key (shapes, dtypes, Python arguments),
checks the replay against the eager result, and replays on later calls; once a program is
hot it fuses its chains of elementwise ops into compiled loops (``Program.fuse``, see
``fusion.py``), checked bit for bit against the unfused replay.

What a replay cannot follow is frozen at trace time: random numbers drawn inside ``fn``,
Python numbers, and arrays ``fn`` builds from its inputs by copying them (``np.asarray(x,
dtype=...)``): pass arrays of the dtype ``fn`` uses. What a replay would get silently wrong
is refused: ``.item()``, ``float()`` and ``bool()`` on a tensor while tracing (a Python branch
on the value would be frozen), and inputs of another shape or dtype.
"""
from .jit import jit, trace
from .program import Program

__all__ = ["trace", "jit", "Program"]

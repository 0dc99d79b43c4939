"""What every example shares: the same four command-line flags, an output folder, and a
one-line way to save a figure. Kept tiny on purpose: the examples themselves are the
teaching material, this is only plumbing.
"""
import argparse
import json
import os
import sys

import numpy as np

from tinymeta.threads import limit_blas_threads


def parse_args(name, description, extra=None, argv=None):
    """``--help``, ``--quick``, ``--out DIR`` (default tinymeta-output/<name>/), ``--seed``.

    ``extra(parser)`` may add example-specific flags. Returns the parsed namespace with
    ``args.out`` created and ``args.rng`` a seeded NumPy Generator.
    """
    parser = argparse.ArgumentParser(
        prog=f"{name}.py", description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test mode: a few seconds, fewer iterations and tasks")
    parser.add_argument("--out", default=os.path.join("tinymeta-output", name),
                        help=f"folder for the PNG plots (default: tinymeta-output/{name}/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    limit_blas_threads()  # small matrices: a second BLAS thread only spins (see tinymeta/threads.py)
    os.makedirs(args.out, exist_ok=True)
    args.rng = np.random.default_rng(args.seed)
    return args


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend when there is no display."""
    from tinymeta.plotting import pyplot as _pyplot
    return _pyplot()


def integer_ticks(fig):
    """Epochs, iterations and steps are counts: on a linear axis labelled with one of them,
    put ticks on whole numbers only (a few epochs would otherwise get ticks at 0.5, 1.5)."""
    from matplotlib.ticker import MaxNLocator
    for ax in fig.axes:
        label = ax.get_xlabel().lower()
        if ax.get_xscale() == "linear" and any(w in label for w in ("epoch", "iteration", "step")):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _describe(fig, filename):
    """What a figure shows, as JSON-ready data: titles, axis labels, ticks, legend labels.
    Written beside the PNGs when TINYMETA_PLOT_INDEX names a file (the tests read it)."""
    axes = []
    for ax in fig.axes:
        legend = ax.get_legend()
        axes.append(dict(title=ax.get_title(), xlabel=ax.get_xlabel(), ylabel=ax.get_ylabel(),
                         xscale=ax.get_xscale(), xticks=[float(t) for t in ax.get_xticks()],
                         xlim=[float(v) for v in ax.get_xlim()],
                         legend=[t.get_text() for t in legend.get_texts()] if legend else []))
    return dict(file=filename, suptitle=fig._suptitle.get_text() if fig._suptitle else "", axes=axes)


def savefig(fig, args, filename):
    """Save ``fig`` as a PNG in the output folder, close it, and say where it went."""
    integer_ticks(fig)
    index = os.environ.get("TINYMETA_PLOT_INDEX")
    if index:
        with open(index, "a") as f:
            f.write(json.dumps(_describe(fig, filename)) + "\n")
    path = os.path.join(args.out, filename)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    print(f"  wrote {path}")
    return path


def section(title):
    """A visible header, so the printed output reads like the file."""
    print(f"\n=== {title} " + "=" * max(3, 74 - len(title)))
    sys.stdout.flush()

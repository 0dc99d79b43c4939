"""Every example runs in --quick mode, prints its results and writes its plots.

Each example is a separate process, as a user would run it. New examples are picked up
by the glob. The whole file takes well under a minute and a half on two cores.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("[0-9]*.py"))

# Plot files only (no display), one BLAS thread (small matrices; a loaded machine).
ENV = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}


def test_examples_are_found():
    assert len(EXAMPLES) >= 11, f"expected the 11 examples in {EXAMPLES_DIR}, found {len(EXAMPLES)}"


def missing_data(script):
    """Why an example on real data cannot run here, or None (it then runs as the others)."""
    if script.stem.startswith("13_"):
        from tinymeta.data import fashion_mnist_dir
        if fashion_mnist_dir() is None:
            return ("Debian's package dataset-fashion-mnist is not installed and could not be installed "
                    "here (apt-get install dataset-fashion-mnist; .ci/run tries)")
    if script.stem.startswith("14_") and importlib.util.find_spec("mnist1d") is None:
        return "the optional package mnist1d is not installed (pip install 'tinymeta[mnist1d]')"
    return None


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_quick(script, tmp_path):
    reason = missing_data(script)
    if reason:
        pytest.skip(reason)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    pngs = list(out.glob("*.png"))
    assert pngs, f"{script.name} wrote no PNG into --out; it wrote {sorted(p.name for p in out.iterdir())}"
    for png in pngs:  # a real PNG, not an empty file
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png.name} is not a PNG"
    if script.stem.startswith("01_"):
        dot = (out / "graph.dot").read_text()
        assert dot.startswith("digraph") and "->" in dot


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_help_describes_the_example(script):
    # --help exits before any work, so this costs only the imports.
    proc = subprocess.run([sys.executable, str(script), "--help"], env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for flag in ("--quick", "--out", "--seed"):
        assert flag in proc.stdout
    first_line = script.read_text().split('"""')[1].strip().splitlines()[0]
    assert first_line in proc.stdout, "the description (the module docstring) is missing"

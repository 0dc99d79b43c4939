"""Every example runs in --quick mode, prints its results and writes its plots.

Each example is a separate process, as a user would run it. New examples are picked up
by the glob. The whole file takes well under a minute and a half on two cores.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("[0-9]*.py"))

# Plot files only (no display), one BLAS thread (small matrices; a loaded machine).
# PYTHONPATH: the examples import the tinymeta of this checkout, not another installed one.
ENV = {**os.environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}


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
    index = tmp_path / "plots.jsonl"  # _common.savefig describes every figure it saves here
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                          cwd=tmp_path, env={**ENV, "TINYMETA_PLOT_INDEX": str(index)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip(), f"{script.name} printed nothing"
    pngs = list(out.glob("*.png"))
    assert pngs, f"{script.name} wrote no PNG into --out; it wrote {sorted(p.name for p in out.iterdir())}"
    for png in pngs:  # a real PNG, not an empty file
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{png.name} is not a PNG"
    if script.stem.startswith("01_"):
        dot = (out / "graph.dot").read_text()
        assert dot.startswith("digraph") and "->" in dot
        assert "sent a=6, b=-4" in proc.stdout and "dL/dc = -2" in proc.stdout
    figures = [json.loads(line) for line in index.read_text().splitlines()]
    assert figures, "the example saved no figure through _common.savefig"
    check_figures(script.stem, figures)
    check_printed(script.stem, proc.stdout)


COUNTS = ("epoch", "iteration", "step")


def check_figures(stem, figures):
    """Plot faults a reader noticed: fractional ticks on count axes, "1 steps" in legends,
    a title that contradicts its axis label."""
    for fig in figures:
        for ax in fig["axes"]:
            xlabel = ax["xlabel"].lower()
            if ax["xscale"] == "linear" and any(w in xlabel for w in COUNTS):
                lo, hi = ax["xlim"]
                shown = [t for t in ax["xticks"] if lo <= t <= hi]
                assert all(float(t).is_integer() for t in shown), (fig["file"], xlabel, shown)
            for text in ax["legend"] + [ax["title"], ax["ylabel"], fig["suptitle"]]:
                assert not re.search(r"(?<![\d.])1 (steps|epochs|iterations|shots)\b", text), \
                    (fig["file"], text)
    if stem.startswith("07_"):
        sup = next(f for f in figures if f["file"] == "supervised_training_curve.png")
        ax = sup["axes"][0]
        assert "parameter" in ax["ylabel"] and "query" not in ax["ylabel"], ax


def check_printed(stem, out):
    assert not re.search(r"(?<![\d.])1 (steps|epochs|iterations)\b", out), "write '1 step'"
    if stem.startswith("05_"):
        # every epoch table prints its rows in increasing epoch order
        for block in out.split(f"{'epoch':>6} {'train MSE':>10}")[1:]:
            rows = [int(line.split()[0]) for line in block.splitlines()[1:]
                    if line.strip() and line.split()[0].isdigit()]
            assert rows and rows == sorted(rows) and len(set(rows)) == len(rows), rows
    if "diverged" in out:
        assert "Why " in out, "a 'diverged' entry must be explained"


USER_FACING = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*.py")),
               *sorted((ROOT / "tinymeta").rglob("*.py"))]


def test_no_user_facing_text_mentions_documents_users_do_not_have():
    offenders = []
    for path in USER_FACING:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"design doc|the documents\b|documents'", line, flags=re.I):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_example_06_explains_a_divergence_with_measurements(capsys, monkeypatch):
    """A Meta-SGD whose learned step sizes are too large for ten repeated steps: the
    example must say why its table reads "diverged", with the numbers it measured."""
    import importlib
    monkeypatch.syspath_prepend(str(EXAMPLES_DIR))
    ex06 = importlib.import_module("06_maml_sinusoid")
    from tinymeta import meta, nn
    learner = meta.MetaSGD(nn.MLP([1, 40, 40, 1], rng=0), inner_lr=0.2)
    ex06.explain_divergence("Meta-SGD", learner, meta.tasks.Sinusoid(k_support=10, k_query=10),
                            10, seed=5, n_tasks=10)
    out = capsys.readouterr().out
    assert "Why Meta-SGD shows 'diverged' after 10 steps" in out
    assert re.search(r"on [1-9]\d* of 10 tasks the loss on the task's own support points grows", out)
    assert "learned step sizes: median 0.2, max 0.2" in out and "2/curvature" in out


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

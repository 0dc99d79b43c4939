"""`tinymeta info` says truthfully whether numba is there, which version, and what
"compiled" counts (it used to print `numba_available: None, compiled: []` before --warm,
which read as "numba missing")."""
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _info(prelude="", env=None):
    code = f"{prelude}\nfrom tinymeta import cli\nraise SystemExit(cli.main(['info']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="numba is not installed")
def test_info_reports_numba_installed_with_its_version_before_any_kernel_ran():
    out = _info(env={"TINYMETA_JIT": "1"})
    assert f"numba: installed, version {importlib.metadata.version('numba')}" in out
    assert "None" not in out
    assert "kernels: on" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("compiled in this process:"))
    assert "0 of" in line and "first called" in line and "--warm" in line  # says what it means


def test_info_reports_numba_missing_when_it_is():
    # sys.modules[name] = None is how Python marks a module as not importable.
    out = _info("import sys; sys.modules['numba'] = None")
    assert "numba: not available" in out and "pip install numba" in out
    assert "kernels: off" in out


def test_info_with_jit_switched_off_says_so():
    out = _info(env={"TINYMETA_JIT": "0"})
    assert "kernels: off" in out and "TINYMETA_JIT=0" in out

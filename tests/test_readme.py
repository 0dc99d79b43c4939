"""The README's Python blocks run as written (a tour that does not run teaches nothing)."""
import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def _blocks():
    text = open(README, encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_blocks():
    assert len(_blocks()) >= 4


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, block in enumerate(_blocks()):
        if "defop(" in block:  # the op-table excerpt is illustration, not a program
            continue
        try:
            exec(compile(block, f"README block {i}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            pytest.fail(f"README python block {i} failed: {type(exc).__name__}: {exc}\n{block}")
    import numpy as np
    assert np.allclose(namespace["H"].numpy(), namespace["A"] + namespace["A"].T)
    assert abs(namespace["d3"].item() - (-0.5652092882597705)) < 1e-9
    assert (tmp_path / "curves.png").exists()

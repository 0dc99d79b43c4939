"""The package's shape: layers import downward only, with no cycle (imports inside functions
count too), and each derivative rule has one home (the op table)."""
import ast
import os

import pytest

PKG = os.path.join(os.path.dirname(__file__), "..", "tinymeta")

# Lower number = lower layer. A module may import its own layer or any lower one.
LAYERS = [
    ("errors", "checks", "threads", "plotting"),
    ("kernels",),
    ("tensor", "engine"),
    ("ops", "function", "creation", "gradcheck", "func", "linalg", "viz", "opcheck", "checkpoint", "derivcheck",
     "tape"),
    ("nn", "optim"),
    ("metrics", "data", "loop"),
    ("train", "learners"),
    ("meta",),
    ("cli", "__init__", "__main__"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules():
    """{dotted module name: path} for every .py file of the package."""
    out = {}
    for root, _, files in os.walk(PKG):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                rel = os.path.relpath(path, PKG)[:-3].replace(os.sep, ".")
                name = "tinymeta" if rel == "__init__" else "tinymeta." + rel.removesuffix(".__init__")
                out[name] = path
    return out


def _imports(name, path, known):
    """Every tinymeta module ``name`` imports, at any depth of its code."""
    is_pkg = path.endswith("__init__.py")
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tinymeta")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if not mod.startswith("tinymeta"):
                continue
            subs = {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known}
            # "from . import ops" imports the submodule ops (the package is already loading)
            found |= subs if subs and len(subs) == len(node.names) else subs | {mod}
    found.discard(name)
    return {m for m in found if m in known}


def _layer(mod):
    parts = mod.split(".")
    return RANK.get(parts[1] if len(parts) > 1 else "__init__")


def test_every_module_has_a_layer():
    missing = sorted(m for m in _modules() if _layer(m) is None)
    assert not missing, f"modules with no layer in tests/test_architecture.py LAYERS: {missing}"


def test_layers_import_downward_only():
    mods = _modules()
    upward = []
    for name, path in mods.items():
        for dep in _imports(name, path, mods):
            if name == "tinymeta" or dep == "tinymeta":
                continue  # the package's own lazy front door
            if _layer(dep) > _layer(name):
                upward.append(f"{name} imports {dep}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    mods = _modules()
    graph = {n: _imports(n, p, mods) - {"tinymeta"} for n, p in mods.items() if n != "tinymeta"}
    state, cycles = {}, []

    def visit(n, stack):
        state[n] = "open"
        for d in sorted(graph.get(n, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_engine_knows_no_op():
    """The engine is the graph and the backward pass only: the op table builds on it."""
    mods = _modules()
    deps = _imports("tinymeta.engine", mods["tinymeta.engine"], mods)
    assert deps <= {"tinymeta.errors", "tinymeta.tensor"}, deps
    deps = _imports("tinymeta.tensor", mods["tinymeta.tensor"], mods)
    assert deps <= {"tinymeta.errors"}, deps


@pytest.mark.parametrize("name", ["tinymeta.kernels._numpy", "tinymeta.kernels._numba"])
def test_kernels_hold_no_derivative_of_a_loss(name):
    """Kernels compute forwards and fused updates; softmax cross-entropy's derivative is the
    op table's (a kernel that also returned dlogits would be a second copy of it)."""
    import importlib
    import numpy as np
    if name.endswith("_numba"):
        pytest.importorskip("numba")
    mod = importlib.import_module(name)
    out = mod.softmax_xent(np.zeros((3, 4)), np.array([0, 1, 2]))
    assert isinstance(out, np.ndarray) and out.shape == (3,)

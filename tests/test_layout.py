"""The package's layering, written down: the library sits below the lab, and no module imports itself
through a cycle. Every import counts, module-level or inside a function (a function-local import hides
a cycle; it does not remove it)."""

from __future__ import annotations

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "mambaspike"

# Lower layers first; a package may import from its own layer and the layers before it.
LAYERS = [
    ("_version", "errors", "kernels"),
    ("neurons",),
    ("layers", "ssm"),
    ("models", "data"),
    ("training", "evaluation", "export"),
    ("lab", "bench"),
    ("cli", "__main__"),
]
LIBRARY = {"neurons", "layers", "ssm", "models", "kernels", "data", "errors", "_version"}
# Inside the middle layer: evaluation's observers and metrics are used by the trainer, and the
# report and robustness study read the trainer's run directories; the trainer must not need those.
ORDERED_WITHIN = {("training", "evaluation.report"), ("training", "evaluation.robustness")}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(name: str, source: str | None = None) -> set[str]:
    """Modules of this package that ``name`` imports anywhere in its file (or in ``source``)."""
    path = MODULES[name]
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


GRAPH = {m: imports_of(m) for m in MODULES}


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(name: str) -> int:
    for i, group in enumerate(LAYERS):
        if top(name) in group:
            return i
    raise AssertionError(f"{name}: its folder {top(name)!r} is in no layer of tests/test_layout.py")


@pytest.mark.parametrize("name", sorted(m for m in MODULES if top(m) != "__init__"))
def test_imports_stay_at_or_below_own_layer(name):
    mine = layer_of(name)
    up = sorted(t for t in GRAPH[name] if top(t) != "__init__" and layer_of(t) > mine)
    assert not up, f"{name} imports from a higher layer: {up}"
    if top(name) in LIBRARY:
        bad = sorted(t for t in GRAPH[name] if top(t) not in LIBRARY)
        assert not bad, f"library module {name} imports {bad} (the library never imports the harness or the lab)"
    if top(name) != "__init__":
        assert "mambaspike" not in GRAPH[name], f"{name} imports the package's public face (import the module itself)"


def test_ordered_within_a_layer():
    for low, high in ORDERED_WITHIN:
        for m in MODULES:
            if m.startswith(f"mambaspike.{low}"):
                bad = [t for t in GRAPH[m] if t.startswith(f"mambaspike.{high}")]
                assert not bad, f"{m} imports {bad}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over every import of every module."""
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_walk_sees_function_local_and_relative_imports():
    """So the tests above can fail: an upward import inside a function, and a relative one, are edges."""
    name = "mambaspike.neurons.modules"
    src = MODULES[name].read_text() + "\n\ndef _probe():\n    from mambaspike.training import trainer\n"
    assert "mambaspike.training.trainer" in imports_of(name, src)
    assert "mambaspike.layers.frontend" in imports_of(name, "from ..layers import frontend\n")
    assert "mambaspike.neurons.functional" in imports_of(name, "from .functional import lif_step\n")

"""The import graph: data -> zoo -> tuning -> serving, never upwards, and no cycles."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"data": 0, "zoo": 1, "tuning": 2, "serving": 3}


def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path], module_level_only: bool) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts as ``a.b`` when that is a module)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in known else node.module)
    return {name for name in names if name in known}


def test_no_module_imports_a_higher_layer():
    known = modules()
    upward = []
    for name, path in known.items():
        for target in imports(path, known, module_level_only=False):
            if LAYERS[target.split(".")[0]] > LAYERS[name.split(".")[0]]:
                upward.append(f"{name} -> {target}")
    assert not upward, upward


def test_no_import_cycles():
    known = modules()
    graph = {name: imports(path, known, module_level_only=True) - {name} for name, path in known.items()}
    # A package's own __init__ is imported before any of its modules; that edge is no cycle.
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for target in graph[node]:
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tuning.runstore import RunStore\n")
    known = {"tuning.runstore": ROOT / "tuning" / "runstore.py"}
    assert imports(module, known, module_level_only=False) == {"tuning.runstore"}
    assert imports(module, known, module_level_only=True) == set()

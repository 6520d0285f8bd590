"""The import graph and the command/library split.

Library layers, each importing only from the ones before it:
data -> zoo -> training -> tuning -> serving -> study, and cli (what the commands share) on top.
Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.

Commands are the modules run with ``python -m`` (every console script, the benchmarks and
``zoo.evaluate``). A command may import any library module, never another command; no library
module imports a command, parses flags, prints or exits.
"""

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"data": 0, "zoo": 1, "training": 2, "tuning": 3, "serving": 4, "study": 5, "cli": 6}
BENCHMARKS = {"data.bench", "zoo.bench", "tuning.bench", "serving.bench"}


def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def commands() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return {line.split(" = ")[1].split(":")[0] for line in scripts} | BENCHMARKS | {"zoo.evaluate"}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every project module ``path`` imports, anywhere in it (``from a import b`` counts as ``a.b``
    when that is a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in known else node.module)
    return {name for name in names if name in known}


def layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def test_every_command_is_a_module_with_a_main():
    known = modules()
    for command in commands():
        assert command in known, command
        source = known[command].read_text()
        assert ("def main(" in source or "import main" in source) and 'if __name__ == "__main__":' in source, command


def test_no_library_module_imports_a_higher_layer():
    known, entry = modules(), commands()
    upward = [f"{name} -> {target}" for name, path in known.items() if name not in entry
              for target in imports(path, known) if layer(target) > layer(name)]
    assert not upward, upward


def test_no_module_imports_a_command():
    known, entry = modules(), commands()
    found = [f"{name} -> {target}" for name, path in known.items() for target in imports(path, known) & entry
             if target != name]
    assert not found, found


def test_library_modules_parse_no_flags_print_nothing_and_never_exit():
    known, entry = modules(), commands()
    found = []
    for name, path in known.items():
        if name in entry or name.startswith("cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(alias.name == "argparse" for alias in node.names):
                found.append(f"{name}: imports argparse")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{name}:{node.lineno}: print")
            elif isinstance(node, ast.Attribute) and node.attr == "exit" and getattr(node.value, "id", "") == "sys":
                found.append(f"{name}:{node.lineno}: sys.exit")
    assert not found, found


def test_no_import_cycles_of_any_kind():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
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


def test_the_check_sees_imports_inside_functions_and_type_checking_blocks(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zoo.config\n"
                      "def f():\n    from training.runstore import RunStore\n")
    known = {"training.runstore": ROOT / "training" / "runstore.py", "zoo.config": ROOT / "zoo" / "config.py"}
    assert imports(module, known) == {"training.runstore", "zoo.config"}


def test_names_configs_and_family_specs_load_without_keras():
    import subprocess
    import sys

    code = ("import sys, zoo; zoo.resolve('3cnn5fc-ELU-1alpha'); zoo.names('bncnn*'); "
            "import training.config, tuning.spaces, cli.flags; print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False False", result.stderr[-800:]

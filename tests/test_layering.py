"""The import graph and the command/library split.

Library layers, each importing only from the ones before it:
data -> zoo -> training -> tuning -> serving -> study, and the commands (``cli``) above them all.
Every import counts: at module level, inside functions and under ``TYPE_CHECKING``.

A command (its parser and ``main``) lives in ``cli/<command>.py``. The module a user runs
(``python -m tuning.search``) is an entry point: a few lines that hand over to its command, and
the only kind of module in a library package that may import upward. No library module imports
``cli``, parses flags, prints or exits; library modules import at their top, and only the
commands (which load the library once their flags are checked) and the helpers of optional
extras import inside functions.
"""

import ast
import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"data": 0, "zoo": 1, "training": 2, "tuning": 3, "serving": 4, "study": 5, "cli": 6}
# What the command layer shares (the rest of cli/ is one module per command).
CLI_SHARED = {"cli", "cli.runner", "cli.flags"}
# Libraries that may be imported inside a function, each behind one helper that names what to
# install or says why it waits: the app's web stack, the benchmarks' librosa, the figures'
# matplotlib and W&B, the export formats' converters and runtimes. TensorFlow waits in two places:
# the command runner loads it quietly, and the pretrained checkpoints are read with it only when a
# pretrained model is built (so a model built on JAX or PyTorch needs no TensorFlow). int8 tagging
# needs the ONNX extra's onnx and onnxruntime (its quantizer).
EXTRAS = {"fastapi", "uvicorn", "python_multipart", "librosa", "matplotlib", "wandb", "onnx", "onnxruntime",
          "ai_edge_litert", "openvino"}
MAX_DEFERRED_IMPORTS = 27
DEFERRED_TENSORFLOW = {"cli.runner", "zoo.pretrained"}
# Ways out of the process that skip the command runner's one-line error and exit status.
EXITS = {("exit", "sys"), ("_exit", "os"), ("abort", "os")}
# The one allowed: a forked worker whose launcher already died leaves before it runs any Python
# cleanup (tuning.distributed's parent-death hook, run between fork and exec).
CHILD_EXITS = {("tuning.distributed", "_exit")}


def modules() -> dict[str, Path]:
    found = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def entry_point_target(path: Path) -> str | None:
    """The ``cli`` command an entry-point module hands over to, or None if ``path`` is not one.

    An entry point is exactly: a docstring, ``import sys``, ``from cli.<command> import main`` and
    ``if __name__ == "__main__": sys.exit(main())``.
    """
    body = ast.parse(path.read_text()).body
    if len(body) != 4 or not (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
        return None
    imports_sys = isinstance(body[1], ast.Import) and [a.name for a in body[1].names] == ["sys"]
    hand_over = body[2]
    if not (imports_sys and isinstance(hand_over, ast.ImportFrom) and (hand_over.module or "").startswith("cli.")
            and [a.name for a in hand_over.names] == ["main"]):
        return None
    if ast.unparse(body[3]) != "if __name__ == '__main__':\n    sys.exit(main())":
        return None
    return hand_over.module


def entry_points() -> dict[str, str]:
    """Every ``python -m`` module a user runs -> the ``cli`` command it hands over to."""
    found = {}
    for name, path in modules().items():
        if not name.startswith("cli") and (target := entry_point_target(path)) is not None:
            found[name] = target
    return found


def commands() -> set[str]:
    """The command modules: ``cli/<command>.py``."""
    return {name for name in modules() if name.startswith("cli.") and name not in CLI_SHARED}


def console_scripts() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
    return {name: target.split(":")[0] for name, target in (line.split(" = ") for line in lines)}


def dynamic_imports(tree: ast.AST) -> list[ast.Call]:
    """Calls of ``importlib.import_module``, ``import_module`` or ``__import__`` in ``tree``."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
        or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))]


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every project module ``path`` imports, anywhere in it (``from a import b`` counts as ``a.b``
    when that is a module).

    A module that imports by name at run time (``importlib.import_module``, ``__import__``) is
    taken to import every project module named by a string in it: a table of lazy exports counts
    as its imports.
    """
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names.add(full if full in known else node.module)
    if dynamic_imports(tree):
        names.update(node.value for node in ast.walk(tree)
                     if isinstance(node, ast.Constant) and isinstance(node.value, str))
    return {name for name in names if name in known}


def deferred_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, top-level module)`` of each import statement inside a function of ``path``."""
    found = []

    def visit(node, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if in_function and isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name.split(".")[0]) for alias in child.names)
            elif in_function and isinstance(child, ast.ImportFrom):
                found.append((child.lineno, (child.module or "").split(".")[0]))
            visit(child, inside)

    visit(ast.parse(path.read_text()), False)
    return found


def layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def library_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, entry points left out."""
    known, entries = modules(), entry_points()
    return {name: imports(path, known) - {name} for name, path in known.items() if name not in entries}


def test_every_command_has_an_entry_point_and_every_console_script_runs_a_command():
    entries, scripts = entry_points(), console_scripts()
    assert set(entries.values()) == commands(), set(entries.values()) ^ commands()
    assert set(scripts.values()) <= commands(), set(scripts.values()) - commands()
    # Every console command has the name a user knows from python -m.
    assert {script.removeprefix("gtzan-") for script in scripts} <= {c.removeprefix("cli.") for c in commands()}
    for command in commands():
        source = modules()[command].read_text()
        assert "def main(" in source and "def build_parser(" in source, command


def test_only_entry_points_import_the_commands():
    known, entries = modules(), entry_points()
    found = [f"{name} -> {target}" for name, path in known.items() if not name.startswith("cli")
             and name not in entries for target in imports(path, known) if target.startswith("cli")]
    assert not found, found


def test_no_library_module_imports_a_higher_layer():
    upward = [f"{name} -> {target}" for name, targets in library_graph().items() for target in targets
              if layer(target) > layer(name)]
    assert not upward, upward


def test_no_command_imports_another():
    graph, commands_ = library_graph(), commands()
    found = [f"{name} -> {target}" for name in commands_ for target in graph[name] & commands_]
    assert not found, found


def test_the_folder_level_graph_runs_one_way():
    edges = {(name.split(".")[0], target.split(".")[0]) for name, targets in library_graph().items()
             for target in targets}
    back = sorted(f"{a} -> {b}" for a, b in edges if a != b and LAYERS[b] > LAYERS[a])
    assert not back, back


def test_library_modules_parse_no_flags_print_nothing_and_never_exit():
    found, entries = [], entry_points()
    for name, path in modules().items():
        if name.startswith("cli") or name in entries:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import) and any(alias.name == "argparse" for alias in node.names):
                found.append(f"{name}: imports argparse")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                found.append(f"{name}:{node.lineno}: print")
            elif (isinstance(node, ast.Attribute) and (node.attr, getattr(node.value, "id", "")) in EXITS
                  and (name, node.attr) not in CHILD_EXITS):
                found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, found


def test_every_run_time_import_names_a_project_module_or_an_extra():
    """What a module imports by name at run time is a string the checks above can see."""
    known, found = modules(), []
    for name, path in known.items():
        tree = ast.parse(path.read_text())
        targets = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                   and isinstance(node.value, str) and node.value in known}
        for call in dynamic_imports(tree):
            argument = call.args[0] if call.args else None
            literal = isinstance(argument, ast.Constant) and isinstance(argument.value, str)
            if literal and argument.value.split(".")[0] not in (*LAYERS, *EXTRAS):
                found.append(f"{name}:{call.lineno} imports {argument.value}")
            elif not literal and not targets:
                found.append(f"{name}:{call.lineno} imports a computed name that names no project module")
    assert not found, found


def test_imports_wait_only_in_commands_and_behind_an_extra():
    """Library modules import at their top; a command defers loading the library until its flags
    are checked (one import of it), and an optional extra waits until it is used."""
    known, commands_ = modules(), commands()
    deferred = {name: deferred_imports(path) for name, path in known.items()}
    total = sum(len(found) for found in deferred.values())
    assert total <= MAX_DEFERRED_IMPORTS, {name: found for name, found in deferred.items() if found}
    wrong = [f"{name}:{line} imports {module}" for name, found in deferred.items() for line, module in found
             if not (name in commands_ and module in LAYERS) and not (name in DEFERRED_TENSORFLOW and module == "tensorflow")
             and module not in EXTRAS]
    assert not wrong, wrong
    per_command = {name: len(found) for name, found in deferred.items() if name in commands_ and len(found) > 1}
    assert not per_command, per_command


def test_no_import_cycles_of_any_kind():
    graph = library_graph()
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


def test_the_checks_see_imports_inside_functions_and_type_checking_blocks(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import zoo.config\n"
                      "def f():\n    from training.runstore import RunStore\n    g = lambda: __import__('x')\n"
                      "    import matplotlib.pyplot\n")
    known = {"training.runstore": ROOT / "training" / "runstore.py", "zoo.config": ROOT / "zoo" / "config.py"}
    assert imports(module, known) == {"training.runstore", "zoo.config"}
    assert deferred_imports(module) == [(5, "training"), (7, "matplotlib")]
    # A table of lazy exports imported by name at run time counts as importing what it names.
    lazy = tmp_path / "lazy.py"
    lazy.write_text("import importlib\nTABLE = {'RunStore': 'training.runstore'}\n"
                    "def __getattr__(name):\n    return getattr(importlib.import_module(TABLE[name]), name)\n")
    assert imports(lazy, known) == {"training.runstore"}


def test_the_entry_point_check_refuses_a_module_that_does_more(tmp_path):
    good = '"""Doc."""\n\nimport sys\n\nfrom cli.search import main\n\nif __name__ == "__main__":\n    sys.exit(main())\n'
    (tmp_path / "good.py").write_text(good)
    (tmp_path / "more.py").write_text(good + "\nX = 1\n")
    (tmp_path / "other.py").write_text(good.replace("from cli.search import main", "from tuning.searching import main"))
    assert entry_point_target(tmp_path / "good.py") == "cli.search"
    assert entry_point_target(tmp_path / "more.py") is None
    assert entry_point_target(tmp_path / "other.py") is None


def test_names_configs_and_family_specs_load_without_keras():
    code = ("import sys, zoo; zoo.resolve('3cnn5fc-ELU-1alpha'); zoo.names('bncnn*'); "
            "import training.config, tuning.spaces, cli.flags, serving.config, study.config, tuning.tables; "
            "print('keras' in sys.modules, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False False", result.stderr[-800:]

"""docs/commands.md is every command's --help as its parser says it, and README sends users there."""

import re

from tests import reference
from tests.test_layering import entry_points


def test_every_command_is_in_the_reference():
    modules = set(entry_points()) - {"serving.evaluate"}  # zoo.evaluate's other name
    assert set(reference.COMMANDS) == modules
    assert all(entry_points()[module] == command for module, command in reference.COMMANDS.items())


def test_the_reference_is_what_the_parsers_say(capsys):
    assert reference.main(["--check"]) == 0, capsys.readouterr().err
    text = reference.REFERENCE.read_text()
    assert "--patience PATIENCE" in text and "--audio-dir" in text and "--wandb-project" in text


def test_readme_names_only_flags_its_commands_have():
    """Every ``python -m MODULE ... --flag`` line of README uses flags that command has."""
    readme = (reference.ROOT / "README.md").read_text()
    helps = {module: reference.help_text(module, command) for module, command in reference.COMMANDS.items()}
    helps["serving.evaluate"] = helps["zoo.evaluate"]
    checked = 0
    for line in readme.splitlines():
        found = re.search(r"python -m ([a-z]+\.[a-z]+)\b(.*)", line)
        if not found or found[1] not in helps:
            continue
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", found[2].split("#")[0].split("`")[0]):
            if found[1] == "tuning.bench" and flag not in helps[found[1]]:
                continue  # passed on to the runs it times
            assert flag in helps[found[1]], f"README: python -m {found[1]} has no {flag}: {line.strip()}"
            checked += 1
    assert checked > 100
    assert "docs/commands.md" in readme


def test_every_measured_figure_names_its_command_and_machine():
    from tests import figures

    text = figures.FIGURES.read_text()
    found = figures.sections(text)
    assert found and set(found) <= {figure.name for figure in figures.FIGURES_LIST}
    for name, section in found.items():
        command = next(f.command for f in figures.FIGURES_LIST if f.name == name).split()[:3]
        assert " ".join(command) in section, name
        assert re.search(r"^Measured \d{4}-\d\d-\d\d: \d+ s wall", section, re.M), name
        assert re.search(r"^Machine: .+ \d+ cores", section, re.M), name
    assert "docs/figures.md" in (reference.ROOT / "README.md").read_text()

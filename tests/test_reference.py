"""The documentation stays true: generated parts are current, flags exist, links resolve, figures are linked.

docs/commands.md is every command's --help as its parser says it; the results tables are what their
CSVs say; every flag README and the docs give a command exists; every link resolves; no page types
a timing that docs/figures.md holds.
"""

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


# The pages a reader reads (the generated reference and the measured figures are checked apart).
PAGES = [page for page in reference.PAGES if page.name not in ("commands.md", "figures.md")]


def test_the_pages_name_only_flags_their_commands_have():
    """Every ``python -m MODULE ... --flag`` line of README and the docs uses flags that command has."""
    helps = {module: reference.help_text(module, command) for module, command in reference.COMMANDS.items()}
    helps["serving.evaluate"] = helps["zoo.evaluate"]
    checked = 0
    for page in PAGES:
        for line in page.read_text().splitlines():
            for command in re.split(r"&&|;", line):  # a line may chain commands
                found = re.search(r"python -m ([a-z]+\.[a-z]+)\b(.*)", command)
                if not found or found[1] not in helps:
                    continue
                for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", found[2].split("#")[0].split("`")[0]):
                    if found[1] == "tuning.bench" and flag not in helps[found[1]]:
                        continue  # passed on to the runs it times
                    assert flag in helps[found[1]], f"{page.name}: python -m {found[1]} has no {flag}: {line.strip()}"
                    checked += 1
    assert checked > 100
    assert "docs/commands.md" in (reference.ROOT / "README.md").read_text()


def slug(heading: str) -> str:
    """A Markdown heading's anchor, as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page) -> set[str]:
    text = page.read_text()
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)} | set(re.findall(r'<a id="([\w-]+)"></a>', text))


def test_every_link_between_the_pages_resolves_to_a_file_and_an_anchor():
    checked = 0
    for page in [*PAGES, reference.ROOT / "CHANGELOG.md"]:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.name}: link to a missing file: {target}"
            if anchor:
                assert anchor in anchors(resolved), f"{page.name}: link to a missing anchor: {target}"
            checked += 1
    assert checked > 50


def test_no_page_types_a_timing_or_a_benchmark_figure():
    """Latencies, rates, speed-ups and measured durations live in docs/figures.md; the pages link there."""
    measured = re.compile(r"\b\d[\d,]*(?:\.\d+)?\s?(?:ms|(?:clips|windows|samples|requests|files|trials)/s|GFLOP/s)\b"
                          r"|\b\d+\.\d+x\b|(?<!every )\b\d+\.\d+ s\b|\b\d+\.\d+ (?:minutes|min)\b")
    for page in PAGES + [reference.ROOT / "CHANGELOG.md"]:
        text = reference.TABLE.sub("", page.read_text())  # generated tables hold CSV columns
        found = measured.findall(text)
        assert not found, f"{page.name} types {found}: link to its section of docs/figures.md instead"


def test_the_readme_is_a_front_door():
    readme = (reference.ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for name in ("LICENSE", "NOTICE", "CITATION.cff", "CHANGELOG.md", "docs/model-card.md", "docs/api.md"):
        assert (reference.ROOT / name).is_file() and name in readme, name


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


def test_every_link_to_a_figure_names_a_figure():
    names = {figure.name for figure in __import__("tests.figures", fromlist=["FIGURES_LIST"]).FIGURES_LIST}
    linked = set()
    for page in PAGES:
        linked |= set(re.findall(r"figures\.md#([a-z][\w-]*)", page.read_text()))
    assert linked and linked <= names, linked - names

"""The distribution: dependencies declared once, the version from one place, the wheel installs and runs (slow)."""

import ast
import configparser
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

import data
from tests.test_layering import LAYERS, entry_points

ROOT = Path(__file__).resolve().parents[1]
# Each console command and the python -m module that runs the same command.
COMMANDS = {"gtzan-search": "tuning.search", "gtzan-study": "tuning.study", "gtzan-train": "tuning.train",
            "gtzan-crossval": "tuning.crossval", "gtzan-report": "tuning.report", "gtzan-evaluate": "serving.evaluate",
            "gtzan-predict": "serving.predict", "gtzan-app": "serving.app", "gtzan-embed": "serving.embed",
            "gtzan-inspect": "data.inspect", "gtzan-resample": "data.resample", "gtzan-list": "zoo.list",
            "gtzan-synthetic": "data.synthetic", "gtzan-cache": "data.cache"}


DISTRIBUTION = "gtzan-keras"


def declared() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """setup.cfg's install_requires and its extras, as requirements."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")

    def parse(text: str) -> list[Requirement]:
        lines = (line.split("#")[0].strip() for line in text.strip().splitlines())
        return [Requirement(line) for line in lines if line]

    extras = {name: parse(value) for name, value in config["options.extras_require"].items()}
    return parse(config["options"]["install_requires"]), extras


def expand(extras: dict[str, list[Requirement]], names: set[str]) -> list[Requirement]:
    """What installing the project with the extras ``names`` asks for: the extras that name the project
    again (``gtzan-keras[app,onnx]``) are followed."""
    found, todo, seen = [], list(names), set()
    while todo:
        if (name := todo.pop()) in seen:
            continue
        seen.add(name)
        for requirement in extras[name]:
            if canonicalize_name(requirement.name) == DISTRIBUTION:
                todo += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def requirements_extras() -> set[str]:
    """The extras requirements.txt installs the project with; it must name nothing else."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    extras = set()
    for line in lines:
        match = re.fullmatch(r"(?:-e )?\.(?:\[([a-z,]+)\])?", line)
        assert match, f"requirements.txt may only install this project with extras (-e .[test]). Received: {line!r}"
        extras |= set((match[1] or "").split(",")) - {""}
    return extras


def test_requirements_txt_installs_the_project_and_declares_nothing_of_its_own():
    _, extras = declared()
    assert requirements_extras() and requirements_extras() <= set(extras)


def test_every_dependency_is_declared_once():
    base, extras = declared()
    seen: dict[str, str] = {}
    for where, requirements in [("install_requires", base), *extras.items()]:
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            if name == DISTRIBUTION:
                assert set(requirement.extras) <= set(extras) and not requirement.specifier, (where, requirement)
                continue
            # The gpu extra is TensorFlow again, with its CUDA libraries: in the same range.
            if where == "gpu" and name == "tensorflow":
                assert str(requirement.specifier) == str(next(r for r in base if r.name == "tensorflow").specifier)
                continue
            assert name not in seen, f"{name} is declared in {seen[name]} and again in {where}"
            seen[name] = where
            assert requirement.specifier, f"{name} ({where}) needs a version range known to work"
            # A local version label (2.13.0+cpu) is hosted by no public index.
            assert "+" not in str(requirement.specifier), f"{requirement} names a local version"
    # "all" is every extra but the GPU's.
    assert {r.name for r in expand(extras, {"all"})} == {r.name for r in expand(extras, set(extras) - {"all", "gpu"})}


def third_party_imports() -> set[str]:
    """The top-level modules the project and its tests import that are neither the project's nor Python's."""
    ours = set(LAYERS) | {"tests"}
    found = set()
    for path in [*(p for package in ours for p in (ROOT / package).rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - ours - set(sys.stdlib_module_names) - {"__future__"}


def installed_closure(requirements: list[Requirement]) -> set[str]:
    """The distributions ``requirements`` bring in, following each installed distribution's own requirements."""
    found, todo = set(), [(r, frozenset(r.extras)) for r in requirements]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        try:
            below = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in below:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in extras or {""}):
                todo.append((child, frozenset(child.extras)))
    return found


def test_the_test_extra_alone_provides_every_import_of_the_project_and_its_tests():
    base, extras = declared()
    provided = installed_closure(base + expand(extras, requirements_extras()))
    by_module = metadata.packages_distributions()
    missing = {module: by_module.get(module, ["(not installed)"]) for module in third_party_imports()
               if not {canonicalize_name(d) for d in by_module.get(module, [])} & provided}
    assert not missing, f"imported but not brought in by install_requires or the test extra: {missing}"


def test_every_extra_the_code_tells_users_to_install_exists():
    _, extras = declared()
    named = set()
    for path in (p for package in LAYERS for p in (ROOT / package).rglob("*.py")):
        named |= set(re.findall(r"install_extra\([\"']([\w-]+)[\"']\)", path.read_text()))
    # install_extra(name) with a format's name: every format with a runtime of its own is an extra.
    from serving.config import FORMAT_RUNTIMES

    named |= set(FORMAT_RUNTIMES)
    assert {"app", "bench"} <= named and named <= set(extras), named - set(extras)


def test_readme_asks_for_pytorchs_cpu_build_in_the_torch_extras_range():
    _, extras = declared()
    (torch,) = extras["torch"]
    found = re.findall(r'pip install "torch([^"]*)" --index-url https://download\.pytorch\.org/whl/cpu',
                       (ROOT / "README.md").read_text())
    assert found and all(SpecifierSet(spec) == torch.specifier for spec in found), found


def test_console_commands_are_the_python_m_commands():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = dict(line.split(" = ") for line in config["options.entry_points"]["console_scripts"].strip().splitlines())
    entries = entry_points()
    assert scripts == {name: f"{entries[module]}:main" for name, module in COMMANDS.items()}
    assert config["metadata"]["version"] == "attr: data.__version__"


@pytest.mark.parametrize("module", ["tuning.search", "data.inspect", "zoo.list", "serving.predict"])
def test_version_flag(module):
    result = subprocess.run([sys.executable, "-m", module, "--version"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().endswith(f"(gtzan-keras) {data.__version__}")


@pytest.mark.slow
def test_wheel_installs_into_a_new_environment_and_runs_from_elsewhere(tmp_path):
    # Built from a copy: setuptools leaves build/ and *.egg-info beside the sources it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "runs", "exports", "reports", "build",
                                                                "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                    str(source)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("gtzan_keras-*.whl"))
    top_level = {Path(name).parts[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {p for p in top_level if not p.endswith(".dist-info")} == {"data", "zoo", "training", "tuning", "serving",
                                                                        "study", "cli"}
    assert "serving/static/index.html" in zipfile.ZipFile(wheel).namelist()
    # The packages of the environment running the tests stay visible, so nothing is downloaded:
    # system_site_packages alone would show the base interpreter's, not a virtual environment's.
    venv.create(tmp_path / "env", system_site_packages=True, with_pip=True)
    python = tmp_path / "env" / "bin" / "python"
    env_site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (Path(env_site) / "outer_environment.pth").write_text("\n".join(outer) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)], check=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    inspect = subprocess.run([tmp_path / "env" / "bin" / "gtzan-inspect", "--help"], cwd=elsewhere,
                             capture_output=True, text=True)
    assert inspect.returncode == 0 and "DATA_DIR" in inspect.stdout
    listed = subprocess.run([python, "-m", "zoo.list", "bncnn*", "--window-seconds", "0.5"], cwd=elsewhere,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and "bncnn-32-64-128-256" in listed.stdout, listed.stderr[-500:]
    where = subprocess.run([python, "-c", "import zoo; print(zoo.__file__)"], cwd=elsewhere, capture_output=True, text=True)
    assert str(tmp_path / "env") in where.stdout

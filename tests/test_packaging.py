"""The distribution: the version comes from one place, and the wheel installs and runs (slow)."""

import configparser
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import data
from tests.test_layering import entry_points

ROOT = Path(__file__).resolve().parents[1]
# Each console command and the python -m module that runs the same command.
COMMANDS = {"gtzan-search": "tuning.search", "gtzan-study": "tuning.study", "gtzan-train": "tuning.train",
            "gtzan-crossval": "tuning.crossval", "gtzan-report": "tuning.report", "gtzan-evaluate": "serving.evaluate",
            "gtzan-predict": "serving.predict", "gtzan-app": "serving.app", "gtzan-embed": "serving.embed",
            "gtzan-inspect": "data.inspect", "gtzan-resample": "data.resample", "gtzan-list": "zoo.list",
            "gtzan-synthetic": "data.synthetic", "gtzan-cache": "data.cache"}


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

import re
import subprocess
import sys
from pathlib import Path

from cli import list as list_cli
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]


def test_list_prints_names_params_and_descriptions(capsys):
    assert list_cli.main(["3fcLayers*", "--window-seconds", "0.5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["name", "params"]
    assert [line.split()[0] for line in lines[1:]] == ["3fcLayers-512-256", "3fcLayers-1024-512", "3fcLayers-2048-1024"]
    assert all("dense net" in line for line in lines[1:])


def test_list_names_the_pretrained_weights_and_their_licence(capsys):
    assert list_cli.main(["vgg*", "--window-seconds", "5"]) == 0  # the VGGs are counted at 3 s
    out = capsys.readouterr().out
    assert "vgg-msd" in out and "[pretrained: MSD_vgg weights]" in out and "Million Song Dataset" in out
    assert "pretrained weights of vgg: ISC" in out and "musicnn 0.1.0" in out
    # The AudioSet backbones are counted without their checkpoints (none is downloaded to list them).
    assert list_cli.main(["panns*"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^panns-cnn14 +79,710,538 ", out, re.M) and "pretrained weights of panns: MIT" in out


def test_list_unknown_pattern_exits_2():
    result = subprocess.run([sys.executable, "-m", "zoo.list", "resnet*"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert "no registered model matches 'resnet*'" in error_line(result.stderr)


def test_bench_rejects_bad_flags_and_names():
    from cli import bench_zoo as bench

    result = subprocess.run([sys.executable, "-m", "zoo.bench", "--steps", "0"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--steps" in error_line(result.stderr)
    assert bench.main(["--models", "nonsense", "--steps", "1", "--window-seconds", "0.2"]) == 2


def test_bench_names_a_backend_that_is_not_installed(monkeypatch, capsys):
    import importlib.util

    from cli import bench_zoo as bench

    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "jax" else found(name, *rest))
    assert bench.main(["--backends", "tensorflow", "jax"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        '--backends: the jax backend needs jax, not installed: python -m pip install -e ".[jax]" in the project '
        "folder (the jax extra)")


def test_recommended_is_one_line_a_model_and_its_recipe_and_the_readme_trains_it():
    import zoo
    from training.config import RECIPES

    result = subprocess.run([sys.executable, "-m", "zoo.list", "--recommended"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
    name, recipe = result.stdout.split()
    assert zoo.resolve(name).name == name and recipe in RECIPES
    readme = (ROOT / "README.md").read_text()
    assert f"python -m tuning.train {name} --recipe {recipe} --data-dir ~/datasets/gtzan" in readme
    assert f"python -m tuning.crossval {name} --recipe {recipe} --data-dir ~/datasets/gtzan --folds 5" in readme

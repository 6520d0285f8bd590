"""docs/api.md: its Python examples run, in order, exactly as written (on the synthetic set)."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"


def examples() -> list[str]:
    """The ``python`` code blocks of docs/api.md, in order."""
    return re.findall(r"```python\n(.*?)```", API.read_text(), re.S)


def test_the_api_page_has_examples_of_training_evaluation_prediction_and_crossvalidation():
    code = "\n".join(examples())
    for call in ("zoo.build_model(", "loop.train_run(", "evaluate_target(", "predict_file(", "crossvalidate("):
        assert call in code, call


def test_the_api_examples_run_as_one_script(tmp_path):
    script = tmp_path / "api_examples.py"
    script.write_text("\n".join(examples()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("completed ") for line in lines), result.stdout[-2000:]
    assert (tmp_path / "runs" / "api" / "trials" / "bncnn" / "model.keras").is_file()
    assert list((tmp_path / "exports" / "bncnn-32-64-128-256").glob("*/saved_model.pb"))
    assert (tmp_path / "runs" / "api-crossval" / "results.json").is_file()

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import inspect as inspect_cli
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]


def test_report_lists_every_unreadable_file_once(broken_copy, capsys):
    root, expected = broken_copy
    assert inspect_cli.main([str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clips"] == 60 and report["genres"]["jazz"] == 6
    assert report["sample_rates"] == {"22050": 60} and report["channels"] == {"1": 60}
    assert report["total_seconds"] == pytest.approx(240.0)
    names = [Path(item["path"]).name for item in report["unreadable"]]
    assert sorted(names) == sorted(expected)


def test_text_report(marsyas_gtzan, capsys):
    assert inspect_cli.main([str(marsyas_gtzan)]) == 0
    out = capsys.readouterr().out
    assert "total           30" in out and "2.00 to 2.20 s per clip" in out and "unreadable files: 0" in out


@pytest.mark.parametrize("make", ["missing", "empty", "no_audio"])
def test_unusable_input_exits_2_with_one_line(tmp_path, make):
    target = tmp_path / "d"
    if make != "missing":
        target.mkdir()
    if make == "no_audio":
        (target / "rock").mkdir()
        (target / "rock" / "rock.00000.wav").write_text("not audio")
    result = subprocess.run(
        [sys.executable, "-m", "data.inspect", str(target)], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    last = error_line(result.stderr)
    assert last.startswith("python -m data.inspect: error:") and str(target) in last


def test_the_data_loggers_level_is_restored_after_a_report(broken_copy, capsys):
    """The report lists unreadable files itself; the warnings it silences meanwhile come back after."""
    import logging

    root, _ = broken_copy
    logger = logging.getLogger("data")
    logger.setLevel(logging.INFO)
    try:
        assert inspect_cli.main([str(root)]) == 0
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(logging.NOTSET)
    assert "unreadable files: 4" in capsys.readouterr().out

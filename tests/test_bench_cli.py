"""Error paths of the benchmark commands (the benchmarks themselves are scripts, not tests)."""

import pytest

from cli import bench_data as data_bench
from cli import bench_serving, bench_tuning
from tests.errors import error_line


def test_data_bench_rejects_bad_flags_and_folders(tmp_path, capsys):
    assert data_bench.main(["--clips", "0"]) == 2
    assert "--clips" in error_line(capsys.readouterr().err)
    assert data_bench.main(["--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    # Without librosa the command says so; with it, it names the missing folder.
    assert len(err.splitlines()) == 1 and ("librosa is not installed" in err or str(tmp_path / "missing") in err)


def test_serving_bench_without_an_export(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bench_serving.main([]) == 2
    assert "no exported model under exports/" in error_line(capsys.readouterr().err)
    assert bench_serving.main(["--repeats", "0"]) == 2


def test_tuning_bench_flags_and_a_bad_data_dir(tmp_path, capsys):
    assert bench_tuning.main(["--workers", "1"]) == 2
    assert "--workers must be at least 2" in error_line(capsys.readouterr().err)
    assert bench_tuning.main(["--data-dir", str(tmp_path / "missing"), "--max-trials", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data directory not found" in err[0]


@pytest.mark.slow
def test_tuning_bench_times_both_runs_and_compares_the_trials(tiny_gtzan, capsys):
    assert bench_tuning.main(["--max-trials", "2", "--epochs", "1", "--window-seconds", "1", "--batch-size", "16",
                              "--data-dir", str(tiny_gtzan)]) == 0
    out = capsys.readouterr().out
    assert "cnn search, 2 trials: 1 worker " in out and "windows/s" in out and "per worker" in out
    assert ": identical" in out

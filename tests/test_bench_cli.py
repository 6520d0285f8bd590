"""Error paths of the benchmark commands (the benchmarks themselves are scripts, not tests)."""

import pytest

from data import bench as data_bench
from serving import bench as bench_serving


def test_data_bench_rejects_bad_flags_and_folders(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        data_bench.main(["--clips", "0"])
    assert info.value.code == 2 and "--clips" in capsys.readouterr().err
    assert data_bench.main(["--data-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    # Without librosa the command says so; with it, it names the missing folder.
    assert len(err.splitlines()) == 1 and ("librosa is not installed" in err or str(tmp_path / "missing") in err)


def test_serving_bench_without_an_export(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert bench_serving.main([]) == 2
    assert "no exported model under exports/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_serving.main(["--repeats", "0"])

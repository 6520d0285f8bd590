from data import sources


def test_resolve_prefers_flag_then_env_then_synthetic(tmp_path, monkeypatch):
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GTZAN_DIR", str(tmp_path / "env"))
    assert sources.resolve_data_dir(str(tmp_path / "flag")) == (tmp_path / "flag", False)
    assert sources.resolve_data_dir(None) == (tmp_path / "env", False)
    monkeypatch.delenv("GTZAN_DIR")
    monkeypatch.setattr(sources, "DEFAULT_SYNTHETIC", {"clips_per_genre": 1, "seconds": 0.5, "seed": 3})
    folder, synthetic = sources.resolve_data_dir(None)
    assert synthetic and folder.parent == tmp_path / "cache"
    assert len(list(folder.glob("*/*.wav"))) == 10
    stamp = (folder / "rock" / "rock.00000.wav").stat().st_mtime_ns
    assert sources.resolve_data_dir(None)[0] == folder  # generated once, then reused
    assert (folder / "rock" / "rock.00000.wav").stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [folder.name]  # no staging left

"""python -m data.resample: a band-limited copy of a labelled folder, and its error paths."""

import numpy as np
import soundfile

from data import resample
from data.catalogue import scan


def _band(path, low, high):
    audio, rate = soundfile.read(str(path), dtype="float32")
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    hz = np.fft.rfftfreq(audio.size, 1 / rate)
    return spectrum[(hz >= low) & (hz < high)].sum(), audio.size, rate


def test_copy_has_no_band_above_half_the_rate(broken_copy, tmp_path, capsys):
    source, _ = broken_copy  # genres_original/ layout, broken files in jazz/
    target = tmp_path / "copy16k"
    assert resample.main([str(source), str(target), "--rate", "16000"]) == 0
    out = capsys.readouterr().out
    catalogue = scan(source)
    assert f"{len(catalogue.clips)} clips through 16000 Hz" in out and f"{len(catalogue.problems)} unreadable" in out
    copy = scan(target)
    assert [c.clip_id for c in copy.clips] == [c.clip_id for c in catalogue.clips] and not copy.problems
    original, copied = catalogue.clips[0].path, target / catalogue.clips[0].genre / f"{catalogue.clips[0].clip_id}.wav"
    high_before, length, _ = _band(original, 8200, 11025)
    high_after, copied_length, rate = _band(copied, 8200, 11025)
    low_before, low_after = _band(original, 100, 7000)[0], _band(copied, 100, 7000)[0]
    assert rate == 22050 and copied_length == length
    assert high_after < 1e-3 * high_before and abs(low_after / low_before - 1) < 0.02


def test_resample_error_paths(tiny_gtzan, tmp_path, capsys):
    assert resample.main([str(tiny_gtzan), str(tmp_path / "c"), "--rate", "44100"]) == 2
    assert "--rate must be from 1000 to 22049 Hz" in capsys.readouterr().err
    assert resample.main([str(tmp_path / "none"), str(tmp_path / "c")]) == 2
    assert "data directory not found" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert resample.main([str(tiny_gtzan), str(tmp_path / "full")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert resample.main([str(tiny_gtzan), str(tiny_gtzan / "copy")]) == 2
    assert "inside the source" in capsys.readouterr().err

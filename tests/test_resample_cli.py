"""python -m data.resample: a band-limited copy of a labelled folder, and its error paths."""

import numpy as np
import soundfile

from cli import resample
from data.catalogue import scan
from tests.errors import error_line


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
    assert "--rate must be from 1000 to 22049 Hz" in error_line(capsys.readouterr().err)
    assert resample.main([str(tmp_path / "none"), str(tmp_path / "c")]) == 2
    assert "data directory not found" in error_line(capsys.readouterr().err)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    assert resample.main([str(tiny_gtzan), str(tmp_path / "full")]) == 2
    assert "is not empty" in error_line(capsys.readouterr().err)
    assert resample.main([str(tiny_gtzan), str(tiny_gtzan / "copy")]) == 2
    assert "inside the source" in error_line(capsys.readouterr().err)


def test_a_killed_copy_resumes_with_every_file_whole(tiny_gtzan, tmp_path):
    """kill -9 in the middle of the copy, then the same command again: every clip whole, none twice."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "copy"
    command = [sys.executable, "-m", "data.resample", str(tiny_gtzan), str(target), "--rate", "8000"]
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(target.rglob("*.wav"))) < 5:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = sorted(target.rglob("*.wav"))
    assert 5 <= len(finished) < 60, "the copy should have been stopped in the middle"
    stamps = {path: os.stat(path).st_mtime_ns for path in finished}
    # A clip being written when the process died is left under a temporary name.
    (target / finished[0].parent.name / ".half.wav.tmp").write_bytes(b"RIFF")

    rerun = subprocess.run(command, cwd=root, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} of them written by an earlier run" in rerun.stdout
    assert {path: os.stat(path).st_mtime_ns for path in finished} == stamps  # kept, not written again
    assert not list(target.rglob("*.tmp"))
    source, copy = scan(tiny_gtzan), scan(target)
    assert [c.clip_id for c in copy.clips] == [c.clip_id for c in source.clips] and not copy.problems
    for clip in source.clips:
        original = soundfile.info(str(clip.path))
        copied = soundfile.info(str(target / clip.genre / f"{clip.clip_id}.wav"))
        assert (copied.frames, copied.samplerate) == (original.frames, 22050)


def test_a_copy_of_another_source_or_rate_is_not_written_into(tiny_gtzan, tmp_path, capsys):
    target = tmp_path / "copy"
    assert resample.main([str(tiny_gtzan), str(target), "--rate", "16000"]) == 0
    capsys.readouterr()
    assert resample.main([str(tiny_gtzan), str(target), "--rate", "8000"]) == 2
    assert "through 16000 Hz; choose another folder" in error_line(capsys.readouterr().err)
    assert resample.main([str(tiny_gtzan), str(target), "--rate", "16000"]) == 0  # finished: nothing to write
    assert "(60 of them written by an earlier run)" in capsys.readouterr().out

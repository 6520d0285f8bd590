from pathlib import Path

import pytest

from data.catalogue import GTZAN_GENRES, DataError, scan


def test_scan_finds_genres_in_fixed_order(tiny_gtzan):
    catalogue = scan(tiny_gtzan)
    assert catalogue.genres == GTZAN_GENRES
    assert len(catalogue.clips) == 60
    assert catalogue.problems == ()
    assert {c.codec for c in catalogue.clips} == {"wav"}
    for clip in catalogue.clips:
        assert clip.clip_id.startswith(clip.genre + ".")
        assert GTZAN_GENRES[clip.label] == clip.genre


def test_scan_accepts_parent_of_genres_original_and_reports_broken_files(broken_copy):
    root, expected = broken_copy
    catalogue = scan(root)
    assert catalogue.root == root / "genres_original"
    reasons = {Path(p.path).name: p.reason for p in catalogue.problems}
    assert set(reasons) == set(expected)
    for name, start in expected.items():
        assert reasons[name].startswith(start), reasons[name]
    assert len(catalogue.clips) == 60  # every good file is still used
    assert not any(c.clip_id in ("jazz.00054", "jazz.00090") for c in catalogue.clips)


def test_scan_marsyas_layout_decodes_au_in_graph(marsyas_gtzan):
    catalogue = scan(marsyas_gtzan)
    assert catalogue.root.name == "genres"
    assert len(catalogue.clips) == 30
    assert {c.codec for c in catalogue.clips} == {"au"}


def test_other_class_names_use_sorted_folders(tmp_path, tiny_gtzan):
    for name in ("zebra", "apple"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.1.wav").write_bytes((tiny_gtzan / "rock" / "rock.00000.wav").read_bytes())
    assert scan(tmp_path).genres == ("apple", "zebra")


def test_other_formats_go_through_soundfile(tmp_path, tiny_gtzan):
    import soundfile

    audio, rate = soundfile.read(tiny_gtzan / "pop" / "pop.00000.wav")
    (tmp_path / "pop").mkdir()
    soundfile.write(tmp_path / "pop" / "a.flac", audio, rate)
    soundfile.write(tmp_path / "pop" / "b.wav", audio, 44100, subtype="PCM_24")
    soundfile.write(tmp_path / "pop" / "c.wav", audio, rate, subtype="FLOAT")
    codecs = {c.clip_id: c.codec for c in scan(tmp_path).clips}
    assert codecs == {"a": "soundfile", "b": "soundfile", "c": "soundfile"}


@pytest.mark.parametrize("make", ["missing", "file", "empty", "no_audio"])
def test_unusable_folders_raise_one_line_errors(tmp_path, make):
    target = tmp_path / "data"
    if make == "file":
        target.write_text("x")
    elif make == "empty":
        target.mkdir()
    elif make == "no_audio":
        (target / "blues").mkdir(parents=True)
        (target / "blues" / "blues.00000.wav").write_bytes(b"")
    with pytest.raises(DataError, match=str(target).replace("\\", "\\\\")) as info:
        scan(target)
    assert "\n" not in str(info.value)

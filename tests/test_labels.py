"""Datasets labelled by a file: a path,label[,split] CSV and FMA's tracks.csv, on an FMA-shaped tree of
44.1-kHz stereo MP3s with a broken file, a track without a genre and a listed track that is missing."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cli import evaluate, inspect, predict, train
from data.catalogue import scan
from data.config import DataConfig
from data.labels import LabelsError, read_labels
from data.splits import make_split
from data.synthesis import render_clip
from tests.errors import error_line

GENRES = ("Rock", "Electronic", "Hip-Hop")
SPLITS = ["training"] * 4 + ["validation", "test"]


def write_mp3(path: Path, genre: str, seed: int) -> None:
    """A 4-s clip of synthetic music as FMA has it: MP3, 44.1 kHz, stereo."""
    mono = render_clip(genre, 4.0, np.random.default_rng(seed)).astype(np.float32)
    at_44k = np.repeat(mono, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, np.stack([at_44k, 0.9 * at_44k], axis=1), 44100, format="MP3")


@pytest.fixture(scope="module")
def fma(tmp_path_factory) -> Path:
    """``fma_small/`` (numbered folders of MP3s) and ``fma_metadata/tracks.csv`` as FMA ships them."""
    root = tmp_path_factory.mktemp("fma")
    audio = root / "fma_small"
    rows, track = [], 2
    synthetic = {"Rock": "rock", "Electronic": "disco", "Hip-Hop": "hiphop"}
    for g, genre in enumerate(GENRES):
        for i, split in enumerate(SPLITS):
            track += 1 + g  # ids with gaps, across folders 000 and 001
            if g == 2 and i == 0:
                track += 1000
            write_mp3(audio / f"{track:06d}"[:3] / f"{track:06d}.mp3", synthetic[genre], track)
            rows.append((track, split, "small" if i < 5 else "medium", genre))
    broken = audio / "000" / "000099.mp3"  # FMA has known broken MP3s
    broken.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(300))
    rows.append((99, "training", "small", "Rock"))
    write_mp3(audio / "000" / "000098.mp3", "jazz", 98)
    rows.append((98, "training", "small", ""))  # no genre_top: several top genres
    rows.append((97, "training", "small", "Rock"))  # listed, no file
    rows.append((96, "training", "large", "Rock"))  # large only
    metadata = root / "fma_metadata"
    metadata.mkdir()
    with open(metadata / "tracks.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["", "album", "set", "set", "track", "track"])
        out.writerow(["", "id", "split", "subset", "genre_top", "title"])
        out.writerow(["track_id", "", "", "", "", ""])
        for track, split, subset, genre in rows:
            out.writerow([track, 1, split, subset, genre, f"title, with a comma {track}"])
    return root


def test_tracks_csv_is_recognised_and_its_subsets_nest(fma):
    kind, entries = read_labels(fma / "fma_metadata" / "tracks.csv", "small")
    assert kind == "fma" and len(entries) == 3 * 5 + 3
    assert entries[0].path == "000/000003.mp3" and entries[0].label == "Rock" and entries[0].split == "train"
    assert len(read_labels(fma / "fma_metadata" / "tracks.csv", "medium")[1]) == 3 * 6 + 3
    assert len(read_labels(fma / "fma_metadata" / "tracks.csv")[1]) == 3 * 6 + 4


def test_scan_leaves_out_the_broken_the_unlabelled_and_the_missing_once(fma, caplog):
    catalogue = scan(fma / "fma_small", fma / "fma_metadata" / "tracks.csv", "medium")
    assert catalogue.genres == ("Electronic", "Hip-Hop", "Rock")
    assert len(catalogue.clips) == 18 and {c.codec for c in catalogue.clips} == {"soundfile"}
    reasons = {Path(p.path).name: p.reason for p in catalogue.problems}
    assert set(reasons) == {"000099.mp3", "000098.mp3", "000097.mp3"}
    assert "no label in tracks.csv" in reasons["000098.mp3"] and "but missing" in reasons["000097.mp3"]
    assert sum("skipping" in r.message for r in caplog.records) == 3
    split = make_split(catalogue.clips, DataConfig(data_dir=str(fma), split="dataset", labels="x"))
    assert split.sizes() == {"train": 12, "valid": 3, "test": 3}


def test_train_evaluate_and_predict_on_fma(fma, tmp_path, capsys):
    labels = str(fma / "fma_metadata" / "tracks.csv")
    assert train.main(["2cnn-16-16-1fc", "--data-dir", str(fma / "fma_small"), "--labels", labels, "--subset",
                       "medium", "--split", "dataset", "--out", str(tmp_path / "runs"), "--window-seconds", "1",
                       "--epochs", "1", "--wandb", "disabled"]) == 0
    trial = tmp_path / "runs" / "train" / "trials" / "2cnn-16-16-1fc"
    config = json.loads((trial / "config.json").read_text())
    assert config["data"]["labels"] == labels and config["data"]["subset"] == "medium"
    assert evaluate.main([str(trial), "--exports", str(tmp_path / "exports"), "--out", str(tmp_path / "e"),
                          "--json"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["test_clips"] == 3 and list(metrics["per_genre"]) == ["Electronic", "Hip-Hop", "Rock"]
    capsys.readouterr()
    mp3 = fma / "fma_small" / "000" / "000003.mp3"
    assert predict.main([str(mp3), "--model", str(tmp_path / "exports" / "2cnn-16-16-1fc"), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert answer["seconds"] == pytest.approx(4.0, abs=0.1) and answer["top"][0]["genre"] in GENRES


def test_a_labels_csv_with_missing_duplicate_and_escaping_paths(tiny_gtzan, tmp_path, capsys):
    files = sorted(tiny_gtzan.rglob("*.wav"))
    labels = tmp_path / "labels.csv"
    rows = ["path,label,split"] + [f"{f.relative_to(tiny_gtzan)},{f.parent.name},{'train' if i % 3 else 'test'}"
                                   for i, f in enumerate(files)]
    rows += [f"{files[0].relative_to(tiny_gtzan)},blues,train", "gone/missing.wav,jazz,train",
             "../outside.wav,jazz,train", f"{files[1].relative_to(tiny_gtzan)},,train"]
    labels.write_text("\n".join(rows) + "\n")
    catalogue = scan(tiny_gtzan, labels)
    assert len(catalogue.clips) == len(files) and len(catalogue.problems) == 4
    reasons = " | ".join(p.reason for p in catalogue.problems)
    assert "listed twice in labels.csv (lines 2 and" in reasons and "but missing" in reasons
    assert "outside the data folder" in reasons
    # A split column without a valid part: the dataset split says which clip lacks one.
    with pytest.raises(Exception, match="the labels file puts no usable clip in valid"):
        make_split(catalogue.clips, DataConfig(data_dir=str(tiny_gtzan), split="dataset", labels=str(labels)))
    bad = tmp_path / "bad.csv"
    bad.write_text("a.wav,blues,holdout\n")
    with pytest.raises(LabelsError, match="line 1: unknown split 'holdout'; expected train, valid or test"):
        read_labels(bad)
    with pytest.raises(LabelsError, match="--subset applies to FMA's tracks.csv"):
        read_labels(labels, "small")
    assert inspect.main([str(tiny_gtzan), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "split (labels file): train" in out and "hours" in out and "unreadable files: 4" in out


def test_label_flags_are_checked(tiny_gtzan, tmp_path, capsys):
    assert train.main(["2cnn-16-16-1fc", "--data-dir", str(tiny_gtzan), "--labels", str(tmp_path / "none.csv")]) == 2
    assert error_line(capsys.readouterr().err).endswith(f"--labels not found: {tmp_path / 'none.csv'}")
    assert evaluate.main(["best", "--labels", str(tmp_path)]) == 2
    assert "--labels goes with --test-dir" in error_line(capsys.readouterr().err)

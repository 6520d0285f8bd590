"""The decoded-audio cache on disk: the same training as the memory cache, resumable, invalidated per file,
chosen by the memory budget."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cli import train
from data import audiocache
from data.audiocache import CacheConfig
from data.catalogue import scan
from data.decode import decode_path
from data.pipeline import decoded_dataset, eval_inputs, fill_disk_cache

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--window-seconds", "1", "--epochs", "2", "--batch-size", "16", "--wandb", "disabled"]


@pytest.fixture()
def disk_cache(tmp_path):
    """The disk cache in a fresh folder for the test, then the default configuration again."""
    audiocache.configure(CacheConfig("disk", folder=str(tmp_path / "audio")))
    yield audiocache.current().root
    audiocache.configure(CacheConfig())


def entries(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in root.rglob("*.pcm")}


def test_memory_and_disk_caches_train_the_same_model(tiny_gtzan, tmp_path):
    losses = {}
    for mode in ("memory", "disk"):
        assert train.main(["2cnn-16-16-1fc", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path / mode), "--cache",
                           mode, "--cache-dir", str(tmp_path / "audio"), *FAST]) == 0
        history = json.loads((tmp_path / mode / "train" / "trials" / "2cnn-16-16-1fc" / "history.json").read_text())
        losses[mode] = (history["loss"], history["val_loss"])
    audiocache.configure(CacheConfig())
    assert losses["disk"] == losses["memory"]  # the same windows in the same order, to the bit
    assert len(entries(tmp_path / "audio")) == 50  # the training and validation clips (training reads no test clip)


@pytest.mark.parametrize("window_seconds", [1.0, 5.0])  # 5 s: every 4-s clip zero-padded
def test_training_windows_from_disk_are_the_memory_cache_windows(tiny_gtzan, disk_cache, window_seconds):
    from data.pipeline import DiskClips, train_dataset

    clips = scan(tiny_gtzan).clips[::3]
    batches = {}
    for name, source in (("memory", None), ("disk", DiskClips.of(clips))):
        if source is None:
            audiocache.configure(CacheConfig("memory"))
            source = decoded_dataset(clips)
        windows = train_dataset(source, window_seconds=window_seconds, batch_size=8, seed=5, shuffle_buffer=6)
        batches[name] = [(x.numpy(), y.numpy()) for x, y in windows.repeat(2)]
    assert len(batches["disk"]) == len(batches["memory"]) == 6
    for (x_disk, y_disk), (x_memory, y_memory) in zip(batches["disk"], batches["memory"]):
        np.testing.assert_array_equal(x_disk, x_memory)
        np.testing.assert_array_equal(y_disk, y_memory)


def test_disk_entries_hold_what_the_decoder_gives_and_evaluation_streams_them(tiny_gtzan, disk_cache):
    clips = scan(tiny_gtzan).clips[:12]
    paths = fill_disk_cache(clips)
    for clip, path in zip(clips, paths):
        expected = np.round(decode_path(clip.path, clip.codec) * 32768).clip(-32768, 32767).astype(np.int16)
        np.testing.assert_array_equal(np.fromfile(path, "<i2"), expected)
    streamed = [audio for audio, _, _ in decoded_dataset(clips).as_numpy_iterator()]
    assert [a.size for a in streamed] == [np.fromfile(p, "<i2").size for p in paths]
    windows, labels, index = eval_inputs(clips, window_seconds=1.0)
    assert not isinstance(windows, np.ndarray) and len(labels) == len(index) == 12 * 4
    assert sum(int(batch.shape[0]) for batch in windows) == 48


def test_a_changed_file_invalidates_its_own_entry_only(tiny_gtzan, tmp_path, disk_cache):
    copy = tmp_path / "data"
    for genre in ("jazz", "metal"):
        (copy / genre).mkdir(parents=True)
        for file in sorted((tiny_gtzan / genre).glob("*.wav"))[:3]:
            (copy / genre / file.name).write_bytes(file.read_bytes())
    clips = scan(copy).clips
    fill_disk_cache(clips)
    before = entries(disk_cache)
    time.sleep(0.01)
    changed = Path(clips[1].path)
    audio, rate = soundfile.read(changed, dtype="int16")
    soundfile.write(changed, audio // 2, rate, subtype="PCM_16")
    fill_disk_cache(scan(copy).clips)
    after = entries(disk_cache)
    assert set(before) < set(after) and len(after) == len(before) + 1
    assert all(after[path] == mtime for path, mtime in before.items())  # nothing else rewritten


KILLED_FILL = r"""
import sys
from data import audiocache
from data.audiocache import CacheConfig
from data.catalogue import scan
from data.pipeline import fill_disk_cache
audiocache.configure(CacheConfig("disk", folder=sys.argv[2]))
fill_disk_cache(scan(sys.argv[1]).clips)
"""


def test_a_killed_first_pass_keeps_whole_entries_and_a_rerun_completes_it(tmp_path):
    from data.synthesis import generate

    data = tmp_path / "data"
    generate(data, clips_per_genre=6, seconds=20.0, seed=3)
    root = tmp_path / "audio" / audiocache.DECODING
    process = subprocess.Popen([sys.executable, "-c", KILLED_FILL, str(data), str(tmp_path / "audio")], cwd=ROOT,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 120
    while time.time() < deadline and len(entries(root)) < 5:
        time.sleep(0.05)
    process.kill()
    process.wait()
    written = entries(root)
    assert 5 <= len(written) < 60, "the pass should have been stopped in the middle"
    for path in written:  # never half-written: 20 s of int16 samples, whole
        assert path.stat().st_size == 20 * 22050 * 2
    audiocache.configure(CacheConfig("disk", folder=str(tmp_path / "audio")))
    try:
        fill_disk_cache(scan(data).clips)
    finally:
        audiocache.configure(CacheConfig())
    completed = entries(root)
    assert len(completed) == 60 and all(completed[path] == mtime for path, mtime in written.items())
    assert not list(root.rglob("*.tmp"))


FILL = r"""
import logging, sys
from data import audiocache
from data.audiocache import CacheConfig
from data.catalogue import scan
from data.pipeline import fill_disk_cache
logging.basicConfig(level=logging.INFO, format="%(message)s")
audiocache.configure(CacheConfig("disk", folder=sys.argv[2]))
fill_disk_cache(scan(sys.argv[1]).clips)
"""


def test_workers_filling_one_cache_at_once_decode_each_clip_once(tiny_gtzan, tmp_path):
    workers = [subprocess.Popen([sys.executable, "-c", FILL, str(tiny_gtzan), str(tmp_path / "audio")], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
               for _ in range(3)]
    said = [line for worker in workers for line in worker.communicate(timeout=300)[1].splitlines()
            if line.startswith("decoding ")]
    assert all(worker.returncode == 0 for worker in workers)
    assert len(said) == 1 and said[0].startswith("decoding 60 clips into ")
    assert len(entries(tmp_path / "audio")) == 60


def test_auto_chooses_disk_under_a_tiny_budget_and_says_so(tiny_gtzan, tmp_path, caplog):
    assert train.main(["2cnn-16-16-1fc", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path / "runs"),
                       "--memory-budget-gb", "0.001", "--cache-dir", str(tmp_path / "audio"), *FAST]) == 0
    audiocache.configure(CacheConfig())
    said = [r.getMessage() for r in caplog.records if "decoded audio of the" in r.getMessage()]
    # Once, for both parts: the training clips as int16 and the validation windows as float32.
    assert said == [f"decoded audio of the 50 training and validation clips: 10.6 MB, over the 1.0 MB memory "
                    f"budget: kept in a disk cache in {tmp_path / 'audio' / audiocache.DECODING} (--cache, "
                    "--memory-budget-gb)"]
    assert len(entries(tmp_path / "audio")) > 0


def test_cache_flags_are_checked(tiny_gtzan, capsys):
    from tests.errors import error_line

    assert train.main(["2cnn-16-16-1fc", "--data-dir", str(tiny_gtzan), "--memory-budget-gb", "0"]) == 2
    assert error_line(capsys.readouterr().err).endswith("--memory-budget-gb must be positive, got 0.0")

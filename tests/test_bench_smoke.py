"""Every benchmark command runs to success on tiny inputs and prints figures it measured.

The figures are only read back to check they are figures (finite, positive where they count
things): a benchmark's numbers belong to the machine it runs on, never to a test.
"""

from __future__ import annotations

import math
import re

import pytest

from cli import bench_data, bench_serving, bench_tuning, bench_zoo, evaluate, search

NUMBER = r"(?<![\w.])([-+]?\d+(?:\.\d+)?|nan|inf)"  # not the 50 of "p50"


def figures(line: str) -> list[float]:
    """The numbers printed on ``line``."""
    return [float(value) for value in re.findall(NUMBER, line)]


def line_with(out: str, start: str) -> str:
    """The one printed line that starts with ``start`` (after spaces)."""
    found = [line for line in out.splitlines() if line.strip().startswith(start)]
    assert len(found) == 1, f"expected one line starting {start!r} in:\n{out}"
    return found[0]


def measured(out: str, start: str) -> float:
    """The first figure after ``start`` on its line, checked to be a finite positive number."""
    value = figures(line_with(out, start).split(start, 1)[1])[0]
    assert math.isfinite(value) and value > 0, f"{start!r} printed {value}"
    return value


@pytest.fixture(scope="module")
def export(tiny_gtzan, tmp_path_factory):
    """An export of a one-trial, one-epoch search on the tiny set."""
    work = tmp_path_factory.mktemp("bench")
    assert search.main(["--space", "cnn", "--data-dir", str(tiny_gtzan), "--out", str(work / "runs"), "--epochs", "1",
                        "--max-trials", "1", "--window-seconds", "1", "--wandb", "disabled"]) == 0
    assert evaluate.main(["best", "--runs", str(work / "runs"), "--exports", str(work / "exports")]) == 0
    (folder,) = (work / "exports").iterdir()
    return folder


def test_data_bench_times_every_path_on_a_few_clips(tiny_gtzan, capsys):
    pytest.importorskip("librosa", reason="data.bench needs librosa (the 'bench' extra)")
    assert bench_data.main(["--data-dir", str(tiny_gtzan), "--clips", "4"]) == 0
    out = capsys.readouterr().out
    assert "(4 clips timed)" in out
    for path in ("from the cache, STFT alone:", "from the cache, log-mel:", "project decode + log-mel:",
                 "librosa load + mel + dB:", "speed-up over librosa:"):
        measured(out, path)
    print(out)


def test_zoo_bench_times_one_model_with_and_without_xla(capsys):
    assert bench_zoo.main(["--models", "3cnn-32-64-128-2fc-128", "--window-seconds", "1", "--batch-size", "2",
                           "--steps", "1", "--n-mels", "32"]) == 0
    out = capsys.readouterr().out
    assert measured(out, "float32 matmul rate:") > 0
    rows = [line.split() for line in out.splitlines() if line.startswith("3cnn-32-64-128-2fc-128")]
    assert [row[1:3] for row in rows] == [["tensorflow", "graph"], ["tensorflow", "XLA"]]
    for row in rows:
        gflop, rate = figures(" ".join(row[3:]))[:2]
        assert gflop > 0 and rate > 0
    assert max(row[-1] for row in rows) == "1.00x"  # each rate as a fraction of the best
    print(out)


def test_zoo_bench_measures_another_backend_in_its_own_process(capsys):
    pytest.importorskip("torch")
    assert bench_zoo.main(["--models", "3cnn-32-64-128-2fc-128", "--window-seconds", "1", "--batch-size", "2",
                           "--steps", "1", "--n-mels", "32", "--backends", "torch", "--blocks"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("3cnn-32-64-128-2fc-128 ")]
    assert [row[1:3] for row in rows] == [["torch", "eager"], ["torch", "torch.compile"]]
    for row in rows:  # FLOPs and ratios are TensorFlow's figures: not measured without it
        assert row[3] == "-" and float(row[4]) > 0 and row[-1] == "-"
    blocks = out[out.index("forward pass of a batch of 2"):].splitlines()
    assert blocks[1].split() == ["block", "torch"]
    assert [line.split()[0] for line in blocks[2:]] == ["log_mel", "conv1_pool", "conv2_pool", "conv3_pool",
                                                        "probabilities", "total"]
    assert float(blocks[-1].split()[1]) > 0
    print(out)


def test_serving_bench_times_an_export(export, capsys):
    assert bench_serving.main(["--model", str(export), "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"model: {export}") and "(TensorFlow " in out.splitlines()[0]
    for figure in ("load time:", "latency, one 30-s clip:", "throughput, 32 x 30 s:", "peak memory:"):
        measured(out, figure)
    print(out)


def test_serving_bench_over_http_sends_real_uploads(export, tmp_path, capsys):
    # An empty --audio-dir: the 30-s clips are synthetic music, and the benchmark says so.
    assert bench_serving.main(["--model", str(export), "--http", "--clients", "2", "--requests", "4",
                               "--max-seconds", "60", "--audio-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"30-s clips of synthetic music ({tmp_path} holds too little)" in out
    measured(out, "model called directly, one 30-s clip:")
    for clients in ("HTTP, 1 client", "HTTP, 2 clients"):
        line = line_with(out, clients)
        assert line.endswith("errors 0"), line
        requests, seconds, per_second, p50, p95 = map(float, re.search(
            r"(\d+) requests in +([\d.]+) s: +([\d.]+) req/s, p50 +([\d.]+) ms, p95 +([\d.]+) ms", line).groups())
        assert requests >= 1 and seconds > 0 and per_second > 0 and 0 < p50 <= p95
    print(out)


def test_serving_bench_hostile_clients_get_answers(export, capsys):
    assert bench_serving.main(["--model", str(export), "--hostile", "--clients", "2"]) == 0
    out = capsys.readouterr().out
    assert "same answer True" in out
    burst = line_with(out, "16 clips of 30 s")
    assert "answers {200: 16}" in burst, burst  # the queue holds those beyond the concurrent scorings
    long = line_with(out, "2 uploads of 30 minutes")
    assert "{200: 2}" in long or "503" in long, long
    assert "a 1-GB body: answered 413" in out
    print(out)


@pytest.mark.slow
def test_serving_soak_holds_flat(export, capsys):
    # Exit 1 if memory, descriptors, threads or temporary files grew over the soak.
    assert bench_serving.main(["--model", str(export), "--soak", "--minutes", "1.2"]) == 0
    out = capsys.readouterr().out
    assert "nothing grew" in out
    for start in ("start (after a warm-up, idle):", "end (idle again):", "after  1.0 min:"):
        mb, fds, threads, temp = figures(line_with(out, start).split(":", 1)[1])
        assert mb > 0 and fds > 0 and threads > 0 and temp >= 0
    answers = {kind: line_with(out, kind) for kind in ("valid clip", "declared over the cap", "truncated file")}
    assert "200:" in answers["valid clip"] and "413:" in answers["declared over the cap"], answers
    assert "0:" not in answers["declared over the cap"], answers  # the refusal reached every client
    print(out)



@pytest.mark.slow
def test_tuning_bench_transfer_times_every_run(tiny_gtzan, wheel, capsys):
    from tests import needs

    needs.efficientat_mn04()  # the probe search's default base holds the recommended model's second backbone
    # One probe timed (each is timed by the same code); the default times musicnn's and the recommended model.
    assert bench_tuning.main(["--transfer", "--folds", "2", "--trials", "2", "--epochs", "1", "--probes",
                              "musicnn-msd_train=head", "--data-dir", str(tiny_gtzan)]) == 0
    out = capsys.readouterr().out
    fold = re.search(r"bncnn-32-64-128-256 ([\d.]+); musicnn-msd_train=head cold cache ([\d.]+) \(([\d.]+)x\), "
                     r"warm cache ([\d.]+)", out)
    assert fold and all(float(value) > 0 for value in fold.groups()), out
    measured(out, "probe search, 2 random trials:")
    measured(out, "the same search with --objective kfold (2 folds, and the refit):")
    print(out)


def test_a_soak_reports_what_grew():
    from serving.loadtest import SoakResult, Vitals

    flat = SoakResult(Vitals(500, 20, 30, 0), Vitals(540, 20, 30, 0), [], {}, 60)
    assert flat.growth(64) == []
    grown = SoakResult(Vitals(500, 20, 30, 0), Vitals(600, 21, 31, 1), [], {}, 60)
    assert grown.growth(64) == ["resident memory 500 -> 600 MB", "open descriptors 20 -> 21", "threads 30 -> 31",
                                "temporary files 0 -> 1"]
    assert SoakResult(Vitals(500, 20, 30, 1), Vitals(500, 19, 29, 0), [], {}, 60).growth(0) == []
    # Memory is judged over the second half: a first half that fills caches and then stays flat is not
    # growth; growth through the second half is.
    warmed = [(60.0 * m, Vitals(mb, 20, 30, 0)) for m, mb in ((1, 520), (2, 580), (3, 600), (4, 600))]
    assert SoakResult(Vitals(500, 20, 30, 0), Vitals(610, 20, 30, 0), warmed, {}, 240).growth(64) == []
    leaking = [(60.0 * m, Vitals(500 + 50 * m, 20, 30, 0)) for m in range(1, 5)]
    assert SoakResult(Vitals(500, 20, 30, 0), Vitals(700, 20, 30, 0), leaking, {}, 240).growth(64) == [
        "resident memory 600 -> 700 MB since 2.0 min"]


@pytest.mark.slow
def test_serving_bench_library_times_every_path(export, capsys):
    # One real clip and one song: each path timed, the precisions answered (here int8 finds no
    # model.onnx in a SavedModel-only export and says so), the memory of a 10-minute file measured.
    assert bench_serving.main(["--model", str(export), "--library", "--clips", "1", "--songs", "1"]) == 0
    out = capsys.readouterr().out
    for name in ("30-s clips", "4-min songs (MP3)"):
        rows = [line for line in out.splitlines() if line.startswith(name)]
        assert len(rows) == 3, out  # one file after another, --out, the model alone
        assert all(figures(row.split(")", 2)[-1])[0] > 0 for row in rows), rows
    assert "--precision bfloat16: " in out and "--precision int8: not run: " in out and "has no model.onnx" in out
    assert re.search(r"MB tagging one 30-s clip, \d+ MB tagging one 10-minute MP3 \(\d+ windows", out), out
    print(out)

"""Predict the genres of audio files with an exported model.

Usage::

    python -m serving.predict FILE|FOLDER|LIST... [--model EXPORT_DIR] [--top 3] [--json]
    python -m serving.predict ~/Music --out tags.csv [--max-windows 8] [--workers 2] [--windows]

Reads anything soundfile reads (WAV of any bit depth, FLAC, OGG, MP3, .au), at any sample
rate (resampled to 22050 Hz with soxr) and channel count (mixed to mono), of any length
(it is decoded block by block and scored window by window, in bounded memory, the
probabilities averaged over the windows as the export does). ``--model`` is a SavedModel
version folder, a ``model.onnx``, ``model.tflite`` or ``model.xml`` of the same export (run by ONNX
Runtime, LiteRT or OpenVINO), or a model folder of versions (the highest is used); the default is
the newest export under ``exports/``, and the output names the model and the runtime used. An
exported model is a program for its runtime: pass only models you trust. A file that cannot be
read (missing, not audio, NaN or infinite samples) gets a one-line error on stderr; the others are still predicted, and the exit status is then 1. With
``--json`` every line on stdout is a valid JSON object. A folder stands for every audio file under
it (by extension, recursively), and a ``.txt``, ``.m3u`` or ``.m3u8`` for the files it lists.

``--out tags.csv`` (or ``.jsonl``) tags a whole library into a table, one row per file as it
finishes: its path, its top genres, every genre's probability, its seconds, the seconds and windows
scored and the model's name (a file that cannot be read gets a row with the reason). Run again with
the same ``--out``, it goes on where it stopped: files already tagged and unchanged since are
skipped. Files are decoded in ``--workers`` processes while the model scores windows of several
files per batch; a whole song is scored window by window (every ``--hop`` seconds), or by
``--max-windows`` windows spread over it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from cli import flags
from cli.runner import fail, parser, quiet_tensorflow, run, warn
from data.catalogue import AUDIO_EXTENSIONS, SAMPLE_RATE
from data.errors import UsageError
from serving.decoding import WindowPlan
from serving.library import TABLE_FORMATS, Table, default_workers, find_audio, tag_library
from serving.config import MODEL_HELP, find_export, synthetic_warning

PROG = "python -m serving.predict"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.weights_flags()])
    result.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files, folders (searched recursively) or lists of files (.txt, .m3u)")
    result.add_argument("--model", help=MODEL_HELP)
    result.add_argument("--top", type=int, default=3, help="genres to show per file (default: 3)")
    result.add_argument("--json", action="store_true", help="print JSON lines, one per file")
    library = result.add_argument_group("tagging a library into a table (--out)")
    library.add_argument("--out", metavar="FILE", help="write a row per file to this .csv or .jsonl as files finish; "
                                                       "rerun with it to go on where a run stopped")
    library.add_argument("--windows", action="store_true", help="add each window's start and probabilities to its row")
    library.add_argument("--max-windows", type=int, metavar="N",
                         help="score at most N windows per file, spread over the whole file (default: every window)")
    library.add_argument("--hop", type=float, metavar="SECONDS",
                         help="seconds between window starts (default: the model's window: no overlap)")
    library.add_argument("--precision", choices=("float32", "bfloat16", "int8"), default="float32",
                         help="bfloat16 (OpenVINO, where the CPU has bfloat16 units) or int8 (ONNX Runtime, "
                              "calibrated on the files being tagged): used only if its top genre agrees with "
                              "float32's on at least 99%% of windows of the files (default: float32)")
    library.add_argument("--workers", type=int, default=default_workers(),
                         help=f"decoding processes (default: {default_workers()} on this machine)")
    return result


def check(args: argparse.Namespace) -> None:
    """Refuses flags that cannot work together, before anything loads."""
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    if args.out is None:
        given = [flag for flag, value in (("--windows", args.windows), ("--max-windows", args.max_windows),
                                          ("--hop", args.hop), ("--precision", args.precision != "float32"))
                 if value]
        if given:
            raise UsageError(f"{given[0]} shapes the rows of a table: give --out FILE.csv or FILE.jsonl too")
        return
    if Path(args.out).suffix.lower() not in TABLE_FORMATS:
        raise UsageError(f"--out must name a .csv or .jsonl file, got {args.out}")
    if args.json:
        raise UsageError("--json prints lines; with --out the rows go to the table (name a .jsonl for JSON lines)")
    if args.max_windows is not None and args.max_windows < 1:
        raise UsageError(f"--max-windows must be at least 1, got {args.max_windows}")
    if args.hop is not None and not args.hop > 0:
        raise UsageError(f"--hop must be a positive number of seconds, got {args.hop:g}")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")


def predict(args: argparse.Namespace) -> int:
    """The command: one line per file, an error line for each file that cannot be read."""
    check(args)
    files = find_audio(args.files)
    if not files:
        raise UsageError(f"no audio files in {' '.join(args.files)} (looked for {', '.join(AUDIO_EXTENSIONS)})")
    export = find_export(args.model)
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from serving import precision, prediction  # the library loads TensorFlow: only once every flag is checked

    predictor = prediction.Predictor(export)
    if args.out is not None:
        return tag(args, files, predictor, precision)
    if not args.json:
        print(f"model: {predictor.name} ({export}, {predictor.runtime.name})")
    if warning := synthetic_warning(predictor.about.get("data")):
        warn(args.prog, warning)
    failed = 0
    for file in files:
        try:
            prediction = predictor.predict_file(file)
        except Exception as error:  # any reader failure: report this file, go on with the others
            failed += 1
            fail(args.prog, f"cannot read {file}: {error}")
            continue
        top = prediction.top(args.top)
        if args.json:
            print(json.dumps({"file": str(file), "model": predictor.name, "export": str(export),
                              "runtime": predictor.runtime.name,
                              "seconds": round(prediction.seconds, 3),
                              "top": [{"genre": g, "probability": p} for g, p in top]}))
        else:
            print(f"{file}: " + ", ".join(f"{g} {p:.2f}" for g, p in top))
    return 1 if failed else 0


def tag(args: argparse.Namespace, files: list[Path], predictor, precision) -> int:
    """``--out``: the library tagged into the table, with a progress bar; 1 if any file got an error row."""
    if predictor.window is None:
        raise UsageError(f"{predictor.export} does not say its window, so it cannot be cut for --out: "
                         "export it again with python -m zoo.evaluate")
    hop = predictor.window if args.hop is None else max(1, round(args.hop * SAMPLE_RATE))
    table = Table(Path(args.out), predictor.name, predictor.genres, timeline=args.windows)
    window_plan = WindowPlan(predictor.window, hop, args.max_windows)
    score, runtime = predictor.runtime.probabilities, predictor.runtime.name
    if args.precision != "float32":
        reduced, agreement = precision.checked_runtime(predictor, args.precision, files, window_plan)
        print(f"--precision {args.precision}: {agreement}", file=sys.stderr)
        score, runtime = reduced.probabilities, reduced.name
    done = sum(map(table.done, files))
    print(f"model: {predictor.name} ({predictor.export}, {runtime}); {len(files)} files, {len(files) - done} to "
          f"tag into {args.out}", file=sys.stderr)
    # tqdm shows files/s and the time left on a terminal; elsewhere only the summary below is printed.
    with tqdm(total=len(files), initial=done, unit="file", disable=None, file=sys.stderr) as bar:
        def progress(step) -> None:
            bar.update(1)
            bar.set_postfix(errors=step.failed, refresh=False)

        summary = tag_library(files, score, table, window_plan, top=args.top, workers=args.workers,
                              on_progress=progress)
    rate = summary.tagged / summary.seconds if summary.seconds else 0.0
    print(f"{args.out}: {summary.tagged} files tagged, {summary.failed} with an error row, {summary.skipped} "
          f"already there; {summary.audio_seconds / 60:.1f} min of audio in {summary.seconds:.1f} s "
          f"({rate:.2f} files/s, after {summary.startup_seconds:.1f} s starting {args.workers} decoding processes)",
          file=sys.stderr)
    return 1 if summary.failed else 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, predict, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Predict the genres of audio files with an exported model.

Usage::

    python -m serving.predict FILE... [--model EXPORT_DIR] [--top 3] [--json]

Reads anything soundfile reads (WAV of any bit depth, FLAC, OGG, MP3, .au), at any sample
rate (resampled to 22050 Hz with soxr) and channel count (mixed to mono), of any length
(it is decoded block by block and scored window by window, in bounded memory, the
probabilities averaged over the windows as the export does). ``--model`` is a SavedModel
version folder, a ``model.onnx``, ``model.tflite`` or ``model.xml`` of the same export (run by ONNX
Runtime, LiteRT or OpenVINO), or a model folder of versions (the highest is used); the default is
the newest export under ``exports/``, and the output names the model and the runtime used. An
exported model is a program for its runtime: pass only models you trust. A file that cannot be
read (missing, not audio, NaN or infinite samples) gets a one-line error on stderr; the others are still predicted, and the exit status is then 1. With
``--json`` every line on stdout is a valid JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from cli import flags
from cli.runner import fail, parser, quiet_tensorflow, run, warn
from data.errors import UsageError
from serving.config import MODEL_HELP, find_export, synthetic_warning

PROG = "python -m serving.predict"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.weights_flags()])
    result.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    result.add_argument("--model", help=MODEL_HELP)
    result.add_argument("--top", type=int, default=3, help="genres to show per file (default: 3)")
    result.add_argument("--json", action="store_true", help="print JSON lines, one per file")
    return result


def predict(args: argparse.Namespace) -> int:
    """The command: one line per file, an error line for each file that cannot be read."""
    if args.top < 1:
        raise UsageError(f"--top must be at least 1, got {args.top}")
    export = find_export(args.model)
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from serving import prediction  # the library loads TensorFlow: only once every flag is checked

    predictor = prediction.Predictor(export)
    if not args.json:
        print(f"model: {predictor.name} ({export}, {predictor.runtime.name})")
    if warning := synthetic_warning(predictor.about.get("data")):
        warn(args.prog, warning)
    failed = 0
    for file in args.files:
        try:
            prediction = predictor.predict_file(file)
        except Exception as error:  # any reader failure: report this file, go on with the others
            failed += 1
            fail(args.prog, f"cannot read {file}: {error}")
            continue
        top = prediction.top(args.top)
        if args.json:
            print(json.dumps({"file": file, "model": predictor.name, "export": str(export),
                              "runtime": predictor.runtime.name,
                              "seconds": round(prediction.seconds, 3),
                              "top": [{"genre": g, "probability": p} for g, p in top]}))
        else:
            print(f"{file}: " + ", ".join(f"{g} {p:.2f}" for g, p in top))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, predict, argv)


if __name__ == "__main__":
    sys.exit(main())

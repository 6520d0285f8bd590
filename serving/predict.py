"""Predict the genres of audio files with an exported model.

Usage::

    python -m serving.predict FILE... [--model EXPORT_DIR] [--top 3] [--json]

Reads anything soundfile reads (WAV of any bit depth, FLAC, OGG, MP3, .au), at any sample
rate (resampled to 22050 Hz with soxr) and channel count (mixed to mono), of any length
(the export averages over windows). ``--model`` is a SavedModel version folder or a model
folder of versions (the highest is used); the default is the newest export under
``exports/``. A file that cannot be read (missing, not audio, NaN or infinite samples) gets a
one-line error on stderr; the others are still predicted, and the exit status is then 1. With
``--json`` every line on stdout is a valid JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from data import cli

PROG = "python -m serving.predict"


class PredictError(ValueError):
    """A model folder that cannot be used, with a one-line reason."""


def find_export(model: str | None, exports: str = "exports") -> Path:
    """The SavedModel folder to use (see the module docstring).

    Raises:
        PredictError: if no SavedModel is found.
    """
    if model is None:
        found = [p.parent for p in Path(exports).glob("*/*/saved_model.pb")]
        if not found:
            raise PredictError(f"no exported model under {exports}/; run python -m zoo.evaluate best, or pass --model")
        return max(found, key=lambda p: (p / "saved_model.pb").stat().st_mtime)
    path = Path(model)
    if (path / "saved_model.pb").is_file():
        return path
    versions = [p.parent for p in path.glob("*/saved_model.pb") if p.parent.name.isdigit()]
    if versions:
        return max(versions, key=lambda p: int(p.name))
    raise PredictError(f"no SavedModel in {path}; expected a folder with saved_model.pb or numbered versions of one")


def read_audio(file: str) -> np.ndarray:
    """The file's samples as the model takes them.

    Raises:
        ValueError: naming what is wrong: a missing file, a folder, no samples, or NaN or
            infinite samples (which would make every probability NaN).
    """
    path = Path(file)
    if not path.exists():
        raise ValueError("file not found")
    if path.is_dir():
        raise ValueError("is a folder, not an audio file")
    from data.decode import read_with_soundfile

    audio = read_with_soundfile(path)
    if audio.size == 0:
        raise ValueError("no audio samples")
    if not np.isfinite(audio).all():
        raise ValueError(f"{int((~np.isfinite(audio)).sum())} samples are NaN or infinite")
    return audio


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    parser.add_argument("--model", help="SavedModel folder (default: the newest under exports/)")
    parser.add_argument("--top", type=int, default=3, help="genres to show per file (default: 3)")
    parser.add_argument("--json", action="store_true", help="print JSON lines, one per file")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be at least 1, got {args.top}")
    try:
        export = find_export(args.model)
    except PredictError as error:
        return cli.fail(PROG, error)
    cli.quiet_tensorflow(args.verbose)
    import tensorflow as tf

    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    failed = 0
    for file in args.files:
        try:
            audio = read_audio(file)
        except Exception as error:  # any reader failure: report this file, go on with the others
            failed += 1
            cli.fail(PROG, f"cannot read {file}: {error}")
            continue
        outputs = serve(waveform=tf.constant(audio[None]))
        probabilities = outputs["probabilities"].numpy()[0]
        genres = [g.decode() for g in outputs["genres"].numpy()[0]]
        top = np.argsort(-probabilities)[: args.top]
        if args.json:
            print(json.dumps({"file": file, "top": [{"genre": genres[i], "probability": float(probabilities[i])}
                                                    for i in top]}))
        else:
            print(f"{file}: " + ", ".join(f"{genres[i]} {probabilities[i]:.2f}" for i in top))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

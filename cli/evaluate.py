"""Evaluate a trained model on the test split and export it for serving.

Usage::

    python -m serving.evaluate best [--space SPACE] [--runs runs]
    python -m serving.evaluate TRIAL_DIR | MODEL.keras
        [--data-dir DIR] [--split-dir DIR] [--out DIR] [--exports exports] [--no-export] [--json]
        [--formats savedmodel,onnx,litert,openvino]
    python -m serving.evaluate TARGET --test-dir DIR

``python -m zoo.evaluate`` and ``python -m serving.evaluate`` are this command. ``best`` is the best trial of all searches
under ``--runs`` (highest track-level validation accuracy, then lowest validation loss), or of
one space with ``--space``. A trial directory holds ``model.keras`` and ``config.json``
(``runs/<space>/best``, a ``tuning.train`` folder and a ``tuning.crossval`` fold are such
folders). The data is rebuilt exactly as the model saw it (data folder, split, seeds, window)
from its saved config, and the model is evaluated on the **test** split, which no search touches.

Writes ``metrics.json`` and ``confusion_matrix.png`` to ``--out`` (default ``evaluation/`` in the
run's folder: ``trials/<trial>/evaluation/`` of its search for ``best``) and, unless ``--no-export``,
exports the model to ``<exports>/<model name>/<version>/`` (``serving.evaluation``): a SavedModel (whole recordings of any
length in, probabilities out), and with ``--formats`` also ONNX (``model.onnx``), LiteRT
(``model.tflite``) and OpenVINO (``model.xml`` + ``model.bin``), which take one window of the
model's length and are averaged over a recording's windows by the caller (``serving.predict`` and
the app do it). Each is checked in its runtime against the model before it is kept, and
``assets.extra/gtzan.json`` describes them all (inputs, outputs, genres, window).

``--test-dir DIR`` evaluates on every clip of another labelled folder instead (your own
collection, in any layout the training data may have), the genres matched by folder name
(it may hold fewer genres than the model knows, not others); it writes to
``evaluation/<folder>`` in the run's folder and exports nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run, warn
from data.errors import UsageError
from serving.config import FORMATS, check_format_installed, find_target, parse_formats, synthetic_warning


def format_metrics(metrics: dict) -> str:
    """The metrics as a text table."""
    lines = [
        f"model: {metrics['trial']}",
        f"data: {metrics['data']['data_dir']}{' (synthetic)' if metrics['data']['synthetic'] else ''}, "
        f"{'every clip' if metrics['data'].get('split') == 'test-dir' else 'test split'}: {metrics['test_clips']} clips, "
        f"{metrics['test_windows']} windows",
        f"track accuracy:  {metrics['track_accuracy']:.3f}",
        f"window accuracy: {metrics['window_accuracy']:.3f}",
        f"macro F1:        {metrics['macro_f1']:.3f}",
        "",
        f"{'genre':<12}{'precision':>10}{'recall':>8}{'F1':>7}{'clips':>7}",
    ]
    for genre, row in metrics["per_genre"].items():
        recall, f1 = (f"{row[k]:.3f}" if row[k] is not None else "none" for k in ("recall", "f1"))
        lines.append(f"{genre:<12}{row['precision']:>10.3f}{recall:>8}{f1:>7}{row['support']:>7}")
    if metrics.get("genres_without_clips"):
        lines.append(f"no test clip of {', '.join(metrics['genres_without_clips'])}: left out of the macro F1")
    genres = list(metrics["per_genre"])
    width = max(len(g) for g in genres)
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * (width + 1) + " ".join(f"{g[:5]:>5}" for g in genres)]
    for genre, row in zip(genres, metrics["confusion_matrix"]):
        lines.append(f"{genre:<{width}} " + " ".join(f"{v:>5}" for v in row))
    return "\n".join(lines)


def build_parser():
    """The command-line parser."""
    # Named as it was started: python -m zoo.evaluate or python -m serving.evaluate.
    started = "zoo" if sys.argv and sys.argv[0].endswith(os.path.join("zoo", "evaluate.py")) else "serving"
    result = parser(f"python -m {started}.evaluate", __doc__)
    result.add_argument("target", help="'best', a trial folder (model.keras + config.json) or a .keras file")
    result.add_argument("--space", help="with 'best': the best trial of this space only")
    result.add_argument("--runs", default="runs", help="with 'best': the folder of the searches (default: runs)")
    result.add_argument("--data-dir", help="data folder, if it moved since training")
    result.add_argument("--split-dir", help="split lists folder, if it moved since training")
    result.add_argument("--out", help="output folder (default: evaluation/ in the run's folder)")
    result.add_argument("--exports", default="exports", help="export root (default: exports)")
    result.add_argument("--no-export", action="store_true", help="do not export the model")
    result.add_argument("--formats", default="savedmodel",
                        help=f"export formats, comma-separated, into one version folder: {', '.join(FORMATS)} "
                             "(default: savedmodel; onnx, litert and openvino need their extra, or the export extra for "
                             "all three)")
    result.add_argument("--test-dir", help="evaluate on every clip of this labelled folder instead (no export)")
    result.add_argument("--labels", metavar="FILE", help="with --test-dir: its labels file (a CSV of path,label "
                                                          "relative to it, or FMA's tracks.csv), if not class folders")
    result.add_argument("--json", action="store_true", help="print the metrics as JSON")
    return result


def evaluate(args: argparse.Namespace) -> int:
    """The command: finds the target, evaluates and exports it, prints the metrics."""
    for flag, folder in (("--data-dir", args.data_dir), ("--split-dir", args.split_dir), ("--test-dir", args.test_dir)):
        flags.check_folder(folder, flag)
    if args.test_dir and (args.data_dir or args.split_dir):
        raise UsageError("--test-dir evaluates on its own clips; it does not go with --data-dir or --split-dir")
    if args.labels and not args.test_dir:
        raise UsageError("--labels goes with --test-dir (a trained run remembers its own labels file)")
    flags.check_labels(args.labels, args.test_dir, "--labels")
    formats = parse_formats(args.formats)
    if (args.no_export or args.test_dir) and formats != ("savedmodel",):
        raise UsageError("--formats chooses what is exported; --no-export and --test-dir export nothing")
    for name in formats:
        check_format_installed(name)
    model_path, config = find_target(args.target, Path(args.runs), args.space)
    quiet_tensorflow(args.verbose)
    from serving import evaluation  # the library loads TensorFlow: only once every flag is checked

    metrics = evaluation.evaluate_target(model_path, config, Path(args.out) if args.out else None,
                                         data_dir=args.data_dir, split_dir=args.split_dir,
                                         exports=None if args.no_export or args.test_dir else Path(args.exports),
                                         test_dir=args.test_dir, formats=formats, labels=args.labels)
    if warning := synthetic_warning(metrics["data"]):
        warn(args.prog, warning)
    print(json.dumps(metrics, indent=2) if args.json else format_metrics(metrics))
    if not args.json:
        print(f"\nwrote {metrics['metrics_json']}, {metrics['confusion_matrix_png']}")
        for name, written in metrics.get("export_formats", {}).items():
            checked = f", max |p - keras| {written['max_abs_diff']:.1e}" if "max_abs_diff" in written else ""
            print(f"exported {name}: {Path(metrics['export']) / written['file']}{checked}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, evaluate, argv)


if __name__ == "__main__":
    sys.exit(main())

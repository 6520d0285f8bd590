"""Per-clip embeddings and tag probabilities from a pretrained backbone, for your own classifiers.

Usage::

    python -m serving.embed FILE... [--model musicnn-msd] [--out embeddings.npz]

Each recording is cut into non-overlapping 3-s patches; the backbone's penultimate features
(200-d for musicnn, 256-d for the VGGs, 512-d for EfficientAT mn04, 2048-d for CNN14) and its own
tag probabilities (50 tags; 527 AudioSet classes for EfficientAT and CNN14) are averaged over them,
as musicnn's own extractor does. The ``.npz`` holds ``files``, ``embeddings`` ``[files, features]``,
``tags`` ``[files, tags]``, ``tag_names`` and ``patches`` (how many patches each file had). Reads
anything ``serving.predict`` reads, of any length. ``--model`` is any pretrained backbone of the
zoo (``python -m zoo.list``), several side by side (``musicnn-msd+efficientat-mn04``: their features
and tags concatenated), or ``ready``, the shipped model's backbones. A folder stands for every audio file under it (recursively),
a ``.txt`` or ``.m3u`` for the files it lists. A file that cannot be read gets a one-line error on stderr and is
left out; the others are still written, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli import flags
from cli.runner import fail, parser, quiet_tensorflow, run
from data.catalogue import AUDIO_EXTENSIONS
from data.errors import UsageError
from serving.config import READY_MODELS, TAGGER_NAMES, backbone_names
from serving.library import find_audio

PROG = "python -m serving.embed"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__, [flags.weights_flags()])
    result.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files, folders (searched recursively) or lists of files (.txt, .m3u)")
    result.add_argument("--model", default="musicnn-msd",
                        help=f"the backbone: {', '.join(TAGGER_NAMES)}, several joined by '+', or a shipped "
                             f"model's ({', '.join(READY_MODELS)}) (default: musicnn-msd)")
    result.add_argument("--out", default="embeddings.npz", help="the .npz to write (default: embeddings.npz)")
    return result


def embed(args: argparse.Namespace) -> int:
    """The command: embeds every readable file, writes the ``.npz``, says what it wrote."""
    try:
        backbone_names(args.model)
    except ValueError as error:
        raise UsageError(f"--model: {error}") from None
    out = Path(args.out)
    if out.suffix != ".npz":
        raise UsageError(f"--out must name a .npz file, got {args.out}")
    if out.is_dir():
        raise UsageError(f"--out {args.out} is a folder; name a .npz file")
    files = [str(path) for path in find_audio(args.files)]
    if not files:
        raise UsageError(f"no audio files in {' '.join(args.files)} (looked for {', '.join(AUDIO_EXTENSIONS)})")
    flags.use_weights(args)
    quiet_tensorflow(args.verbose)
    from serving import embedding  # the library loads TensorFlow: only once every flag is checked

    failed = []

    def on_error(file: str, error: Exception) -> None:
        failed.append(file)
        fail(args.prog, f"cannot read {file}: {error}")

    result = embedding.embed_files(files, args.model, on_error)
    if not result.files:
        raise UsageError(f"none of the {len(files)} files could be read; nothing written")
    result.save(out)
    print(f"{out}: {len(result.files)} files, embeddings {result.embeddings.shape[1]}-d, "
          f"{len(result.tag_names)} tags ({args.model})")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, embed, argv)


if __name__ == "__main__":
    sys.exit(main())

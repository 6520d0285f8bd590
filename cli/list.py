"""List the registered models with their parameter counts and descriptions.

Usage::

    python -m zoo.list [PATTERN] [--window-seconds S]
    python -m zoo.list --recommended

The pretrained models (``musicnn-*``, ``vgg-*``, ``efficientat-*``, ``panns-*``) are listed with
their checkpoint and the weights' licence (counting their weights needs no download). Their
options: ``_train=head`` trains only the new genre head on frozen features (a probe), ``backend``
/ ``midend`` also the backbone's last layers, ``all`` (the default) fine-tunes every pretrained
convolution; ``_head=256`` adds a hidden layer to the head; ``_dropout=A,B`` sets the backbone's
own dropout and the head's; ``musicnn-msd+efficientat-mn04`` puts backbones side by side. The
VGGs count their weights at 3 s at most.

``--recommended`` prints the model this toolkit recommends for the best genre model on real music
and its training recipe, on one line (``NAME RECIPE``), for scripts:
``python -m tuning.train $(python -m zoo.list --recommended | cut -d' ' -f1) --recipe ...``.
"""

from __future__ import annotations

import argparse
import sys

import zoo
from cli.runner import parser, quiet_tensorflow, run
from data.config import check_window_seconds
from data.errors import UsageError
from training.config import RECOMMENDED_MODEL
from zoo.families.pretrained import FAMILY_OF, LICENCES

PROG = "python -m zoo.list"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. '3cnn*' (default: all)")
    result.add_argument("--window-seconds", type=float, default=3.0, help="input window for the counts (default: 3)")
    result.add_argument("--recommended", action="store_true",
                        help="print the recommended model and its recipe on one line (NAME RECIPE) and nothing else")
    return result


def list_models(args: argparse.Namespace) -> int:
    """The command: one line per registered name (building each to count its weights)."""
    if args.recommended:
        if args.pattern != "*":
            raise UsageError("--recommended prints one model; it does not go with a PATTERN")
        print(" ".join(RECOMMENDED_MODEL))
        return 0
    try:
        check_window_seconds(args.window_seconds)
    except ValueError as error:
        raise UsageError(str(error)) from None
    selected = zoo.names(args.pattern)
    if not selected:
        raise UsageError(f"no registered model matches {args.pattern!r}; try '*'")
    quiet_tensorflow(args.verbose)  # building a model loads Keras and TensorFlow
    width = max(len(name) for name in selected)
    print(f"{'name':<{width}}  {'params':>11}  description")
    families = []
    for name in selected:
        config = zoo.resolve(name)
        window = min(args.window_seconds, 3.0) if config.family == "vgg" else args.window_seconds
        # The architecture alone: counting needs no pretrained weights (nor their download).
        params = zoo.build_model(zoo.configure(name, window_seconds=window), pretrained_weights=False).count_params()
        tagger = f" [pretrained: {config.tagger} weights]" if config.tagger else ""
        families += [FAMILY_OF[t] for t in config.tagger.split("+") if t and FAMILY_OF[t] not in families]
        print(f"{name:<{width}}  {params:>11,}  {zoo.describe(name)}{tagger}")
    if families:
        print()
        for licence in dict.fromkeys(LICENCES[family] for family in families):
            print(f"pretrained weights of {', '.join(f for f in families if LICENCES[f] == licence)}: {licence}")
        print("options: _train=head|backend|midend|all, _head=UNITS, _features=pooled (python -m zoo.list --help)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, list_models, argv)


if __name__ == "__main__":
    sys.exit(main())

"""What every command of the toolkit shares: its parser, a quiet TensorFlow start, one exit-code ladder.

A command module is a thin front: it builds its parser with :func:`parser`, checks every flag
it can without data or a model and turns the flags into configs, then loads the library it
calls (after :func:`quiet_tensorflow`, where the library loads TensorFlow), calls one library
function and prints the result. Deferring that import is the command's job alone: it keeps
``--help`` and a bad flag's answer free of TensorFlow's seconds of start-up. :func:`run` does
the rest, the same way for every command:

* parses the flags (``--help`` and ``--version`` answer without loading TensorFlow);
* sets up logging;
* maps what the command raised to one line on stderr and an exit code: a bad flag, file or
  folder (``data.errors.UsageError``, ``InputError`` and their subclasses, ``ValueError``,
  ``OSError``) exits 2, a run that failed (``RunFailed``) 1, Ctrl-C or SIGTERM 130. Any other
  exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from data import __version__
from data.errors import Interrupted, ToolkitError, UsageError, one_line
from zoo.config import BACKENDS, check_backend_installed, configured_backend


def quiet_tensorflow(verbose: bool = False) -> None:
    """Loads TensorFlow without its C++ start-up log lines, unless ``verbose``.

    TensorFlow writes those lines (oneDNN, CUDA drivers, CPU instructions, graph optimizer) to the process's
    standard error before its logging is set up, where no setting reaches them, so standard
    error is pointed at the null device while TensorFlow loads and probes for GPUs. A command's
    output is the same whatever ``TF_CPP_MIN_LOG_LEVEL`` the shell holds; under ``verbose`` that
    variable applies as TensorFlow defines it. Where TensorFlow is already loaded it only drops its
    warnings of "retracing" that come from building one model per trial or fold.

    First, the Keras backend the process will run (``KERAS_BACKEND`` or ``keras.json``) must be one
    the toolkit runs on and be installed: otherwise Keras would fail at its import with a traceback.

    Raises:
        UsageError: naming the backend and the extra that installs it.
    """
    backend = configured_backend()
    if backend not in BACKENDS:
        raise UsageError(f"KERAS_BACKEND={backend} is not a backend this toolkit runs on; expected one of "
                         f"{', '.join(BACKENDS)}")
    try:
        check_backend_installed(backend)
    except ValueError as error:
        raise UsageError(f"KERAS_BACKEND={backend}: {error}") from None
    if verbose:
        return
    if "tensorflow" in sys.modules:
        _filter_trace_warnings()
        return
    # 3: errors too. Grappler logs "remapper failed" as an error on every training run of these
    # models and then goes on unfused; a real failure reaches Python as an exception anyway.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the driver probe logs too; its answer is cached
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    _filter_trace_warnings()


def _filter_trace_warnings() -> None:
    logger = logging.getLogger("tensorflow")  # tf.get_logger(), without loading TensorFlow for it
    if _not_a_new_models_trace not in logger.filters:
        logger.addFilter(_not_a_new_models_trace)


def _not_a_new_models_trace(record: logging.LogRecord) -> bool:
    # TensorFlow counts traces by function code, not by model: a search or a cross-validation builds
    # a new model per trial or fold, each traced once (training.callbacks pads the last batch so
    # that no model traces twice), and TensorFlow then warns of "retracing" that costs nothing.
    return "triggered tf.function retracing" not in record.getMessage()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse's own errors: the usage line, then one line, exit 2.
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def parser(prog: str, doc: str | None, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """An argument parser with the first paragraph of ``doc`` as description, ``parents``' flags,
    ``--version`` and ``--verbose``.

    ``prog`` is the name a user typed: a console command (``gtzan-search``) is named as such in
    usage lines and errors, ``python -m ...`` otherwise.
    """
    # No abbreviations: a flag this command lacks (--fold on cross-validation) must not be taken
    # for a longer one it has (--folds).
    result = _Parser(prog=invoked_as(prog), description=(doc or "").split("\n\n")[0], parents=list(parents),
                     allow_abbrev=False)
    result.add_argument("--version", action="version", version=f"%(prog)s (gtzan-keras) {__version__}")
    result.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")
    return result


def invoked_as(prog: str) -> str:
    """``prog``, or the console command's name when the process was started as one (``gtzan-search``)."""
    started = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return started if started.startswith("gtzan-") else prog


def progress_bar(label: str, stream: TextIO | None = None) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback drawing one self-updating bar on ``stream`` (stderr).

    Drawn on a terminal only: a log file or a pipe gets the command's result lines alone.
    """
    stream = stream or sys.stderr
    if not stream.isatty():
        return lambda done, total: None

    def show(done: int, total: int) -> None:
        filled = 30 * done // max(total, 1)
        stream.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}" + ("\n" if done >= total else ""))
        stream.flush()

    return show


def warn(prog: str, message: str) -> None:
    """Prints ``prog: warning: <one line>`` to stderr."""
    print(f"{prog}: warning: {one_line(message)}", file=sys.stderr)


def fail(prog: str, error: BaseException | str, code: int = 2) -> int:
    """Prints ``prog: error: <one line>`` to stderr; returns ``code``."""
    print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
    return code


def _terminate(signum, frame):
    raise KeyboardInterrupt


def run(build_parser: Callable[[], argparse.ArgumentParser], command: Callable[[argparse.Namespace], int | None],
        argv: Sequence[str] | None = None, *, pass_through: bool = False) -> int:
    """Runs one command: parse, set up, call ``command(args)``, map its errors; returns the exit code.

    Args:
        build_parser: Returns the command's parser (see :func:`parser`).
        command: Does the work from the parsed flags (with ``argv``, the command line as given);
            returns an exit code (None means 0).
        argv: The flags (default: the process's).
        pass_through: Flags the parser does not know are kept in ``args.extra`` instead of
            refused (a benchmark that passes them on to the command it times).
    """
    cli_parser = build_parser()
    if pass_through:
        args, args.extra = cli_parser.parse_known_args(argv)
    else:
        args = cli_parser.parse_args(argv)
    # The command line as given: a --workers launcher passes it on to its chief and workers.
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # The name the user typed, for the lines a command prints to stderr itself (warnings, per-file errors).
    args.prog = prog = cli_parser.prog
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)  # SIGTERM stops as Ctrl-C does: cleanly, with exit 130
    try:
        return command(args) or 0
    except ToolkitError as error:
        return fail(prog, error, error.exit_code)
    except KeyboardInterrupt:
        return fail(prog, Interrupted("interrupted; what finished is kept: rerun the same command to resume"), 130)
    except (ValueError, OSError) as error:  # bad input the library names (a file, a value)
        return fail(prog, error, 2)


def check(condition: bool, message: str) -> None:
    """Raises UsageError(``message``) unless ``condition``: a flag's value check at the command's edge."""
    if not condition:
        raise UsageError(message)

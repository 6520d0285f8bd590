"""The toolkit's error types: what a command line turns into a one-line message and an exit code.

Every library raises one of these (or a subclass) for a problem a user can fix, with a message
that names the thing that is wrong and what is accepted. The command runner
(``cli.runner.run``) maps them to exit codes: 2 for a bad flag, file or folder, 1 for a run
that failed, 130 for an interrupted one.
"""

from __future__ import annotations


def install_extra(extra: str) -> str:
    """How to install the project's extra ``extra`` (``setup.cfg``), said wherever what it brings is missing."""
    return f'python -m pip install -e ".[{extra}]" in the project folder (the {extra} extra)'


class ToolkitError(Exception):
    """A problem to report in one line; ``exit_code`` is the command's exit status for it."""

    exit_code = 2


class UsageError(ToolkitError, ValueError):
    """A command-line value that cannot be used; the message names it and what is accepted."""


class InputError(ToolkitError, ValueError):
    """A data folder, run folder, model or file that cannot be used, named in the message."""


class AudioError(InputError):
    """A recording that is not usable audio (empty, truncated, not audio, NaN samples, no samples).

    Its message is the toolkit's own words and names no path; ``reason`` is its first part, which
    any client may be shown (the rest, in parentheses, gives details such as header sizes).
    """

    @property
    def reason(self) -> str:
        return str(self).split(" (")[0]


class EvaluationError(InputError):
    """A trained model or run folder that cannot be evaluated or served, or data that moved since training."""


class RunFailed(ToolkitError, RuntimeError):
    """A run that started but failed (a NaN loss, a dead chief, a failed fold)."""

    exit_code = 1


class Interrupted(ToolkitError):
    """A run stopped by Ctrl-C or SIGTERM; what finished is kept."""

    exit_code = 130


def one_line(error: BaseException | str) -> str:
    """The error's text on one line (whitespace runs folded)."""
    return " ".join(str(error).split())

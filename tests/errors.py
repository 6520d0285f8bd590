"""The one check of a command's error: its standard error is exactly one line, ``prog: error: ...``.

A runner that printed a traceback, a warning or a second message before the error would pass a
check of the last line alone; these fail it.
"""


def error_line(stderr: str, *, usage: bool = False) -> str:
    """The error a command printed, asserting that it printed that line and nothing else.

    Args:
        stderr: What the command wrote to standard error.
        usage: An error of argparse itself (a bad flag), which must come after the usage lines
            (``usage: ...`` and their indented continuation); every other error comes alone.
    """
    lines = stderr.strip().splitlines()
    if usage:
        assert lines and lines[0].startswith("usage:"), f"expected the usage before the error, got {lines[:2]}"
        lines = [line for line in lines[1:] if not line.startswith(" ")]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}: {lines[-5:]}"
    assert ": error: " in lines[0], lines[0]
    return lines[0]

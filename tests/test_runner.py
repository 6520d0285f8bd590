"""The command runner's exit-code ladder and its one-line messages, on commands that raise each kind of error."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cli.runner import check, fail, parser, run, warn
from data.errors import AudioError, Interrupted, RunFailed, UsageError
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]


def command_raising(error: BaseException | None, returns: int | None = None):
    def command(args):
        if error is not None:
            raise error
        return returns

    return command


def build():
    result = parser("python -m demo", "Demo.\n\nMore.")
    result.add_argument("--n", type=int, default=1)
    return result


@pytest.mark.parametrize("error,returns,code", [
    (None, None, 0),
    (None, 0, 0),
    (None, 1, 1),
    (UsageError("--n must be positive, got -1"), None, 2),
    (AudioError("the file is not audio (RIFF header of 3 bytes)"), None, 2),
    (ValueError("bad value"), None, 2),
    (OSError(28, "No space left on device"), None, 2),
    (RunFailed("trial 3 failed: NaN loss"), None, 1),
    (Interrupted("stopped"), None, 130),
    (KeyboardInterrupt(), None, 130),
])
def test_each_kind_of_error_has_its_exit_code_and_one_line(error, returns, code, capsys):
    assert run(build, command_raising(error, returns), ["--n", "3"]) == code
    stderr = capsys.readouterr().err
    if error is None:
        assert stderr == ""
        return
    line = error_line(stderr)
    assert line.startswith("python -m demo: error: ")
    if isinstance(error, KeyboardInterrupt):
        assert line.endswith("interrupted; what finished is kept: rerun the same command to resume")
    else:
        assert line.endswith(" ".join(str(error).split()))


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run(build, command_raising(ZeroDivisionError("bug")), [])


def test_a_multi_line_message_is_folded_onto_one_line(capsys):
    assert run(build, command_raising(UsageError("first\n  second\tthird")), []) == 2
    assert error_line(capsys.readouterr().err) == "python -m demo: error: first second third"


def test_the_command_sees_its_flags_the_command_line_and_its_name():
    seen = {}

    def command(args):
        seen.update(n=args.n, argv=args.argv, prog=args.prog)

    assert run(build, command, ["--n", "5"]) == 0
    assert seen == {"n": 5, "argv": ["--n", "5"], "prog": "python -m demo"}


def test_a_bad_flag_is_the_usage_and_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        run(build, command_raising(None), ["--n", "many"])
    assert exit_.value.code == 2
    assert "argument --n: invalid int value: 'many'" in error_line(capsys.readouterr().err, usage=True)
    with pytest.raises(SystemExit) as exit_:
        run(build, command_raising(None), ["--what"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --what" in error_line(capsys.readouterr().err, usage=True)


def test_pass_through_keeps_unknown_flags_for_the_command():
    seen = {}
    assert run(build, lambda args: seen.update(extra=args.extra), ["--n", "2", "--epochs", "3"], pass_through=True) == 0
    assert seen["extra"] == ["--epochs", "3"]


def test_helpers_print_one_line_each(capsys):
    assert fail("prog", "a\nb", code=7) == 7
    warn("prog", "careful\nnow")
    assert capsys.readouterr().err == "prog: error: a b\nprog: warning: careful now\n"
    check(True, "never raised")
    with pytest.raises(UsageError, match="^--n must be positive$"):
        check(False, "--n must be positive")


def test_sigterm_stops_a_command_as_ctrl_c_does_with_exit_130(tmp_path):
    script = ("import os, signal, sys, time\n"
              "from cli.runner import parser, run\n"
              "def command(args):\n"
              "    os.kill(os.getpid(), signal.SIGTERM)\n"
              "    time.sleep(30)\n"
              "sys.exit(run(lambda: parser('python -m demo', None), command, []))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 130, result.stderr[-500:]
    assert error_line(result.stderr).endswith("interrupted; what finished is kept: rerun the same command to resume")


def test_a_handler_set_by_the_caller_is_kept():
    previous = signal.signal(signal.SIGTERM, lambda *a: None)
    try:
        mine = signal.getsignal(signal.SIGTERM)
        run(build, command_raising(None), [])
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_unknown_or_missing_keras_backend_is_one_line_before_keras_loads(monkeypatch):
    import importlib.util

    from cli import runner

    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    with pytest.raises(UsageError, match=r"^KERAS_BACKEND=mxnet is not a backend this toolkit runs on; expected one "
                                         r"of tensorflow, jax, torch$"):
        runner.quiet_tensorflow()
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "jax" else found(name, *rest))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    with pytest.raises(UsageError, match=r'^KERAS_BACKEND=jax: the jax backend needs jax, not installed: python -m pip '
                                         r'install -e "\.\[jax\]" in the project folder \(the jax extra\)$'):
        runner.quiet_tensorflow()


def test_a_command_under_an_unknown_backend_exits_2_with_one_line():
    result = subprocess.run([sys.executable, "-m", "tuning.train", "bncnn-32-64-128-256", "--epochs", "1"], cwd=ROOT,
                            capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": "mxnet"})
    assert result.returncode == 2 and error_line(result.stderr).endswith("expected one of tensorflow, jax, torch")
    assert "Traceback" not in result.stderr

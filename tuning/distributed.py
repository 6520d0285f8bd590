"""Parallel searches on KerasTuner's chief/worker mode: the launcher behind ``--workers N``.

KerasTuner runs a distributed search itself: the chief process serves the oracle over gRPC,
worker processes ask it for trials and report their results. It is configured by three
environment variables in every process: ``KERASTUNER_TUNER_ID`` (``chief``, or a worker's id),
``KERASTUNER_ORACLE_IP`` and ``KERASTUNER_ORACLE_PORT`` (the chief's address). ``--role`` and
``--oracle`` set them (:func:`configure_role`); ``--workers N`` starts the chief and N workers
of the same command on this machine (:func:`launch`), each worker with its own GPUs or its share
of the CPU cores, restarts a worker that dies mid-trial (KerasTuner hands it its unfinished
trial again), shows one line per finished trial and ends every child it started.
``tuning.search``, ``tuning.crossval`` (a trial per fold) and ``tuning.study`` (a search per
section) run their trials this way.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from data.errors import Interrupted, RunFailed, UsageError

ROLES = ("chief", "worker")
# How long a worker waits for the chief to answer one request before it gives up, and the
# variable that carries it to the worker's tuner (``tuning.tuner``) beside KerasTuner's own three.
CHIEF_TIMEOUT_S = 60
CHIEF_TIMEOUT_VARIABLE = "GTZAN_CHIEF_TIMEOUT_S"
RESTARTS = 3  # a worker killed more often than this ends the search
POLL_S = 1.0


class LaunchError(RunFailed):
    """A distributed search that cannot start or go on, with a one-line reason.

    Its exit code is 2 when a process stopped at a bad flag, file or folder (exit 2 itself), else 1.
    """

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def parse_address(address: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``.

    Raises:
        ValueError: naming the flag and the form it takes.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--oracle must be HOST:PORT (e.g. 10.0.0.5:8000), got {address!r}")
    return host, int(port)


def configure_role(role: str | None, oracle: str | None, worker_id: str | None = None,
                   timeout_s: int = CHIEF_TIMEOUT_S) -> str | None:
    """Sets KerasTuner's three environment variables for ``role``; returns the tuner id (None without a role).

    The chief checks that it can serve on its port; a worker's tuner bounds how long it waits
    for the chief (KerasTuner would wait an hour for each request).

    Raises:
        UsageError: for an address without a role or a role without one, a bad address, a
            timeout below one second, or a chief port already in use.
    """
    if timeout_s < 1:
        raise UsageError(f"--chief-timeout must be at least 1 second, got {timeout_s}")
    if role is None:
        if oracle or worker_id:
            raise UsageError("--oracle and --worker-id go with --role chief|worker")
        return None
    if role not in ROLES:
        raise UsageError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if not oracle:
        raise UsageError("--role needs --oracle HOST:PORT, the chief's address")
    try:
        host, port = parse_address(oracle)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if role == "chief":
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError as error:
                raise UsageError(f"--oracle {oracle}: cannot serve there ({error.strerror}); "
                                 "the port is in use or the address is not this machine's") from None
        tuner_id = "chief"
    else:
        tuner_id = worker_id or f"worker-{socket.gethostname()}-{os.getpid()}"
    os.environ.update({"KERASTUNER_TUNER_ID": tuner_id, "KERASTUNER_ORACLE_IP": host,
                       "KERASTUNER_ORACLE_PORT": str(port), CHIEF_TIMEOUT_VARIABLE: str(timeout_s)})
    return tuner_id


def check_workers(workers: int, gpus_per_worker: int, role: str | None = None, oracle: str | None = None) -> None:
    """Raises UsageError for ``--workers`` values that cannot be used."""
    if workers < 1 or gpus_per_worker < 1:
        raise UsageError(f"--workers and --gpus-per-worker must be at least 1, got {workers}, {gpus_per_worker}")
    if role or oracle:
        raise UsageError("--workers starts its own chief and workers; it does not go with --role or --oracle")


def unreachable_chief(error: BaseException) -> RunFailed | None:
    """The one-line error for the gRPC error of a worker whose chief is gone; None for any other error."""
    if not type(error).__module__.startswith("grpc"):
        return None
    code = getattr(error, "code", lambda: "")()
    oracle = f"{os.environ.get('KERASTUNER_ORACLE_IP')}:{os.environ.get('KERASTUNER_ORACLE_PORT')}"
    return RunFailed(f"cannot reach the chief at {oracle} ({code}); is it running? rerun the same command to resume")


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def strip_flags(argv: list[str], flags: dict[str, int | str]) -> list[str]:
    """``argv`` without ``flags``, in both the ``--f v`` and the ``--f=v`` form.

    ``flags`` maps each flag to the number of values it takes, or ``"+"`` for every value up to
    the next flag (``--sections mlp cnn``).
    """
    kept, skip = [], 0
    for arg in argv:
        if skip == "+" and not arg.startswith("-"):
            continue
        if skip and skip != "+":
            skip -= 1
            continue
        skip = 0
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = 0 if "=" in arg else flags[name]
            continue
        kept.append(arg)
    return kept


def devices(workers: int, gpus_per_worker: int) -> list[dict[str, str]]:
    """The environment of each worker: its GPUs, or its share of the CPU cores.

    With GPUs (``CUDA_VISIBLE_DEVICES`` or what ``nvidia-smi`` lists), worker i gets GPUs
    ``i * gpus_per_worker`` to ``(i + 1) * gpus_per_worker - 1``; without, every worker gets
    ``cores // workers`` TensorFlow threads, so the workers do not oversubscribe the cores.

    Raises:
        LaunchError: if there are fewer GPUs than the workers need.
    """
    gpus = _gpu_ids()
    if gpus:
        needed = workers * gpus_per_worker
        if needed > len(gpus):
            raise LaunchError(f"--workers {workers} x --gpus-per-worker {gpus_per_worker} needs {needed} GPUs; "
                              f"this machine has {len(gpus)}")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(gpus[i * gpus_per_worker:(i + 1) * gpus_per_worker])}
                for i in range(workers)]
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    return [{"CUDA_VISIBLE_DEVICES": "", "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads,
             "OMP_NUM_THREADS": threads} for _ in range(workers)]


def _gpu_ids() -> list[str]:
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() not in ("", "-1")]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def trial_progress() -> Callable[[Path], str | None]:
    """The progress line of a finished search trial: worker, trial, accuracy, best so far.

    Returns a function of a trial folder that gives the line once the trial's record is
    written (None before); it keeps the best trial it has seen.
    """
    best: list[tuple[float, str]] = []

    def line(folder: Path) -> str | None:
        record = _read_json(folder / "record.json")
        if record is None:
            return None
        score = record.get("val_track_accuracy")
        if score is not None and (not best or score > best[0][0]):
            best[:] = [(score, record["trial"])]
        shown = f"{score:.3f}" if score is not None else record.get("status", "")
        leader = f"{best[0][1]} {best[0][0]:.3f}" if best else "none yet"
        return f"[{record.get('worker', '?')}] {record['trial']}: val accuracy (track) {shown} | best so far {leader}"

    return line


def _read_json(path: Path) -> dict | None:
    """The JSON in ``path``, or None while it is missing or being written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Launcher:
    """Starts, watches and ends the chief and the workers of one search.

    Args:
        module: The command's module (``tuning.search``).
        argv: The command line without the launcher's own flags.
        out_dir: The search's run folder (logs go to ``out_dir/workers``).
        workers: Number of workers.
        gpus_per_worker: GPUs of each worker, where there are GPUs.
        say: Where progress lines go.
        progress: Gives a trial folder's progress line once the trial is finished, else None
            (default: :func:`trial_progress`).
    """

    def __init__(self, module: str, argv: list[str], out_dir: Path, workers: int, gpus_per_worker: int = 1, say=print,
                 progress: Callable[[Path], str | None] | None = None):
        self.module, self.argv, self.out_dir = module, argv, Path(out_dir)
        self.say = say
        self.progress = progress or trial_progress()
        self.port = free_port()
        self.environments = devices(workers, gpus_per_worker)
        self.ids = [f"worker{i}" for i in range(workers)]
        self.processes: dict[str, subprocess.Popen] = {}
        self.restarts = dict.fromkeys(self.ids, 0)
        self.seen: set[Path] = set()
        self.started_at = time.time()

    def start(self, name: str) -> None:
        """Starts the chief or a worker, its output appended to ``workers/<name>.log``."""
        role = ["--role", "chief"] if name == "chief" else ["--role", "worker", "--worker-id", name]
        env = {**os.environ, **({} if name == "chief" else self.environments[self.ids.index(name)])}
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = self.out_dir / "workers" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as output:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.argv, *role, "--oracle", f"127.0.0.1:{self.port}"],
                stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                preexec_fn=_die_with(os.getpid()))

    def run(self) -> int:
        """Runs the search to its end; returns the exit code (0 when every trial is done).

        Raises:
            LaunchError: naming the process that failed and its last log line.
        """
        self.start("chief")
        for name in self.ids:
            self.start(name)
        while True:
            time.sleep(POLL_S)
            self.report_trials()
            chief = self.processes["chief"].poll()
            if chief is not None:
                break
            for name in self.ids:
                code = self.processes[name].poll()
                if code is None or code == 0:
                    continue
                if code > 0:  # it failed by itself (bad data, chief unreachable): a restart would too
                    raise LaunchError(f"{name} failed: {self.last_line(name)}", exit_code=2 if code == 2 else 1)
                self.restarts[name] += 1
                if self.restarts[name] > RESTARTS:
                    raise LaunchError(f"{name} stopped {self.restarts[name]} times (last: exit {code}); see "
                                      f"{self.out_dir / 'workers' / (name + '.log')}")
                self.say(f"[{name}] stopped (exit {code}); restarting it, KerasTuner hands it its unfinished trial")
                self.start(name)
        if chief == 2:  # it stopped at a bad flag, file or folder: its own message says which
            raise LaunchError(f"the chief stopped: {self.last_line('chief')}", exit_code=2)
        if chief != 0:
            raise LaunchError(f"the chief stopped (exit {chief}): {self.last_line('chief')}; rerun the same command "
                              "to resume")
        for name in self.ids:
            try:
                self.processes[name].wait(timeout=CHIEF_TIMEOUT_S + 30)
            except subprocess.TimeoutExpired:
                pass
        self.report_trials()
        return 0

    def report_trials(self) -> None:
        """One line for each trial finished since the last call (trials of earlier runs are not shown)."""
        for folder in sorted((self.out_dir / "trials").glob("*/")):
            if folder in self.seen or folder.stat().st_mtime < self.started_at:
                continue
            line = self.progress(folder)
            if line is not None:
                self.seen.add(folder)
                self.say(line, flush=True)

    def last_line(self, name: str) -> str:
        """The process's last error message (without its ``prog: error:`` prefix), else its last log line."""
        lines = (self.out_dir / "workers" / f"{name}.log").read_text(errors="replace").strip().splitlines()
        errors = [line.split(": error: ", 1)[1] for line in lines if ": error: " in line]
        return (errors or lines or ["no output"])[-1]

    def stop(self) -> None:
        """Ends every child still running (their whole process groups), then waits for them."""
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _die_with(parent: int) -> Callable[[], None]:
    """What a child runs before it starts: it gets SIGTERM when the launcher dies, even by kill -9.

    Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``); elsewhere the launcher's own
    signal handling is all there is. A child whose launcher died before this ran exits at once.
    """
    def arm() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:
            os._exit(1)

    return arm


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def launch(module: str, argv: list[str], out_dir: Path, workers: int, gpus_per_worker: int = 1, say=print,
           progress: Callable[[Path], str | None] | None = None) -> int:
    """Runs a distributed search of ``module`` with ``workers`` workers; returns the exit code.

    Ctrl-C or SIGTERM ends every child process; so does any failure. ``progress`` is
    :class:`Launcher`'s.

    Raises:
        LaunchError: naming what failed.
        Interrupted: after Ctrl-C or SIGTERM, once every child has stopped.
    """
    launcher = Launcher(module, argv, out_dir, workers, gpus_per_worker, say, progress)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        say(f"starting the chief on 127.0.0.1:{launcher.port} and {workers} workers; logs in {out_dir / 'workers'}")
        return launcher.run()
    except KeyboardInterrupt:
        launcher.stop()
        raise Interrupted("interrupted; every worker was stopped; rerun the same command to resume") from None
    finally:
        launcher.stop()
        signal.signal(signal.SIGTERM, previous)

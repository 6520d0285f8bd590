"""Decoding worker processes for tagging a library: files in, the windows a model scores out.

Each worker decodes one file at a time (``data.streaming``, no TensorFlow: a worker starts in well
under a second and holds little memory) and sends its windows in chunks through a bounded queue,
so memory stays bounded whatever the files' lengths: at most ``queue_chunks`` chunks of
``chunk_windows`` windows wait, and a worker holds one window plus one decoded block. The parent
(``serving.library``) scores the windows of several files in one batch.

Which windows a file gets (:func:`plan`): every ``hop`` samples while a whole window fits, and one
more ending where the recording ends (a recording shorter than a window is one zero-padded
window), as ``serving.predict`` and the export cut recordings; with ``max_windows``, that many of
them spread evenly over the whole recording, its start and end included.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from data.catalogue import SAMPLE_RATE
from data.config import window_starts
from data.errors import AudioError, RunFailed, one_line
from data.streaming import check_audio_file, declared_seconds, stream_audio


@dataclasses.dataclass(frozen=True)
class WindowPlan:
    """How a file is cut into the windows that are scored.

    Attributes:
        window: Samples per window (the model's).
        hop: Samples between window starts (``window``: no overlap).
        max_windows: At most this many windows per file, spread over the whole file (None: all).
        chunk_windows: Windows sent to the parent at a time.
    """

    window: int
    hop: int
    max_windows: int | None = None
    chunk_windows: int = 16


def plan(samples: int, window_plan: WindowPlan) -> list[int]:
    """The start of every window scored in a recording of ``samples`` samples, in order."""
    starts = window_starts(samples, window_plan.window, window_plan.hop)
    limit = window_plan.max_windows
    if limit is not None and len(starts) > limit:
        # Spread over the whole song, its first and last windows included, not its first minutes.
        picks = np.unique(np.round(np.linspace(0, len(starts) - 1, limit)).astype(int))
        starts = [starts[i] for i in picks]
    return starts


def covered_samples(starts: list[int], window: int, samples: int) -> int:
    """Samples of the recording inside at least one scored window (overlaps counted once)."""
    covered, end = 0, 0
    for start in starts:
        stop = min(start + window, samples)
        covered += max(0, stop - max(start, end))
        end = max(end, stop)
    return covered


@dataclasses.dataclass(frozen=True)
class Decoded:
    """What a file's decoding ended with.

    Attributes:
        samples: The recording's length, in samples at 22050 Hz.
        starts: Where each window sent starts, in samples, in the order sent.
        covered: Samples inside at least one scored window.
    """

    samples: int
    starts: tuple[int, ...]
    covered: int


def _resampled(frames: int, rate: int) -> int:
    return int(round(frames * SAMPLE_RATE / rate))


def _length(path: Path) -> int | None:
    """The recording's length at 22050 Hz as its header declares it, None when it does not."""
    try:
        info = soundfile.info(str(path))
    except Exception:  # the stream's own read says what is wrong
        return None
    seconds = declared_seconds(info)
    return None if seconds is None else _resampled(info.frames, info.samplerate)


def windows_of(path: Path, window_plan: WindowPlan) -> Iterator[np.ndarray | Decoded]:
    """Yields a file's windows in chunks ``[n, window]`` as it is decoded, then its :class:`Decoded`.

    Memory holds one block and at most one window beyond the chunk being filled: samples no
    planned window needs are dropped as the stream goes. With ``max_windows`` the plan needs the
    recording's length first: the header's, or (a stream that does not declare it) a first pass
    that only counts samples.

    Raises:
        AudioError: for a file that is not usable audio (``data.streaming.check_audio_file``, a
            decoder error, NaN or infinite samples, no samples at all).
    """
    path = check_audio_file(path)
    window, hop = window_plan.window, window_plan.hop
    planned: list[int] | None = None
    if window_plan.max_windows is not None:
        length = _length(path)
        if length is None:
            length = sum(block.size for block in _stream(path))
        planned = plan(length, window_plan)
    chunk: list[np.ndarray] = []
    sent: list[int] = []
    buffer, offset, total = np.zeros(0, np.float32), 0, 0  # buffer[0] is sample `offset`
    recent = np.zeros(0, np.float32)  # the last window's worth, for a window ending at the end
    next_index = 0

    def next_start() -> int | None:
        if planned is None:
            return next_index * hop
        return planned[next_index] if next_index < len(planned) else None

    for block in _stream(path):
        total += block.size
        buffer = np.concatenate([buffer, block])
        recent = np.concatenate([recent, block])[-window:]
        while (start := next_start()) is not None and start + window <= total:
            chunk.append(buffer[start - offset:start - offset + window].copy())
            sent.append(start)
            next_index += 1
            if len(chunk) == window_plan.chunk_windows:
                yield np.stack(chunk)
                chunk = []
        # Keep only what the next window needs (nothing before its start).
        start = next_start()
        keep_from = total if start is None else min(start, total)
        buffer, offset = buffer[keep_from - offset:], keep_from
    if total == 0:
        raise AudioError("no audio samples")
    end_start = max(total - window, 0)
    if not sent:  # shorter than one window (or a plan past its real end): one window, zero-padded
        chunk.append(np.pad(recent, (0, window - recent.size)))
        sent.append(end_start)
    elif sent[-1] + window < total and (planned is None or len(sent) < len(planned)):
        chunk.append(recent.copy())  # samples left over: one more window, ending where the recording ends
        sent.append(end_start)
    if chunk:
        yield np.stack(chunk)
    yield Decoded(total, tuple(sent), covered_samples(sent, window, total))


def _stream(path: Path) -> Iterator[np.ndarray]:
    """The file's samples block by block; any decoder failure becomes an AudioError naming it."""
    try:
        yield from stream_audio(path)
    except AudioError:
        raise
    except Exception as error:  # libsndfile and soxr raise their own types for a damaged file
        raise AudioError(f"cannot be decoded ({one_line(error)})") from None


def work(tasks: multiprocessing.Queue, results: multiprocessing.Queue, window_plan: WindowPlan) -> None:
    """A worker process's loop: ``(index, path)`` tasks in until ``None``; for each, ``("start", index, pid)``,
    then ``("windows", index, array)`` per chunk and ``("done", index, Decoded)`` or ``("error", index, reason)``."""
    results.put(("ready", os.getpid()))
    while (task := tasks.get()) is not None:
        index, path = task
        results.put(("start", index, os.getpid()))
        try:
            for item in windows_of(Path(path), window_plan):
                if isinstance(item, Decoded):
                    results.put(("done", index, item))
                else:
                    results.put(("windows", index, item))
        except AudioError as error:
            results.put(("error", index, str(error)))
        except Exception as error:  # anything else a hostile file provokes is that file's row, not the run's end
            results.put(("error", index, f"cannot be decoded ({type(error).__name__}: {one_line(error)})"))


class Workers:
    """Decoding worker processes (spawned: no TensorFlow and no threads are inherited) over bounded queues.

    Args:
        count: Worker processes.
        window_plan: How files are cut.
        queue_chunks: Chunks that may wait for the parent; bounds the memory in flight.
    """

    def __init__(self, count: int, window_plan: WindowPlan, queue_chunks: int | None = None):
        self.context = multiprocessing.get_context("spawn")
        self.window_plan = window_plan
        self.tasks = self.context.Queue()
        self.results = self.context.Queue(maxsize=queue_chunks or 2 * count + 2)
        self.processes = [self._start() for _ in range(count)]
        self.current: dict[int, int] = {}  # pid -> the file index it announced last
        self.finished: set[int] = set()
        self._wait_ready(count)

    def _wait_ready(self, count: int, timeout: float = 120.0) -> None:
        """Returns once every worker has started (its imports done), so start-up is timed apart.

        Raises:
            RunFailed: if a worker exits as it starts (a program that spawns them without an
                ``if __name__ == '__main__'`` guard), or none is ready within ``timeout`` seconds.
        """
        deadline, ready = time.monotonic() + timeout, 0
        while ready < count:
            try:
                ready += self.results.get(timeout=0.2)[0] == "ready"
            except queue.Empty:
                dead = [process.exitcode for process in self.processes if not process.is_alive()]
                if dead:
                    self.close()
                    raise RunFailed(f"the decoding worker processes exit as they start (exit code {dead[0]}); a "
                                    "program that tags from Python must guard its start with if __name__ == "
                                    "'__main__'") from None
                if time.monotonic() > deadline:
                    self.close()
                    raise RunFailed(f"the decoding worker processes did not start within {timeout:g} s") from None

    def _start(self) -> multiprocessing.Process:
        process = self.context.Process(target=work, args=(self.tasks, self.results, self.window_plan), daemon=True)
        process.start()
        return process

    def submit(self, index: int, path: str) -> None:
        """Queues a file (the queue of paths is small: one short string per file)."""
        self.tasks.put((index, path))

    def get(self, timeout: float) -> tuple | None:
        """The next ``windows``, ``done`` or ``error`` message, or None if none came within ``timeout``
        seconds; a worker that died (a decoder crash) is replaced, and the file it was decoding comes
        back as an error."""
        try:
            message = self.results.get(timeout=timeout)
        except queue.Empty:
            return self._dead_worker()
        if message[0] == "start":
            self.current[message[2]] = message[1]
            return self.get(timeout)
        if message[0] == "ready":  # a worker started in place of one that died
            return self.get(timeout)
        if message[0] in ("done", "error"):
            self.finished.add(message[1])
        return message

    def _dead_worker(self) -> tuple | None:
        for position, process in enumerate(self.processes):
            if process.is_alive():
                continue
            index = self.current.pop(process.pid, None)
            if index is None:  # it took a file without saying which: that file would be waited for forever
                raise RunFailed(f"a decoding worker died before it said which file it took (exit code "
                                f"{process.exitcode})")
            self.processes[position] = self._start()
            if index is not None and index not in self.finished:
                self.finished.add(index)
                return ("error", index, f"the decoder crashed on it (exit code {process.exitcode})")
        return None

    def close(self) -> None:
        """Stops every worker (at once: what is in flight is not needed any more)."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.join(timeout=5)
        self.tasks.cancel_join_thread()
        self.results.cancel_join_thread()

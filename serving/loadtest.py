"""The HTTP benchmarks behind ``python -m serving.bench --http`` and ``--hostile``, on loopback.

Starts ``python -m serving.app`` on a free loopback port, then sends real audio files as
multipart uploads from N client threads (:func:`load`), or the uploads of hostile clients
(:func:`hostile`); every run is bounded in requests and in seconds, and stops by itself. Only
127.0.0.1 is ever addressed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from data.errors import RunFailed
from data.processes import resident_memory_mb


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """What one run of clients measured.

    Attributes:
        clients: Concurrent clients.
        requests: Requests answered (with any status).
        errors: Requests that failed or were not answered 200.
        seconds: Wall time of the run.
        latencies: Seconds of each answered request.
    """

    clients: int
    requests: int
    errors: int
    seconds: float
    latencies: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``python -m serving.app`` in a child process on loopback, stopped on exit of the ``with``.

    Args:
        export: The SavedModel it serves.
        flags: More flags of the app (``--max-concurrent 4``, ...).
        spool: The folder its uploads are written to while they are scored (``TMPDIR``).
        startup_timeout: Seconds to wait for its first answer.
    """

    def __init__(self, export: Path, *flags: str, spool: Path | None = None, startup_timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.export, self.flags, self.spool, self.startup_timeout = export, flags, spool, startup_timeout

    def __enter__(self) -> Server:
        env = {**os.environ, **({"TMPDIR": str(self.spool)} if self.spool else {})}
        self.process = subprocess.Popen([sys.executable, "-m", "serving.app", "--model", str(self.export),
                                         "--host", "127.0.0.1", "--port", str(self.port), *self.flags],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RunFailed(f"the app did not start (exit {self.process.returncode}); run python -m serving.app "
                                f"--model {self.export} to see why")
            try:
                urllib.request.urlopen(f"{self.url}/api/health", timeout=2).read()
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RunFailed(f"the app did not answer within {self.startup_timeout:g} s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _post(url: str, path: Path, timeout: float) -> tuple[int, dict]:
    """POSTs ``path`` as the multipart field ``file`` to ``/api/predict``; returns the HTTP status and
    the JSON answer (an error's too)."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read() or b"{}")
        except ValueError:  # a refusal from below the app (a proxy, the server's own limits)
            return error.code, {}


def upload(url: str, path: Path, timeout: float) -> int:
    """POSTs ``path`` as the multipart field ``file``; returns the HTTP status."""
    return _post(url, path, timeout)[0]


def load(url: str, files: list[Path], *, clients: int, requests: int, max_seconds: float) -> LoadResult:
    """``clients`` threads send ``files`` in turn until ``requests`` are answered or ``max_seconds`` pass."""
    latencies, errors, lock = [], [0], threading.Lock()
    sent = [0]
    start = time.perf_counter()
    deadline = start + max_seconds

    def client() -> None:
        while True:
            with lock:
                if sent[0] >= requests or time.perf_counter() > deadline:
                    return
                index = sent[0]
                sent[0] += 1
            began = time.perf_counter()
            try:
                status = upload(url, files[index % len(files)], timeout=max(1.0, deadline - began + 5))
            except OSError:
                status = 0
            with lock:
                latencies.append(time.perf_counter() - began)
                if status != 200:
                    errors[0] += 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max_seconds + 60)
    return LoadResult(clients, len(latencies), errors[0], time.perf_counter() - start, tuple(latencies))


def answer(url: str, path: Path, timeout: float = 120.0) -> dict:
    """The JSON answer to ``path`` uploaded as the multipart field ``file`` (an error's too)."""
    return _post(url, path, timeout)[1]


def resident_mb(pid: int) -> float:
    """A process's resident memory in MB (0 where it cannot be read)."""
    return resident_memory_mb(pid) or 0.0


def raw_upload(port: int, name: str, data: bytes, timeout: float) -> int:
    """POSTs ``data`` as the file ``name`` over a plain socket; returns the HTTP status (0: no answer).

    A server that refuses before the body is sent closes the connection; its answer is still read.
    """
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n").encode() \
        + data + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            try:
                conn.sendall(head.encode() + body)
            except OSError:  # refused mid-body: the answer is waiting
                pass
            answer = conn.recv(64)
    except OSError:
        return 0
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def storm(server: Server, name: str, data: bytes, clients: int, timeout: float) -> dict:
    """``clients`` uploads of ``data`` at once, while ``/api/health`` is asked every 50 ms.

    Returns:
        ``statuses`` (count per HTTP status), ``health_max_s`` (the slowest health answer),
        ``rss_growth_mb`` (the server's largest resident memory above its start), ``seconds``.
    """
    statuses: dict[int, int] = {}
    lock, done = threading.Lock(), threading.Event()
    base, peak, health = resident_mb(server.process.pid), [0.0], [0.0]

    def client() -> None:
        status = raw_upload(server.port, name, data, timeout)
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], resident_mb(server.process.pid))
            start = time.perf_counter()
            try:
                urllib.request.urlopen(f"{server.url}/api/health", timeout=timeout).read()
                health[0] = max(health[0], time.perf_counter() - start)
            except OSError:
                health[0] = float("inf")
            time.sleep(0.05)

    start = time.perf_counter()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout + 60)
    done.set()
    watcher.join(timeout=10)
    return {"statuses": statuses, "health_max_s": health[0], "rss_growth_mb": max(0.0, peak[0] - base),
            "seconds": time.perf_counter() - start}


def big_body(server: Server, megabytes: int, timeout: float = 60.0) -> dict:
    """Sends a chunked body of ``megabytes`` MB until the server answers; watches its upload folder.

    Returns:
        ``status``, ``answered_s`` (seconds to the answer), ``sent_mb`` (what went out before it)
        and ``spool_peak_mb`` (the most the server's upload folder held meanwhile).
    """
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            size = sum(f.stat().st_size for f in server.spool.iterdir() if f.is_file()) if server.spool else 0
            peak[0] = max(peak[0], size)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    sent, status, start = 0, 0, time.perf_counter()
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as conn:
        conn.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: multipart/form-data; boundary=zz\r\n\r\n").encode())
        part = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        chunk = bytes(1 << 20)
        try:
            while sent < megabytes << 20:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:  # the server answered and closed the connection
            pass
        try:
            answer = conn.recv(64).split(b" ", 2)
            status = int(answer[1]) if len(answer) > 1 and answer[1].isdigit() else 0
        except OSError:
            status = 0
    answered = time.perf_counter() - start
    done.set()
    watcher.join(timeout=5)
    return {"status": status, "answered_s": answered, "sent_mb": sent / (1 << 20), "spool_peak_mb": peak[0] / 1e6}


@dataclasses.dataclass(frozen=True)
class Vitals:
    """What a server process holds at one moment.

    Attributes:
        rss_mb: Resident memory (MB).
        fds: Open file descriptors (files and sockets).
        threads: Threads.
        temp_files: Files in its upload folder.
    """

    rss_mb: float
    fds: int
    threads: int
    temp_files: int

    def __str__(self) -> str:
        return (f"{self.rss_mb:.0f} MB resident, {self.fds} open descriptors, {self.threads} threads, "
                f"{self.temp_files} temporary files")


def vitals(server: Server) -> Vitals:
    """The server's :class:`Vitals` now (Linux ``/proc``; descriptors and threads 0 elsewhere)."""
    pid = server.process.pid
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        threads = next((int(line.split()[1]) for line in status if line.startswith("Threads:")), 0)
    except OSError:
        fds = threads = 0
    temp = sum(1 for path in server.spool.rglob("*") if path.is_file()) if server.spool else 0
    return Vitals(resident_mb(pid), fds, threads, temp)


def _head(port: int, length: int, boundary: str) -> bytes:
    return (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n").encode()


def oversized(port: int, declared_mb: float, send_mb: float, timeout: float) -> int:
    """A body that declares ``declared_mb`` MB (over the app's cap) and sends ``send_mb`` MB of it
    before it reads the answer, then hangs up; returns the HTTP status (0: no answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            try:
                conn.sendall(_head(port, int(declared_mb * 1e6), "zz") + bytes(int(send_mb * 1e6)))
            except OSError:  # past the server's lingering bound: the answer may still be waiting
                pass
            answer = conn.recv(64).split(b" ", 2)
    except OSError:
        return 0
    return int(answer[1]) if len(answer) > 1 and answer[1].isdigit() else 0


def disconnect(port: int, name: str, data: bytes, timeout: float) -> int:
    """Sends half of an upload of ``data`` and resets the connection (a client that goes away)."""
    body = (f'--zz\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n').encode() + data
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(_head(port, len(body) + 8, "zz") + body[: len(body) // 2])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    except OSError:
        pass
    return 0


def settled(server: Server, start: Vitals, seconds: float) -> Vitals:
    """The server's vitals once it is idle: polled until descriptors, threads and temporary files are
    back to ``start`` or ``seconds`` pass (connections still being discarded close within the
    app's lingering bound)."""
    deadline = time.monotonic() + seconds
    while True:
        now = vitals(server)
        if (now.fds <= start.fds and now.threads <= start.threads and now.temp_files <= start.temp_files) \
                or time.monotonic() > deadline:
            return now
        time.sleep(0.5)


@dataclasses.dataclass
class SoakResult:
    """What a soak measured.

    Attributes:
        start: The server's vitals after a warm-up round of every request, once idle.
        end: Its vitals after the soak, once idle.
        samples: ``(seconds, vitals)`` about once a minute meanwhile.
        statuses: Per kind of request, the count of each HTTP status (0: no answer).
        seconds: The soak's length.
    """

    start: Vitals
    end: Vitals
    samples: list[tuple[float, Vitals]]
    statuses: dict[str, dict[int, int]]
    seconds: float

    @property
    def steady(self) -> tuple[float, Vitals]:
        """The first sample of the soak's second half (``(0, start)`` without one): memory is judged
        from there, once the first half has filled the allocator's arenas and the runtime's caches,
        which then stay; a leak keeps growing through the second half too."""
        return next(((at, vitals) for at, vitals in self.samples if at >= self.seconds / 2), (0.0, self.start))

    def growth(self, rss_slack_mb: float) -> list[str]:
        """What grew: one phrase per resource over its bound (none: nothing grew).

        The counts (descriptors, threads, temporary files) may not grow at all from start to end;
        resident memory may move by ``rss_slack_mb`` over the second half (:attr:`steady`)."""
        grown = [f"{name} {before} -> {after}" for name, before, after in
                 (("open descriptors", self.start.fds, self.end.fds), ("threads", self.start.threads, self.end.threads),
                  ("temporary files", self.start.temp_files, self.end.temp_files)) if after > before]
        at, steady = self.steady
        if self.end.rss_mb - steady.rss_mb > rss_slack_mb:
            since = f" since {at / 60:.1f} min" if at else ""
            grown.insert(0, f"resident memory {steady.rss_mb:.0f} -> {self.end.rss_mb:.0f} MB{since}")
        return grown


def soak(server: Server, clip: Path, truncated: Path, *, seconds: float, clients: int, burst: int,
         burst_every_s: float, upload_cap_mb: float, on_sample=None, seed: int = 0) -> SoakResult:
    """Drives the app for ``seconds`` with a mix of requests and records its vitals.

    ``clients`` threads each send, in a seeded random order: the valid ``clip`` (half of all
    requests), ``truncated`` (a cut file), a body declared over ``upload_cap_mb`` of which 2 MB are sent
    first, and an upload cut off half-way by a reset; every ``burst_every_s`` seconds ``burst``
    more uploads of ``clip`` arrive at once. Every client sends its whole body before it reads.

    Args:
        on_sample: Called with ``(seconds, vitals)`` about once a minute (to print progress).
    """
    data, cut = clip.read_bytes(), truncated.read_bytes()
    statuses: dict[str, dict[int, int]] = {}
    lock = threading.Lock()
    kinds = {
        "valid clip": lambda timeout: raw_upload(server.port, clip.name, data, timeout),
        "truncated file": lambda timeout: raw_upload(server.port, truncated.name, cut, timeout),
        "declared over the cap": lambda timeout: oversized(server.port, 2 * upload_cap_mb, 2.0, timeout),
        "cut off by the client": lambda timeout: disconnect(server.port, clip.name, data, timeout),
    }
    weights = np.array([3, 1, 1, 1]) / 6

    def count(kind: str, status: int) -> None:
        with lock:
            per_kind = statuses.setdefault(kind, {})
            per_kind[status] = per_kind.get(status, 0) + 1

    def send_burst() -> None:
        threads = [threading.Thread(target=lambda: count("burst", raw_upload(server.port, clip.name, data, 180)),
                                    daemon=True) for _ in range(burst)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)

    # Warm-up: one of each, and a burst, so that lazily made threads and caches exist at the start.
    for kind, send in kinds.items():
        send(180)
    send_burst()
    start = settled(server, vitals(server), 10.0)
    statuses.clear()

    began = time.monotonic()
    deadline = began + seconds
    stop = threading.Event()

    def client(index: int) -> None:
        rng = np.random.default_rng([seed, index])
        while not stop.is_set() and time.monotonic() < deadline:
            kind = list(kinds)[rng.choice(len(kinds), p=weights)]
            count(kind, kinds[kind](180))

    def bursts() -> None:
        while not stop.wait(burst_every_s) and time.monotonic() < deadline:
            send_burst()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=bursts, daemon=True))
    for thread in threads:
        thread.start()
    samples = []
    while time.monotonic() < deadline:
        time.sleep(min(60.0, max(0.0, deadline - time.monotonic())))
        sample = (time.monotonic() - began, vitals(server))
        samples.append(sample)
        if on_sample:
            on_sample(*sample)
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
    end = settled(server, start, 60.0)
    return SoakResult(start, end, samples, statuses, time.monotonic() - began)

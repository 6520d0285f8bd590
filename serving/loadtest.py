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
    """A process's resident memory in MB (Linux ``/proc``; 0 elsewhere)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


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

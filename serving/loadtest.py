"""The HTTP benchmark behind ``python -m serving.bench --http``: concurrent clients on loopback.

Starts ``python -m serving.app`` on a free loopback port, then sends real audio files as
multipart uploads from N client threads; every run is bounded in requests and in seconds, and
stops by itself. Only 127.0.0.1 is ever addressed.
"""

from __future__ import annotations

import dataclasses
import json
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
    """``python -m serving.app`` in a child process on loopback, stopped on exit of the ``with``."""

    def __init__(self, export: Path, startup_timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.export, self.startup_timeout = export, startup_timeout

    def __enter__(self) -> Server:
        self.process = subprocess.Popen([sys.executable, "-m", "serving.app", "--model", str(self.export),
                                         "--host", "127.0.0.1", "--port", str(self.port)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RunFailed(f"the app did not start: {self.process.stdout.read().strip()[-300:]}")
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


def upload(url: str, path: Path, timeout: float) -> int:
    """POSTs ``path`` as the multipart field ``file``; returns the HTTP status."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{url}/api/predict", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            json.loads(response.read())
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


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

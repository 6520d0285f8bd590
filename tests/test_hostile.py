"""serving.app against hostile and careless clients: a real server on loopback, raw sockets.

Each class of attack of the app is tried with bounded request counts and times: headers that
declare what the file is not, truncated and unknown-length files, bodies and parts past the
limits, more requests than the server scores at once, slow clients, error texts, Host and
Origin. ``serving.predict`` and ``serving.embed`` share the bounded decoder and are tried too.
"""

import http.client
import io
import itertools
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.errors import error_line
from tests.needs import musicnn_wheel

ROOT = Path(__file__).resolve().parents[1]
SR = 22050


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    import zoo
    from serving.export import export_saved_model

    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    about = {"trial": "2cnn-16-16-1fc", "model": "2cnn-16-16-1fc", "data": {"data_dir": "/d/x", "synthetic": False}}
    return export_saved_model(zoo.build("2cnn-16-16-1fc", window_seconds=1.0), genres,
                              tmp_path_factory.mktemp("exports") / "m" / "1", about=about)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, export: Path, spool: Path, *flags: str):
        self.port, self.spool = _free_port(), spool
        spool.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving.app", "--model", str(export), "--port", str(self.port), *flags],
            cwd=ROOT, env={**os.environ, "TMPDIR": str(spool)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status, _, _ = self.request("GET", "/api/health")
                if status == 200:
                    return
            except OSError:
                pass
            assert self.process.poll() is None, self.process.stdout.read()[-2000:]
            time.sleep(0.3)
        raise AssertionError("the app did not start")

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                timeout: float = 60) -> tuple[int, dict, bytes]:
        headers = {"Host": f"127.0.0.1:{self.port}", "Content-Length": str(len(body)), "Connection": "close",
                   **(headers or {})}
        with self.connect() as conn:
            conn.settimeout(timeout)
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            conn.sendall(head.encode() + body)
            return _read_response(conn)

    def upload(self, data: bytes, name: str = "x.wav", **kwargs) -> tuple[int, dict, bytes]:
        body, kind = multipart([("file", name, data)])
        return self.request("POST", "/api/predict", body, {"Content-Type": kind}, **kwargs)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _read_response(conn: socket.socket) -> tuple[int, dict, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def wav(seconds: float, rate: int = SR, channels: int = 1) -> bytes:
    out = io.BytesIO()
    audio = 0.2 * np.random.default_rng(0).standard_normal((int(seconds * rate), channels))
    soundfile.write(out, audio.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def encoded(seconds: float, fmt: str, rate: int = SR, channels: int = 1) -> bytes:
    out = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], axis=1)
    soundfile.write(out, audio.astype(np.float32), rate, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def server(export, tmp_path_factory):
    running = Server(export, tmp_path_factory.mktemp("spool"), "--max-upload-mb", "2", "--max-seconds", "60",
                     "--max-concurrent", "1", "--max-queue", "1", "--queue-timeout", "6", "--client-timeout", "3")
    yield running
    running.stop()


def error(body: bytes) -> str:
    text = json.loads(body)["error"]
    assert "\n" not in text and "/" not in text.replace("WAV, FLAC", "") and "Error" not in text, text
    return text


def test_headers_that_declare_too_much_are_refused_in_bounded_memory(server):
    before = _rss_mb(server.process.pid)
    # FLAC allows 8 channels at 655350 Hz: a small file that declares a huge decoding job.
    loud = encoded(0.5, "FLAC", rate=655350, channels=8)
    assert len(loud) < 2_000_000
    status, _, body = server.upload(loud, "x.flac")
    assert status == 422 and "declares a sample rate of 655350 Hz; at most 384000 Hz" in error(body)
    # The most a header may declare, 384 kHz and 8 channels: decoded in bounded blocks.
    status, _, body = server.upload(encoded(2.0, "FLAC", rate=384000, channels=8), "y.flac")
    assert status == 200 and abs(json.loads(body)["seconds"] - 2.0) < 0.01
    # A WAV header with 60000 channels or a rate of 2 GHz: the decoder refuses it before decoding.
    for channels, rate in ((60000, SR), (2, 2_000_000_000)):
        header = (b"RIFF" + struct.pack("<I", 36 + 100000) + b"WAVEfmt " +
                  struct.pack("<IHHIIHH", 16, 3, channels, rate, (rate * channels * 4) & 0xFFFFFFFF,
                              (channels * 4) & 0xFFFF, 32) + b"data" + struct.pack("<I", 100000))
        status, _, body = server.upload(header + bytes(100000))
        assert status == 422 and error(body).startswith("not usable audio")
    assert _rss_mb(server.process.pid) - before < 200


def test_a_truncated_file_gives_the_same_answer_whatever_came_before_and_its_decoded_length(server):
    whole = encoded(10.0, "MP3")
    cut = whole[: len(whole) // 3]
    first = server.upload(cut, "cut.mp3")
    server.upload(wav(4.0), "other.wav")  # another client's audio in between
    second = server.upload(cut, "cut.mp3")
    assert first[0] == second[0] == 200 and json.loads(first[2]) == json.loads(second[2])
    assert 2.0 < json.loads(first[2])["seconds"] < 5.0  # what the file holds, not the 10 s its header promises


def test_a_stream_of_unknown_length_is_read_to_its_end(server):
    data = bytearray(encoded(3.0, "FLAC"))
    data[8 + 13] &= 0xF0  # STREAMINFO's total samples: 0, "unknown"
    data[8 + 14: 8 + 18] = bytes(4)
    status, _, body = server.upload(bytes(data), "u.flac")
    assert status == 200 and abs(json.loads(body)["seconds"] - 3.0) < 0.05


def test_bodies_past_the_limit_are_refused_while_they_arrive(server):
    # Declared too large: refused before a byte is read.
    start = time.monotonic()
    status, headers, body = server.request("POST", "/api/predict", b"", {
        "Content-Type": "multipart/form-data; boundary=x", "Content-Length": str(10**9)})
    assert status == 413 and time.monotonic() - start < 1 and "larger than 2 MB" in error(body)
    # Chunked, with no length: counted as it arrives and refused past the cap; what follows is read and
    # discarded (lingering, within --linger-mb), never stored, so this client that sends first reads the 413.
    with server.connect() as conn:
        conn.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: multipart/form-data; boundary=zz\r\n\r\n").encode())
        part = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
        conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        chunk = os.urandom(1 << 20)
        sent, start = 0, time.monotonic()
        try:
            while sent < 200 << 20:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:  # the server closed the connection: what it had to say is waiting
            pass
        status, _, body = _read_response(conn)
    assert status == 413 and time.monotonic() - start < 10
    time.sleep(0.5)
    assert not list(server.spool.iterdir())  # the partial upload was removed


def test_one_file_part_and_nothing_else(server):
    audio = wav(1.5)
    body, kind = multipart([("file", "a.wav", audio), ("file", "b.wav", audio)])
    status, _, answer = server.request("POST", "/api/predict", body, {"Content-Type": kind})
    assert status == 400 and "one multipart part" in error(answer)
    body, kind = multipart([("note", None, b"x" * 5000)] * 1000)  # 1000 parts of 5 KB beside nothing
    status, _, answer = server.request("POST", "/api/predict", body[:1_900_000], {"Content-Type": kind})
    assert status == 400
    status, _, answer = server.request("POST", "/api/predict", b"no multipart", {"Content-Type": "text/plain"})
    assert status == 400 and "multipart form field 'file'" in error(answer)


def stalled_upload(server) -> socket.socket:
    """A connection whose upload sends its head and a little of its body, then nothing."""
    slow = server.connect()
    body, kind = multipart([("file", "slow.wav", wav(2.0))])
    slow.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {kind}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:1000])
    return slow


def test_beyond_the_concurrent_scorings_a_bounded_queue_then_503_and_health_stays_fast(server):
    # One slow upload holds the one scoring slot; it stalls and is dropped after --client-timeout (3 s).
    slow = stalled_upload(server)
    time.sleep(0.5)
    waiting = {}
    queued = threading.Thread(target=lambda: waiting.setdefault("answer", server.upload(wav(1.0))))
    queued.start()  # waits in the queue (one place) for the slot
    time.sleep(0.5)
    start = time.monotonic()
    status, headers, answer = server.upload(wav(1.0))  # the queue is full: refused at once
    assert status == 503 and headers.get("retry-after") and time.monotonic() - start < 1
    assert "1 more are waiting (--max-queue)" in error(answer)
    for _ in range(5):
        start = time.monotonic()
        assert server.request("GET", "/api/health")[0] == 200 and time.monotonic() - start < 0.5
    status, _, answer = _read_response(slow)  # the stalled upload is dropped
    assert status == 408 and "stalled for 3 s" in error(answer)
    slow.close()
    queued.join(timeout=30)
    assert waiting["answer"][0] == 200  # the waiting request got the slot when it was free
    assert server.upload(wav(1.0))[0] == 200


def send_first(server, body: bytes | Iterable[bytes], headers: dict) -> tuple[int, str]:
    """A client that sends its whole body before it reads an answer, as most HTTP libraries do."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.request("POST", "/api/predict", body=body, headers={"Host": f"127.0.0.1:{server.port}", **headers},
                     encode_chunked=not isinstance(body, bytes))
        response = conn.getresponse()
        return response.status, error(response.read())
    finally:
        conn.close()


def test_every_early_refusal_reaches_a_client_that_sends_its_whole_body_first(server):
    big = os.urandom(20 << 20)  # 20 MB against the 2-MB cap
    body, kind = multipart([("file", "big.wav", big)])
    assert send_first(server, body, {"Content-Type": kind}) == (413, "the upload is larger than 2 MB (--max-upload-mb)")
    part = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    chunks = itertools.chain([part], (big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)))
    status, text = send_first(server, chunks, {"Content-Type": "multipart/form-data; boundary=zz"})
    assert (status, text) == (413, "the upload is larger than 2 MB (--max-upload-mb)")  # the user's cap, as set
    body, kind = multipart([("file", "a.wav", wav(1.0))] + [("note", None, b"x" * 1000)] * 1000)
    status, text = send_first(server, body, {"Content-Type": kind})
    assert status == 400 and "one multipart part" in text
    # 503: the slot taken by a stalled upload, the queue by a waiting one; a third sends 5 MB first.
    slow = stalled_upload(server)
    time.sleep(0.3)
    queued = threading.Thread(target=server.upload, args=(wav(1.0),))
    queued.start()
    time.sleep(0.3)
    body, kind = multipart([("file", "five.wav", os.urandom(5 << 20))])
    status, text = send_first(server, body, {"Content-Type": kind})
    assert status == 503 and "--max-queue" in text
    # 408: a body that stalls, then comes in full: the client still reads the 408.
    _read_response(slow)
    slow.close()
    queued.join(timeout=30)
    with server.connect() as conn:
        body, kind = multipart([("file", "late.wav", os.urandom(1 << 20))])
        conn.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {kind}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:1000])
        time.sleep(4)  # past --client-timeout
        conn.sendall(body[1000:])
        status, _, answer = _read_response(conn)
    assert status == 408 and "stalled" in error(answer)


def test_past_the_linger_bounds_the_connection_is_closed(export, tmp_path):
    running = Server(export, tmp_path / "spool", "--max-upload-mb", "1", "--linger-mb", "4", "--linger-seconds", "2")
    try:
        with running.connect() as conn:
            conn.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\nContent-Type: "
                          f"multipart/form-data; boundary=x\r\nContent-Length: {10**9}\r\n\r\n").encode())
            status, _, answer = _read_response(conn)  # read at once by this client
            assert status == 413
            sent, start = 0, time.monotonic()
            with pytest.raises(OSError):  # the server stops discarding after 4 MB (or 2 s) and closes
                while sent < 200 << 20:
                    conn.sendall(bytes(1 << 20))
                    sent += 1 << 20
            assert sent < 50 << 20 and time.monotonic() - start < 10
        assert running.request("GET", "/api/health")[0] == 200
    finally:
        running.stop()


def test_a_client_that_trickles_its_headers_is_disconnected(server):
    with server.connect() as conn:
        conn.sendall(b"GET /api/health HTTP/1.1\r\n")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 8:
            try:
                conn.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            conn.settimeout(0.5)
            try:
                if conn.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
        assert closed and time.monotonic() - start < 6  # --client-timeout 3


def test_host_origin_and_security_headers(server):
    status, headers, body = server.request("GET", "/api/health", headers={"Host": "evil.example"})
    assert status == 400 and "its own address only" in error(body)
    status, headers, body = server.request("GET", "/api/health", headers={"Origin": "http://evil.example"})
    assert status == 200  # reading is harmless: the Host check stops DNS rebinding
    body, kind = multipart([("file", "a.wav", wav(1.0))])
    status, _, answer = server.request("POST", "/api/predict", body, {"Content-Type": kind,
                                                                       "Origin": "http://evil.example"})
    assert status == 403 and "other web sites" in error(answer)
    status, _, _ = server.request("POST", "/api/predict", body, {"Content-Type": kind,
                                                                  "Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200
    for path in ("/", "/api/health", "/nowhere"):
        status, headers, _ = server.request("GET", path)
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["content-security-policy"] and headers["referrer-policy"]
    assert server.request("HEAD", "/")[0] == 200


def test_a_broken_export_description_is_refused_at_start(export, tmp_path):
    import shutil

    broken = tmp_path / "m" / "1"
    shutil.copytree(export, broken)
    (broken / "assets.extra" / "gtzan.json").write_text('{"window_samples": "x"')
    result = subprocess.run([sys.executable, "-m", "serving.app", "--model", str(broken)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "is not this toolkit's description of the model" in error_line(result.stderr)


def test_sigterm_is_a_clean_stop(export, tmp_path):
    running = Server(export, tmp_path / "spool")
    running.process.terminate()
    out, _ = running.process.communicate(timeout=30)
    assert running.process.returncode == 0 and out.strip().splitlines()[-1] == "stopped"
    assert "resume" not in out


def test_predict_and_embed_share_the_bounded_decoder(export, tmp_path):
    (tmp_path / "loud.flac").write_bytes(encoded(0.5, "FLAC", rate=655350, channels=8))
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    result = subprocess.run([sys.executable, "-m", "serving.predict", str(tmp_path / "loud.flac"), str(fifo),
                             str(loop), "--model", str(export)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    errors = [line for line in result.stderr.strip().splitlines() if ": error: " in line]
    assert result.returncode == 1 and len(errors) == 3
    assert "loud.flac: the file declares a sample rate of 655350 Hz" in errors[0]
    assert "pipe.wav: not a regular file" in errors[1] and "loop.wav: a loop of symbolic links" in errors[2]
    musicnn_wheel()  # the embed half needs it
    result = subprocess.run([sys.executable, "-m", "serving.embed", str(tmp_path / "loud.flac"), "--out",
                             str(tmp_path / "e.npz")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    # A batch command names each file it could not read, then says what came of the batch.
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 2, lines
    assert lines[0].startswith("python -m serving.embed: error: cannot read ") and "655350 Hz" in lines[0]
    assert lines[1] == "python -m serving.embed: error: none of the 1 files could be read; nothing written"


def test_scoring_stops_when_the_client_goes(export, tmp_path):
    long = tmp_path / "long.flac"
    with soundfile.SoundFile(long, "w", SR, 1) as out:  # two hours of silence: small as FLAC, long to score
        block = np.zeros(SR * 60, np.float32)
        for _ in range(120):
            out.write(block)
    running = Server(export, tmp_path / "spool", "--max-concurrent", "1", "--max-seconds", "7200",
                     "--max-upload-mb", "200")
    try:
        start = time.monotonic()
        status, _, _ = running.upload(long.read_bytes(), "long.flac", timeout=300)
        whole = time.monotonic() - start
        assert status == 200 and whole > 3
        body, kind = multipart([("file", "long.flac", long.read_bytes())])
        conn = running.connect()
        conn.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\nContent-Type: {kind}\r\n"
                      f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        time.sleep(0.5)
        conn.close()  # gone while its recording is scored
        gone = time.monotonic()
        while running.upload(wav(1.0))[0] == 503:
            time.sleep(0.1)
        assert time.monotonic() - gone < whole / 2  # the slot was freed long before the scoring would end
    finally:
        running.stop()

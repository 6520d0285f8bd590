"""serving.app: the JSON API (FastAPI's test client) and the page in a real browser (system Chromium)."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile

from serving.config import Limits
from tests.errors import error_line

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real_excerpts"
SR = 22050


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A tiny (untrained) model with 1-s windows, exported as evaluation exports it."""
    import zoo
    from serving.export import export_saved_model

    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    model = zoo.build("2cnn-16-16-1fc", window_seconds=1.0)
    about = {"trial": "2cnn-16-16-1fc", "model": "2cnn-16-16-1fc", "data": {"data_dir": "/data/tiny", "synthetic": True},
             "test": {"track_accuracy": 0.25, "macro_f1": 0.2, "test_clips": 10}}
    return export_saved_model(model, genres, tmp_path_factory.mktemp("exports") / "tiny" / "1", about=about)


@pytest.fixture(scope="module")
def client(export):
    from fastapi.testclient import TestClient

    from serving.prediction import Predictor
    from serving.web import create_app

    return TestClient(create_app(Predictor(export), Limits(max_seconds=20, max_upload_mb=1)),
                      base_url="http://127.0.0.1")


def real_or_synthetic(seconds: float) -> np.ndarray:
    """Real GTZAN excerpts end to end, one genre after another from clip id 25 down (the test part of
    the split by id), ``seconds`` long; synthetic music without ../shared."""
    if REAL.is_dir():
        pieces, total = [], 0
        for path in sorted(REAL.glob("*/*.wav"), key=lambda p: (-int(p.stem.split(".")[1]), p.stem)):
            audio, _ = soundfile.read(path, dtype="float32")
            pieces.append(audio)
            total += audio.size
            if total >= seconds * SR:
                break
        return np.concatenate(pieces)[: int(seconds * SR)]
    from data.synthesis import render_clip

    return render_clip("jazz", seconds, np.random.default_rng(0)).astype(np.float32)


def post(client, path: Path, name: str | None = None):
    with open(path, "rb") as f:
        return client.post("/api/predict", files={"file": (name or path.name, f, "application/octet-stream")})


@pytest.mark.parametrize("fmt", ["wav16", "wav24_44k_stereo", "flac_48k", "ogg", "au"])
def test_good_files_of_several_formats(client, tmp_path, fmt):
    audio = real_or_synthetic(3.2)
    path = {"wav16": tmp_path / "a.wav", "wav24_44k_stereo": tmp_path / "b.wav", "flac_48k": tmp_path / "c.flac",
            "ogg": tmp_path / "d.ogg", "au": tmp_path / "e.au"}[fmt]
    if fmt == "wav24_44k_stereo":
        import soxr

        stereo = np.stack([soxr.resample(audio, SR, 44100)] * 2, axis=1)
        soundfile.write(path, stereo, 44100, subtype="PCM_24")
    elif fmt == "flac_48k":
        import soxr

        soundfile.write(path, soxr.resample(audio, SR, 48000), 48000)
    else:
        soundfile.write(path, audio, SR, **({"subtype": "PCM_16"} if fmt in ("wav16", "au") else {}))
    response = post(client, path)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == "2cnn-16-16-1fc" and abs(answer["seconds"] - 3.2) < 0.05
    assert sorted(answer["genres"]) == sorted(answer["genre_order"]) and len(answer["genre_order"]) == 10
    assert answer["probabilities"] == sorted(answer["probabilities"], reverse=True)
    assert abs(sum(answer["probabilities"]) - 1) < 1e-4
    # 1-s windows, and one more ending where the recording ends: every sample is scored.
    assert [w["start"] for w in answer["windows"]] == [0.0, 1.0, 2.0, 2.2]
    assert all(len(w["probabilities"]) == 10 for w in answer["windows"])


def test_answer_is_the_exports_own_clip_average(client, export, tmp_path):
    import tensorflow as tf

    audio = real_or_synthetic(4.5)
    soundfile.write(tmp_path / "clip.wav", audio, SR, subtype="FLOAT")
    answer = post(client, tmp_path / "clip.wav").json()
    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    direct = serve(waveform=tf.constant(audio[None]))["probabilities"].numpy()[0]
    by_genre = dict(zip(answer["genres"], answer["probabilities"]))
    assert np.allclose([by_genre[g] for g in answer["genre_order"]], direct, atol=1e-5)
    windows = np.array([w["probabilities"] for w in answer["windows"]])
    assert np.allclose(windows.mean(axis=0), direct, atol=1e-5)


def test_health_names_the_model_and_warns_that_it_learned_synthetic_music(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok" and health["model"]["name"] == "2cnn-16-16-1fc"
    assert health["model"]["test"]["track_accuracy"] == 0.25 and health["model"]["window_seconds"] == 1.0
    assert health["model"]["data"] == {"name": "tiny", "synthetic": True, "split": None}
    warning = health["model"]["warning"]
    assert "trained on synthetic music" in warning and "mean nothing" in warning
    assert "python -m tuning.train bncnn-32-64-128-256 --data-dir" in warning


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_answer_holds_a_server_path(tmp_path_factory, tmp_path, monkeypatch):
    """Every endpoint, good and bad requests, for a model trained under a distinctive path."""
    import re

    from fastapi.testclient import TestClient

    import zoo
    from serving.export import export_saved_model
    from serving.prediction import Predictor
    from serving.web import create_app

    secret = "/srv/private-datasets-7f3a/gtzan-copy"
    about = {"trial": "2cnn-16-16-1fc", "model": "2cnn-16-16-1fc",
             "data": {"data_dir": secret, "synthetic": False, "split": "lists"},
             "test": {"track_accuracy": 0.5, "macro_f1": 0.5, "test_clips": 10}}
    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    export = export_saved_model(zoo.build("2cnn-16-16-1fc", window_seconds=1.0), genres,
                                tmp_path_factory.mktemp("private") / "m" / "1", about=about)
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    client = TestClient(create_app(Predictor(export), Limits(max_seconds=20, max_upload_mb=1)),
                        base_url="http://127.0.0.1")
    soundfile.write(tmp_path / "good.wav", real_or_synthetic(1.5), SR)
    (tmp_path / "text.wav").write_text("<html>not audio</html>" * 20)
    (tmp_path / "junk.mp3").write_bytes(os.urandom(4000))  # soundfile's error names the file it opened
    audio = real_or_synthetic(1.5)
    audio[5:9] = np.inf
    soundfile.write(tmp_path / "inf.wav", audio, SR, subtype="FLOAT")
    answers = [client.get("/api/health"), client.get("/nowhere"), client.delete("/api/predict"),
               client.post("/api/predict"), client.post("/api/predict", files={"audio": ("a.wav", b"RIFF", "audio/wav")})]
    answers += [post(client, tmp_path / name) for name in ("good.wav", "text.wav", "junk.mp3", "inf.wav")]
    assert [a.status_code for a in answers] == [200, 404, 405, 400, 400, 200, 422, 422, 422]
    assert answers[0].json()["model"]["data"] == {"name": "gtzan-copy", "synthetic": False, "split": "lists"}
    assert answers[0].json()["model"]["warning"] is None
    absolute = re.compile(r"(^|[\s'\"(=:])/[\w.-]+/")
    for answer in answers:
        for text in _strings(answer.json()):
            assert not absolute.search(text) and "private-datasets" not in text and str(spool) not in text, text
    page = client.get("/").text
    assert "private-datasets" not in page and str(spool) not in page and str(ROOT) not in page
    assert answers[7].json()["error"] == "not usable audio: not readable as audio"


@pytest.mark.parametrize("case,status,message", [
    ("text", 422, "not usable audio: not a WAV file"),
    ("empty", 422, "the file is empty"),
    ("nan", 422, "NaN or infinite"),
    ("too_long", 413, "at most 20 s (--max-seconds)"),
    ("too_large", 413, "larger than 1 MB (--max-upload-mb)"),
])
def test_bad_input_is_a_json_error_and_the_server_goes_on(client, tmp_path, case, status, message):
    path = tmp_path / "upload.wav"
    if case == "text":
        path.write_text("<html>not audio</html>" * 20)
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "nan":
        audio = real_or_synthetic(1.5)
        audio[100:200] = np.nan
        soundfile.write(path, audio, SR, subtype="FLOAT")
    elif case == "too_long":
        soundfile.write(path, np.zeros(21 * 8000, np.int16), 8000, subtype="PCM_16")  # 21 s in 336 kB
    else:
        soundfile.write(path, np.zeros(int(1.1e6 // 2), np.int16), SR, subtype="PCM_16")
    response = post(client, path)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error
    assert client.get("/api/health").status_code == 200


def test_a_request_without_the_file_field_or_with_more_parts(client, tmp_path):
    response = client.post("/api/predict", files={"audio": ("a.wav", b"RIFF", "audio/wav")})
    assert response.status_code == 400 and "multipart form field 'file'" in response.json()["error"]
    assert client.post("/api/predict").status_code == 400
    soundfile.write(tmp_path / "a.wav", real_or_synthetic(1.2), SR)
    two = client.post("/api/predict", files=[("file", ("a.wav", (tmp_path / "a.wav").read_bytes(), "audio/wav")),
                                             ("file", ("b.wav", b"RIFF", "audio/wav"))])
    assert two.status_code == 400 and "one multipart part" in two.json()["error"]
    extra = client.post("/api/predict", files={"file": ("a.wav", (tmp_path / "a.wav").read_bytes(), "audio/wav")},
                        data={"note": "x" * 1000})
    assert extra.status_code == 400


def test_uploads_are_deleted_and_no_client_names_a_path(client, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    soundfile.write(tmp_path / "x.wav", real_or_synthetic(1.2), SR)
    assert post(client, tmp_path / "x.wav", name="../../etc/passwd").status_code == 200
    (tmp_path / "bad.wav").write_text("junk")
    assert post(client, tmp_path / "bad.wav").status_code == 422
    assert list(spool.iterdir()) == []


def test_concurrent_requests_get_their_own_answers(export, tmp_path):
    from fastapi.testclient import TestClient

    from serving.prediction import Predictor
    from serving.web import create_app

    client = TestClient(create_app(Predictor(export), Limits(max_seconds=20, max_concurrent=12)),
                        base_url="http://127.0.0.1")
    files = []
    for i in range(6):
        path = tmp_path / f"c{i}.wav"
        audio = real_or_synthetic(2.0 + i * 0.5) * (0.3 + 0.1 * i)
        soundfile.write(path, audio, SR)
        files.append(path)
    expected = [post(client, path).json() for path in files]
    results = [None] * len(files)

    def ask(i: int) -> None:
        results[i] = post(client, files[i]).json()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(files)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == expected


def test_app_without_an_export_exits_2_with_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "serving.app"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "python -m serving.app: error: no exported model under exports/; run python -m zoo.evaluate best, or pass --model"]


def test_app_flag_errors(export, tmp_path):
    for flags, message in ((["--port", "0"], "--port must be from 1 to 65535"),
                           (["--max-seconds", "0"], "--max-seconds and --max-upload-mb must be positive"),
                           (["--model", str(tmp_path)], "no exported model in")):
        result = subprocess.run([sys.executable, "-m", "serving.app", "--model", str(export), *flags], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 2 and message in error_line(result.stderr)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@contextlib.contextmanager
def page_in_chromium(model: str, *flags: str):
    """``(driver, port)``: headless Chromium on the page of ``python -m serving.app --model MODEL FLAGS``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "serving.app", "--model", model, "--port", str(port), *flags],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    browser, driver_path = _chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1300",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(flag)
    driver = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()[-1000:]
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver, port
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


CHROMIUM = pytest.mark.skipif(_chromium() is None,
                              reason="Chromium and chromedriver are not installed (.ci/run installs them)")


@CHROMIUM
def test_page_in_a_real_browser_shows_the_chart_and_the_timeline(export, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # GTZAN_SCREENSHOT_MODEL / GTZAN_SCREENSHOT: the model shown and where a copy of the screenshot
    # goes (docs/serving.md's picture is made this way, with a trained model).
    model = os.environ.get("GTZAN_SCREENSHOT_MODEL", str(export))
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, real_or_synthetic(12.0), SR, subtype="PCM_16")
    with page_in_chromium(model) as (driver, _):
        WebDriverWait(driver, 30).until(lambda d: "model " in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(clip))
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart .bar-row"))
        assert driver.find_element(By.ID, "error").text == ""
        if model == str(export):  # the fixture's model learned synthetic music, and the page says so first
            assert "trained on synthetic music" in driver.find_element(By.ID, "warning").text
        rows = driver.find_elements(By.CSS_SELECTOR, "#chart .bar-row")
        assert len(rows) == 5
        assert driver.find_element(By.ID, "timeline-panel").is_displayed()
        assert "windows of" in driver.find_element(By.ID, "window-note").text
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        if os.environ.get("GTZAN_SCREENSHOT"):
            shutil.copy(shot, os.environ["GTZAN_SCREENSHOT"])
        # The chart and the timeline are drawn: coloured pixels where they are on the page.
        image = Image.open(shot).convert("RGB")
        for element_id in ("chart", "timeline"):
            box = driver.find_element(By.ID, element_id).rect
            scale = image.width / driver.execute_script("return window.innerWidth")
            region = image.crop(tuple(int(v * scale) for v in (box["x"], box["y"], box["x"] + box["width"],
                                                              box["y"] + box["height"])))
            pixels = np.asarray(region).reshape(-1, 3).astype(int)
            coloured = (pixels.max(axis=1) - pixels.min(axis=1)) > 60
            assert coloured.mean() > 0.02, f"#{element_id} looks empty in the screenshot"


@CHROMIUM
def test_the_page_shows_a_refusal_and_waits_out_a_busy_server(export, tmp_path):
    """A file over the cap: the page shows the 413's own message, not a network error (the server lets
    the browser send its body, then answers). A busy server: the page waits Retry-After and tries again."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    big = tmp_path / "big.wav"
    soundfile.write(big, np.zeros(60 * SR, np.float32), SR, subtype="PCM_16")  # 2.6 MB against a 1-MB cap
    clip = tmp_path / "clip.wav"
    soundfile.write(clip, real_or_synthetic(4.0), SR, subtype="PCM_16")
    # Retry-After is a twelfth of --queue-timeout: 3 s, past the 2 s the stalled upload holds the slot.
    flags = ("--max-upload-mb", "1", "--max-concurrent", "1", "--max-queue", "0", "--queue-timeout", "36",
             "--client-timeout", "2")
    with page_in_chromium(str(export), *flags) as (driver, port):
        WebDriverWait(driver, 30).until(lambda d: "model " in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(big))
        WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "error").text)
        assert driver.find_element(By.ID, "error").text == "the upload is larger than 1 MB (--max-upload-mb)"
        # One upload that stalls holds the only slot for --client-timeout: the page's first try is refused.
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.sendall((f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: multipart/"
                          "form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n--x").encode())
            time.sleep(0.5)
            driver.find_element(By.ID, "file").send_keys(str(clip))
            WebDriverWait(driver, 10).until(lambda d: "the server is busy" in d.find_element(By.ID, "status").text)
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chart .bar-row"))
        assert driver.find_element(By.ID, "error").text == ""

"""The AudioSet backbones: checkpoints read without running them, fetched and checked, and the Keras models
equal to their originals (EfficientAT mn04 against its golden outputs, CNN14 against its reference code).

The tests marked ``backends`` also run under JAX and PyTorch (``tests/test_backends.py``).
"""

import hashlib
import http.server
import os
import pickle
import threading
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from data.layers import EfficientATLogMel, PannsLogMel, Resample
from tests import needs
from zoo import checkpoints
from zoo.builders import efficientat, panns
from zoo.checkpoints import CheckpointError, read_state_dict

MN04 = needs.SHARED / "backbones" / "efficientat-mn04"


def mn04() -> Path:
    """The shared EfficientAT mn04 checkpoint and its golden outputs; skips without them."""
    if not (MN04 / "mn04_as_mAP_432.pt").is_file():
        pytest.skip(f"needs the EfficientAT mn04 checkpoint in {MN04} (beside the project, not part of it)")
    return MN04


def torch_module():
    return pytest.importorskip("torch", reason="writing test checkpoints needs PyTorch (the test extra)")


# --- reading checkpoints -------------------------------------------------------------------------------


def test_the_released_mn04_checkpoint_reads_as_pytorch_reads_it():
    torch = torch_module()
    path = mn04() / "mn04_as_mAP_432.pt"
    state = read_state_dict(path)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == set(reference) and len(state) == 312
    for name, tensor in reference.items():
        np.testing.assert_array_equal(state[name], tensor.numpy(), err_msg=name)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == checkpoints.RELEASES["mn04_as"].sha256


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_both_pytorch_formats_views_and_wrapped_state_dicts_read(zipped, tmp_path):
    torch = torch_module()
    state = {"a": torch.randn(3, 4), "b": torch.arange(10), "transposed": torch.randn(4, 5).t(),
             "view": torch.randn(6)[2:5], "scalar": torch.tensor(3.0), "half": torch.randn(3).half(),
             "flags": torch.tensor([True, False])}
    path = tmp_path / "state.pt"
    # The way PANNs' checkpoints hold theirs: the state_dict under "model", beside counters and arrays.
    torch.save({"model": state, "iteration": 5, "statistics": np.arange(4.0)}, path,
               _use_new_zipfile_serialization=zipped)
    read = read_state_dict(path)
    assert set(read) == set(state)
    for name, tensor in state.items():
        np.testing.assert_array_equal(read[name], tensor.numpy(), err_msg=name)


class Exploit:
    """A pickle that would run a command when loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    torch = torch_module()
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.pt"
    torch.save({"weight": torch.zeros(2), "payload": Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match=r"hostile\.pt is not a usable PyTorch checkpoint: it names "
                                              r"posix\.system, which a state_dict does not hold") as info:
        read_state_dict(path)
    assert "\n" not in str(info.value) and not marker.exists()
    # The same in a pickle written by hand, with no PyTorch at all, through every opcode that imports.
    for payload in (pickle.dumps(Exploit(marker), protocol=2), pickle.dumps(Exploit(marker), protocol=0)):
        plain = tmp_path / "plain.pt"
        with zipfile.ZipFile(plain, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
        with pytest.raises(CheckpointError, match="a pickle that would run code"):
            read_state_dict(plain)
    assert not marker.exists()


def test_damaged_checkpoints_are_one_line_errors(tmp_path):
    torch = torch_module()
    good = tmp_path / "good.pt"
    torch.save({"a": torch.randn(64, 64), "b": torch.randn(3)}, good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "text.pt").write_bytes(b"not a checkpoint at all" * 10)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(tmp_path / "missing.pt", "w") as target:
        for item in source.namelist():
            if not item.endswith("/data/0"):  # the first tensor's bytes are gone
                target.writestr(item, source.read(item))
    for name, message in [("truncated.pt", "not a usable PyTorch checkpoint"),
                          ("empty.pt", "not a usable PyTorch checkpoint"),
                          ("text.pt", "not a usable PyTorch checkpoint"),
                          ("missing.pt", r"the tensor data \S+/data/0 is missing"),
                          ("absent.pt", "not a usable PyTorch checkpoint")]:
        with pytest.raises(CheckpointError, match=message) as info:
            read_state_dict(tmp_path / name)
        assert str(tmp_path / name) in str(info.value) and "\n" not in str(info.value)


def test_a_state_dict_that_does_not_fit_the_model_is_refused_naming_the_variable():
    state = read_state_dict(mn04() / "mn04_as_mAP_432.pt")
    mel = keras.Input((None, efficientat.N_MELS))
    core = keras.Model(mel, efficientat.mobilenet(mel, 0.4))
    wrong = {**state, "features.3.block.1.0.weight": np.zeros((32, 1, 5, 5), np.float32)}
    with pytest.raises(ValueError, match=r"features\.3\.block\.1\.0\.weight has shape \(32, 1, 5, 5\), the model "
                                         r"needs \(32, 1, 3, 3\)"):
        efficientat.load_weights(core, wrong)
    missing = {k: v for k, v in state.items() if k != "classifier.2.bias"}
    with pytest.raises(ValueError, match=r"the checkpoint has no classifier\.2\.bias"):
        efficientat.load_weights(core, missing)
    wide_mel = keras.Input((None, efficientat.N_MELS))
    wider = keras.Model(wide_mel, efficientat.mobilenet(wide_mel, 1.0))
    with pytest.raises(ValueError, match="another width"):
        efficientat.load_weights(wider, state)
    with pytest.raises(ValueError, match="tensors no layer takes"):
        efficientat.load_weights(core, {**state, "extra.weight": np.zeros(3, np.float32)})


# --- fetching checkpoints ------------------------------------------------------------------------------


class Release(http.server.BaseHTTPRequestHandler):
    """Serves one file with byte ranges; ``cut`` bytes at most on the first request (a dropped download)."""

    body = b""
    cut: int | None = None
    ranges: list = []

    def do_GET(self):  # noqa: N802 (the handler's name)
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            type(self).ranges.append(start)
        part = self.body[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if type(self).cut is not None:
            part, type(self).cut = part[: type(self).cut], None
        self.wfile.write(part)

    def log_message(self, *args):
        pass


@pytest.fixture()
def release_server(monkeypatch, tmp_path):
    """A server on loopback standing for the authors' release folder, serving the shared mn04 checkpoint."""
    Release.body = (mn04() / "mn04_as_mAP_432.pt").read_bytes()
    Release.cut, Release.ranges = None, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Release)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("GTZAN_WEIGHTS_URL", f"http://127.0.0.1:{server.server_address[1]}/releases/")
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    yield server
    server.shutdown()


def test_a_missing_checkpoint_is_downloaded_checked_and_kept(release_server):
    path = checkpoints.checkpoint_path("mn04_as")
    assert path == checkpoints.checkpoint_folder() / "mn04_as_mAP_432.pt"
    assert path.read_bytes() == Release.body and not path.with_name(path.name + ".part").exists()
    assert len(read_state_dict(path)) == 312
    Release.body = b""  # a second run reads the cache, asking the server nothing
    assert checkpoints.checkpoint_path("mn04_as") == path


def test_an_interrupted_download_resumes_where_it_stopped(release_server):
    Release.cut = 1_000_000
    with pytest.raises(CheckpointError, match=r"mn04_as_mAP_432\.pt could not be downloaded .* download http://127"):
        checkpoints.checkpoint_path("mn04_as")
    partial = checkpoints.checkpoint_folder() / "mn04_as_mAP_432.pt.part"
    assert partial.stat().st_size == 1_000_000
    path = checkpoints.checkpoint_path("mn04_as")
    assert Release.ranges == [1_000_000] and path.read_bytes() == Release.body and not partial.exists()


def test_a_download_with_the_wrong_checksum_is_deleted(release_server):
    Release.body = Release.body[:-10] + b"0123456789"
    with pytest.raises(CheckpointError, match="has SHA-256 .*, not the published 899a8c62.*; it was deleted"):
        checkpoints.checkpoint_path("mn04_as")
    assert not list(checkpoints.checkpoint_folder().iterdir())


def test_offline_one_line_says_what_to_download_and_where(monkeypatch, tmp_path):
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GTZAN_WEIGHTS_URL", "http://127.0.0.1:9/")  # nothing listens on the discard port
    with pytest.raises(CheckpointError) as info:
        checkpoints.checkpoint_path("Cnn14")
    message = str(info.value)
    assert "\n" not in message and "Cnn14_mAP=0.431.pth could not be downloaded" in message
    assert f"put it at {tmp_path / 'cache' / 'checkpoints' / 'Cnn14_mAP=0.431.pth'}" in message
    assert "or pass --weights FILE" in message


def test_weights_given_by_hand_are_recognised_and_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    renamed = tmp_path / "downloaded.bin"
    renamed.write_bytes((mn04() / "mn04_as_mAP_432.pt").read_bytes())
    assert checkpoints.use_weights(renamed) == "mn04_as"  # by its checksum, whatever its name
    assert checkpoints.checkpoint_path("mn04_as", download=False).is_file()
    other = tmp_path / "mn04_as_mAP_432.pt"
    other.write_bytes(b"something else")
    with pytest.raises(CheckpointError, match="not a known checkpoint"):
        checkpoints.use_weights(other)
    with pytest.raises(CheckpointError, match="no such file"):
        checkpoints.use_weights(tmp_path / "nothing.pt")
    # A release whose checksum is not published is recorded at first sight and checked from then on.
    cnn14 = tmp_path / "Cnn14_mAP=0.431.pth"
    cnn14.write_bytes(b"first")
    checkpoints.use_weights(cnn14)
    (checkpoints.checkpoint_folder() / cnn14.name).write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="damaged or another file"):
        checkpoints.checkpoint_path("Cnn14", download=False)


# --- EfficientAT mn04 against the reference implementation's outputs ------------------------------------


@pytest.fixture(scope="module")
def golden():
    return np.load(mn04() / "golden.npz")


@pytest.fixture(scope="module")
def mobilenet04():
    mel = keras.Input((None, efficientat.N_MELS))
    outputs = efficientat.mobilenet(mel, efficientat.WIDTHS["mn04_as"])
    model = keras.Model(mel, outputs)
    efficientat.load_weights(model, read_state_dict(mn04() / "mn04_as_mAP_432.pt"))
    return model


def relative(found, expected) -> float:
    return float(np.abs(ops.convert_to_numpy(found) - expected).max() / np.abs(expected).max())


@pytest.mark.backends
def test_the_front_end_matches_efficientats(golden):
    mel = ops.convert_to_numpy(EfficientATLogMel()(golden["waveform_32k"]))
    reference = np.transpose(golden["mel"], (0, 2, 1))
    assert mel.shape == reference.shape == (7, 300, 128)
    assert np.abs(mel - reference).max() < 2e-4  # natural log of float32 powers: 1e-4 is its rounding


@pytest.mark.backends
def test_the_portable_front_end_equals_the_fft_one(golden):
    layer = EfficientATLogMel()
    fft = ops.convert_to_numpy(layer(golden["waveform_32k"][:3]))
    layer.portable = True
    np.testing.assert_allclose(ops.convert_to_numpy(layer(golden["waveform_32k"][:3])), fft, atol=2e-4)


@pytest.mark.backends
def test_mn04_matches_the_reference_block_by_block(golden, mobilenet04):
    mel = np.transpose(golden["mel"], (0, 2, 1))  # the reference front end's output, to test the network alone
    probes = {"block_1": "efficientat_features_0_act", "block_4": "efficientat_features_4_block_3_1",
              "block_last": "efficientat_features_16_act"}
    inner = keras.Model(mobilenet04.input, [mobilenet04.get_layer(name).output for name in probes.values()])
    for (key, _), found in zip(probes.items(), inner(mel)):
        expected = np.transpose(golden[key], (0, 2, 3, 1))  # [batch, channels, bands, frames] -> channels last
        assert relative(ops.convert_to_numpy(found), expected) < 1e-4, key
    pooled, penultimate, logits = mobilenet04(mel)
    assert relative(pooled, golden["pooled"]) < 1e-4
    assert relative(penultimate, golden["hidden"]) < 1e-4
    assert relative(logits, golden["logits"]) < 1e-4


@pytest.mark.backends
def test_mn04_from_the_waveform_matches_the_reference(golden, mobilenet04):
    mel = EfficientATLogMel()(golden["waveform_32k"])
    pooled, _, logits = mobilenet04(mel)
    assert relative(pooled, golden["pooled"]) < 1e-4
    assert relative(logits, golden["logits"]) < 1e-4
    # The real excerpts' top AudioSet classes are musical ones, as the reference's are.
    from zoo.audioset import AUDIOSET_CLASSES

    top = {AUDIOSET_CLASSES[i] for i in np.argsort(-ops.convert_to_numpy(logits)[3:], axis=1)[:, 0]}
    assert top == {AUDIOSET_CLASSES[i] for i in np.argsort(-golden["logits"][3:], axis=1)[:, 0]}


def test_the_widths_scale_as_the_release_does():
    """Every width is MobileNetV3-Large with channels rounded to multiples of 8: mn04's shapes are the
    release's (the checkpoint loads strictly); the others' classifier widths follow the same rule."""
    assert [efficientat.make_divisible(c * 0.4) for c in (16, 64, 72, 672, 960, 1280)] == [8, 24, 32, 272, 384, 512]
    assert [efficientat.make_divisible(c * 1.0) for c in (16, 64, 72, 672, 960, 1280)] == [16, 64, 72, 672, 960, 1280]
    mel = keras.Input((None, efficientat.N_MELS))
    pooled, penultimate, logits = efficientat.mobilenet(mel, 1.0)
    assert (pooled.shape[-1], penultimate.shape[-1], logits.shape[-1]) == (960, 1280, 527)


# --- resampling from the toolkit's 22050 Hz ---------------------------------------------------------


@pytest.mark.backends
@pytest.mark.parametrize("rate", [32000, 16000])
def test_the_resampler_keeps_tones_and_removes_what_the_new_rate_cannot_hold(rate):
    t = np.arange(2 * 22050) / 22050
    tones = np.stack([np.sin(2 * np.pi * 1000 * t), 0.5 * np.sin(2 * np.pi * 6000 * t),
                      0.5 * np.sin(2 * np.pi * 9500 * t)]).astype(np.float32)
    out = ops.convert_to_numpy(Resample(22050, rate)(tones))
    assert out.shape == (3, 2 * rate)
    u = np.arange(2 * rate) / rate
    inner = slice(400, -400)  # away from the window's edges
    assert np.abs(out[0] - np.sin(2 * np.pi * 1000 * u))[inner].max() < 1e-4
    assert np.abs(out[1] - 0.5 * np.sin(2 * np.pi * 6000 * u))[inner].max() < 1e-3
    if rate == 16000:  # 9.5 kHz is above 8 kHz: gone
        assert np.abs(out[2][inner]).max() < 1e-3
    else:
        assert np.abs(out[2] - 0.5 * np.sin(2 * np.pi * 9500 * u))[inner].max() < 1e-2


def test_mn04_features_from_22050_hz_match_those_of_audio_resampled_by_soxr(golden, mobilenet04):
    """The model resamples where it starts; a user resampling with soxr first gets the same features."""
    import soxr

    real = needs.real_excerpts()
    clips = [real / "blues" / "blues.00001.wav", real / "jazz" / "jazz.00001.wav", real / "pop" / "pop.00002.wav"]
    import soundfile

    audio = np.stack([soundfile.read(str(c), dtype="float32")[0][:44100] for c in clips])
    ours = mobilenet04(EfficientATLogMel()(Resample(22050, 32000)(audio)))[0]
    theirs = mobilenet04(EfficientATLogMel()(np.stack([soxr.resample(a, 22050, 32000, "HQ") for a in audio])))[0]
    for a, b in zip(np.asarray(ours), np.asarray(theirs)):
        assert np.corrcoef(a, b)[0, 1] > 0.999


# --- CNN14 against PANNs' own code, through the converter -----------------------------------------------


@pytest.fixture(scope="module")
def panns_reference(tmp_path_factory):
    """PANNs' reference CNN14 (the panns-inference package), importable offline: its package reads AudioSet's
    label list from ``~/panns_data`` at import (downloading it otherwise), so a home with that file is used."""
    torch_module()
    home = tmp_path_factory.mktemp("home")
    (home / "panns_data").mkdir()
    (home / "panns_data" / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n" + "".join(f'{i},/m/{i},"class {i}"\n' for i in range(527)))
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        models = pytest.importorskip("panns_inference.models", reason="needs panns-inference (the test extra)")
    finally:
        os.environ["HOME"] = saved or ""
    return models.Cnn14


@pytest.mark.parametrize("checkpoint", ["Cnn14", "Cnn14_16k"])
def test_cnn14_converted_from_a_random_reference_gives_its_outputs(checkpoint, panns_reference, tmp_path):
    torch = torch_module()
    front = panns.FRONT_ENDS[checkpoint]
    torch.manual_seed(0)
    reference = panns_reference(sample_rate=front["sample_rate"], window_size=front["n_fft"],
                                hop_size=front["hop_length"], mel_bins=front["n_mels"], fmin=front["f_min"],
                                fmax=front["f_max"], classes_num=527)
    with torch.no_grad():  # statistics and scales far from the defaults, so a misplaced one shows
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    reference.eval()
    torch.save(reference.state_dict(), tmp_path / "cnn14.pth")
    mel = keras.Input((None, panns.N_MELS))
    model = keras.Model(mel, panns.cnn14(mel))
    panns.load_weights(model, read_state_dict(tmp_path / "cnn14.pth"), front_end=front)
    waveform = np.random.default_rng(0).normal(0, 0.1, (2, 2 * front["sample_rate"])).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(waveform))
        expected_mel = reference.logmel_extractor(reference.spectrogram_extractor(torch.from_numpy(waveform)))
    log_mel = ops.convert_to_numpy(PannsLogMel(**front)(waveform))
    assert np.abs(log_mel - expected_mel[:, 0].numpy()).max() < 1e-4  # dB
    _, embedding, logits = model(log_mel)
    assert relative(embedding, expected["embedding"].numpy()) < 1e-5
    probabilities = 1 / (1 + np.exp(-ops.convert_to_numpy(logits)))
    assert np.abs(probabilities - expected["clipwise_output"].numpy()).max() < 1e-5
    other = "Cnn14_16k" if checkpoint == "Cnn14" else "Cnn14"
    with pytest.raises(ValueError, match="another CNN14 variant"):
        panns.load_weights(model, read_state_dict(tmp_path / "cnn14.pth"), front_end=panns.FRONT_ENDS[other])

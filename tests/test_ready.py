"""The head export and the model shipped with the toolkit: a genre head's weights alone, rebuilt on the
backbones' own released weights; ``--weights`` for weights downloaded by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli import evaluate, train
from serving.config import ABOUT_FILE, READY_MODELS, find_export
from tests import needs, ready_model
from tests.errors import error_line
from training.config import RECOMMENDED_MODEL

ROOT = Path(__file__).resolve().parents[1]
READY = READY_MODELS["ready"] / "1"
FAST = ["--epochs", "1", "--window-seconds", "1", "--wandb", "disabled"]


def test_the_shipped_model_is_the_recommended_configuration_with_its_figures():
    assert ready_model.main(["--check"]) == 0
    about = json.loads((READY / ABOUT_FILE).read_text())
    model, recipe = RECOMMENDED_MODEL
    assert (about["model"], about["recipe"]) == (model, recipe) and about["test"] is None
    assert about["crossval"] == ready_model.figures(model, recipe)  # the figures of results/*.csv, not typed
    assert {w["backbone"] for w in about["pretrained_weights"]} == {"musicnn-msd", "efficientat-mn04"}
    assert about["formats"]["head"]["max_abs_diff"] <= 1e-4
    assert (READY / "head.npz").stat().st_size < 100_000  # the head alone: a few kilobytes
    assert find_export("ready") == READY / "head.npz"


def fresh_environment(wheel: Path, cache: Path) -> dict:
    """A machine that has the musicnn wheel and nothing else in its cache (no checkpoint, no features)."""
    return {**os.environ, "GTZAN_CACHE": str(cache), "GTZAN_MUSICNN_WHEEL": str(wheel),
            "GTZAN_WEIGHTS_URL": "http://127.0.0.1:9/", "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_the_shipped_model_answers_predict_on_a_fresh_clone(wheel, real_music, tmp_path):
    mn04 = needs.efficientat_mn04()
    clips = [real_music / "classical" / "classical.00023.wav", real_music / "metal" / "metal.00024.wav"]
    env = fresh_environment(wheel, tmp_path / "cache")
    command = [sys.executable, "-m", "serving.predict", *map(str, clips), "--model", "ready", "--json"]
    offline = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert offline.returncode == 2  # without mn04 and without a network: one line, what to get and where
    assert "mn04_as_mAP_432.pt could not be downloaded" in error_line(offline.stderr)
    assert "--weights FILE" in error_line(offline.stderr)
    done = subprocess.run([*command, "--weights", str(mn04)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["top"][0]["genre"] for a in answers] == ["classical", "metal"]
    assert all(a["model"] == "ready" and a["runtime"].startswith("Keras") for a in answers)


def test_the_app_describes_the_shipped_model_by_its_cross_validated_figures(wheel):
    needs.efficientat_mn04()
    from serving.prediction import Predictor
    from serving.web import model_card

    card = model_card(Predictor(find_export("ready")))
    assert card["test"] is None and card["crossval"]["five_fold"]["track_accuracy"] > 0.5
    assert "command" not in json.dumps(card) and "/" not in json.dumps(card["data"])  # no command line, no path


def test_embed_takes_the_shipped_models_backbones_and_combinations(wheel, real_music, tmp_path, capsys):
    needs.efficientat_mn04()
    from cli import embed

    clip = str(real_music / "jazz" / "jazz.00021.wav")
    assert embed.main([clip, "--model", "ready", "--out", str(tmp_path / "ready.npz")]) == 0
    ready = np.load(tmp_path / "ready.npz")
    assert ready["embeddings"].shape == (1, 200 + 512) and ready["tags"].shape == (1, 50 + 527)
    assert list(ready["tag_names"][:2]) == ["rock", "pop"] and ready["tag_names"][50] == "Speech"
    assert embed.main([clip, "--model", "efficientat-mn04", "--out", str(tmp_path / "mn04.npz")]) == 0
    alone = np.load(tmp_path / "mn04.npz")
    np.testing.assert_allclose(alone["embeddings"][0], ready["embeddings"][0, 200:], rtol=1e-4, atol=1e-5)
    assert embed.main([clip, "--model", "musicnn-msd+panns-cnn99", "--out", str(tmp_path / "x.npz")]) == 2
    assert "unknown pretrained backbone 'panns-cnn99'" in error_line(capsys.readouterr().err)


def test_a_head_export_is_the_model_and_names_its_weights_licences(tiny_gtzan, tmp_path, capsys):
    needs.efficientat_mn04()
    runs, exports = tmp_path / "runs", tmp_path / "exports"
    assert train.main(["efficientat-mn04_train=head", "--data-dir", str(tiny_gtzan), "--out", str(runs), *FAST]) == 0
    trial = runs / "train" / "trials" / "efficientat-mn04_train=head"
    assert evaluate.main([str(trial), "--exports", str(exports), "--formats", "savedmodel,head"]) == 0
    version = exports / "efficientat-mn04_train=head" / "1"
    about = json.loads((version / ABOUT_FILE).read_text())
    assert about["formats"]["head"]["max_abs_diff"] <= 1e-4 and about["formats"]["head"]["backbones"] == "mn04_as"
    assert about["pretrained_weights"] == [{"backbone": "efficientat-mn04",
                                            "licence": "MIT; Copyright (c) 2022 Florian Schmid (EfficientAT)"}]
    from serving.prediction import Predictor

    clip = sorted((tiny_gtzan / "jazz").glob("*.wav"))[0]
    saved, head = Predictor(version).predict_file(clip), Predictor(version / "head.npz").predict_file(clip)
    np.testing.assert_allclose(head.probabilities, saved.probabilities, atol=1e-4)
    capsys.readouterr()
    # A model whose weights are not all public has no head export.
    assert train.main(["bncnn-32-64", "--data-dir", str(tiny_gtzan), "--out", str(runs), *FAST]) == 0
    assert evaluate.main([str(runs / "train" / "trials" / "bncnn-32-64"), "--exports", str(exports), "--formats",
                          "head"]) == 2
    assert "the head format holds a head on frozen pretrained backbones" in error_line(capsys.readouterr().err)


def test_weights_given_to_a_command_are_used_and_a_wrong_file_is_one_line(tiny_gtzan, tmp_path, monkeypatch, capsys):
    mn04 = needs.MN04
    if not mn04.is_file():
        pytest.skip(f"needs the EfficientAT mn04 checkpoint in {mn04.parent}")
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GTZAN_WEIGHTS_URL", "http://127.0.0.1:9/")  # no download can succeed
    argv = ["efficientat-mn04_train=head", "--data-dir", str(tiny_gtzan), "--out", str(tmp_path / "runs"), *FAST]
    assert train.main(argv) == 2
    assert "mn04_as_mAP_432.pt could not be downloaded" in error_line(capsys.readouterr().err)
    wrong = tmp_path / "mn04_as_mAP_432.pt"
    wrong.write_bytes(b"not the checkpoint")
    assert train.main([*argv, "--weights", str(wrong)]) == 2
    assert error_line(capsys.readouterr().err).endswith(f"--weights {wrong}: not a known checkpoint (by its SHA-256 "
                                                        "or its release file name: mn04_as_mAP_432.pt, "
                                                        "mn05_as_mAP_443.pt, mn10_as_mAP_471.pt, mn20_as_mAP_478.pt, "
                                                        "mn30_as_mAP_482.pt, mn40_as_mAP_484.pt, "
                                                        "mn40_as_ext_mAP_487.pt, Cnn14_mAP=0.431.pth, "
                                                        "Cnn14_16k_mAP=0.438.pth, or "
                                                        "musicnn-0.1.0-py3-none-any.whl)")
    assert train.main([*argv, "--weights", str(mn04)]) == 0
    assert (tmp_path / "cache" / "checkpoints" / "mn04_as_mAP_432.pt").is_file()


def test_a_head_that_does_not_give_the_models_answers_is_not_kept(tmp_path, monkeypatch):
    needs.efficientat_mn04()
    import zoo
    from serving import runtimes
    from serving.export import export_head

    config = zoo.configure("efficientat-mn04_train=head", window_seconds=1.0)
    model = zoo.build_model(config)
    honest = runtimes.HeadRuntime.probabilities
    monkeypatch.setattr(runtimes.HeadRuntime, "probabilities", lambda self, w: honest(self, w)[:, ::-1])
    from data.errors import EvaluationError

    with pytest.raises(EvaluationError, match="the head export gives other probabilities than the model"):
        export_head(model, tmp_path, {"model_config": config.to_dict()})
    assert not (tmp_path / "head.npz").exists()

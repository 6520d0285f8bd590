import keras
import keras_tuner
import numpy as np
import pytest

import zoo
from data.config import DataConfig
from tests.needs import weights_for
from training.config import TrainConfig
from training.schedules import exponential_lr, make_optimizer, schedule_callback, step_lr
from tuning.hypermodel import SpaceHyperModel
from tuning.spaces import SPACES

STUDY_COUNTS = {"mlp": 9, "cnn": 14, "activation": 8, "optimizer": 18, "training": 12, "regularization": 12, "input": 2,
                "probe": 24}  # the recommended model's two backbones, each alone and side by side


@pytest.fixture(scope="module")
def data(tiny_gtzan):
    from training.loop import prepare_data

    return prepare_data(DataConfig(str(tiny_gtzan), window_seconds=0.5, split_seed=1))


def test_grid_sizes_are_the_studys():
    assert {name: len(space.grid(space.base_config(None))) for name, space in SPACES.items()} == STUDY_COUNTS


def test_grid_trial_names_follow_the_study():
    names = {name: [t.name for t in space.grid(space.base_config(None))] for name, space in SPACES.items()}
    assert "4fcLayers-1024-512-512" in names["mlp"] and "3fcLayers-2048-1024" in names["mlp"]
    assert {"3cnn-32-64-128-2fc-128", "1cnn-32-3fc-256-128", "3cnn-32-64-128-5fc-256-256-256-128"} <= set(names["cnn"])
    assert "rmsprop-exponentiallr-0.9" in names["optimizer"] and "adagrad-steplr-0.05" in names["optimizer"]
    assert {"weight_decay-1e-05", "dropout0.1cnn-0.2fc", "time_shift-0.15"} <= set(names["regularization"])
    assert names["input"] == ["spectrogram", "waveform"]
    training = SPACES["training"].grid(SPACES["training"].base_config(None))
    assert {(t.training["batch_size"], t.training["epochs"]) for t in training} == {
        (b, e) for b in (16, 32, 64, 128) for e in (5, 20, 35)}
    assert not any(t.training["early_stopping"] for t in training)


@pytest.mark.parametrize("base", [None, "bncnn-32-64-128-256", "2cnn-32-64-2fc-128", "3cnn-32-64-128-5fc-256-256-256-128",
                                  "musicnn-msd"])
def test_a_trial_name_the_zoo_knows_names_that_trials_model(base):
    """``zoo.list`` and a search agree on what a name means, whatever the base; names are unique in a grid."""
    for space in SPACES.values():
        try:
            config = space.base_config(zoo.resolve(base) if base else None)
            trials = space.grid(config) + [space.sample(keras_tuner.HyperParameters(), config)]
        except ValueError:  # a base this space does not vary (the probe needs a tagger, input a CNN)
            continue
        assert len({t.name for t in trials[:-1]}) == len(trials) - 1, space.name
        for trial in trials:
            try:
                named = zoo.resolve(trial.name)
            except ValueError:  # a training change (rmsprop-steplr-0.1), not a model name
                continue
            assert named == trial.model.replace(window_seconds=named.window_seconds), (space.name, base, trial.name)


def _sample(hp: keras_tuner.HyperParameters, seed: int) -> None:
    for parameter in hp.space:
        hp.values[parameter.name] = parameter.random_sample(seed)


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("sample", [False, True])
def test_every_space_builds_with_default_and_sampled_values(space, sample, data, tmp_path):
    for trial in SPACES[space].grid(SPACES[space].base_config(None)):
        if trial.model.tagger:
            weights_for(trial.model.name)  # the wheel, and EfficientAT mn04 from ../shared into the cache
    hypermodel = SpaceHyperModel(SPACES[space], data, TrainConfig(), sample=sample)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert model.output_shape == (None, 10) and model.input_shape == (None, 11025)
    assert model.optimizer is not None
    if not sample:
        assert hp.values == {"trial": SPACES[space].grid(hypermodel.base)[0].name}
    for seed in range(3):
        _sample(hp, seed)
        hypermodel.build(hp)  # may register conditional values
        _sample(hp, seed)
        model = hypermodel.build(hp)
        assert model.output_shape == (None, 10)
        assert hypermodel.spec(hp).name


def test_fixed_values_override_the_default(data, tmp_path):
    hypermodel = SpaceHyperModel(SPACES["optimizer"], data, TrainConfig())
    hp = keras_tuner.HyperParameters()
    hp.Fixed("trial", "rmsprop-exponentiallr-0.9")
    training = hypermodel.training(hp)
    assert (training.optimizer, training.schedule, training.gamma) == ("rmsprop", "exponentiallr", 0.9)
    assert isinstance(hypermodel.build(hp).optimizer, keras.optimizers.RMSprop)


def test_base_replaces_the_carried_forward_model(data, tmp_path):
    hypermodel = SpaceHyperModel(SPACES["activation"], data, TrainConfig(), base=zoo.resolve("3cnn-32-64-128-2fc-128"))
    assert list(hypermodel.grid)[1] == "3cnn-32-64-128-2fc-128_act=elu1"
    with pytest.raises(ValueError, match="spectrogram and waveform CNNs"):
        SpaceHyperModel(SPACES["input"], data, TrainConfig(), base=zoo.resolve("3fcLayers-512-256"))


def _rates_per_epoch(callback, epochs):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=make_optimizer("adam", 1e-3), loss="mse")
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: seen.append(float(np.asarray(model.optimizer.learning_rate)))
    )
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), epochs=epochs, callbacks=[callback, record], verbose=0)
    return seen


def test_step_lr_matches_pytorch_epoch_by_epoch():
    expected = [1e-3] * 5 + [1e-4] * 5 + [1e-5] * 2  # StepLR(step_size=5, gamma=0.1) from 1e-3
    assert [step_lr(e, initial=1e-3, step_size=5, gamma=0.1) for e in range(12)] == pytest.approx(expected)
    rates = _rates_per_epoch(schedule_callback("steplr", initial=1e-3, gamma=0.1), 12)
    assert rates == pytest.approx(expected, rel=1e-6)


def test_exponential_lr_matches_pytorch_epoch_by_epoch():
    expected = [1e-3 * 0.9**e for e in range(8)]  # ExponentialLR(gamma=0.9)
    assert [exponential_lr(e, initial=1e-3, gamma=0.9) for e in range(8)] == pytest.approx(expected)
    assert _rates_per_epoch(schedule_callback("exponentiallr", initial=1e-3, gamma=0.9), 8) == pytest.approx(expected, rel=1e-6)


def test_schedule_and_optimizer_errors():
    assert schedule_callback("constant", initial=1e-3) is None
    assert schedule_callback("cosine", initial=1e-3) is None  # per step, held by the optimizer
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        schedule_callback("linear", initial=1e-3)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        make_optimizer("sgd", 1e-3)

"""Every registered model: builds, trains a step, round-trips save/load (parametrized over the registry).

The tests marked ``backends`` run under every Keras backend: here under the one ``KERAS_BACKEND``
names (TensorFlow by default) and, from ``tests/test_backends.py``, under JAX and PyTorch. On
TensorFlow they cover every registered model; on the others one model of each family and option.
"""

import os

import keras
import numpy as np
import pytest
from keras import ops

import zoo
from tests.needs import weights_for
from zoo.builders.activations import Maxout, ShiftedReLU
from zoo.builders.blocks import flat_layers

WINDOW = 0.5  # seconds: short, so that the whole registry is checked in seconds
# Each family, the study's own activations (Maxout, shifted ReLU) and a pretrained tagger with its
# frame fitting: what JAX and PyTorch run of the registry in CI; GTZAN_TEST_EVERY_MODEL=1 runs them all.
REPRESENTATIVE = ["3fcLayers-512-256", "3cnn-LeakyReLU-5fc-Maxout", "3cnn5fc-ELU-ShiftedReLU0.3-intercalado",
                  "wave-3cnn-32-64-128-2fc-128", "bncnn-32-64-128-256", "rescnn-32-64-128-256", "vgg-msd",
                  "efficientat-mn04", "panns-cnn14-16k"]
# CNN14's 80 M weights: on JAX and PyTorch it builds and answers; its training step and round trip,
# the same code as every other model's, run on TensorFlow (and with GTZAN_TEST_EVERY_MODEL=1).
HEAVY = {"panns-cnn14-16k"}
EVERY_MODEL = keras.backend.backend() == "tensorflow" or os.environ.get("GTZAN_TEST_EVERY_MODEL") == "1"
NAMES = zoo.names() if EVERY_MODEL else REPRESENTATIVE
TRAINED_NAMES = NAMES if EVERY_MODEL else [name for name in NAMES if name not in HEAVY]


def build(name: str, waveforms: np.ndarray) -> keras.Model:
    """The model ``name`` at :data:`WINDOW`, with its pretrained weights where a test has them
    (``tests.needs.weights_for``; an AudioSet backbone's architecture alone otherwise: its weights are
    checked against its original in ``tests/test_backbones.py``).

    A pretrained backbone's batch normalization is frozen, so randomly initialized it would keep unit
    statistics that let activations vanish block after block; an architecture alone gets the statistics
    of ``waveforms`` instead, as trained weights bring statistics that fit their activations.
    """
    loaded = weights_for(name)
    model = zoo.build_model(zoo.configure(name, window_seconds=WINDOW), pretrained_weights=loaded)
    if not loaded:
        norms = [layer for layer in flat_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
        for layer in norms:  # one pass in training mode with no momentum sets the statistics to this batch's
            layer.trainable, layer.momentum = True, 0.0
        model(waveforms, training=True)
        for layer in norms:
            layer.trainable, layer.momentum = False, 0.99
    return model


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return rng.normal(0, 0.2, (4, int(WINDOW * 22050))).astype(np.float32), np.array([0, 3, 9, 3])


@pytest.mark.backends
@pytest.mark.parametrize("name", NAMES)
def test_builds_and_outputs_probabilities(name, batch):
    model = build(name, batch[0])
    probabilities = ops.convert_to_numpy(model(batch[0], training=False))
    assert probabilities.shape == (4, 10)
    assert not np.isnan(probabilities).any()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("name", TRAINED_NAMES)
def test_one_training_step_reaches_every_weight(name, batch):
    """One Adam step moves every trainable weight: Adam leaves a weight whose gradient is zero where it
    is, so a weight the loss does not reach stays equal. (Eager where one step does not pay back a
    compilation; JAX op by op costs more than its ``jax.jit``.)"""
    model = build(name, batch[0])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  run_eagerly=keras.backend.backend() != "jax")
    before = [ops.convert_to_numpy(w) for w in model.trainable_weights]
    loss = float(model.train_on_batch(*batch))
    assert np.isfinite(loss)
    unchanged = [w.path for b, w in zip(before, model.trainable_weights) if np.array_equal(b, ops.convert_to_numpy(w))]
    assert not unchanged, f"no gradient reaches {unchanged}"


@pytest.mark.backends
@pytest.mark.parametrize("name", TRAINED_NAMES)
def test_keras_save_and_load_round_trip(name, batch, tmp_path):
    model = build(name, batch[0])
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(ops.convert_to_numpy(restored(batch[0])), ops.convert_to_numpy(model(batch[0])),
                               atol=1e-6)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.mark.parametrize(
    "name,filters,units",
    [
        ("4fcLayers-1024-512-512", [], [1024, 512, 512, 10]),
        ("3fcLayers-2048-1024", [], [2048, 1024, 10]),
        ("3cnn-32-64-128-2fc-128", [32, 64, 128], [128, 10]),
        ("1cnn-32-3fc-256-128", [32], [256, 128, 10]),
        ("3cnn-32-64-128-5fc-256-256-256-128", [32, 64, 128], [256, 256, 256, 128, 10]),
    ],
)
def test_study_architectures(name, filters, units):
    model = zoo.build(name, window_seconds=WINDOW)
    convs = _layers(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == filters
    assert all(c.kernel_size == (3, 3) and c.strides == (1, 1) and c.padding == "same" for c in convs)
    assert [p.pool_size for p in _layers(model, keras.layers.MaxPooling2D)] == [(2, 2)] * len(filters)
    assert [d.units for d in _layers(model, keras.layers.Dense)] == units
    assert len(_layers(model, keras.layers.LeakyReLU)) == len(filters) + len(units) - 1


def _activation_kinds(model):
    kinds = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.ELU):
            kinds.append(("elu", layer.alpha))
        elif isinstance(layer, ShiftedReLU):
            kinds.append(("shiftedrelu", layer.shift))
        elif isinstance(layer, keras.layers.LeakyReLU):
            kinds.append(("leakyrelu", layer.negative_slope))
        elif isinstance(layer, Maxout):
            kinds.append(("maxout", layer.pieces))
        elif isinstance(layer, keras.layers.Activation):
            kinds.append((keras.activations.serialize(layer.activation), None))
    return kinds


def test_study_activation_variants():
    elu = _activation_kinds(zoo.build("3cnn5fc-ELU-1alpha", window_seconds=WINDOW))
    assert elu == [("elu", 1.0)] * 7
    alternating = _activation_kinds(zoo.build("3cnn5fc-ELU-ShiftedReLU0.3-intercalado", window_seconds=WINDOW))
    assert alternating == [("elu", 1.0), ("shiftedrelu", 0.3)] * 3 + [("elu", 1.0)]
    maxout = _activation_kinds(zoo.build("3cnn-LeakyReLU-5fc-Maxout", window_seconds=WINDOW))
    assert maxout == [("leakyrelu", 0.01)] * 3 + [("maxout", 2)] * 4
    swish = _activation_kinds(zoo.build("3cnn5fc-Swish", window_seconds=WINDOW))
    assert swish == [("silu", None)] * 7


def test_study_regularization_variants():
    decay = zoo.build("weight_decay-1e-05", window_seconds=WINDOW)
    kernels = [layer for layer in decay.layers if hasattr(layer, "kernel_regularizer")]
    assert kernels and all(layer.kernel_regularizer.l2 == pytest.approx(0.5e-5) for layer in kernels)
    dropout = zoo.build("dropout0.1cnn-0.2fc", window_seconds=WINDOW)
    assert [d.rate for d in _layers(dropout, keras.layers.Dropout)] == [0.1] * 3 + [0.2] * 4
    assert zoo.build("time_shift-0.15", window_seconds=WINDOW).get_layer("time_shift").max_fraction == 0.15
    assert zoo.configure("time_shift-0.2").time_shift == 0.2


def test_waveform_models_use_1d_convolutions():
    model = zoo.build("wave-3cnn-32-64-128-2fc-128", window_seconds=WINDOW)
    convs = _layers(model, keras.layers.Conv1D)
    assert [c.filters for c in convs] == [32, 32, 64, 128] and convs[0].strides == (64,)
    assert not _layers(model, keras.layers.Conv2D)


def test_the_representative_models_are_registered_and_cover_every_family():
    assert set(REPRESENTATIVE) <= set(zoo.names())
    families = {zoo.resolve(name).family for name in zoo.names()} - {"musicnn"}  # vgg-msd stands for the taggers
    assert {zoo.resolve(name).family for name in REPRESENTATIVE} == families


def test_canonical_names_round_trip():
    for name in zoo.names():
        config = zoo.resolve(name)
        assert zoo.resolve(config.name) == config


def test_any_grammatical_name_builds():
    model = zoo.build("2cnn-16-16-1fc_act=elu0.5", window_seconds=WINDOW)
    assert [d.units for d in _layers(model, keras.layers.Dense)] == [10]


def test_names_pattern():
    assert zoo.names("3fcLayers*") == ["3fcLayers-512-256", "3fcLayers-1024-512", "3fcLayers-2048-1024"]
    assert "bncnn-32-64-128-256" in zoo.names()
    assert zoo.names("nothing*") == []


@pytest.mark.parametrize(
    "name,message",
    [
        ("3cnn-32-64-2fc-128", "3cnn needs 3 filter counts"),
        ("6fcLayers-1-2-3-4-5", "3 to 5 layers"),
        ("4cnn-8-8-8-8-2fc-16", "1 to 3 conv blocks"),
        ("3cnn-32-64-128-2fc-128_act=tanh", "unknown activation 'tanh'"),
        ("3cnn-32-64-128-2fc-128_conv=maxout2", "maxout is for dense layers"),
        ("3cnn-32-64-128-2fc-128_dropout=0.5", "bad option 'dropout=0.5'"),
        ("3cnn-32-64-128-2fc-128_color=red", "unknown option 'color'"),
        ("resnet50", "unknown model name 'resnet50'"),
    ],
)
def test_bad_names_raise_clear_errors(name, message):
    with pytest.raises(ValueError, match=message) as info:
        zoo.build(name)
    assert "\n" not in str(info.value)


def test_close_names_are_suggested():
    with pytest.raises(ValueError, match="Did you mean '3cnn5fc-ELU-1alpha'"):
        zoo.build("3cnn5fc-ELU-1-alpha")


@pytest.mark.parametrize(
    "overrides,message",
    [({"colour": 1}, "unknown override"), ({"conv_dropout": 1.5}, "conv_dropout must be in"),
     ({"window_seconds": 0}, r"window \(--window-seconds\) must be a finite number of at least 0.1"), ({"n_genres": 1}, "n_genres")],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(ValueError, match=message):
        zoo.build("3cnn-32-64-128-2fc-128", **overrides)


def test_overrides_change_input_and_output():
    model = zoo.build("3cnn-32-64-128-2fc-128", window_seconds=1.0, n_genres=4, n_mels=32)
    assert model.input_shape == (None, 22050) and model.output_shape == (None, 4)


@pytest.mark.parametrize("layer", [ShiftedReLU(0.3), Maxout(8, 3)])
def test_custom_layer_config_round_trip(layer):
    layer.build((None, 5))
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.backends
def test_activation_formulas():
    x = np.array([[-2.0, -0.1, 0.5]], np.float32)
    np.testing.assert_allclose(ops.convert_to_numpy(ShiftedReLU(0.3)(x)), [[-0.3, -0.1, 0.5]])
    maxout = Maxout(1, 2)
    maxout.build((None, 3))
    maxout.dense.kernel.assign(np.array([[1, -1], [0, 0], [0, 0]], np.float32))
    np.testing.assert_allclose(ops.convert_to_numpy(maxout(x)), [[2.0]])  # max(-2, 2)


@pytest.mark.backends
def test_recording_conditions_option_trains_with_fit(batch):
    model = zoo.build("bncnn-32-64_rec=0.5", window_seconds=WINDOW)
    assert model.get_layer("recording_conditions").probability == 0.5
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(*batch, epochs=1, batch_size=2, verbose=0).history
    assert np.isfinite(history["loss"][0])
    layer = model.get_layer("recording_conditions")
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(batch[0], training=False)), batch[0])  # identity at inference
    assert not np.allclose(ops.convert_to_numpy(layer(batch[0], training=True)), batch[0])


@pytest.mark.backends
def test_spec_augment_option_adds_a_training_only_layer(batch):
    from data.layers import SpecAugment

    model = zoo.build("bncnn-32-64_specaug=4,8", window_seconds=WINDOW)
    layer = model.get_layer("spec_augment")
    assert isinstance(layer, SpecAugment) and (layer.freq_width, layer.time_width) == (4, 8)
    mel = ops.convert_to_numpy(model.get_layer("log_mel")(batch[0]))
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(mel, training=False)), mel)  # identity at inference
    masked = ops.convert_to_numpy(layer(mel, training=True))
    assert masked.shape == mel.shape and not np.array_equal(masked, mel)
    assert zoo.resolve("bncnn-32-64_specaug=4,8").name == "bncnn-32-64_specaug=4,8"
    with pytest.raises(ValueError, match="spec_augment applies to spectrogram models"):
        zoo.build("wave-1cnn-32-2fc-64_specaug=4,8")


def test_residual_blocks_add_their_shortcuts():
    model = zoo.build("rescnn-16-32-32", window_seconds=WINDOW)
    assert len(_layers(model, keras.layers.Add)) == 3
    assert [layer.name for layer in model.layers if layer.name.endswith("_shortcut")] == ["block1_shortcut",
                                                                                        "block2_shortcut"]
    assert all(layer.momentum == 0.9 for layer in _layers(model, keras.layers.BatchNormalization))


def test_load_model_registers_the_custom_layers_in_a_fresh_process(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    zoo.build("3cnn5fc-ELU-ShiftedReLU0.3-intercalado", window_seconds=WINDOW).save(tmp_path / "m.keras")
    script = f"import zoo; print(zoo.load_model({str(tmp_path / 'm.keras')!r}).name)"
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-800:]

"""The front-end layers. Those marked ``backends`` also run under JAX and PyTorch
(``tests/test_backends.py``); the rest check their use in TensorFlow graphs and tf.data."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.ops import convert_to_numpy as to_numpy

from data.layers import LogMelSpectrogram, MusicnnLogMel, RandomTimeShift, RecordingConditions, SpecAugment, stft_power


@pytest.fixture(scope="module")
def waves():
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    return np.stack([np.sin(2 * np.pi * 440 * t) * 0.5, rng.normal(0, 0.1, t.size)]).astype(np.float32)


@pytest.mark.backends
def test_time_shift_keeps_length_and_only_moves_content(waves):
    layer = RandomTimeShift(0.2, seed=1)
    shifted = to_numpy(layer(waves, training=True))
    assert shifted.shape == waves.shape
    limit = int(0.2 * waves.shape[1])
    for row, original in zip(shifted, waves):
        matches = [s for s in range(-limit, limit + 1) if np.array_equal(np.roll(original, s), row)]
        assert matches, "output is not a roll of the input within the limit"
    np.testing.assert_array_equal(to_numpy(layer(waves, training=False)), waves)
    np.testing.assert_array_equal(to_numpy(RandomTimeShift(0.0)(waves, training=True)), waves)


@pytest.mark.backends
def test_time_shift_differs_per_example():
    x = np.tile(np.arange(1000, dtype=np.float32), (16, 1))
    shifted = to_numpy(RandomTimeShift(0.3, seed=2)(x, training=True))
    assert len({row[0] for row in shifted}) > 1


@pytest.mark.backends
def test_log_mel_shape_range_and_batch_independence(waves):
    layer = LogMelSpectrogram(n_fft=512, hop_length=256, n_mels=40)
    out = to_numpy(layer(waves))
    assert out.shape == (2, 1 + 22050 // 256, 40) == layer.compute_output_shape((2, 22050))
    assert np.isfinite(out).all()
    # Full-scale sine about 0 dB -> (0 + 40) / 20 = 2 in its band.
    full = to_numpy(layer(waves[:1] * 2))
    assert 1.5 < full.max() < 2.5
    # An example's output does not depend on the rest of its batch.
    np.testing.assert_allclose(to_numpy(layer(waves[:1])), out[:1], atol=1e-5)


def numpy_power_spectrogram(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """The STFT power in float64 numpy: centered reflect-padded frames, periodic Hann window."""
    padded = np.pad(x.astype(np.float64), ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    starts = hop * np.arange(1 + x.shape[1] // hop)
    frames = padded[:, starts[:, None] + np.arange(n_fft)[None, :]]
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=-1)) ** 2


@pytest.mark.backends
def test_log_mel_is_the_library_mel_power_in_decibels_per_example(waves):
    """The layer equals a float64 numpy STFT through ``keras.layers.MelSpectrogram``'s filter bank, in dB,
    offset and scaled, on every band above float32's rounding (a noise floor 60 dB down, as in recordings)."""
    audio = waves + np.random.default_rng(1).normal(0, 1e-3, waves.shape).astype(np.float32)
    layer = LogMelSpectrogram(n_fft=512, hop_length=256, n_mels=40, f_min=30.0, f_max=8000.0)
    bank = to_numpy(layer.mel.linear_to_mel_weight_matrix(num_mel_bins=40, num_spectrogram_bins=257,
                                                          sampling_rate=22050, lower_edge_hertz=30.0,
                                                          upper_edge_hertz=8000.0))
    power = numpy_power_spectrogram(audio, 512, 256) @ bank
    expected = (10 * np.log10(np.maximum(power, 1e-10)) - 20 * np.log10(512 / 4) + 40) / 20
    np.testing.assert_allclose(to_numpy(layer(audio)), expected, atol=2e-4)
    # Silence sits at the floor: a power of 1e-10 (-100 dB before the reference level).
    floor = (10 * np.log10(1e-10) - 20 * np.log10(512 / 4) + 40) / 20
    np.testing.assert_allclose(to_numpy(layer(np.zeros((1, 22050), np.float32))), floor, atol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("n_fft, hop", [(1024, 512), (706, 353), (512, 256)])
def test_the_portable_stft_equals_the_fft(waves, n_fft, hop):
    """The convolution by the DFT basis (what exported formats run) gives the FFT's power spectrogram."""
    fft = to_numpy(stft_power(waves, n_fft, hop))
    portable = to_numpy(stft_power(waves, n_fft, hop, portable=True))
    assert portable.shape == fft.shape == (2, 1 + 22050 // hop, n_fft // 2 + 1)
    np.testing.assert_allclose(portable, fft, rtol=0, atol=1e-5 * fft.max())


@pytest.mark.parametrize("make", [lambda: LogMelSpectrogram(), lambda: MusicnnLogMel()])
def test_front_ends_give_the_same_features_with_the_portable_stft(waves, make):
    # Recorded audio has a noise floor; a pure sine's far bands, 130 dB down, are float32 rounding either way.
    audio = waves + np.random.default_rng(1).normal(0, 1e-3, waves.shape).astype(np.float32)
    layer = make()
    fft = to_numpy(layer(audio))
    layer.portable = True
    np.testing.assert_allclose(to_numpy(layer(audio)), fft, atol=2e-4)
    # Traced portable, the graph holds no FFT: what ONNX, LiteRT and OpenVINO converters need.
    graph = tf.function(layer).get_concrete_function(tf.TensorSpec([None, 22050], tf.float32)).graph
    operations = {operation.type for operation in graph.get_operations()}
    assert "Conv2D" in operations and not {"RFFT", "FFT", "ComplexAbs", "Real", "Imag"} & operations


def test_log_mel_first_built_inside_tf_data_then_used_eagerly(waves):
    layer = LogMelSpectrogram(n_mels=32)
    mapped = next(iter(tf.data.Dataset.from_tensors(waves).map(lambda x: layer(x)))).numpy()
    np.testing.assert_allclose(to_numpy(layer(waves)), mapped, atol=1e-4)


@pytest.mark.parametrize("layer", [LogMelSpectrogram(n_mels=32), RandomTimeShift(0.15, seed=3)])
def test_eager_and_tf_data_agree(layer, waves):
    eager = to_numpy(layer(waves))
    mapped = next(iter(tf.data.Dataset.from_tensors(waves).map(lambda x: layer(x)))).numpy()
    np.testing.assert_allclose(eager, mapped, atol=1e-4)


@pytest.mark.backends
@pytest.mark.parametrize("layer", [LogMelSpectrogram(n_fft=512, n_mels=20, db_offset=-30), RandomTimeShift(0.2, seed=5),
                                   RecordingConditions(0.3, seed=4)])
def test_config_round_trip(layer):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer)


@pytest.mark.backends
@pytest.mark.parametrize("make", [lambda: RandomTimeShift(0.2, seed=5), lambda: RecordingConditions(0.5, seed=4)])
def test_a_layer_rebuilt_from_its_config_draws_what_the_original_draws(make, waves):
    # A clone (keras.models.clone_model, a tuner rebuilding a trial) must augment as the original does.
    original = make()
    clone = type(original).from_config(original.get_config())
    first = to_numpy(original(waves, training=True))
    assert not np.array_equal(first, to_numpy(waves))
    np.testing.assert_array_equal(first, to_numpy(clone(waves, training=True)))


@pytest.mark.backends
def test_spec_augment_masks_whole_frames_and_bands_with_the_example_mean_in_training_only():
    mel = np.random.default_rng(1).normal(-40, 5, (8, 50, 20)).astype(np.float32)  # dB-like: its mean is far from 0
    layer = SpecAugment(freq_width=4, time_width=6, masks=2, seed=0)
    np.testing.assert_array_equal(to_numpy(layer(mel)), mel)
    np.testing.assert_array_equal(to_numpy(layer(mel, training=False)), mel)
    out = to_numpy(layer(mel, training=True))
    changed = out != mel
    mean = np.broadcast_to(mel.mean(axis=(1, 2), keepdims=True), mel.shape)
    np.testing.assert_allclose(out[changed], mean[changed], rtol=1e-5)
    frames, bands = changed.all(axis=2), changed.all(axis=1)  # masked across every band / every frame
    assert (changed == (frames[:, :, None] | bands[:, None, :])).all()  # nothing but whole frames and bands
    assert frames.any() and bands.any()  # both kinds of mask, somewhere in the batch
    assert frames.sum(axis=1).max() <= 2 * 6 and bands.sum(axis=1).max() <= 2 * 4


@pytest.mark.backends
@pytest.mark.parametrize("kwargs,name", [({"max_fraction": 1.5}, "max_fraction")])
def test_time_shift_bad_args(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RandomTimeShift(**kwargs)


@pytest.mark.backends
@pytest.mark.parametrize("kwargs,name", [({"n_fft": 0}, "n_fft"), ({"n_mels": 2.5}, "n_mels"), ({"db_scale": 0}, "db_scale")])
def test_log_mel_bad_args(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LogMelSpectrogram(**kwargs)


def _band_energy(x: np.ndarray, low: float, high: float) -> np.ndarray:
    spectrum = np.abs(np.fft.rfft(x, axis=1)) ** 2
    hz = np.fft.rfftfreq(x.shape[1], 1 / 22050)
    return spectrum[:, (hz >= low) & (hz < high)].sum(axis=1)


@pytest.mark.backends
def test_recording_conditions_only_in_training_and_each_effect_happens():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (64, 22050)).astype(np.float32)  # white: every band holds energy
    layer = RecordingConditions(1.0, seed=7)
    np.testing.assert_array_equal(to_numpy(layer(x, training=False)), x)
    np.testing.assert_array_equal(to_numpy(RecordingConditions(0.0)(x, training=True)), x)
    y = to_numpy(layer(x, training=True))
    assert y.shape == x.shape and np.isfinite(y).all()
    # A low-pass at 3-11 kHz on every window: far less energy left above 10 kHz than below 2 kHz
    # (the noise added at 15-40 dB SNR keeps a floor).
    ratio = _band_energy(y, 10500, 11025) / _band_energy(y, 500, 2000) * (1500 / 525)
    assert np.median(ratio) < 0.2
    # Levels change from window to window (gain from -12 to +6 dB).
    level = 10 * np.log10(np.mean(y ** 2, axis=1) / np.mean(x ** 2, axis=1))
    assert level.min() < -6 and level.std() > 2


@pytest.mark.backends
def test_recording_conditions_probability_leaves_some_windows_clean():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.1, (200, 4096)).astype(np.float32)
    y = to_numpy(RecordingConditions(0.3, seed=3)(x, training=True))
    # Untouched windows come back up to the FFT round trip; 0.7 ** 4 of them on average.
    clean = np.mean(np.max(np.abs(y - x), axis=1) < 1e-5)
    assert 0.1 < clean < 0.45


def test_recording_conditions_in_a_graph_of_unknown_length():
    layer = RecordingConditions(1.0, seed=2)
    graph = tf.function(lambda w: layer(w, training=True), input_signature=[tf.TensorSpec([None, None], tf.float32)])
    x = np.random.default_rng(3).normal(0, 0.1, (3, 5001)).astype(np.float32)  # odd length: bins at k * rate / n
    y = graph(tf.constant(x)).numpy()
    assert y.shape == x.shape and np.isfinite(y).all() and not np.allclose(y, x)


def test_recording_conditions_in_tf_data_and_bad_probability():
    x = np.random.default_rng(2).normal(0, 0.1, (4, 8000)).astype(np.float32)
    layer = RecordingConditions(1.0, seed=1)
    mapped = next(iter(tf.data.Dataset.from_tensors(x).map(lambda w: layer(w, training=True)))).numpy()
    assert mapped.shape == x.shape and not np.allclose(mapped, x)
    with pytest.raises(ValueError, match="probability"):
        RecordingConditions(1.5)

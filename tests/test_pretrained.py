"""The musicnn weights: read from the wheel as data, checked, and the Keras models match the originals."""

import zipfile

import numpy as np
import pytest

from data.errors import InputError
from zoo import pretrained
from zoo.builders import musicnn

ORIGINAL_OUTPUTS = {"tags": "model/Sigmoid", "penultimate": "model/batch_normalization_10/batchnorm/add_1"}


def original_graph(wheel, model: str, patches: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
    """The authors' own inference graph from the checkpoint's .meta file, run under tf.compat.v1.

    The graph's recorded output shapes are dropped (current TensorFlow refuses them) and only the
    sub-graph up to the requested outputs is kept; its variables take the checkpoint's values.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    tf1 = tf.compat.v1
    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(zipfile.ZipFile(wheel).read(f"musicnn/{model}/.meta"))
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph_def = tf1.graph_util.extract_sub_graph(meta.graph_def, outputs)
    weights = pretrained.read_checkpoint(model, wheel)
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
        with tf1.Session(graph=graph) as session:
            for node in graph_def.node:
                if node.op == "VariableV2":
                    session.run(tf1.assign(graph.get_tensor_by_name(node.name + ":0"), weights[node.name]))
            feed = {"model/Placeholder:0": patches}
            feed.update({n.name + ":0": False for n in graph_def.node  # is_training
                         if n.op == "Placeholder" and n.name != "model/Placeholder"})
            return session.run([name + ":0" for name in outputs], feed)


@pytest.mark.parametrize("model", ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"])
def test_keras_models_match_the_original_graphs(wheel, model):
    rng = np.random.default_rng(1)
    # log10(1 + 10000 * mel) of music lies in about [0, 4].
    patches = rng.uniform(0, 4, (3, musicnn.VGG_FRAMES, musicnn.N_MELS)).astype(np.float32)
    vgg = model.endswith("vgg")
    keras_model = musicnn.vgg_tagger(model) if vgg else musicnn.musicnn_tagger()
    musicnn.load_weights(keras_model, pretrained.read_checkpoint(model, wheel),
                         musicnn.VGG_NAMES if vgg else musicnn.MUSICNN_NAMES)
    ours = keras_model(patches, training=False)
    names = ["tags"] if vgg else ["tags", "penultimate"]
    reference = original_graph(wheel, model, patches, [ORIGINAL_OUTPUTS[n] for n in names])
    # Measured: at most 3.6e-7 on the tags and 4.8e-6 on penultimate values up to 8.3, float32 rounding;
    # a wrong epsilon, momentum or layer order moves them by 1e-3 or more.
    for name, expected in zip(names, reference):
        assert np.abs(ours[name].numpy() - expected).max() < 2e-6 * max(1.0, np.abs(expected).max()), name


def test_musicnn_takes_any_length(wheel):
    model = musicnn.musicnn_tagger()
    musicnn.load_weights(model, pretrained.read_checkpoint("MSD_musicnn", wheel), musicnn.MUSICNN_NAMES)
    for frames in (50, 187, 400):
        out = model(np.ones((1, frames, musicnn.N_MELS), np.float32), training=False)
        assert out["tags"].shape == (1, 50) and out["penultimate"].shape == (1, 200)


def test_a_damaged_wheel_and_a_missing_one_are_one_line(wheel, tmp_path, monkeypatch):
    damaged = tmp_path / pretrained.WHEEL
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "musicnn/MSD_musicnn/.index":
                data = data[:-1] + bytes([data[-1] ^ 1])
            target.writestr(item, data)
    with pytest.raises(InputError, match="has SHA-256 .* not the published"):
        pretrained.read_checkpoint("MSD_musicnn", damaged)
    monkeypatch.setenv("GTZAN_MUSICNN_WHEEL", str(tmp_path / "nowhere.whl"))
    with pytest.raises(InputError, match="pip download --no-deps musicnn==0.1.0"):
        pretrained.wheel_path()
    monkeypatch.delenv("GTZAN_MUSICNN_WHEEL")
    monkeypatch.setenv("GTZAN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(InputError, match="is not in .* get it with python -m pip download"):
        pretrained.wheel_path(download=False)
    with pytest.raises(InputError, match="unknown pretrained tagger 'MSD_resnet'"):
        pretrained.read_checkpoint("MSD_resnet", wheel)


def test_weights_that_do_not_fit_are_named(wheel):
    weights = pretrained.read_checkpoint("MSD_musicnn", wheel)
    weights["dense/kernel"] = weights["dense/kernel"][:, :100]
    with pytest.raises(ValueError, match="checkpoint layer dense .* does not fit musicnn_dense"):
        musicnn.load_weights(musicnn.musicnn_tagger(), weights, musicnn.MUSICNN_NAMES)


def test_the_front_end_puts_a_tone_in_its_band_and_nothing_above_8_khz():
    from data.layers import MusicnnLogMel, slaney_mel_filters

    filters = slaney_mel_filters(22050, 706, 96, 0.0, 8000.0)
    assert filters.shape == (354, 96)
    bins = np.linspace(0, 11025, 354)
    assert not filters[bins > 8000].any()  # the model never sees the band above 8 kHz
    assert np.allclose(filters.sum(axis=0) * (bins[1] - bins[0]), 1.0, atol=0.1)  # unit area per band in Hz
    layer = MusicnnLogMel()
    t = np.arange(22050 * 2) / 22050
    for hz in (440.0, 3000.0):
        mel = layer(np.sin(2 * np.pi * hz * t)[None].astype(np.float32)).numpy()[0]
        assert mel.shape == (1 + 44100 // 353, 96)
        peak = int(np.argmax(mel[5:-5].mean(axis=0)))
        assert filters[np.argmin(np.abs(bins - hz)), peak] > 0  # the band that holds the tone
    high = layer(np.sin(2 * np.pi * 9500 * t)[None].astype(np.float32)).numpy()[0]
    assert high[5:-5].max() < 0.05  # a 9.5-kHz tone leaves the input nearly empty


def test_the_front_end_is_close_to_librosa_at_16_khz_on_real_music(wheel, real_music):
    librosa = pytest.importorskip("librosa", reason="librosa (the bench extra) computes the reference")
    import soundfile
    import soxr

    from data.layers import MusicnnLogMel, slaney_mel_filters

    assert np.allclose(slaney_mel_filters(16000, 512, 96), librosa.filters.mel(sr=16000, n_fft=512, n_mels=96).T,
                       atol=1e-7)
    layer = MusicnnLogMel()
    model = musicnn.musicnn_tagger()
    musicnn.load_weights(model, pretrained.read_checkpoint("MSD_musicnn", wheel), musicnn.MUSICNN_NAMES)
    errors, correlations, top3 = [], [], []
    for path in sorted(real_music.glob("*/*.0000[1-3].wav")):
        audio = soundfile.read(path, dtype="float32")[0]
        # The authors' pre-processing: 16-kHz audio, librosa's mel power spectrogram, log10(1 + 10000 x).
        mel = librosa.feature.melspectrogram(y=soxr.resample(audio, 22050, 16000, quality="HQ"), sr=16000, n_fft=512,
                                             hop_length=256, n_mels=96, pad_mode="reflect").T
        reference = np.log10(1 + 10000 * mel.astype(np.float32))
        ours = layer(audio[None]).numpy()[0]
        frames = min(len(reference), len(ours)) - 1
        errors.append(np.abs(ours[1:frames] - reference[1:frames]).mean() / reference[1:frames].mean())
        expected, tags = (model(x[None], training=False)["tags"].numpy()[0] for x in (reference, ours))
        correlations.append(np.corrcoef(expected, tags)[0, 1])
        # The same top 3, up to ties: a tag in one top 3 and not the other is within 0.02 of the third.
        third = np.sort(expected)[-3]
        differ = set(np.argsort(-expected)[:3]) ^ set(np.argsort(-tags)[:3])
        top3.append(all(abs(expected[i] - third) < 0.02 for i in differ))
    # Measured on these 30 excerpts: 1.45 % mean relative difference (0.77 % to 2.44 %), the resampler
    # and the 16-kHz STFT the model was trained on against ours at 22.05 kHz; tag correlation 0.998 mean,
    # 0.990 at least; the same top 3 for 28, and for the other two a swap of near-equal third tags.
    assert np.mean(errors) < 0.016 and max(errors) < 0.027
    assert min(correlations) >= 0.98 and np.mean(correlations) > 0.995
    assert all(top3), [p.name for p, same in zip(sorted(real_music.glob("*/*.0000[1-3].wav")), top3) if not same]

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from data.catalogue import CODECS, probe
from data.decode import decode_file, decode_path

TOLERANCE = 1 / 32768


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(3)
    return np.clip(rng.normal(0, 0.3, (22050, 2)), -1, 1).astype(np.float32)


@pytest.mark.parametrize("suffix,codec", [(".wav", "wav"), (".au", "au")])
@pytest.mark.parametrize("channels", [1, 2])
def test_graph_decode_matches_soundfile(tmp_path, audio, suffix, codec, channels):
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, audio[:, :channels], 22050, subtype="PCM_16")
    assert probe(path) == (codec, None)
    expected = soundfile.read(path, dtype="float32", always_2d=True)[0].mean(axis=1)
    decoded = decode_path(path, codec)
    assert decoded.dtype == np.float32 and decoded.shape == expected.shape
    np.testing.assert_allclose(decoded, expected, atol=TOLERANCE)


@pytest.mark.parametrize("suffix,codec,subtype", [(".wav", "wav", "PCM_16"), (".au", "au", "PCM_16"),
                                                  (".flac", "soundfile", "PCM_16")])
@pytest.mark.parametrize("channels", [1, 2])
def test_int16_decoding_keeps_the_stored_samples(tmp_path, audio, suffix, codec, subtype, channels):
    # The pipeline caches int16: PCM16 files go straight from their bytes to the cache.
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, audio[:, :channels], 22050, subtype=subtype)
    decode = lambda dtype: decode_file(tf.constant(str(path)), tf.constant(CODECS.index(codec)), dtype=dtype).numpy()
    as_int16, as_float = decode(tf.int16), decode(tf.float32)
    assert as_int16.dtype == np.int16 and as_int16.shape == as_float.shape
    if channels == 1:
        np.testing.assert_array_equal(as_int16, soundfile.read(path, dtype="int16")[0])
    # Stereo is averaged, then rounded to the nearest int16.
    np.testing.assert_allclose(as_int16 / 32768, as_float, atol=0.5 / 32768 + 1e-9)


def test_decode_file_rejects_other_dtypes():
    with pytest.raises(ValueError, match="dtype must be tf.float32 or tf.int16"):
        decode_file(tf.constant("x.wav"), tf.constant(0), dtype=tf.float64)


def test_au_with_unknown_data_size_reads_to_end(tmp_path, audio):
    path = tmp_path / "clip.au"
    soundfile.write(path, audio[:, 0], 22050, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[8:12] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    np.testing.assert_allclose(decode_path(path, "au"), audio[:, 0], atol=TOLERANCE)


@pytest.mark.parametrize("suffix,codec", [(".wav", "wav"), (".au", "au"), (".flac", "soundfile")])
def test_eager_and_dataset_map_agree(tmp_path, audio, suffix, codec):
    path = tmp_path / f"clip{suffix}"
    soundfile.write(path, audio[:, 0], 22050, subtype="PCM_16")
    eager = decode_file(tf.constant(str(path)), tf.constant(CODECS.index(codec))).numpy()
    ds = tf.data.Dataset.from_tensors((str(path), CODECS.index(codec))).map(decode_file)
    in_graph = next(iter(ds)).numpy()
    np.testing.assert_array_equal(eager, in_graph)


def test_soundfile_path_resamples_and_mixes(tmp_path, audio):
    path = tmp_path / "clip.flac"
    soundfile.write(path, audio, 44100)  # 0.5 s of stereo at 44.1 kHz
    decoded = decode_path(path, "soundfile")
    assert decoded.ndim == 1 and abs(decoded.size - 11025) <= 1
    assert np.abs(decoded).max() <= 1.0


def test_unknown_codec_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="codec 'mp4'"):
        decode_path(tmp_path / "x", "mp4")


def _with_chunk_before_data(path, payload: bytes) -> None:
    data = path.read_bytes()
    fmt_end = 12 + 8 + int.from_bytes(data[16:20], "little")
    extra = b"LIST" + len(payload).to_bytes(4, "little") + payload + b"\x00" * (len(payload) % 2)
    patched = data[:4] + (len(data) - 8 + len(extra)).to_bytes(4, "little") + data[8:fmt_end] + extra + data[fmt_end:]
    path.write_bytes(patched)


def test_wav_decoder_matches_tf_audio_decode_wav(tmp_path, audio):
    path = tmp_path / "clip.wav"
    soundfile.write(path, audio, 22050, subtype="PCM_16")
    _with_chunk_before_data(path, b"INFOabcd")  # a tag chunk before "data", as taggers write
    reference = tf.reduce_mean(tf.audio.decode_wav(tf.io.read_file(str(path)))[0], axis=-1).numpy()
    np.testing.assert_array_equal(decode_path(path, "wav"), reference)


def test_wav_decoder_skips_odd_sized_padded_chunks(tmp_path, audio):
    path = tmp_path / "clip.wav"
    soundfile.write(path, audio[:, 0], 22050, subtype="PCM_16")
    _with_chunk_before_data(path, b"INFOabc")  # odd size: one pad byte follows
    expected = soundfile.read(path, dtype="float32")[0]
    np.testing.assert_allclose(decode_path(path, "wav"), expected, atol=TOLERANCE)

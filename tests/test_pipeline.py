import numpy as np
import pytest
import tensorflow as tf

from data.catalogue import scan
from data.config import window_samples
from data.pipeline import average_per_clip, decoded_dataset, epochs_dataset, eval_windows, train_dataset
from data.splits import random_split


@pytest.fixture(scope="module")
def clips(tiny_gtzan):
    return random_split(scan(tiny_gtzan).clips).train  # 40 clips of 4 s


def test_decoded_cache_is_int16_and_aligned(clips):
    seen = list(decoded_dataset(clips).as_numpy_iterator())
    assert len(seen) == len(clips)
    for audio, label, index in seen:
        assert audio.dtype == np.int16 and audio.shape == (4 * 22050,)
        assert label == clips[index].label


def test_train_windows_shapes_labels_and_epochs(clips):
    decoded = decoded_dataset(clips)
    ds = train_dataset(decoded, window_seconds=1.5, batch_size=16, seed=0)
    epoch1 = list(ds.as_numpy_iterator())
    epoch2 = list(ds.as_numpy_iterator())
    assert [x.shape for x, _ in epoch1] == [(16, 33075), (16, 33075), (8, 33075)]
    x, y = epoch1[0]
    assert x.dtype == np.float32 and y.dtype == np.int32 and np.abs(x).max() <= 1.0
    assert sorted(np.concatenate([y for _, y in epoch1])) == sorted(c.label for c in clips)
    # A new shuffle and new window starts each epoch, the same sequence for the same seed.
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])
    again = list(train_dataset(decoded, window_seconds=1.5, batch_size=16, seed=0).as_numpy_iterator())
    np.testing.assert_array_equal(again[0][0], epoch1[0][0])


def test_epochs_dataset_gives_every_iterator_the_same_epochs(clips):
    decoded = decoded_dataset(clips)
    ds = epochs_dataset(lambda: train_dataset(decoded, window_seconds=1.5, batch_size=16, seed=0), 2)
    next(iter(ds))  # an iterator opened to look at one batch (Keras does so under a strategy)
    batches = list(ds.as_numpy_iterator())
    assert [len(y) for _, y in batches] == [16, 16, 8] * 2
    # The passes are the epochs that separate iterators of one training dataset give.
    alone = train_dataset(decoded, window_seconds=1.5, batch_size=16, seed=0)
    for (x, y), (ex, ey) in zip(batches, list(alone.as_numpy_iterator()) + list(alone.as_numpy_iterator())):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)
    assert not np.array_equal(batches[0][0], batches[3][0])
    np.testing.assert_array_equal(list(ds.as_numpy_iterator())[4][0], batches[4][0])


def test_train_window_is_a_slice_of_its_clip(clips):
    decoded = decoded_dataset(clips[:1])
    audio = next(decoded.as_numpy_iterator())[0].astype(np.float32) / 32768
    x, _ = next(train_dataset(decoded, window_seconds=1.0, batch_size=1, seed=3).as_numpy_iterator())
    start = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(audio, 22050) == x[0], axis=1))
    assert start.size >= 1


def test_short_clip_is_padded(clips):
    x, _ = next(train_dataset(decoded_dataset(clips[:2]), window_seconds=6.0, batch_size=2, seed=0).as_numpy_iterator())
    assert x.shape == (2, 6 * 22050)


def test_eval_every_window_in_order_with_clip_index(clips):
    decoded = decoded_dataset(clips[:5])
    windows = list(eval_windows(decoded, window_seconds=1.5).batch(4).as_numpy_iterator())
    x = np.concatenate([w[0] for w in windows])
    labels = np.concatenate([w[1] for w in windows])
    index = np.concatenate([w[2] for w in windows])
    # 4 s -> two 1.5-s windows, and a third ending where the clip ends (the last 1 s overlaps the second)
    assert x.shape == (5 * 3, 33075)
    np.testing.assert_array_equal(index, np.repeat(np.arange(5), 3))
    np.testing.assert_array_equal(labels, [clips[i].label for i in index])
    first = next(decoded.as_numpy_iterator())[0].astype(np.float32) / 32768
    np.testing.assert_array_equal(x[1], first[33075:66150])
    np.testing.assert_array_equal(x[2], first[-33075:])
    again = np.concatenate([w[0] for w in eval_windows(decoded, window_seconds=1.5).batch(3).as_numpy_iterator()])
    np.testing.assert_array_equal(again, x)


def test_average_per_clip_eagerly_and_in_a_graph():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], np.float32)
    index = np.array([0, 0, 2])
    averaged = np.asarray(average_per_clip(probabilities, index, 3))
    np.testing.assert_allclose(averaged[0], [0.5, 0.5])
    np.testing.assert_array_equal(averaged[1], [0.0, 0.0])  # a clip without windows
    np.testing.assert_allclose(averaged[2], [0.5, 0.5])
    graph = tf.function(lambda p, i: average_per_clip(p, i, 3))
    np.testing.assert_allclose(np.asarray(graph(probabilities, index)), averaged)


def test_window_samples_rejects_nonpositive():
    assert window_samples(3.0) == 66150
    with pytest.raises(ValueError, match="window"):
        window_samples(0)

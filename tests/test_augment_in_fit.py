"""The augmentations do what they say where they run: inside ``fit``'s compiled training step.

A layer that behaves in an eager call but is silenced in a traced graph would pass any test that
calls it directly; here a recording layer after the augmentation keeps what the training step
really fed the model, epoch by epoch.
"""

import keras
import numpy as np
import pytest
from keras import ops

import zoo
from data.layers import RandomTimeShift, RecordingConditions


class Recorder(keras.layers.Layer):
    """Identity that keeps the last batch it saw in training in a variable (read after each epoch)."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.seen = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="seen")

    def call(self, inputs, training=None):
        if training:
            self.seen.assign(inputs)
        return inputs


def _fit_and_record(augment: keras.layers.Layer, x: np.ndarray, epochs: int) -> list[np.ndarray]:
    inputs = keras.Input(x.shape[1:])
    recorder = Recorder(x.shape)
    h = recorder(augment(inputs))
    outputs = keras.layers.Dense(2, activation="softmax")(ops.mean(h, axis=-1, keepdims=True))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "sparse_categorical_crossentropy")  # graph mode: the layers are traced
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(np.array(recorder.seen)))
    model.fit(x, np.zeros(len(x), np.int32), batch_size=len(x), epochs=epochs, verbose=0, shuffle=False,
              callbacks=[record])
    return seen


def test_the_time_shift_rolls_each_example_by_at_most_its_limit_under_fit():
    length, limit = 200, 0.2
    x = np.tile(np.arange(length, dtype=np.float32)[None], (8, 1))  # every row 0, 1, ..., 199
    seen = _fit_and_record(RandomTimeShift(limit, seed=3), x, epochs=3)
    shifts = []
    for batch in seen:
        for row in batch:
            shift = int(row[0]) and length - int(row[0])  # row[0] is the sample rolled to the front
            assert np.array_equal(row, np.roll(x[0], shift)), "not a roll of the input"
            assert min(shift, length - shift) <= limit * length
            shifts.append(shift)
    epochs = [tuple(shifts[i:i + 8]) for i in range(0, len(shifts), 8)]
    assert len(set(epochs[0])) > 1, "every example got the same shift"
    assert len(set(epochs)) == 3, "the shifts did not change from epoch to epoch"
    assert any(shifts), "nothing was shifted"


def test_a_zoo_model_with_shift_shifts_under_fit_and_not_in_inference():
    model = zoo.build("2cnn-16-16-1fc_shift=0.2", window_seconds=0.5, n_genres=2)
    layer = model.get_layer("time_shift")
    x = np.tile(np.sin(np.linspace(0, 40, 11025, dtype=np.float32))[None], (4, 1))
    seen = _fit_and_record(layer, x, epochs=2)
    assert not all(np.array_equal(row, x[0]) for batch in seen for row in batch)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)  # inference: the identity


@pytest.mark.parametrize("chance", [1.0])
def test_recording_conditions_change_the_audio_under_fit(chance):
    x = np.tile((0.3 * np.sin(np.linspace(0, 400, 22050))).astype(np.float32)[None], (4, 1))
    seen = _fit_and_record(RecordingConditions(chance, seed=1), x, epochs=2)
    assert all(not np.allclose(row, x[0]) for batch in seen for row in batch)
    assert not np.allclose(seen[0], seen[1])

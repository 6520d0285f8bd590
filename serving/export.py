"""Export a trained model as a TensorFlow SavedModel for TF Serving.

The ``serving_default`` signature takes ``waveform``, float32 ``[batch, samples]`` at
22050 Hz, of any length: shorter than one window, it is zero-padded to one window; longer,
it is cut into non-overlapping windows and, when samples are left over, one more window aligned
to its end (as evaluation cuts clips: ``data.pipeline.covering_windows``), the model runs on
every window and the probabilities are averaged per clip. It returns
``probabilities`` ``[batch, n_genres]`` and ``genres`` ``[batch, n_genres]`` (the class names,
repeated per row so that every output has the batch dimension TF Serving's row format needs).

Input rules: samples are audio in [-1, 1], and values outside are clipped to it (a sample of
1e30 would otherwise overflow the spectrogram and make every probability NaN); a NaN or
infinite sample, or an empty batch, is an error (``InvalidArgumentError`` naming the problem).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from data.catalogue import SAMPLE_RATE
from data.config import file_safe
from data.pipeline import average_per_clip, covering_windows
from serving.config import ABOUT_FILE
from training.runstore import write_json


def next_version_dir(exports_dir: str | Path, model_name: str) -> Path:
    """``<exports_dir>/<model_name>/<N>``, N one more than the highest version there (from 1)."""
    base = Path(exports_dir) / file_safe(model_name)
    versions = [int(p.name) for p in base.glob("*") if p.is_dir() and p.name.isdigit()]
    return base / str(max(versions, default=0) + 1)


def export_saved_model(model: keras.Model, genres: list[str] | tuple[str, ...], path: str | Path,
                       about: dict | None = None) -> Path:
    """Writes ``model`` as a SavedModel with the clip-level ``serving_default`` signature.

    Beside the graph, ``assets.extra/gtzan.json`` (a folder TF Serving leaves alone) says what
    the model is: its window in samples, the sample rate, the genres in output order and
    ``about`` (model name, training data, test metrics), for the fronts that show it.

    Args:
        model: A zoo model taking ``[batch, window]`` waveforms.
        genres: Class names in label order.
        path: The version folder to write (e.g. from :func:`next_version_dir`).
        about: What to say about the model (JSON-ready).

    Returns:
        ``path``.
    """
    window = int(model.input_shape[1])
    names = tf.constant(list(genres))

    def serve(waveform):
        batch = tf.shape(waveform)[0]
        checks = [tf.debugging.assert_positive(batch, message="waveform: the batch is empty"),
                  tf.debugging.assert_all_finite(waveform, "waveform: NaN or infinite samples")]
        with tf.control_dependencies(checks):
            waveform = tf.clip_by_value(waveform, -1.0, 1.0)
        framed = covering_windows(waveform, window)  # [batch, windows, window]
        count = tf.shape(framed)[1]
        windows = tf.reshape(framed, [batch * count, window])
        probabilities = model(windows, training=False)
        clip_index = tf.repeat(tf.range(batch), count)
        probabilities = average_per_clip(probabilities, clip_index, batch)
        return {"probabilities": probabilities, "genres": tf.tile(names[None], [batch, 1])}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve,
                         input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    archive.write_out(str(path), verbose=False)
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / "genres.txt").write_text("\n".join(genres) + "\n")
    write_json(path / ABOUT_FILE, {"window_samples": window, "sample_rate": SAMPLE_RATE, "genres": list(genres),
                                   **(about or {})})
    return path

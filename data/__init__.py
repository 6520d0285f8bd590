"""Data: GTZAN catalogue, audio decoding, track-level splits, the tf.data pipeline, front-end layers."""

__version__ = "0.2.0"

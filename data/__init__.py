"""GTZAN data: catalogue, decoding, track-level splits, synthetic data, tf.data pipeline."""

"""TensorFlow memory workarounds that keep many trials in one process flat in memory."""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Iterator

from tensorflow.python.framework import ops as tf_ops


@contextlib.contextmanager
def released_custom_gradients() -> Iterator[None]:
    """Unregisters the custom gradients that tracing a training step registers inside the block.

    Tracing ``train_step`` in graph mode registers a ``CustomGradient-N`` entry in TensorFlow's
    global gradient registry (the optimizer's cross-replica gradient sum uses
    ``tf.custom_gradient``); the entry's closure holds tensors of the traced graph, so every
    trial's graphs stayed alive after its model was freed and memory grew by tens of MB per
    trial (tensorflow/tensorflow#97697). The traced graph already contains its gradients, so
    the entries are not needed once tracing is done.
    """
    registry = tf_ops._gradient_registry._registry  # noqa: SLF001 -- no public API to unregister.
    before = set(registry)
    try:
        yield
    finally:
        for name in set(registry) - before:
            if name.startswith("CustomGradient-"):
                del registry[name]


def return_freed_memory() -> None:
    """Collects garbage and hands freed heap memory back to the OS (trimming needs glibc).

    Training frees most of its memory into per-thread malloc arenas that glibc does not trim by
    itself, so without this the resident size creeps up from trial to trial.
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


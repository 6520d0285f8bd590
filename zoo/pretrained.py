"""Pretrained weights from the musicnn 0.1.0 wheel, read as data: located, checked, converted.

The weights of four music taggers (Pons & Serra, "musicnn: pre-trained convolutional neural
networks for music audio tagging", 2019) ship inside the wheel of ``musicnn`` 0.1.0 on the
package registry, under the ISC licence (Copyright (c) Music Technology Group, Universitat
Pompeu Fabra 2019): ``MSD_musicnn`` and ``MTT_musicnn`` (tags of the Million Song Dataset and of
MagnaTagATune) and the VGG-like ``MSD_vgg`` and ``MTT_vgg``. The wheel is only read as a zip:
its code is never imported (it needs TensorFlow 1's ``tf.compat.v1.layers``), and it is never
installed with its declared dependencies (they would downgrade numpy).

Where the wheel comes from, first found first: ``$GTZAN_MUSICNN_WHEEL``; the cache
(``$GTZAN_CACHE/wheels`` or ``~/.cache/gtzan-keras/wheels``); else it is fetched there once
with ``python -m pip download --no-deps musicnn==0.1.0``. Every checkpoint file is checked
against its SHA-256 below before it is read.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from data.caching import PARTS, cache_dir
from data.errors import InputError

WHEEL = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
# The checkpoint files of each tagger in the wheel, and their SHA-256.
CHECKPOINTS = {
    "MSD_musicnn": {".index": "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
                    ".data-00000-of-00001": "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6"},
    "MTT_musicnn": {".index": "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
                    ".data-00000-of-00001": "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab"},
    "MSD_vgg": {".index": "50e499238457558bba9f34f8b84d4afb8279afd43520cdf0a4fdf805a49c9ca3",
                ".data-00000-of-00001": "9683d756b8311146534f333502ebf4a2a78a3e320c54ab0411dff6186d8375fc"},
    "MTT_vgg": {".index": "4b0d3d2d02bbe0919c063c1fb74bfa9018ac3517e362d681b07444d4207a5f5f",
                ".data-00000-of-00001": "458f5c8bcecc086a3bba3dce83809df6da6e0a3560a59ddd84711bf3d5fd8303"},
}
HOW_TO_GET = f"python -m pip download --no-deps musicnn==0.1.0 -d {{folder}} (or set GTZAN_MUSICNN_WHEEL to {WHEEL})"


def wheel_folder() -> Path:
    """Where the wheel is kept: ``<cache>/wheels``."""
    return cache_dir() / PARTS["wheels"]


def wheel_path(download: bool = True) -> Path:
    """The musicnn 0.1.0 wheel: ``$GTZAN_MUSICNN_WHEEL``, else the cache, else fetched into the cache.

    Raises:
        InputError: in one line saying how to get it, if it is not there and cannot be fetched.
    """
    if os.environ.get("GTZAN_MUSICNN_WHEEL"):
        path = Path(os.environ["GTZAN_MUSICNN_WHEEL"]).expanduser()
        if not path.is_file():
            raise InputError(f"GTZAN_MUSICNN_WHEEL={path} is not a file; get the wheel with "
                             + HOW_TO_GET.format(folder=path.parent))
        return path
    path = wheel_folder() / WHEEL
    if path.is_file() or not download:
        if not path.is_file():
            raise InputError(f"the musicnn 0.1.0 wheel is not in {path.parent}; get it with "
                             + HOW_TO_GET.format(folder=path.parent))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                             "musicnn==0.1.0", "-d", str(path.parent)], capture_output=True, text=True)
    if result.returncode != 0 or not path.is_file():
        reason = (result.stderr.strip().splitlines() or ["pip found no wheel"])[-1]
        raise InputError(f"the musicnn 0.1.0 wheel (pretrained weights) could not be fetched ({reason}); get it with "
                         + HOW_TO_GET.format(folder=path.parent))
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checkpoint(model: str, wheel: Path | None = None) -> dict[str, np.ndarray]:
    """The variables of one tagger's checkpoint (``MSD_musicnn``, ...), by their TensorFlow 1 names.

    The optimizer's slots (Adam) are left out.

    Raises:
        InputError: for an unknown tagger, a wheel without its checkpoint, or a checkpoint file
            whose checksum is not the published one.
    """
    if model not in CHECKPOINTS:
        raise InputError(f"unknown pretrained tagger {model!r}; expected one of {', '.join(CHECKPOINTS)}")
    wheel = wheel or wheel_path()
    with tempfile.TemporaryDirectory(prefix="gtzan-musicnn-") as folder:
        try:
            with zipfile.ZipFile(wheel) as archive:
                for suffix, expected in CHECKPOINTS[model].items():
                    member = f"musicnn/{model}/{suffix}"
                    data = archive.read(member)
                    if _sha256(data) != expected:
                        raise InputError(f"{wheel}: {member} has SHA-256 {_sha256(data)}, not the published {expected}; "
                                         "the wheel is damaged or not musicnn 0.1.0")
                    (Path(folder) / f"{model}{suffix}").write_bytes(data)
        except (OSError, KeyError, zipfile.BadZipFile) as error:
            raise InputError(f"{wheel} is not a readable musicnn 0.1.0 wheel ({error}); get it again with "
                             + HOW_TO_GET.format(folder=Path(wheel).parent)) from None
        # TensorFlow only reads the checkpoint: building a model on JAX or PyTorch imports it here alone.
        import tensorflow as tf

        reader = tf.train.load_checkpoint(str(Path(folder) / model))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
                if "Adam" not in name and name not in ("beta1_power", "beta2_power")}

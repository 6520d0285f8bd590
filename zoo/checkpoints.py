"""Released PyTorch checkpoints, read as data: located, fetched, checked, unpickled without running code.

The pretrained audio backbones beyond musicnn (EfficientAT's MobileNets, PANNs' CNN14) are
published by their authors as PyTorch checkpoints. A checkpoint (``torch.save`` of a
``state_dict``) is a zip holding ``data.pkl``, a pickle of names -> tensors whose bytes are the
zip's other members (older releases: one stream of pickles and raw storages). A pickle can name
any Python callable, and unpickling it calls that callable: :func:`read_state_dict` unpickles with
an allowlist that rebuilds tensors (as NumPy arrays), ordered dicts and plain NumPy arrays and
nothing else, so any other global in the pickle is a one-line error naming the file and that
global, never imported or called. No PyTorch is needed to read a checkpoint.

Where a checkpoint comes from, first found first: the cache (``$GTZAN_CACHE/checkpoints`` or
``~/.cache/gtzan-keras/checkpoints``), where ``--weights FILE`` (:func:`use_weights`) also puts one;
else it is downloaded once from its authors' release (``$GTZAN_WEIGHTS_URL`` replaces the release
folder's address, for a mirror), resumably, to a ``.part`` file renamed when whole. A checkpoint
whose SHA-256 is published here is checked against it on every read; for the others the SHA-256 of
the first download is recorded beside it (``<file>.sha256``) and checked from then on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import struct
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data.caching import PARTS, cache_dir
from data.errors import InputError, one_line
from zoo import pretrained
from zoo.families.pretrained import EFFICIENTAT_LICENCE, PANNS_LICENCE

# Refuse a download larger than this whatever a server says (the largest release here is about 330 MB).
MAX_DOWNLOAD_BYTES = 2 << 30
DOWNLOAD_TIMEOUT_S = 60.0
EFFICIENTAT_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
PANNS_RELEASE = "https://zenodo.org/record/3987831/files/"


@dataclasses.dataclass(frozen=True)
class Release:
    """One released checkpoint.

    Attributes:
        name: The checkpoint's name in its release (``mn04_as``), the tagger name of ``ModelConfig``.
        file: Its file name in the release.
        base_url: The release folder's address.
        licence: The weights' licence and copyright.
        sha256: The published SHA-256, if known here.
    """

    name: str
    file: str
    base_url: str
    licence: str
    sha256: str | None = None

    @property
    def url(self) -> str:
        """Where it is downloaded from (``$GTZAN_WEIGHTS_URL`` replaces the release folder)."""
        base = os.environ.get("GTZAN_WEIGHTS_URL") or self.base_url
        return base.rstrip("/") + "/" + urllib.request.quote(self.file)


RELEASES = {release.name: release for release in (
    Release("mn04_as", "mn04_as_mAP_432.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE,
            "899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c"),
    Release("mn05_as", "mn05_as_mAP_443.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE),
    Release("mn10_as", "mn10_as_mAP_471.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE),
    Release("mn20_as", "mn20_as_mAP_478.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE),
    Release("mn30_as", "mn30_as_mAP_482.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE),
    Release("mn40_as", "mn40_as_mAP_484.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE),
    Release("mn40_as_ext", "mn40_as_ext_mAP_487.pt", EFFICIENTAT_RELEASE, EFFICIENTAT_LICENCE),
    Release("Cnn14", "Cnn14_mAP=0.431.pth", PANNS_RELEASE, PANNS_LICENCE),
    Release("Cnn14_16k", "Cnn14_16k_mAP=0.438.pth", PANNS_RELEASE, PANNS_LICENCE),
)}


class CheckpointError(InputError):
    """A checkpoint that cannot be used: missing, damaged, not a state_dict, or holding code."""


def checkpoint_folder() -> Path:
    """Where checkpoints are kept: ``<cache>/checkpoints``."""
    return cache_dir() / PARTS["checkpoints"]


def how_to_get(release: Release) -> str:
    """The one-line instruction for a checkpoint that is not here."""
    return (f"download {release.url} and put it at {checkpoint_folder() / release.file}, or pass --weights FILE "
            "with the downloaded file")


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_digest(release: Release, path: Path) -> None:
    """Compares ``path``'s SHA-256 with the published one, else with the one recorded at its first download.

    Raises:
        CheckpointError: when they differ.
    """
    recorded = path.with_name(path.name + ".sha256")
    expected = release.sha256 or (recorded.read_text().strip() if recorded.is_file() else None)
    actual = sha256_of(path)
    if expected is None:
        recorded.write_text(actual + "\n")
    elif actual != expected:
        raise CheckpointError(f"{path} has SHA-256 {actual}, not {expected}: it is damaged or another file; delete "
                              f"it and {how_to_get(release)}")


def _download(release: Release, target: Path) -> None:
    """Downloads ``release`` to ``target``, resuming a ``.part`` file left by an interrupted download; a
    download whose SHA-256 is not the published one is deleted, never kept.

    Raises:
        CheckpointError: in one line saying what to download and where to put it.
    """
    partial = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    have = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(release.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
            resumed = have and response.status == 206
            with open(partial, "ab" if resumed else "wb") as out:
                written = have if resumed else 0
                while block := response.read(1 << 20):
                    written += len(block)
                    if written > MAX_DOWNLOAD_BYTES:
                        raise CheckpointError(f"{release.url} sends more than {MAX_DOWNLOAD_BYTES >> 20} MB, more than "
                                              f"any checkpoint; {how_to_get(release)}")
                    out.write(block)
                declared = response.headers.get("Content-Length")
                if declared is not None and written - (have if resumed else 0) != int(declared):
                    raise OSError(f"the download stopped after {written} bytes")
    except CheckpointError:
        partial.unlink(missing_ok=True)
        raise
    except (OSError, urllib.error.URLError, ValueError) as error:  # kept: the next try resumes from here
        raise CheckpointError(f"{release.file} could not be downloaded ({one_line(error)}); "
                              f"{how_to_get(release)}") from None
    if release.sha256 is not None and (actual := sha256_of(partial)) != release.sha256:
        partial.unlink()
        raise CheckpointError(f"the download of {release.file} has SHA-256 {actual}, not the published "
                              f"{release.sha256}; it was deleted: {how_to_get(release)}")
    os.replace(partial, target)


def checkpoint_path(name: str, download: bool = True) -> Path:
    """The checkpoint ``name`` (a key of :data:`RELEASES`) in the cache, downloaded there first if missing.

    Raises:
        CheckpointError: for an unknown name, a checkpoint that is missing and cannot be downloaded,
            or one whose SHA-256 is not the expected one.
    """
    if name not in RELEASES:
        raise CheckpointError(f"unknown checkpoint {name!r}; expected one of {', '.join(RELEASES)}")
    release = RELEASES[name]
    path = checkpoint_folder() / release.file
    if not path.is_file():
        if not download:
            raise CheckpointError(f"{release.file} is not in {path.parent}; {how_to_get(release)}")
        _download(release, path)
    _check_digest(release, path)
    return path


def weights_digest(name: str) -> str:
    """The SHA-256 of checkpoint ``name``: the published one, else the one recorded at its first download
    (fetching it first if needed)."""
    path = checkpoint_path(name)
    return RELEASES[name].sha256 or path.with_name(path.name + ".sha256").read_text().strip()


def _copy_into(source: Path, target: Path) -> None:
    """Copies ``source`` to ``target`` through a temporary name, so no reader sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def use_weights(file: str | os.PathLike) -> str:
    """Puts weights downloaded by hand into the cache (``--weights FILE``), where every later run finds them;
    returns what they are (a checkpoint's name, or ``musicnn``).

    A release checkpoint is recognised by its SHA-256 where that is published here, else by its release
    file name; the musicnn 0.1.0 wheel by its SHA-256.

    Raises:
        CheckpointError: for a file that is missing, or that is no known checkpoint.
    """
    path = Path(file).expanduser()
    if not path.is_file():
        raise CheckpointError(f"--weights {file}: no such file")
    digest = sha256_of(path)
    if digest == pretrained.WHEEL_SHA256:
        target = pretrained.wheel_folder() / pretrained.WHEEL
        if not target.is_file() or sha256_of(target) != digest:
            _copy_into(path, target)
        return "musicnn"
    found = [r for r in RELEASES.values() if r.sha256 == digest] or \
            [r for r in RELEASES.values() if r.file == path.name and r.sha256 is None]
    if not found:
        raise CheckpointError(f"--weights {file}: not a known checkpoint (by its SHA-256 or its release file name: "
                              f"{', '.join(r.file for r in RELEASES.values())}, or {pretrained.WHEEL})")
    release = found[0]
    target = checkpoint_folder() / release.file
    if not target.is_file() or sha256_of(target) != digest:
        _copy_into(path, target)
        target.with_name(target.name + ".sha256").unlink(missing_ok=True)
    _check_digest(release, target)
    return release.name


# --- reading a checkpoint without running it -------------------------------------------------------

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_}


@dataclasses.dataclass
class _Storage:
    """A tensor storage: its dtype, size, and its bytes once read."""

    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass
class _Tensor:
    """A tensor to rebuild once its storage's bytes are read (the legacy format reads them last)."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self, where: str) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise CheckpointError(f"{where}: a tensor's data is missing")
        if not self.size:
            last = self.offset
        else:
            last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, flat.dtype)
        if self.offset < 0 or any(s < 0 for s in self.stride) or last >= flat.size:
            raise CheckpointError(f"{where}: a tensor of shape {list(self.size)} reaches past its data")
        strided = np.lib.stride_tricks.as_strided(flat[self.offset:], self.size,
                                                  [s * flat.itemsize for s in self.stride], writeable=False)
        return np.array(strided)


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor without a storage")
    return _Tensor(storage, int(storage_offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_):
    return data


def _reconstruct(subtype, shape, dtype):
    # NumPy's own array unpickling, for plain arrays only (no subclass whose constructor could run code).
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"an array of type {subtype!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("a NumPy scalar of an object type")
    return np.frombuffer(data, dtype)[0] if data is not None else dtype.type()


def _encode(text, encoding="utf-8"):
    # How protocol-2 pickles carry an array's raw bytes: a string encoded back to bytes, nothing more.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8"):
        raise pickle.UnpicklingError("an unexpected byte string")
    return text.encode(encoding)


def _dtype(name, *args):
    dtype = np.dtype(name)
    if dtype.hasobject:
        raise pickle.UnpicklingError("a NumPy array of Python objects")
    return dtype


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{(module, "_reconstruct"): _reconstruct for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class _Unpickler(pickle.Unpickler):
    """Rebuilds what :data:`_ALLOWED` names and tensor storages; refuses every other global."""

    def __init__(self, file, storage: Callable[[np.dtype, str, int], _Storage | None]):
        super().__init__(file)
        self._storage = storage

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return np.dtype(_DTYPES[name])
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a state_dict does not hold "
                                     "(a pickle that would run code)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], np.dtype)):
            raise pickle.UnpicklingError("an unknown persistent object")
        return self._storage(pid[1], str(pid[2]), int(pid[4]))


def _resolve(value, where: str):
    """``value`` with every tensor rebuilt as an array."""
    if isinstance(value, _Tensor):
        return value.array(where)
    if isinstance(value, dict):
        return {key: _resolve(item, where) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(item, where) for item in value)
    return value


def _read_zip(path: Path, archive: zipfile.ZipFile):
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(f"{path} is a zip without one data.pkl: not a PyTorch checkpoint")
    prefix = pickles[0][: -len("data.pkl")]
    storages: dict[str, _Storage] = {}

    def storage(dtype: np.dtype, key: str, numel: int) -> _Storage:
        if key not in storages:
            member = f"{prefix}data/{key}"
            try:
                raw = archive.read(member)
            except KeyError:
                raise CheckpointError(f"{path}: the tensor data {member} is missing") from None
            if len(raw) < numel * dtype.itemsize:
                raise CheckpointError(f"{path}: the tensor data {member} holds {len(raw)} bytes, not "
                                      f"{numel * dtype.itemsize}")
            storages[key] = _Storage(dtype, numel, np.frombuffer(raw[:numel * dtype.itemsize], dtype))
        return storages[key]

    return _Unpickler(io.BytesIO(archive.read(pickles[0])), storage).load()


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _read_legacy(path: Path, file) -> object:
    header = _Unpickler(file, lambda *_: None)
    if header.load() != _LEGACY_MAGIC:
        raise CheckpointError(f"{path} is neither a zip nor a PyTorch checkpoint of the older format")
    header.load()  # the protocol version
    header.load()  # the saving machine's description
    storages: dict[str, _Storage] = {}

    def storage(dtype: np.dtype, key: str, numel: int) -> _Storage:
        return storages.setdefault(key, _Storage(dtype, numel))

    result = _Unpickler(file, storage).load()
    keys = _Unpickler(file, lambda *_: None).load()
    for key in keys:
        if key not in storages:
            raise CheckpointError(f"{path}: its storage list names {key!r}, which no tensor uses")
        entry = storages[key]
        head = file.read(8)
        if len(head) != 8:
            raise CheckpointError(f"{path} is truncated")
        count = struct.unpack("<q", head)[0]
        raw = file.read(count * entry.dtype.itemsize)
        if count != entry.numel or len(raw) != count * entry.dtype.itemsize:
            raise CheckpointError(f"{path} is truncated or damaged (a storage holds {len(raw)} bytes)")
        entry.data = np.frombuffer(raw, entry.dtype)
    return result


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch checkpoint by their ``state_dict`` names, as NumPy arrays, without PyTorch.

    A checkpoint holding ``{"model": state_dict, ...}`` (or ``"state_dict"``) gives that state_dict.
    Nothing in the file is run (see the module docstring).

    Raises:
        CheckpointError: in one line naming the file, for a file that is missing, truncated, not a
            checkpoint, missing a tensor's data, or naming anything but tensors, dicts and arrays.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            if zipfile.is_zipfile(file):
                with zipfile.ZipFile(file) as archive:
                    loaded = _read_zip(path, archive)
            else:
                file.seek(0)
                loaded = _read_legacy(path, file)
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, OSError, ValueError, TypeError,
            AttributeError, IndexError, KeyError, RecursionError, MemoryError) as error:
        raise CheckpointError(f"{path} is not a usable PyTorch checkpoint: {one_line(error)}") from None
    if isinstance(loaded, dict):
        for key in ("model", "state_dict"):
            if isinstance(loaded.get(key), dict):
                loaded = loaded[key]
                break
    if not isinstance(loaded, dict) or not loaded:
        raise CheckpointError(f"{path} holds no state_dict (names -> tensors)")
    tensors = {str(name): _resolve(value, str(path)) for name, value in loaded.items() if isinstance(value, _Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors")
    return tensors


def load_release(name: str) -> dict[str, np.ndarray]:
    """The state_dict of the released checkpoint ``name``, fetched if needed (:func:`checkpoint_path`)."""
    return read_state_dict(checkpoint_path(name))

"""The run store: the one owner of a run folder's layout, its files and its best model.

A run folder (``runs/<space>``, ``runs/train``, ``runs/crossval/<model>``) holds::

    trials/<trial>/config.json    the resolved RunConfig (model, training, data)
    trials/<trial>/history.json   per-epoch metrics (also history.csv)
    trials/<trial>/record.json    status, metrics at the kept epoch, time, memory
    trials/<trial>/model.keras    the trained model (tuning.train and tuning.crossval)
    trials/<trial>/test/          metrics.json and confusion_matrix.png on the test part (tuning.crossval)
    trials/<trial>/evaluation/    zoo.evaluate's metrics of the trial's model (also of best/, from its trial)
    best/model.keras, best/config.json (with "metrics")   the best trial of a search
    summary.csv                   the trials, best first
    <command>.json                the settings the folder was made with (a rerun must match them)
    keras_tuner/                  KerasTuner's own state (searches)

Every file is written to a temporary name and renamed, and ``best/`` is replaced by a
rename, so a crash leaves the old or the new version, never a mix or a truncation.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from data.config import file_safe
from data.errors import InputError, one_line
from training.config import OBJECTIVE

if TYPE_CHECKING:
    import keras

SUMMARY_COLUMNS = ["trial", OBJECTIVE, "val_accuracy", "val_loss", "epochs_run", "best_epoch", "seconds", "status",
                   "model"]


EVALUATION = "evaluation"


def evaluation_dir(model_path: Path, trial: str) -> Path:
    """Where the evaluation of the model at ``model_path`` (run ``trial``) goes: beside the run it evaluates.

    A search's ``best/model.keras`` is evaluated into the folder of the trial it came from, which
    a later best leaves in place; any other model into ``evaluation/`` beside it. Two runs never
    share an evaluation folder, whatever their names.
    """
    folder = model_path.parent
    if folder.name == "best" and (folder.parent / "trials").is_dir():
        return RunStore(folder.parent).evaluation_dir(trial)
    return folder / EVALUATION


class RunStoreError(InputError):
    """A run folder or file that cannot be read, with a one-line reason naming it."""


def write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename (never a truncated file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); a run file is as readable as any other file.
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "w", newline="") as f:
            f.write(text)
        os.replace(temporary, path)
    except OSError as error:  # a full disk names no file by itself
        Path(temporary).unlink(missing_ok=True)
        raise OSError(error.errno, f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    """Writes ``rows`` as a CSV table with ``columns`` (other keys left out), atomically."""
    table = io.StringIO()
    writer = csv.DictWriter(table, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, table.getvalue())


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV table.

    Raises:
        RunStoreError: naming the file if it cannot be read.
    """
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise RunStoreError(f"{path} is unreadable ({one_line(error)})") from None


def _saved_then_renamed(path: Path, suffix: str, save, failures: tuple[type[BaseException], ...]) -> None:
    """Runs ``save(temporary)`` beside ``path``, then renames it into place.

    A failure among ``failures`` (a full disk: the savers raise several types, naming no file)
    becomes an OSError naming ``path``; on any failure or kill the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp{suffix}")
    try:
        save(temporary)
        os.replace(temporary, path)
    except failures as error:
        temporary.unlink(missing_ok=True)
        raise OSError(getattr(error, "errno", None) or 0, f"cannot write {path}: {one_line(error)}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def pyplot():
    """matplotlib's ``pyplot`` on its file-only Agg backend, for the figures of runs and reports.

    Imported here, on the first figure, not with this module: matplotlib takes half a second to
    load, and most commands that write run folders draw nothing.
    """
    import matplotlib.pyplot as plt

    if plt.get_backend().lower() != "agg":
        plt.switch_backend("Agg")
    return plt


def write_figure(path: Path, figure) -> None:
    """Saves a matplotlib figure as PNG through a temporary file and a rename."""
    _saved_then_renamed(path, ".png", lambda temporary: figure.savefig(temporary, dpi=120, format="png"), (OSError,))


def write_arrays(path: Path, **arrays) -> None:
    """Saves numpy ``arrays`` as an uncompressed ``.npz`` through a temporary file and a rename."""
    def save(temporary: Path) -> None:
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)

    _saved_then_renamed(path, ".npz", save, (OSError,))


def write_json(path: Path, content: Any) -> None:
    """Writes ``content`` as indented JSON, atomically."""
    write_text(path, json.dumps(content, indent=2, default=str))


def read_json(path: Path) -> Any:
    """Reads a JSON file.

    Raises:
        RunStoreError: naming the file if it is missing, empty or not valid JSON.
    """
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunStoreError(f"{path} is missing") from None
    except (OSError, ValueError) as error:
        raise RunStoreError(f"{path} is unreadable ({one_line(error)})") from None


# The record fields the summaries compute with: each a number where present.
NUMERIC_FIELDS = (OBJECTIVE, "val_accuracy", "val_loss", "loss", "accuracy", "epochs_run", "best_epoch", "seconds")


def read_record(path: Path) -> dict:
    """A trial's ``record.json``, checked.

    Raises:
        RunStoreError: naming the file if it is unreadable, not an object with a ``trial`` and a
            ``status``, or holds a metric that is not a number.
    """
    try:
        record = read_json(path)
    except RunStoreError as error:
        raise RunStoreError(f"{error}; delete it (a search rebuilds a finished trial's record from KerasTuner's "
                            "state), or rerun with --fresh") from None
    if not isinstance(record, dict) or not isinstance(record.get("trial"), str) or "status" not in record:
        raise RunStoreError(f"{path} is not a trial record (no trial name or status); delete it, or rerun with --fresh")
    bad = [key for key in NUMERIC_FIELDS if key in record and
           (isinstance(record[key], bool) or not isinstance(record[key], (int, float)))]
    if bad:
        raise RunStoreError(f"{path}: {', '.join(f'{key}={record[key]!r}' for key in bad)} must be numbers; "
                            "delete it, or rerun with --fresh")
    return record


def save_model(model: keras.Model, path: Path) -> None:
    """Saves ``model`` as ``.keras`` through a temporary file and a rename."""
    _saved_then_renamed(path, ".keras", model.save, (Exception,))


def rank(records: list[dict]) -> list[dict]:
    """Records best first: completed before failed, then higher track accuracy, then lower loss.

    Searches take their order from KerasTuner's oracle; this orders records that no oracle
    holds (several spaces' bests for ``serving.evaluate best``, a study's section winners).
    """
    def key(record: dict) -> tuple:
        completed = record.get("status") == "completed"
        return (not completed, -record.get(OBJECTIVE, 0.0) if completed else 0.0,
                record.get("val_loss", float("inf")) if completed else 0.0)

    return sorted(records, key=key)


class RunStore:
    """Reads and writes one run folder (see the module docstring).

    Args:
        root: The run folder.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._recover_best()

    @property
    def best_dir(self) -> Path:
        return self.root / "best"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.csv"

    def trial_dir(self, trial: str) -> Path:
        """The folder of ``trial`` (its name made file-safe); a run inside a trial, named
        ``<trial>/<part>`` (a fold of a k-fold trial, its refit), is a folder inside the trial's."""
        return self.root.joinpath("trials", *(file_safe(part) for part in trial.split("/")))

    def clear_results(self, trial: str) -> None:
        """Removes what an earlier training left in the trial's folder (record, history, model, test
        metrics), so the folder never holds the results of two trainings."""
        folder = self.trial_dir(trial)
        # The record goes first: without it the folder reads as unfinished whatever else is left.
        for name in ("record.json", "history.json", "history.csv", "model.keras", ".model.tmp.keras"):
            (folder / name).unlink(missing_ok=True)
        shutil.rmtree(folder / "test", ignore_errors=True)
        shutil.rmtree(folder / EVALUATION, ignore_errors=True)

    def write_config(self, trial: str, config: dict) -> None:
        """Writes the trial's resolved configuration (``config.json``)."""
        write_json(self.trial_dir(trial) / "config.json", config)

    def write_results(self, trial: str, history: dict[str, list[float]], record: dict) -> None:
        """Writes the trial's history (JSON and CSV), then its record (written last: it marks the trial done)."""
        self.write_history(trial, history)
        self.write_record(trial, record)

    def write_history(self, trial: str, history: dict[str, list[float]]) -> None:
        """Writes the trial's per-epoch history as ``history.json`` and ``history.csv``."""
        folder = self.trial_dir(trial)
        write_json(folder / "history.json", history)
        keys = sorted(history)
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["epoch", *keys])
        for epoch in range(max((len(v) for v in history.values()), default=0)):
            writer.writerow([epoch + 1, *(history[k][epoch] if epoch < len(history[k]) else "" for k in keys)])
        write_text(folder / "history.csv", table.getvalue())

    def finished_run(self, trial: str, run, *, with_model: bool = True) -> dict | None:
        """The record of ``trial`` if its folder holds a finished training of ``run`` (a
        ``training.config.RunConfig``) and, if ``with_model``, its model; else None (nothing there,
        or an unfinished training of it).

        Raises:
            RunStoreError: if the folder holds a training of other settings.
        """
        folder = self.trial_dir(trial)
        if not (folder / "config.json").is_file():
            return None
        earlier = self.read_config(trial)
        now = json.loads(json.dumps(run.to_dict(), default=str))  # as config.json holds it
        data_fields = now["data"].keys() - run.dataset.keys()
        differs = [key for key in ("model_config", "training") if earlier.get(key) != now[key]]
        if {k: earlier.get("data", {}).get(k) for k in data_fields} != {k: now["data"][k] for k in data_fields}:
            differs.append("data")
        if differs:
            raise RunStoreError(f"{folder} holds a training with other settings ({', '.join(differs)} differ); "
                                "rerun with --fresh to replace it, or choose another --out")
        record = self.read_record(trial)
        if record is None or record.get("status") != "completed":
            return None
        if with_model and not (folder / "model.keras").is_file():
            return None
        return record

    def write_record(self, trial: str, record: dict) -> None:
        """Writes the trial's ``record.json`` (last of its files: it marks the trial done)."""
        write_json(self.trial_dir(trial) / "record.json", record)

    def read_record(self, trial: str) -> dict | None:
        """The trial's record, or None if it has none yet.

        Raises:
            RunStoreError: naming the file if it is unreadable or not a record.
        """
        path = self.trial_dir(trial) / "record.json"
        return read_record(path) if path.is_file() else None

    def records(self) -> list[dict]:
        """Every trial record of the folder, in folder order."""
        return [read_record(path) for path in sorted((self.root / "trials").glob("*/record.json"))]

    def read_history(self, trial: str) -> dict[str, list[float]]:
        """The trial's per-epoch history (empty if it has none)."""
        path = self.trial_dir(trial) / "history.json"
        return read_json(path) if path.is_file() else {}

    def read_config(self, trial: str) -> dict:
        """The trial's ``config.json``."""
        return read_json(self.trial_dir(trial) / "config.json")

    def save_model(self, trial: str, model: keras.Model) -> Path:
        """Saves the trial's model as ``model.keras`` in its folder; returns the path."""
        path = self.trial_dir(trial) / "model.keras"
        save_model(model, path)
        return path

    def drop_model(self, trial: str) -> None:
        """Deletes the trial's ``model.keras`` (searches keep only the best trial's model)."""
        (self.trial_dir(trial) / "model.keras").unlink(missing_ok=True)

    def promote(self, trial: str, metrics: dict) -> None:
        """Makes ``trial`` the folder's best: its model moves to ``best/`` with its config and metrics.

        The new ``best/`` is assembled beside the old one (the model hard-linked, so the trial
        keeps its copy until the swap is done) and swapped in by renames; a kill at any point
        leaves a complete ``best/`` (old or new) and the trial's model to promote again.
        """
        staging = Path(tempfile.mkdtemp(prefix=".best.", dir=self.root))
        model = self.trial_dir(trial) / "model.keras"
        try:
            try:
                os.link(model, staging / "model.keras")
            except OSError:  # a file system without hard links
                shutil.copy2(model, staging / "model.keras")
            write_json(staging / "config.json", {**self.read_config(trial), "metrics": metrics})
            old = self.root / ".best.old"
            shutil.rmtree(old, ignore_errors=True)
            if self.best_dir.exists():
                os.replace(self.best_dir, old)
            os.replace(staging, self.best_dir)
            shutil.rmtree(old, ignore_errors=True)
            model.unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _recover_best(self) -> None:
        # A crash between the two renames of promote() leaves the old best aside: put it back.
        # A crash while assembling leaves a staging folder: drop it (the trial kept its model).
        old = self.root / ".best.old"
        if old.is_dir() and not self.best_dir.exists():
            os.replace(old, self.best_dir)
        for staging in self.root.glob(".best.*"):
            shutil.rmtree(staging, ignore_errors=True)

    def write_summary(self, records: list[dict]) -> None:
        """Writes ``summary.csv`` with ``records`` in the order given (best first)."""
        write_csv(self.summary_path, SUMMARY_COLUMNS, records)

    def read_summary(self) -> list[dict[str, str]]:
        """The rows of ``summary.csv`` (best first), as strings; empty without a summary."""
        return read_csv(self.summary_path) if self.summary_path.is_file() else []

    def ranked_records(self) -> list[dict]:
        """The records in ``summary.csv``'s order (best first); empty without a summary."""
        by_name = {record["trial"]: record for record in self.records()}
        return [by_name[row["trial"]] for row in self.read_summary() if row["trial"] in by_name]

    def evaluation_dir(self, trial: str) -> Path:
        """Where ``zoo.evaluate`` writes the metrics of the trial's model (``trials/<trial>/evaluation/``)."""
        return self.trial_dir(trial) / EVALUATION

    def test_dir(self, trial: str) -> Path:
        """Where the trial's test metrics go (``trials/<trial>/test/``)."""
        return self.trial_dir(trial) / "test"

    def read_test_metrics(self, trial: str) -> dict | None:
        """The trial's test ``metrics.json``, or None if it was not tested yet."""
        path = self.test_dir(trial) / "metrics.json"
        return read_json(path) if path.is_file() else None

    def settings_path(self, command: str) -> Path:
        """The file that records the settings ``command`` made this folder with."""
        return self.root / f"{command}.json"

    def bind_settings(self, command: str, settings: dict) -> None:
        """Records ``settings`` for ``command``, or checks that an earlier run here used the same.

        An earlier run that left no trial (it stopped at a bad flag or folder) binds nothing.

        Raises:
            RunStoreError: naming each setting that differs, if the earlier run's differ.
        """
        path = self.settings_path(command)
        if path.is_file() and next(self.root.glob("**/trials/*"), None) is not None:
            recorded = _flat(read_json(path))
            changes = [f"{key} was {recorded.get(key)!r}, now {value!r}" for key, value in _flat(settings).items()
                       if recorded.get(key) != value]
            if changes:
                raise RunStoreError(f"{self.root} holds a run with other settings ({'; '.join(changes[:3])}"
                                    f"{'; ...' if len(changes) > 3 else ''}); rerun with --fresh to start over there, "
                                    "or choose another --out")
        write_json(path, settings)

    def read_best(self) -> tuple[Path, dict] | None:
        """``(best/model.keras, best/config.json)``, or None if the folder has no complete best."""
        model, config = self.best_dir / "model.keras", self.best_dir / "config.json"
        if not (model.is_file() and config.is_file()):
            return None
        return model, read_json(config)


class RunLock:
    """One writer per run folder: ``<folder>/.lock`` names the process that holds it.

    Taken atomically (the file is created only if it is not there), released on exit, and
    recognised as stale when its process is gone (same host: the pid no longer runs, or runs
    another program since). A process whose parent holds the lock (the chief and the workers a
    ``--workers`` launcher starts) works under its parent's lock.

    Args:
        folder: The run folder.
        command: What holds it, for the message a second writer gets.

    Raises:
        RunStoreError: on entry, naming the process that holds the folder.
    """

    def __init__(self, folder: str | os.PathLike, command: str):
        self.path = Path(folder) / ".lock"
        self.command = command
        self.owned = False

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "process_start": _process_start(os.getpid())}
        for _ in range(3):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:  # being written this instant, or left empty by a crash
                    if time.time() - self._mtime() < 5:
                        time.sleep(0.2)
                        continue
                elif holder.get("host") == me["host"] and holder.get("pid") == os.getppid():
                    return self  # our launcher's lock
                elif not _stale(holder, me["host"]):
                    raise RunStoreError(
                        f"{self.path.parent} is in use by process {holder.get('pid')} on {holder.get('host')} "
                        f"({holder.get('command')}, since {holder.get('started')}); wait for it to finish or stop "
                        f"it, or choose another --out") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(handle, "w") as f:
                f.write(json.dumps(me))
            self.owned = True
            return self
        raise RunStoreError(f"cannot take {self.path}; remove it if no command is running there")

    def __exit__(self, *exc) -> None:
        if self.owned and (self._holder() or {}).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.owned = False

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
            return holder if isinstance(holder, dict) else None
        except (OSError, ValueError):
            return None

    def _mtime(self) -> float:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return 0.0


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc``), to tell a reused pid apart."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _stale(holder: dict, host: str) -> bool:
    """Whether a lock's process is known to be gone (only a lock of this host can be checked)."""
    if holder.get("host") != host or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    started = holder.get("process_start")
    return started is not None and _process_start(holder["pid"]) not in (None, started)


def discard(folder: str | os.PathLike) -> None:
    """Deletes everything in a run folder (``--fresh``) but its lock; nothing if it is not there."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.name == ".lock":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _flat(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat

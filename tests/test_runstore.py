"""The run store on its own: atomic files, what counts as a finished trial, best/, settings, the lock."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from training import runstore
from training.runstore import RunLock, RunStore, RunStoreError


class Run:
    """What ``RunStore.finished_run`` reads of a ``training.config.RunConfig``."""

    def __init__(self, model_config=None, training=None, data=None, dataset=None):
        self.model_config = model_config or {"name": "m", "units": 8}
        self.training = training or {"epochs": 2, "batch_size": 16}
        self.data = data or {"window_seconds": 1.0, "clips": 60}
        self.dataset = dataset if dataset is not None else {"clips": 60}

    def to_dict(self) -> dict:
        return {"model_config": self.model_config, "training": self.training, "data": self.data}


def finished(store: RunStore, trial: str, run: Run, status: str = "completed", model: bool = True) -> None:
    """A trial folder as a training of ``run`` leaves it."""
    store.write_config(trial, run.to_dict())
    store.write_results(trial, {"val_loss": [1.0, 0.5]}, {"trial": trial, "status": status,
                                                          "val_track_accuracy": 0.5})
    if model:
        (store.trial_dir(trial) / "model.keras").write_bytes(b"model")


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    runstore.write_text(path, "old")
    with pytest.raises(UnicodeEncodeError):
        runstore.write_text(path, "new \udc80")  # fails while writing, as a full disk would
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_files_are_as_readable_as_any_file_the_umask_allows(tmp_path):
    mask = os.umask(0o027)
    try:
        runstore.write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640


def test_the_record_is_written_after_the_history(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    real = runstore.write_text

    def full_disk(path, text):
        if path.name == "history.csv":
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(runstore, "write_text", full_disk)
    with pytest.raises(OSError):
        store.write_results("t1", {"val_loss": [1.0]}, {"trial": "t1", "status": "completed"})
    assert not (store.trial_dir("t1") / "record.json").exists()


def test_a_finished_run_is_completed_with_its_model_and_the_same_settings(tmp_path):
    store, run = RunStore(tmp_path), Run()
    assert store.finished_run("t1", run) is None  # nothing there
    finished(store, "t1", run)
    assert store.finished_run("t1", run)["status"] == "completed"
    finished(store, "t2", run, status="failed")
    assert store.finished_run("t2", run) is None
    finished(store, "t3", run, model=False)
    assert store.finished_run("t3", run) is None
    assert store.finished_run("t3", run, with_model=False)["trial"] == "t3"


@pytest.mark.parametrize("changed,named", [
    (Run(training={"epochs": 3, "batch_size": 16}), "training"),
    (Run(model_config={"name": "m", "units": 16}), "model_config"),
    (Run(data={"window_seconds": 2.0, "clips": 60}), "data"),
])
def test_a_finished_run_of_other_settings_is_refused_by_name(tmp_path, changed, named):
    store = RunStore(tmp_path)
    finished(store, "t1", Run())
    with pytest.raises(RunStoreError, match=rf"\(({named}|.*, {named}|{named}, .*) differ"):
        store.finished_run("t1", changed)


def test_the_dataset_it_was_scanned_from_may_differ(tmp_path):
    # Fields of the scanned dataset (counts found on disk) are not settings.
    store = RunStore(tmp_path)
    finished(store, "t1", Run())
    assert store.finished_run("t1", Run(data={"window_seconds": 1.0, "clips": 59}))["trial"] == "t1"


def test_a_retrain_starts_from_an_empty_folder(tmp_path):
    store = RunStore(tmp_path)
    finished(store, "t1", Run())
    (store.test_dir("t1")).mkdir()
    store.evaluation_dir("t1").mkdir()  # the evaluation of the earlier training's model goes with it
    store.clear_results("t1")
    assert sorted(p.name for p in store.trial_dir("t1").iterdir()) == ["config.json"]


def test_a_best_set_aside_by_a_crash_is_put_back(tmp_path):
    aside = tmp_path / ".best.old"
    aside.mkdir()
    (aside / "model.keras").write_bytes(b"best")
    (tmp_path / ".best.abc123").mkdir()  # a staging folder of the crashed promotion
    store = RunStore(tmp_path)
    assert (store.best_dir / "model.keras").read_bytes() == b"best"
    assert not list(tmp_path.glob(".best.*"))


def test_a_promoted_trial_replaces_the_best(tmp_path):
    store = RunStore(tmp_path)
    for trial in ("t1", "t2"):
        finished(store, trial, Run())
        store.promote(trial, {"val_track_accuracy": 0.5})
    model, config = store.read_best()
    assert config["metrics"] == {"val_track_accuracy": 0.5} and model.read_bytes() == b"model"
    assert not (store.trial_dir("t2") / "model.keras").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "trials"]


def test_rank_puts_completed_first_then_the_highest_accuracy_then_the_lowest_loss():
    records = [{"trial": "failed", "status": "failed"},
               {"trial": "low", "status": "completed", "val_track_accuracy": 0.4, "val_loss": 0.1},
               {"trial": "high-worse-loss", "status": "completed", "val_track_accuracy": 0.8, "val_loss": 0.9},
               {"trial": "high", "status": "completed", "val_track_accuracy": 0.8, "val_loss": 0.3}]
    assert [r["trial"] for r in runstore.rank(records)] == ["high", "high-worse-loss", "low", "failed"]


def test_settings_bind_on_the_first_trial_and_name_what_changed(tmp_path):
    store = RunStore(tmp_path)
    store.bind_settings("search", {"data": {"window_seconds": 1.0}, "epochs": 2})
    store.bind_settings("search", {"data": {"window_seconds": 1.5}, "epochs": 2})  # no trial yet: rebinds
    finished(store, "t1", Run())
    store.bind_settings("search", {"data": {"window_seconds": 1.5}, "epochs": 2})  # the same: fine
    with pytest.raises(RunStoreError, match=r"data\.window_seconds was 1\.5, now 3\.0.*--fresh"):
        store.bind_settings("search", {"data": {"window_seconds": 3.0}, "epochs": 2})


@pytest.mark.parametrize("record,named", [
    ({"trial": "t1", "status": "completed", "val_track_accuracy": "0.5"}, "val_track_accuracy='0.5'"),
    ({"trial": "t1", "status": "completed", "seconds": True}, "seconds=True"),
    ({"trial": "t1"}, "not a trial record"),
])
def test_a_record_with_a_bad_field_is_named(tmp_path, record, named):
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record))
    with pytest.raises(RunStoreError, match=named.replace("(", r"\(")) as error:
        runstore.read_record(path)
    assert str(path) in str(error.value)


def test_a_live_holder_keeps_the_lock_and_a_dead_one_loses_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": holder.pid, "host": runstore.socket.gethostname(),
                                                    "command": "tuning.search", "started": "now",
                                                    "process_start": runstore._process_start(holder.pid)}))
        with pytest.raises(RunStoreError, match=rf"in use by process {holder.pid} .*tuning\.search"):
            RunLock(tmp_path, "tuning.train").__enter__()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path, "tuning.train"):
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_fresh_empties_the_folder_but_keeps_its_lock(tmp_path):
    store = RunStore(tmp_path)
    finished(store, "t1", Run())
    (tmp_path / "summary.csv").write_text("trial\n")
    with RunLock(tmp_path, "tuning.search"):
        runstore.discard(tmp_path)
        assert [p.name for p in tmp_path.iterdir()] == [".lock"]

"""Search one experiment family with KerasTuner: the library function behind ``tuning.search``.

:func:`search_space` runs (or resumes) a space's search into a run folder and returns its
records, best first; ``tuning.search`` is its command line, and the study runs each of its
sections through it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from data.config import DataConfig
from data.errors import RunFailed, one_line
from data.folds import FoldConfig
from training.config import OBJECTIVE, Reporting, RunConfig, TrainConfig
from training.loop import PreparedData, compile_model, prepare_data, run_config, train_run
from training.runstore import RunStore, RunStoreError, discard
from tuning.hypermodel import SpaceHyperModel
from tuning.spaces import Space
from tuning.tuner import make_tuner
from zoo.config import ModelConfig


def run_search(space: Space, data_config: DataConfig, training: TrainConfig, out_dir: Path, *, tuner: str = "grid",
               max_trials: int | None = None, seed: int = 42, base: ModelConfig | None = None, fresh: bool = False,
               reporting: Reporting = Reporting(), strategy: tf.distribute.Strategy | None = None,
               kfold: FoldConfig | None = None) -> list[dict]:
    """Prepares the data, then searches ``space`` into ``out_dir`` (:func:`search_space`, then
    :func:`refit` with a k-fold objective); returns the records.

    ``fresh`` discards an earlier search there once the data is known to be usable (a chief
    or worker of a distributed search leaves that to its launcher). A folder holds one search:
    a rerun with other settings is refused (``--max-trials`` may grow).

    Raises:
        DataError: for data that cannot be used.
        RunStoreError: if ``out_dir`` holds another search, or a damaged one.
    """
    data = prepare_data(data_config)
    if data_config.data_dir is None and data.dataset["synthetic"]:
        logging.getLogger(__name__).warning("no --data-dir or GTZAN_DIR: using synthetic GTZAN at %s",
                                            data.dataset["data_dir"])
    if fresh:
        discard(out_dir)
    settings = {"space": space.name, "tuner": tuner, "base": base.name if base else None,
                "data": data.config.to_dict(), "training": training.to_dict()}
    RunStore(out_dir).bind_settings("search", {**settings, **({"kfold": kfold.to_dict()} if kfold else {})})
    records = search_space(space, data, training, out_dir, tuner=tuner, max_trials=max_trials, seed=seed, base=base,
                           reporting=reporting, strategy=strategy, kfold=kfold)
    if kfold is not None and records:
        refit(RunStore(out_dir), data, records, reporting=reporting)
    return records


def refit(store: RunStore, data: PreparedData, records: list[dict], *, reporting: Reporting = Reporting()) -> dict:
    """Trains the best trial's configuration on every non-test clip (its training and validation
    parts), as scikit-learn's ``refit=True``; that model becomes ``best/``. Returns its record.

    It trains for the epochs the trial trained (the mean of its folds' kept epochs under early
    stopping, which has nothing to watch here). A refit already in ``best/`` for that trial is kept.

    Raises:
        RunFailed: if the refit fails (its loss became NaN).
    """
    best = next(record for record in records if record.get("status") == "completed")
    found = store.read_best()
    if found is not None and found[1].get("trial") == best["trial"] and found[1].get("refit"):
        return found[1]["refit"]
    trial = RunConfig.from_dict(store.read_config(best["trial"]))
    training = trial.training
    if training.early_stopping:
        epochs = max(1, best["best_epoch"])
        training = training.replace(early_stopping=False, epochs=epochs, warmup_epochs=min(training.warmup_epochs,
                                    epochs - 1), head_epochs=min(training.head_epochs, epochs - 1))
    everything = data.part(data.split.train + data.split.valid, ())
    name = f"{best['trial']}/refit"
    run = run_config(name, trial.model, trial.model_config, everything, training, space=trial.space)
    record = train_run(compile_model(trial.model_config, everything, training), everything, run, store,
                       reporting=reporting, keep_model=True)
    if record["status"] != "completed":
        raise RunFailed(f"the refit of {best['trial']} on every non-test clip failed: {record['error']}")
    store.write_config(name, {**store.read_config(name), "trial": best["trial"], "refit": record})
    store.promote(name, {key: best[key] for key in (OBJECTIVE, "val_accuracy", "val_loss", f"{OBJECTIVE}_std", "folds")
                         if key in best} | {"trial": best["trial"]})
    return record


def mirrored_strategy() -> tuple[tf.distribute.Strategy, str]:
    """``tf.distribute.MirroredStrategy`` over this machine's GPUs (one CPU replica without), and what it is."""
    strategy = tf.distribute.MirroredStrategy()
    gpus = len(tf.config.list_physical_devices("GPU"))
    where = f"{gpus} GPU(s)" if gpus else "no GPU: 1 replica on the CPU"
    return strategy, f"{strategy.num_replicas_in_sync} replica(s), {where}"


def search_space(space: Space, data: PreparedData, training: TrainConfig, out_dir: Path, *, tuner: str = "grid",
                 max_trials: int | None = None, seed: int = 42, base: ModelConfig | None = None,
                 carried: dict | None = None, max_epochs: int | None = None, reporting: Reporting = Reporting(),
                 on_trial_end: Callable[[dict, dict], None] | None = None, strategy=None,
                 kfold: FoldConfig | None = None) -> list[dict]:
    """Searches ``space`` on prepared ``data`` into ``out_dir``; returns the records, best first.

    An earlier search in ``out_dir`` is resumed: finished trials are kept. In a distributed
    search (KerasTuner's environment variables set, see ``tuning.distributed``) the chief serves
    the oracle and finishes the folder; a worker trains trials and returns [].

    Args:
        space: A ``tuning.spaces.Space``.
        data: Prepared data (``training.loop.prepare_data``).
        training: The training configuration each trial starts from.
        out_dir: Folder of this space's results.
        tuner: ``grid`` (the study's grid) or ``random``, ``hyperband``, ``bayesian`` (wider range).
        max_trials: Trials at most.
        seed: Seed of the tuner.
        base: Model the space starts from (default: its carried-forward model).
        carried: Training fields chosen by earlier sections.
        max_epochs: If set, no trial trains longer.
        reporting: Verbosity and W&B of the trials.
        on_trial_end: Called with each finished trial's record and the best record so far.
        strategy: A ``tf.distribute`` strategy for data-parallel trials (the batch size is global).
        kfold: Score each trial by the mean of these folds of the non-test clips.

    Raises:
        RunStoreError: if KerasTuner's state in ``out_dir`` is damaged.
        RunFailed: in a worker whose chief cannot be reached.
    """
    check_tuner_state(out_dir)
    hypermodel = SpaceHyperModel(space, data, training, base=base, sample=tuner != "grid", carried=carried,
                                 max_epochs=max_epochs, kfold=kfold)
    search = make_tuner(tuner, hypermodel, RunStore(out_dir), max_trials=max_trials, seed=seed, reporting=reporting,
                        on_trial_end=on_trial_end, strategy=strategy)
    search.search(verbose=min(reporting.verbose, 1))
    if search.worker:  # the chief finishes the folder
        return []
    return search.finish()


def check_tuner_state(out_dir: Path) -> None:
    """Raises RunStoreError naming the first of KerasTuner's state files that cannot be read.

    A full disk or a kill while KerasTuner writes can leave one empty or cut short; KerasTuner
    itself would fail on it with a bare JSON error at every later resume.
    """
    for path in sorted((out_dir / "keras_tuner").rglob("*.json")):
        try:
            json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RunStoreError(f"{path} is unreadable ({one_line(error)}): the search's KerasTuner "
                                "state is damaged; rerun with --fresh to start over, or choose another --out") from None

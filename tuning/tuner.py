"""A thin KerasTuner ``Tuner``: trials train through the HyperModel, records go to the run store,
and the best trial comes from KerasTuner's oracle.

KerasTuner keeps the trial bookkeeping (``keras_tuner/``: which trials ran, their
hyperparameters, status and objective). The run store keeps what KerasTuner does not: each
trial's resolved configuration, history, timing and memory, and the best trial's model.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import keras
import keras_tuner
from keras_tuner.src import config as keras_tuner_config
from keras_tuner.src.distribute import oracle_client
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import tuner_utils
from keras_tuner.src.engine.trial import TrialStatus

from training.config import OBJECTIVE, Reporting
from training.loop import summarize
from training.runstore import RunStore
from tuning import DEFAULT_WIDE_TRIALS, TUNERS
from tuning.distributed import CHIEF_TIMEOUT_S, CHIEF_TIMEOUT_VARIABLE, unreachable_chief
from tuning.hypermodel import SpaceHyperModel

MAX_TRIALS = 100_000  # "all of them", for get_best_trials


class GridOracle(keras_tuner.Oracle):
    """The study's grid, in the study's order: each new trial takes the first grid entry that no
    trial has taken yet.

    The grid spaces have one hyperparameter, ``trial``, a choice over the grid. The next entry is
    derived from KerasTuner's own trial files alone, so a search killed at any moment resumes
    with exactly the entries still missing (KerasTuner's ``GridSearchOracle`` keeps its order in
    memory only and loses or repeats entries on resume, keras-team/keras-tuner#1055). Trials
    that were running when the search was killed are retried by KerasTuner first.
    """

    def populate_space(self, trial_id):
        entries = next((hp.values for hp in self.get_space().space if hp.name == "trial"), [])
        taken = {trial.hyperparameters.values.get("trial") for trial in self.trials.values()}
        for entry in entries:
            if entry not in taken:
                return {"status": TrialStatus.RUNNING, "values": {"trial": entry}}
        if self.ongoing_trials:
            return {"status": TrialStatus.IDLE, "values": None}
        return {"status": TrialStatus.STOPPED, "values": None}


class SharedStateTuner(keras_tuner.Tuner):
    """A Tuner that finds its search's state whichever process left it.

    KerasTuner reloads its oracle only when it finds a state file named after its own tuner id
    (``chief.json``, ``tuner0.json``), so a search begun with ``--workers`` and continued in
    one process (or the other way round) would start over. Every process here uses one name;
    workers never reload the oracle (KerasTuner's own rule), they ask the chief, and they do not
    write the file either (several processes writing one file could leave it cut short).
    """

    def __init__(self, *args, **kwargs):
        # A worker waits for its chief at most --chief-timeout seconds a request (KerasTuner: an hour).
        oracle_client.TIMEOUT = int(os.environ.get(CHIEF_TIMEOUT_VARIABLE, CHIEF_TIMEOUT_S))
        # A failed trial is recorded with its one-line reason (its record, the summary, the command's
        # error); KerasTuner would also print its traceback to standard error.
        keras_tuner_config.DEBUG = False
        super().__init__(*args, **kwargs)

    def _get_tuner_fname(self):
        return os.path.join(str(self.project_dir), "tuner0.json")

    def save(self):
        if not self._is_worker():
            super().save()

    def search(self, *args, **kwargs):
        """Runs the trials still to run.

        Raises:
            RunFailed: in a worker whose chief cannot be reached (gRPC's error, in one line).
        """
        try:
            super().search(*args, **kwargs)
        except Exception as error:
            failure = unreachable_chief(error)
            if failure is None:
                raise
            raise failure from None
        if dist_utils.is_chief_oracle():
            # The oracle saves itself before it lets go of a finished trial, and the chief saves
            # nothing after the last one: without this save, a rerun would run the last trial again.
            self.save()


class SaveBestWeights(tuner_utils.SaveBestEpoch):
    """KerasTuner's best-epoch checkpoint of the model a trial built, whatever part of it trains.

    A pretrained model on cached features fits a view of its upper layers
    (``training.features``); the checkpoint Hyperband reloads in its next round must hold the
    whole model's weights, which the view shares.
    """

    def __init__(self, objective, filepath: str, model: keras.Model):
        super().__init__(objective, filepath)
        self.target = model

    def _save_model(self):
        self.target.save_weights(self.filepath)


class SearchTuner(SharedStateTuner):
    """Runs each trial with the HyperModel and keeps the run store in step with the oracle.

    Args:
        oracle: The KerasTuner oracle that picks the trials.
        hypermodel: The space's HyperModel.
        store: The search's run folder.
        reporting: Verbosity and W&B of the trials.
        checkpoints: Keep KerasTuner's per-epoch weight checkpoint of each trial (Hyperband
            needs it to continue a trial in its next round; it costs the model's size per trial).
        on_trial_end: Called with each finished trial's record and the best record so far.
        **kwargs: ``keras_tuner.Tuner`` arguments (``directory``, ``project_name``, ``overwrite``).
    """

    def __init__(self, oracle, hypermodel: SpaceHyperModel, *, store: RunStore, reporting: Reporting = Reporting(),
                 checkpoints: bool = False, on_trial_end: Callable[[dict, dict], None] | None = None, **kwargs):
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.store = store
        self.reporting = reporting
        self.checkpoints = checkpoints
        self.report_trial = on_trial_end
        # A k-fold trial has no model of its own (its folds' are not kept): the best configuration
        # is refitted once the search is done (tuning.searching.refit).
        self.keeps_models = hypermodel.kfold is None
        # A worker of a distributed search sees its own trials only; the chief finishes the folder.
        self.worker = dist_utils.has_chief_oracle() and not dist_utils.is_chief_oracle()
        # Our records of earlier runs of this search, keyed by KerasTuner's trial id: read once.
        self.records = {}
        if not self.worker:
            self.records = {r["trial_id"]: r for r in store.records() if "trial_id" in r}
            self.recover_records()
            self.reconcile()

    def recover_records(self) -> None:
        """Rebuilds the record of every trial KerasTuner finished whose record is missing (deleted
        after it was found damaged, or lost), so no finished trial drops out of the search.

        The record is computed as the training loop computed it (``training.loop.summarize``)
        from the trial's own ``history.json``; without one, from what KerasTuner kept of the
        trial (its metrics at the best epoch). It says that it was rebuilt; its ``seconds`` are
        not known.
        """
        for trial in self.oracle.trials.values():
            if trial.status != TrialStatus.COMPLETED or trial.trial_id in self.records:
                continue
            hp = trial.hyperparameters
            epochs = hp.values.get("tuner/epochs")
            spec = self.hypermodel.spec(hp)
            name = spec.name + (f"-e{epochs}" if epochs else "")
            history = self.store.read_history(name)
            if history.get("loss"):
                found = summarize(history, self.hypermodel.training(hp, epochs))
                source = "its history.json"
            else:  # KerasTuner keeps each metric at the best epoch only
                found = {"status": "completed", "epochs_run": (trial.best_step or 0) + 1,
                         "best_epoch": (trial.best_step or 0) + 1,
                         **{key: float(trial.metrics.get_last_value(key)) for key in (OBJECTIVE, "val_accuracy", "val_loss")
                            if trial.metrics.exists(key)}}
                source = "KerasTuner's state (the best epoch's metrics)"
            record = {"trial": name, "model": spec.model.name, **found, "trial_id": trial.trial_id,
                      "recovered": f"rebuilt from {source}: the trial's record was missing"}
            self.store.write_record(name, record)
            self.records[trial.trial_id] = record

    def reconcile(self) -> None:
        """Brings ``best/`` and the summary in step with the oracle after an interrupted run.

        A run killed after KerasTuner ended a trial but before that trial's model was promoted
        leaves the model in the trial's folder: it is promoted now if the oracle ranks it first,
        and dropped otherwise.
        """
        ranked = self.ranked_records()
        if not ranked:
            return
        completed = [r for r in ranked if r["status"] == "completed"]
        best = self.store.read_best()
        for place, record in enumerate(completed):
            if not (self.store.trial_dir(record["trial"]) / "model.keras").is_file():
                continue
            if place == 0 and (best is None or best[1].get("trial") != record["trial"]):
                self.store.promote(record["trial"], record)
            else:
                self.store.drop_model(record["trial"])
        self.store.write_summary(ranked)

    def run_trial(self, trial, *args, **kwargs):
        hp = trial.hyperparameters
        model = self._try_build(hp)
        callbacks = [tuner_utils.TunerCallback(self, trial)]
        if self.checkpoints:
            callbacks.append(SaveBestWeights(self.oracle.objective, self._get_checkpoint_fname(trial.trial_id), model))
        record = self.hypermodel.fit(hp, model, store=self.store, reporting=self.reporting, callbacks=callbacks,
                                     epochs=kwargs.get("epochs"), initial_epoch=kwargs.get("initial_epoch", 0),
                                     trial_id=trial.trial_id, worker=self.tuner_id)
        self.records[trial.trial_id] = record
        if record["status"] != "completed":
            raise keras_tuner.errors.FailedTrialError(f"trial {record['trial']}: {record['error']}")
        if self.keeps_models:
            self.save_model(trial.trial_id, model)
        elif self.checkpoints:  # Hyperband reloads a checkpoint in the next round; k-fold folds start afresh
            model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        return {key: record[key] for key in (OBJECTIVE, "val_accuracy", "val_loss")}

    def save_model(self, trial_id, model: keras.Model, step=0):
        """Keeps the trial's trained model in its folder until the oracle has ranked it."""
        self.store.save_model(self.records[trial_id]["trial"], model)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)  # the oracle records the trial's status and saves its state
        record = self.records.get(trial.trial_id)
        if record is None:  # the trial failed before training started
            return
        if self.worker:
            # Keep the model only while it is the best; the chief promotes the best at the end.
            kept = record["status"] == "completed" and self.keeps_models
            if kept and self.best_trials()[0].trial_id != trial.trial_id:
                self.store.drop_model(record["trial"])
            return
        ranked = self.ranked_records()
        if record["status"] == "completed" and self.keeps_models:
            if ranked[0]["trial_id"] == trial.trial_id:
                self.store.promote(record["trial"], record)
            else:
                self.store.drop_model(record["trial"])
        self.store.write_summary(ranked)
        if self.report_trial is not None:
            self.report_trial(record, ranked[0])

    def best_trials(self) -> list:
        """KerasTuner's completed trials, best first as its oracle ranks them; lower loss breaks ties."""
        # get_best_trials pads its answer with unfinished trials when too few completed.
        best = [t for t in self.oracle.get_best_trials(MAX_TRIALS) if t.status == "COMPLETED"]
        best.sort(key=lambda t: (-t.score, t.metrics.get_last_value("val_loss")))
        return best

    def ranked_records(self) -> list[dict]:
        """Our records, best first as KerasTuner's oracle ranks its trials (lower loss breaks ties).

        Failed trials follow, in the order they ran.
        """
        completed = [self.records[t.trial_id] for t in self.best_trials() if t.trial_id in self.records]
        return completed + [r for r in self.records.values() if r["status"] != "completed"]

    def finish(self) -> list[dict]:
        """Reads every trial's record once, brings ``best/`` and the summary in step; returns the ranking.

        What a one-process search keeps up to date trial by trial, a distributed search's chief
        does here, when its workers are done.
        """
        self.records = {r["trial_id"]: r for r in self.store.records() if "trial_id" in r}
        self.reconcile()
        return self.ranked_records()


class TaskHyperModel(keras_tuner.HyperModel):
    """A fixed list of named tasks as a search space: ``trial``, a choice over the names.

    :class:`TaskTuner` runs each task itself; ``build`` only declares the space.
    """

    def __init__(self, names: list[str]):
        super().__init__(name="tasks")
        self.names = names

    def build(self, hp):
        hp.Choice("trial", self.names)


class TaskTuner(SharedStateTuner):
    """Runs a fixed list of named tasks (the folds of a cross-validation) as KerasTuner trials.

    Each task runs once, in the list's order (:class:`GridOracle`), in this process or in the
    workers of a distributed run; KerasTuner keeps which ran, so a rerun continues, and retries a
    task that a kill interrupted.

    Args:
        names: The tasks.
        run: ``run(name, trial_id=..., worker=...)`` runs one task and returns its metrics
            (``objective`` among them); it raises ``keras_tuner.errors.FailedTrialError`` when
            the task fails.
        objective: The metric the oracle records (higher is better).
        directory: The run folder; KerasTuner's state goes to its ``keras_tuner/``.
        seed: Seed of the oracle.
    """

    def __init__(self, names: list[str], run: Callable[..., dict], *, objective: str, directory, seed: int = 0):
        oracle = GridOracle(objective=keras_tuner.Objective(objective, direction="max"), seed=seed,
                            max_consecutive_failed_trials=1000)
        super().__init__(oracle=oracle, hypermodel=TaskHyperModel(names), directory=str(directory),
                         project_name="keras_tuner")
        self.run = run
        self.distributed = dist_utils.has_chief_oracle()

    def run_trial(self, trial, *args, **kwargs):
        try:
            return self.run(trial.hyperparameters.get("trial"), trial_id=trial.trial_id, worker=self.tuner_id)
        except keras_tuner.errors.FailedTrialError:
            raise
        except Exception as error:  # bad data or a full disk: the next task would fail alike
            raise keras_tuner.errors.FatalError(str(error)) from error

    def search(self, *args, **kwargs):
        """Runs the tasks still to run; an error other than a failed task is raised as itself."""
        try:
            super().search(*args, **kwargs)
        except keras_tuner.errors.FatalError as error:
            raise (error.__cause__ or error) from None


class SearchHyperband(keras_tuner.Hyperband, SearchTuner):
    """Hyperband with :class:`SearchTuner`'s trials: Hyperband sets each round's epochs and
    reloads the trial's checkpoint; :class:`SearchTuner` trains and records it."""


def make_tuner(kind: str, hypermodel: SpaceHyperModel, store: RunStore, *, max_trials: int | None, seed: int,
               reporting: Reporting = Reporting(),
               on_trial_end: Callable[[dict, dict], None] | None = None, strategy=None) -> SearchTuner:
    """The tuner ``kind`` over ``hypermodel``, keeping its state in ``store`` (an earlier search there is resumed).

    ``strategy`` (a ``tf.distribute`` strategy) trains each trial data-parallel.
    """
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    common = dict(store=store, reporting=reporting, on_trial_end=on_trial_end, directory=str(store.root),
                  project_name="keras_tuner", overwrite=False, distribution_strategy=strategy)
    oracle_args = dict(objective=objective, seed=seed, max_consecutive_failed_trials=1000)
    if kind == "hyperband":
        return SearchHyperband(hypermodel, max_epochs=hypermodel.base_training.epochs, factor=3, checkpoints=True,
                               **oracle_args, **common)
    if kind == "grid":
        oracle = GridOracle(max_trials=max_trials, **oracle_args)
    elif kind == "random":
        oracle = keras_tuner.oracles.RandomSearchOracle(max_trials=max_trials or DEFAULT_WIDE_TRIALS, **oracle_args)
    elif kind == "bayesian":
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(max_trials=max_trials or DEFAULT_WIDE_TRIALS, **oracle_args)
    else:
        raise ValueError(f"unknown tuner {kind!r}; expected one of {', '.join(TUNERS)}")
    return SearchTuner(oracle, hypermodel, **common)

"""The KerasTuner HyperModel of a search space: ``build`` compiles a zoo model, ``fit`` trains it.

With a k-fold objective (``data.folds.FoldConfig``), ``fit`` trains the trial's model once per
fold of the non-test clips instead, each fold into ``trials/<trial>/fold-<k>/``, and records the
folds' mean validation metrics as the trial's: KerasTuner's oracle ranks trials by that mean. A
fold whose training finished is not trained again, so a killed trial resumes at its next fold.
"""

from __future__ import annotations

import keras
import keras_tuner
import numpy as np

from data.folds import FoldConfig
from training.config import OBJECTIVE, Reporting, TrainConfig
from training.features import uses_cache
from training.loop import PreparedData, compile_model, run_config, train_run
from training.runstore import RunStore
from tuning.spaces import Space, TrialSpec
from zoo.config import ModelConfig

# The validation metrics a k-fold trial averages over its folds.
FOLD_METRICS = (OBJECTIVE, "val_accuracy", "val_loss")


class SpaceHyperModel(keras_tuner.HyperModel):
    """One experiment family as a KerasTuner HyperModel.

    With ``sample=False`` the only hyperparameter is ``trial``, a choice over the study's grid;
    with ``sample=True`` the space's wider range is sampled.

    Args:
        space: The experiment family.
        data: Prepared data, shared by all trials.
        training: The command's training configuration; each trial's spec and the carried
            choices change some of its fields.
        base: Model the space varies (default: the space's carried-forward model).
        sample: Sample the wider range instead of running the study's grid.
        carried: Training fields chosen by earlier sections (e.g. ``optimizer``,
            ``batch_size``); applied to every trial except for the fields the space varies.
        max_epochs: If set, no trial trains longer (``tuning.study --quick``).
        kfold: Score each trial by the mean over these folds of the non-test clips instead of
            on the split's validation part.
    """

    def __init__(self, space: Space, data: PreparedData, training: TrainConfig, *, base: ModelConfig | None = None,
                 sample: bool = False, carried: dict | None = None, max_epochs: int | None = None,
                 kfold: FoldConfig | None = None):
        super().__init__(name=space.name)
        self.space = space
        self.data = data
        self.base_training = training
        self.base = space.base_config(base)
        self.sample = sample
        self.carried = {k: v for k, v in (carried or {}).items() if k not in space.varies}
        self.max_epochs = max_epochs
        self.grid = {spec.name: spec for spec in space.grid(self.base)}
        self._specs: dict[tuple, TrialSpec] = {}
        self.kfold = kfold
        self._fold_parts = kfold.parts(data.split.train + data.split.valid) if kfold else []
        self._fold_data: dict[int, PreparedData] = {}

    def spec(self, hp: keras_tuner.HyperParameters) -> TrialSpec:
        """The trial that ``hp`` stands for, its model set to the data's window and genres.

        Worked out once per set of values: ``build`` and ``fit`` of a trial ask for the same one.
        """
        spec = self._specs.get(tuple(sorted(hp.values.items())))
        if spec is None:
            drawn = self.space.sample(hp, self.base) if self.sample else self.grid[hp.Choice("trial", list(self.grid))]
            model = drawn.model.replace(window_seconds=self.data.config.window_seconds, n_genres=len(self.data.genres))
            spec = TrialSpec(drawn.name, model, drawn.training)
            # Keyed by the values after drawing: sampling registers the hyperparameters it reads.
            self._specs[tuple(sorted(hp.values.items()))] = spec
        return spec

    def training(self, hp: keras_tuner.HyperParameters, epochs: int | None = None) -> TrainConfig:
        """The effective training configuration of the trial: concrete batch size and epochs."""
        training = self.base_training.replace(**self.carried, **self.spec(hp).training)
        epochs = epochs or training.epochs
        return training.replace(epochs=min(epochs, self.max_epochs or epochs))

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        return compile_model(self.spec(hp).model, self.data, self.training(hp))

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args, store: RunStore, reporting: Reporting,
            callbacks=None, epochs: int | None = None, initial_epoch: int = 0, **record_fields) -> dict:
        """Trains the trial; returns its record (see ``training.loop.train_run``).

        ``epochs`` and ``initial_epoch`` come from Hyperband, which trains a trial in rounds;
        its trials are named with their epoch budget (``...-e9``). ``record_fields`` go into
        the trial's record.
        """
        spec = self.spec(hp)
        name = spec.name + (f"-e{epochs}" if epochs else "")
        run = run_config(name, spec.model.name, spec.model, self.data, self.training(hp, epochs), space=self.space.name)
        if self.kfold is not None:
            return self.fit_folds(run, store, reporting=reporting, **record_fields)
        return train_run(model, self.data, run, store, reporting=reporting, callbacks=callbacks,
                         initial_epoch=initial_epoch, **record_fields)

    def fold_data(self, fold: int, keep: bool) -> PreparedData:
        """The data of fold ``fold``: the other folds train, this one validates. Kept for later
        trials when ``keep`` (cached features: small); a waveform model's folds decode per trial."""
        if fold in self._fold_data:
            return self._fold_data[fold]
        data = self.data.part(*self._fold_parts[fold])
        if keep:
            self._fold_data[fold] = data
        return data

    def fit_folds(self, run, store: RunStore, *, reporting: Reporting, **record_fields) -> dict:
        """Trains ``run`` once per fold (a fold trained earlier is kept) and records the folds' mean
        validation metrics, their spread and every fold's figure as the trial's; returns that record.

        Every fold trains from the first epoch (a Hyperband round included), with nothing of
        KerasTuner's per-epoch machinery: the oracle gets the mean when every fold is done.
        """
        keep = uses_cache(run.model_config, run.training)
        store.write_config(run.trial, {**run.to_dict(), "objective": {"kfold": self.kfold.to_dict()}})
        folds = []
        for fold in range(self.kfold.folds):
            data = self.fold_data(fold, keep)
            fold_run = run_config(f"{run.trial}/fold-{fold}", run.model, run.model_config, data, run.training,
                                  space=run.space)
            record = store.finished_run(fold_run.trial, fold_run, with_model=False)
            if record is None:
                keras.backend.clear_session()
                model = compile_model(run.model_config, data, run.training)
                record = train_run(model, data, fold_run, store, reporting=reporting)
            if record["status"] != "completed":
                failed = {"trial": run.trial, "model": run.model, "status": "failed", "epochs_run": record["epochs_run"],
                          "error": f"fold {fold}: {record['error']}", **record_fields}
                store.write_record(run.trial, failed)
                return failed
            folds.append(record)
        scores = np.array([record[OBJECTIVE] for record in folds])
        means = {key: float(np.mean([record[key] for record in folds])) for key in FOLD_METRICS}
        record = {"trial": run.trial, "model": run.model, "status": "completed", **means,
                  f"{OBJECTIVE}_std": float(scores.std()), "folds": [float(v) for v in scores],
                  "epochs_run": int(round(np.mean([r["epochs_run"] for r in folds]))),
                  "best_epoch": int(round(np.mean([r["best_epoch"] for r in folds]))),
                  "seconds": round(sum(r["seconds"] for r in folds), 2), "rss_mb": folds[-1].get("rss_mb"),
                  "parameters": folds[-1].get("parameters"), **record_fields}
        store.write_history(run.trial, _mean_history([store.read_history(r["trial"]) for r in folds]))
        store.write_record(run.trial, record)
        return record


def _mean_history(histories: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """The folds' histories averaged epoch by epoch, over the epochs every fold ran."""
    keys = set.intersection(*(set(h) for h in histories)) if histories else set()
    epochs = min((len(h[key]) for h in histories for key in keys), default=0)
    return {key: [float(np.mean([h[key][e] for h in histories])) for e in range(epochs)] for key in sorted(keys)}

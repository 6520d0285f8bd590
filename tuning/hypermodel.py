"""The KerasTuner HyperModel of a search space: ``build`` compiles a zoo model, ``fit`` trains it."""

from __future__ import annotations

import keras
import keras_tuner

from training.config import Reporting, TrainConfig
from training.loop import PreparedData, compile_model, run_config, train_run
from training.runstore import RunStore
from tuning.spaces import Space, TrialSpec
from zoo.config import ModelConfig


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
    """

    def __init__(self, space: Space, data: PreparedData, training: TrainConfig, *, base: ModelConfig | None = None,
                 sample: bool = False, carried: dict | None = None, max_epochs: int | None = None):
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
        return train_run(model, self.data, run, store, reporting=reporting, callbacks=callbacks,
                         initial_epoch=initial_epoch, **record_fields)

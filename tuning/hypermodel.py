"""The KerasTuner HyperModel of a search space: ``build`` uses the zoo, ``fit`` trains a trial."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import logging
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import keras
import keras_tuner
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

import zoo
from tuning.experiment import (
    OBJECTIVE,
    ClipMetrics,
    ExperimentData,
    rank_key,
    read_records,
    write_history,
    write_json,
)
from data.pipeline import resident_memory_mb
from tuning.schedules import make_optimizer, schedule_callback
from tuning.spaces import Space, TrialSpec

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Command-level training settings; a trial's spec may override batch size and epochs.

    Attributes:
        epochs: Maximum epochs per trial.
        batch_size: Batch size.
        patience: Epochs without a lower validation loss before early stopping.
        wandb_mode: ``online``, ``offline`` or ``disabled``.
        wandb_project: W&B project of the runs.
        verbose: Keras ``fit`` verbosity (1: progress bar, 2: one line per epoch).
        max_epochs: If set, no trial trains longer (``tuning.study --quick``).
    """

    epochs: int = 20
    batch_size: int = 32
    patience: int = 4
    wandb_mode: str = "disabled"
    wandb_project: str = "gtzan-keras"
    verbose: int = 2
    max_epochs: int | None = None


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


def trial_dir_name(name: str) -> str:
    """A file-system-safe folder name for a trial name."""
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


class SpaceHyperModel(keras_tuner.HyperModel):
    """One experiment family as a KerasTuner HyperModel.

    With ``wide=False`` the only hyperparameter is ``trial``, a choice over the study's grid;
    with ``wide=True`` the space's wider range is sampled.

    Args:
        space: The experiment family.
        data: Prepared data, shared by all trials.
        settings: Training settings of the command.
        out_dir: ``<out>/<space>``; trial records and the best model go under it.
        base: Model the space varies (default: the space's carried-forward model).
        wide: Sample the wider range instead of the study's grid.
        carried: TrialSpec fields chosen by earlier sections (e.g. ``optimizer``,
            ``batch_size``); applied to every trial except for the fields the space varies.
        on_trial_end: Called with each finished trial's record (progress lines).
        checkpoints: Keep KerasTuner's per-epoch weight checkpoints (Hyperband needs them to
            continue a trial in its next round).
    """

    def __init__(self, space: Space, data: ExperimentData, settings: TrainingSettings, out_dir: Path,
                 base: str | None = None, wide: bool = False, carried: dict | None = None,
                 on_trial_end: Callable[[dict], None] | None = None, checkpoints: bool = False):
        super().__init__(name=space.name)
        self.space = space
        self.data = data
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.base = base or space.default_base or ""
        self.wide = wide
        self.carried = {k: v for k, v in (carried or {}).items() if k not in space.varies}
        self.on_trial_end = on_trial_end
        self.checkpoints = checkpoints
        self.grid = {spec.name: spec for spec in space.grid(self.base)}

    def spec(self, hp: keras_tuner.HyperParameters) -> TrialSpec:
        """The trial that ``hp`` stands for, with the carried-forward choices applied."""
        spec = self.space.wide(hp, self.base) if self.wide else self.grid[hp.Choice("trial", list(self.grid))]
        return dataclasses.replace(spec, **self.carried)

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        # Same initial weights and random layers for the same seed: a rerun repeats each trial.
        keras.utils.set_random_seed(self.data.seed)
        spec = self.spec(hp)
        model = zoo.build(spec.model, window_seconds=self.data.window_seconds, n_genres=len(self.data.genres))
        # XLA helps on GPUs; on CPUs it measured slower for these models (see zoo.bench).
        jit = "auto" if tf.config.list_physical_devices("GPU") else False
        model.compile(optimizer=make_optimizer(spec.optimizer, spec.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit)
        return model

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args, callbacks=None, **kwargs):
        spec = self.spec(hp)
        name = spec.name + (f"-e{hp.values['tuner/epochs']}" if "tuner/epochs" in hp.values else "")
        trial_dir = self.out_dir / "trials" / trial_dir_name(name)
        epochs = kwargs.get("epochs") or spec.epochs or self.settings.epochs
        epochs = min(epochs, self.settings.max_epochs or epochs)
        batch_size = spec.batch_size or self.settings.batch_size
        config = self.resolved_config(spec, name, batch_size, epochs)
        write_json(trial_dir / "config.json", config)

        ours = [ClipMetrics(self.data), keras.callbacks.TerminateOnNaN()]
        scheduler = schedule_callback(spec.schedule, initial=spec.learning_rate, gamma=spec.gamma)
        if scheduler is not None:
            ours.append(scheduler)
        if spec.early_stopping:
            ours.append(keras.callbacks.EarlyStopping("val_loss", patience=self.settings.patience,
                                                      restore_best_weights=True))
        run = self._start_wandb(name, config)
        if run is not None:
            from wandb.integration.keras import WandbMetricsLogger

            ours.append(WandbMetricsLogger(log_freq="epoch"))
        # KerasTuner's SaveBestEpoch writes all weights at every improving epoch (hundreds of
        # MB for the study's flatten+dense CNNs); the best model is kept by _keep_if_best instead.
        theirs = [cb for cb in callbacks or [] if self.checkpoints or type(cb).__name__ != "SaveBestEpoch"]
        start = time.perf_counter()
        try:
            with released_custom_gradients():
                # shuffle=False: the dataset shuffles itself (Keras would only warn that it cannot).
                history = model.fit(self.data.train(batch_size), epochs=epochs, initial_epoch=kwargs.get("initial_epoch", 0),
                                    callbacks=ours + theirs, verbose=self.settings.verbose, shuffle=False)
        finally:
            if run is not None:
                run.finish()
        seconds = time.perf_counter() - start
        return_freed_memory()
        record = self._record(spec, name, history.history, seconds, early_stopped=spec.early_stopping)
        write_history(trial_dir, history.history)
        write_json(trial_dir / "record.json", record)
        if self.on_trial_end is not None:
            self.on_trial_end(record)
        if record["status"] != "completed":
            raise keras_tuner.errors.FailedTrialError(f"trial {name}: {record['error']}")
        self._keep_if_best(model, record, config, trial_dir)
        return {key: record[key] for key in (OBJECTIVE, "val_accuracy", "val_loss")}

    def resolved_config(self, spec: TrialSpec, name: str, batch_size: int, epochs: int) -> dict:
        """Everything needed to rebuild the trial's model and data without guessing."""
        model_config = zoo.configure(spec.model, window_seconds=self.data.window_seconds, n_genres=len(self.data.genres))
        return {
            "space": self.space.name,
            "trial": name,
            "model": spec.model,
            "model_config": dataclasses.asdict(model_config),
            "spec": dataclasses.asdict(spec),
            "training": {"batch_size": batch_size, "epochs": epochs, "patience": self.settings.patience},
            "data": self.data.description,
        }

    def _record(self, spec: TrialSpec, name: str, history: dict, seconds: float, early_stopped: bool) -> dict:
        losses = history.get("loss", [])
        record = {"trial": name, "model": spec.model, "status": "completed", "epochs_run": len(losses),
                  "seconds": round(seconds, 2), "rss_mb": resident_memory_mb()}
        if not losses or any(not math.isfinite(v) for v in losses) or "val_loss" not in history:
            record.update(status="failed", error="loss became NaN or infinite" if losses else "no epoch finished")
            return record
        # The weights kept are those of the lowest validation loss with early stopping,
        # else those of the last epoch; the trial is scored at that epoch.
        kept = int(np.argmin(history["val_loss"])) if early_stopped else len(losses) - 1
        record.update(best_epoch=kept + 1, **{key: float(history[key][kept]) for key in
                                              (OBJECTIVE, "val_accuracy", "val_loss", "loss", "accuracy")})
        return record

    def _keep_if_best(self, model: keras.Model, record: dict, config: dict, trial_dir: Path) -> None:
        others = [r for r in read_records(self.out_dir) if r["trial"] != record["trial"] and r.get("status") == "completed"]
        if others and rank_key(others[0]) <= rank_key(record):
            return
        best_dir = self.out_dir / "best"
        shutil.rmtree(best_dir, ignore_errors=True)
        best_dir.mkdir(parents=True)
        model.save(best_dir / "model.keras")
        write_json(best_dir / "config.json", {**config, "metrics": record})

    def _start_wandb(self, name: str, config: dict):
        if self.settings.wandb_mode == "disabled":
            return None
        import wandb

        return wandb.init(project=self.settings.wandb_project, group=self.space.name, name=name, config=config,
                          mode=self.settings.wandb_mode, dir=str(self.out_dir), reinit="finish_previous")

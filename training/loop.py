"""The training loop: prepared data, one compiled model, one fit. Search trials, ``tuning.train``
and cross-validation folds all train through :func:`train_run`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time

import keras
import numpy as np
import tensorflow as tf

import zoo
from data import audiocache
from data.catalogue import Clip, DataError
from data.config import DataConfig
from data.pipeline import (
    SHUFFLE_BUFFER,
    DiskClips,
    decoded_dataset,
    epochs_dataset,
    eval_inputs,
    mixup,
    train_dataset,
)
from data.processes import resident_memory_mb
from data.sources import load_split
from data.splits import Split
from training.callbacks import ClipMetrics, training_callbacks
from training.config import OBJECTIVE, Reporting, RunConfig, TrainConfig
from training.features import FeatureData, feature_data, uses_cache
from training.memory import released_custom_gradients, return_freed_memory
from training.runstore import RunStore
from training.schedules import learning_rate, make_optimizer
from training.tracking import wandb_run
from zoo.builders.pretrained import feature_view
from zoo.config import ModelConfig


@dataclasses.dataclass
class PreparedData:
    """The clips of a command, split by track: decoded when first needed, then kept for every trial.

    The training clips are decoded into an in-memory cache (int16) and the validation clips cut
    into their windows (:func:`prepare_data` does both at once, so that a command finds bad data
    before it trains); a model trained on cached frozen features (:meth:`features`) never needs
    either.

    Attributes:
        config: The data configuration.
        genres: Class names, in label order.
        split: The track-level split.
        dataset: What was found (``data_dir``, ``synthetic``, ``genres``, ``sizes``,
            ``unreadable_files``), saved with every run.
    """

    config: DataConfig
    genres: tuple[str, ...]
    split: Split
    dataset: dict
    # Frozen pretrained features of these clips, per tagger and window (filled on first use).
    _features: dict = dataclasses.field(default_factory=dict, repr=False)

    @functools.cached_property
    def train_decoded(self) -> tf.data.Dataset | DiskClips:
        """The training clips, decoded once into the cache (in memory, or on disk: ``data.audiocache``, from
        which training reads each window it draws).

        Where they outnumber the shuffle buffer, they come in an order shuffled once (by the split's
        seed), so that the buffer's shuffling draws from every genre.
        """
        clips = self.split.train
        if len(clips) > self.shuffle_buffer:
            clips = tuple(clips[i] for i in np.random.default_rng(self.config.split_seed).permutation(len(clips)))
        if self.cache_mode == "disk":
            return DiskClips.of(clips)
        return decoded_dataset(clips, mode="memory")

    @functools.cached_property
    def cache_mode(self) -> str:
        """Where the training and validation clips are kept (``data.audiocache``): memory when both fit the
        budget together (the validation windows as float32), else disk for both."""
        return audiocache.choose("training and validation clips", held=self.split.train, windowed=self.split.valid)

    @functools.cached_property
    def shuffle_buffer(self) -> int:
        """Clips the training shuffle holds: 1024 (GTZAN's whole training part), fewer when the clips stream
        from disk and 1024 of them would take more than a quarter of the memory budget."""
        if self.cache_mode != "disk":
            return SHUFFLE_BUFFER
        clip_bytes = audiocache.decoded_bytes(self.split.train) / len(self.split.train)
        return int(min(SHUFFLE_BUFFER, max(16, audiocache.current().budget_bytes / 4 / max(clip_bytes, 1))))

    @functools.cached_property
    def train_clips(self) -> int:
        """How many training clips decode (the windows of one epoch); decoding them fills the cache.

        Raises:
            DataError: if none decodes.
        """
        decoded = self.train_decoded
        count = len(decoded) if isinstance(decoded, DiskClips) else int(decoded.reduce(0, lambda count, _: count + 1))
        if count < len(self.split.train):
            logging.getLogger(__name__).warning("%d of %d training clips could not be decoded and are left out",
                                                len(self.split.train) - count, len(self.split.train))
        if count == 0:
            raise DataError("no training clip could be decoded")
        return count

    @functools.cached_property
    def valid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(waveforms, labels, clip index)`` of every validation window."""
        windows = eval_inputs(self.split.valid, window_seconds=self.config.window_seconds, mode=self.cache_mode)
        if isinstance(windows[0], np.ndarray) and np.all(windows[0][:, -1] == 0) and np.all(windows[0][:, -100:] == 0):
            logging.getLogger(__name__).warning(
                "every validation clip is shorter than the %g-s window (they are zero-padded); "
                "choose a shorter --window-seconds", self.config.window_seconds)
        return windows

    @property
    def valid_labels(self) -> np.ndarray:
        """Label of each validation clip."""
        return clip_labels(self.split.valid)

    def part(self, train: tuple[Clip, ...], valid: tuple[Clip, ...]) -> PreparedData:
        """The same data with other training and validation clips (a fold of a k-fold objective);
        the test part stays the split's own."""
        split = Split(train=train, valid=valid, test=self.split.test)
        return PreparedData(self.config, self.genres, split, {**self.dataset, "sizes": split.sizes()})

    def features(self, model_config: ModelConfig) -> FeatureData:
        """The training and validation clips as ``model_config``'s frozen tagger features
        (``training.features``): computed, or read from the disk cache, once per command."""
        key = (model_config.family, model_config.tagger, model_config.window_seconds)
        if key not in self._features:
            self._features[key] = feature_data(model_config, self.genres, self.split.train, self.split.valid)
        return self._features[key]

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training batches per epoch."""
        return max(1, math.ceil(self.train_clips / batch_size))

    def train(self, train: TrainConfig) -> tf.data.Dataset:
        """``train.epochs`` epochs of random training windows (batch size, seed, one-hot and mixup if asked).

        A new dataset per call, seeded with ``train.seed``: every trial sees the same windows in
        the same order, whichever trials ran before it, and every iterator of it yields the
        same sequence (see ``data.pipeline.epochs_dataset``). Under a ``tf.distribute``
        strategy, Keras splits each batch among the replicas: ``train.batch_size`` is the
        global batch, and each epoch is still :meth:`steps_per_epoch` steps.
        """
        def epoch() -> tf.data.Dataset:
            windows = train_dataset(self.train_decoded, window_seconds=self.config.window_seconds,
                                    batch_size=train.batch_size, seed=train.seed, shuffle_buffer=self.shuffle_buffer)
            if train.one_hot:
                windows = mixup(windows, alpha=train.mixup, n_classes=len(self.genres), seed=train.seed)
            return windows

        return epochs_dataset(epoch, train.epochs)

    def validation(self) -> ClipMetrics | None:
        """The callback that scores the validation clips each epoch (None without validation clips:
        a refit on every non-test clip)."""
        return ClipMetrics(self.valid, self.valid_labels) if self.split.valid else None


def prepare_data(config: DataConfig) -> PreparedData:
    """Scans, splits and decodes the data of a command.

    Raises:
        DataError: for a missing or empty data folder, split lists that cannot be used, fewer
            than two genres, or a split that leaves the training or validation part empty.
    """
    catalogue, parts, synthetic = load_split(config)
    if len(catalogue.genres) < 2:
        raise DataError(f"{catalogue.root} holds one class folder ({catalogue.genres[0]}); a classifier needs at "
                        "least two genre folders")
    if not parts.train or not parts.valid:
        raise DataError(f"the split leaves {'no training' if not parts.train else 'no validation'} clips; "
                        f"sizes: {parts.sizes()}" + (f" (lists in {config.split_dir})" if config.split == "lists" else ""))
    dataset = {"data_dir": str(catalogue.root), "synthetic": synthetic, "genres": list(catalogue.genres),
               "sizes": parts.sizes(), "unreadable_files": len(catalogue.problems)}
    data = PreparedData(config=dataclasses.replace(config, data_dir=str(catalogue.root)), genres=catalogue.genres,
                        split=parts, dataset=dataset)
    # Decoded now, so that a command finds data it cannot use before it trains.
    data.valid  # noqa: B018
    data.train_clips  # noqa: B018
    return data


def clip_labels(clips: tuple[Clip, ...]) -> np.ndarray:
    """The label of each clip."""
    return np.array([clip.label for clip in clips])


def compile_model(model_config: ModelConfig, data: PreparedData, train: TrainConfig) -> keras.Model:
    """Builds ``model_config`` for ``data``'s genres, seeded, and compiles it for ``train``."""
    # Same initial weights and random layers for the same seed: a rerun repeats each trial.
    keras.utils.set_random_seed(train.seed)
    # The layers take their dtype policy when built; the global one is put back afterwards.
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy(train.precision)
    try:
        model = zoo.build_model(model_config.replace(n_genres=len(data.genres)))
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    _compile(model, data, train)
    return model


def _compile(model: keras.Model, data: PreparedData | FeatureData, train: TrainConfig) -> None:
    """Compiles ``model`` with a new optimizer, the loss and the metrics of ``train``."""
    optimizer = make_optimizer(train.optimizer, learning_rate(train, data.steps_per_epoch(train.batch_size)),
                               train.weight_decay)
    loss = (keras.losses.CategoricalCrossentropy(label_smoothing=train.label_smoothing) if train.one_hot
            else "sparse_categorical_crossentropy")
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit_compile())


def jit_compile() -> bool | str:
    """How the training step is compiled on this backend and machine (``Model.compile(jit_compile=)``).

    JAX: always ``jax.jit`` (op by op it runs 3-5x slower). TensorFlow: XLA on GPUs only (on CPUs its
    graph mode measured faster for these models, see ``zoo.bench``). PyTorch: eager (Keras' own
    ``"auto"``; ``torch.compile`` measured no faster on CPUs, see ``zoo.bench``).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "tensorflow":
        return "auto" if tf.config.list_physical_devices("GPU") else False
    return "auto"


def _pretrained_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of the model's pretrained backbones (its nested models, ``zoo.builders.pretrained``)."""
    return [layer for nested in model.layers if isinstance(nested, keras.Model) for layer in nested.layers]


def _head_phase(model: keras.Model, data: PreparedData | FeatureData, train: TrainConfig,
                fit) -> tuple[dict, TrainConfig]:
    """Trains the head alone for ``train.head_epochs`` (pretrained layers frozen), then recompiles the
    model as its name says for the remaining epochs; returns that phase's history and the rest's recipe."""
    layers = _pretrained_layers(model)
    trainable = [layer.trainable for layer in layers]
    for layer in layers:
        layer.trainable = False
    head = train.replace(epochs=train.head_epochs, learning_rate=train.head_learning_rate, schedule="constant",
                         warmup_epochs=0, early_stopping=False, head_epochs=0)
    _compile(model, data, head)
    history = fit(head, 0, head.epochs).history
    for layer, flag in zip(layers, trainable):
        layer.trainable = flag
    # New windows for the rest (another seed), and its schedule over the epochs left.
    rest = train.replace(epochs=train.epochs - train.head_epochs, head_epochs=0, seed=train.seed + 1,
                         warmup_epochs=min(train.warmup_epochs, train.epochs - train.head_epochs - 1))
    _compile(model, data, rest)
    return history, rest


def summarize(history: dict[str, list[float]], train: TrainConfig) -> dict:
    """Status, epochs and the metrics at the kept epoch of one fit.

    The weights kept are those of the lowest validation loss with early stopping, else those
    of the last epoch; the run is scored at that epoch.
    """
    losses = history.get("loss", [])
    record = {"status": "completed", "epochs_run": len(losses)}
    if not losses or any(not math.isfinite(v) for v in losses):
        record.update(status="failed", error="loss became NaN or infinite" if losses else "no epoch finished")
        return record
    if "val_loss" not in history:  # trained without validation clips (a refit): the last epoch, no val metrics
        return {**record, "best_epoch": len(losses), **{key: float(history[key][-1]) for key in ("loss", "accuracy")}}
    kept = int(np.argmin(history["val_loss"])) if train.early_stopping else len(losses) - 1
    record.update(best_epoch=kept + 1, **{key: float(history[key][kept]) for key in
                                          (OBJECTIVE, "val_accuracy", "val_loss", "loss", "accuracy")})
    return record


def train_run(model: keras.Model, data: PreparedData, run: RunConfig, store: RunStore, *,
              reporting: Reporting = Reporting(), callbacks: list | None = None, initial_epoch: int = 0,
              keep_model: bool = False, **record_fields) -> dict:
    """Trains ``model`` as ``run`` says and records it in ``store``; returns the record.

    Clears what an earlier training left in the trial's folder, writes its ``config.json``, trains
    (with W&B when enabled), saves the model if ``keep_model``, then writes its history and,
    last, ``record.json`` (``status``, ``epochs_run``, ``best_epoch``, the metrics at the kept
    epoch, ``seconds``, the process's resident memory ``rss_mb``, ``parameters`` and the Keras
    ``backend`` that trained it): a folder
    whose record says ``completed`` holds that training's config, history and model.

    A pretrained model whose tagger is frozen up to a layer trains through its cached features
    (``training.features``, unless ``run.training.cached_features`` is off): the part of
    ``model`` above that layer, which shares its layers, is fitted on them; ``model`` is what is
    saved, whole.

    Args:
        model: A compiled model (:func:`compile_model`).
        data: The prepared data.
        run: What is trained; ``run.training`` is followed.
        store: Where the run's files go.
        reporting: Verbosity and W&B.
        callbacks: More callbacks, after the training loop's own (e.g. KerasTuner's).
        initial_epoch: Epoch to start from (a Hyperband trial continued from a checkpoint).
        keep_model: Save the trained model as the trial's ``model.keras`` (before the record).
        **record_fields: More fields of the record (e.g. KerasTuner's ``trial_id``).
    """
    config = run.to_dict()
    store.clear_results(run.trial)  # an earlier training's files never stay beside this one's
    store.write_config(run.trial, config)
    train = run.training
    start = time.perf_counter()
    fitted, fit_data = model, data
    if uses_cache(run.model_config, train):
        fit_data = data.features(run.model_config)
        fitted = feature_view(model, run.model_config)
        _compile(fitted, fit_data, train)
    with wandb_run(reporting.wandb_mode, project=reporting.wandb_project, group=reporting.wandb_group, name=run.trial,
                   config=config, directory=store.root) as tracking:
        def fit(phase: TrainConfig, first_epoch: int, last_epoch: int, extra: list | None = None):
            # shuffle=False: the dataset shuffles itself (Keras would only warn that it cannot).
            # One dataset holds every epoch, so Keras must be told where an epoch ends.
            return fitted.fit(fit_data.train(phase), epochs=last_epoch, initial_epoch=first_epoch,
                              steps_per_epoch=fit_data.steps_per_epoch(phase.batch_size),
                              callbacks=training_callbacks(phase, fit_data.validation()) + tracking + (extra or []),
                              verbose=reporting.verbose, shuffle=False)

        with released_custom_gradients():
            if train.head_epochs and initial_epoch == 0:
                history, rest = _head_phase(fitted, fit_data, train, fit)
                rest_history = fit(rest, train.head_epochs, train.epochs, callbacks).history
                history = {key: history.get(key, []) + values for key, values in rest_history.items()}
            else:
                history = fit(train, initial_epoch, train.epochs, callbacks).history
    seconds = time.perf_counter() - start
    if fitted is not model and model.optimizer is not None and not model.optimizer.built:
        # The view trained with its own optimizer; the saved model's is built (unused), so that
        # loading the file finds the variables it expects.
        model.optimizer.build(model.trainable_variables)
    return_freed_memory()
    record = {"trial": run.trial, "model": run.model, **summarize(history, train),
              "seconds": round(seconds, 2), "rss_mb": resident_memory_mb(), "parameters": model.count_params(),
              "backend": keras.backend.backend(), **record_fields}
    store.write_history(run.trial, history)  # kept even if the model cannot be saved
    if keep_model and record["status"] == "completed":
        store.save_model(run.trial, model)
    store.write_record(run.trial, record)  # last: it marks the trial done
    return record


def run_config(trial: str, model: str, model_config: ModelConfig, data: PreparedData, train: TrainConfig,
               space: str | None = None) -> RunConfig:
    """The RunConfig of training ``model_config`` (named ``model`` by the user) on ``data`` with ``train``."""
    return RunConfig(trial=trial, model=model, model_config=model_config.replace(n_genres=len(data.genres)),
                     training=train, data=data.config, dataset=data.dataset, space=space)

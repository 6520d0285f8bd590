"""Training configuration as data, the named recipes, and the record of a trained model.

``TrainConfig`` says how one model is trained; ``RECIPES`` holds the named ones (the study's
plain recipe and "adamw-cosine", the default); ``RunConfig`` is what a trained model's folder records
(``config.json``): its model, data and training configurations, so it can be rebuilt and
evaluated without guessing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from data.config import DataConfig, DictConfig
from zoo.config import ModelConfig

OPTIMIZERS = ("adagrad", "adam", "rmsprop", "adamw")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SCHEDULES = ("constant", "steplr", "exponentiallr", "cosine")
# What every search ranks trials by: track-level validation accuracy (softmax averaged per clip).
OBJECTIVE = "val_track_accuracy"


@dataclasses.dataclass(frozen=True)
class TrainConfig(DictConfig):
    """How one model is trained.

    Attributes:
        optimizer: ``adagrad``, ``adam``, ``rmsprop`` or ``adamw``.
        learning_rate: Initial (or, after warm-up, peak) learning rate.
        schedule: ``constant``, ``steplr`` / ``exponentiallr`` (per epoch, PyTorch semantics)
            or ``cosine`` (per step, to zero at the last epoch, after ``warmup_epochs``).
        gamma: Decay factor of ``steplr`` and ``exponentiallr``.
        step_size: Epochs between ``steplr`` decays.
        warmup_epochs: Epochs of linear warm-up from zero (``cosine`` only).
        weight_decay: Decoupled weight decay of ``adamw``.
        label_smoothing: Label smoothing of the cross-entropy.
        mixup: Mixup's Beta(alpha, alpha) parameter; 0 disables mixup.
        batch_size: Windows per batch.
        epochs: Epochs at most.
        early_stopping: Stop when the validation loss has not improved for ``patience``
            epochs and restore the best weights; otherwise keep the last epoch's weights.
        patience: Epochs without improvement before early stopping.
        seed: Seed of the initial weights, the training windows and their order.
        precision: Keras dtype policy of the model: ``float32``, or ``mixed_float16`` /
            ``mixed_bfloat16`` for GPUs (the front-end layers and the softmax stay float32).
        head_epochs: Pretrained models only: epochs at the start that train the new head alone
            (every pretrained layer frozen) at ``head_learning_rate``, constant; the other
            ``epochs - head_epochs`` then train what the model name says, with a new optimizer
            following ``schedule`` over them. 0: one phase.
        head_learning_rate: Learning rate of the head-only epochs.
        cached_features: Pretrained models whose tagger is frozen up to a layer (``train=head``,
            and ``backend`` for musicnn): train the layers above it on that layer's output,
            computed once per clip and window and cached on disk (``training.features``), instead
            of running the frozen tagger at every step. The saved model is the same whole model.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"
    gamma: float = 1.0
    step_size: int = 5
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    mixup: float = 0.0
    batch_size: int = 32
    epochs: int = 20
    early_stopping: bool = True
    patience: int = 4
    seed: int = 42
    precision: str = "float32"
    head_epochs: int = 0
    head_learning_rate: float = 1e-3
    cached_features: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown --precision {self.precision!r}; expected one of {', '.join(PRECISIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; expected one of {', '.join(SCHEDULES)}")
        for flag in ("batch_size", "epochs", "patience", "step_size"):
            if getattr(self, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(self, flag)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"--learning-rate must be a positive number, got {self.learning_rate}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs and self.schedule == "cosine":
            raise ValueError(f"warmup_epochs must be from 0 to epochs - 1, got {self.warmup_epochs}")
        if not 0 <= self.head_epochs < self.epochs:
            raise ValueError(f"head_epochs must be from 0 to epochs - 1, got {self.head_epochs}")
        if not (math.isfinite(self.head_learning_rate) and self.head_learning_rate > 0):
            raise ValueError(f"head_learning_rate must be a positive number, got {self.head_learning_rate}")
        if not 0 <= self.label_smoothing < 1 or self.mixup < 0 or self.weight_decay < 0:
            raise ValueError("label_smoothing must be in [0, 1), mixup and weight_decay non-negative. Received: "
                             f"{self.label_smoothing}, {self.mixup}, {self.weight_decay}")

    def changed(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (None leaves a field as it is). A shorter run keeps the
        warm-up and the head-only phase only while they leave epochs after them, unless ``changes``
        sets them too.

        Raises:
            ValueError: for an invalid change, naming it.
        """
        changes = {key: value for key, value in changes.items() if value is not None}
        if changes.get("epochs", 0) >= 1:
            changes.setdefault("warmup_epochs", min(self.warmup_epochs, changes["epochs"] - 1))
            changes.setdefault("head_epochs", min(self.head_epochs, changes["epochs"] - 1))
        return self.replace(**changes)

    @property
    def one_hot(self) -> bool:
        """Whether training needs one-hot labels (label smoothing or mixup)."""
        return self.label_smoothing > 0 or self.mixup > 0


# The named recipes. "study" is the study's plain training (Adam 1e-3, batch 32, early
# stopping on the validation loss); the search spaces vary it. "adamw-cosine" (AdamW, cosine
# decay after a warm-up, label smoothing) is what generalized best on real music (docs/results.md). "finetune" is for the
# pretrained models (musicnn-*, vgg-*): a learning rate 6x lower than "adamw-cosine", so that
# the pretrained layers move little, with the warm-up from zero while the new head is random.
# "head-first" trains the new head alone for 10 epochs (3e-3), then what the name says at a
# peak of 1e-4 for 20 more, so the pretrained layers never see a random head's gradients.
RECIPES: dict[str, TrainConfig] = {
    "study": TrainConfig(),
    "adamw-cosine": TrainConfig(optimizer="adamw", learning_rate=3e-3, schedule="cosine", warmup_epochs=3,
                               weight_decay=1e-2, label_smoothing=0.1, epochs=40, early_stopping=False),
    "finetune": TrainConfig(optimizer="adamw", learning_rate=5e-4, schedule="cosine", warmup_epochs=3,
                            weight_decay=1e-2, label_smoothing=0.1, epochs=30, early_stopping=False),
    "head-first": TrainConfig(optimizer="adamw", learning_rate=1e-4, schedule="cosine", warmup_epochs=2,
                              weight_decay=1e-2, label_smoothing=0.1, epochs=30, early_stopping=False,
                              head_epochs=10, head_learning_rate=3e-3),
}
DEFAULT_RECIPE = "adamw-cosine"
# What --patience defaults to, said once for the commands that take a recipe.
RECIPE_PATIENCE = ("the recipe's: " + ", ".join(f"{patience} in {name}" for name, patience in
                   ((name, r.patience) for name, r in RECIPES.items() if r.early_stopping))
                   + "; the others do not stop early")
# The default of a pretrained model that trains more than its head (docs/training.md, "Recipes").
PRETRAINED_RECIPE = "head-first"
# The model to train for the best genre model on real music, and its recipe: chosen on real GTZAN
# excerpts by 5-fold and across artists (docs/results.md); printed by
# ``python -m zoo.list --recommended``.
RECOMMENDED_MODEL = ("musicnn-msd+efficientat-mn04_train=head", "adamw-cosine")


def default_recipe(model_config: ModelConfig) -> str:
    """The recipe a model trains with unless another is named: ``head-first`` for the pretrained models
    that train more than their head, ``adamw-cosine`` for the others (a head alone on frozen features
    trains like a small model)."""
    return PRETRAINED_RECIPE if model_config.tagger and model_config.trainable != "head" else DEFAULT_RECIPE


def recipe(name: str, **changes) -> TrainConfig:
    """The recipe ``name`` with ``changes`` (:meth:`TrainConfig.changed`: ``epochs=2`` keeps a warm-up
    that fits).

    Raises:
        ValueError: for an unknown recipe or an invalid change.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {', '.join(RECIPES)}")
    return RECIPES[name].changed(**changes)


def run_name(model: str, recipe_name: str, default: str = DEFAULT_RECIPE) -> str:
    """The folder name of a trained model: the model name, with the recipe unless it is the model's default."""
    return model if recipe_name == default else f"{model}-{recipe_name}"


@dataclasses.dataclass(frozen=True)
class Reporting:
    """How a run reports, not what it computes (never saved as part of its configuration).

    Attributes:
        verbose: Keras ``fit`` verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        wandb_mode: ``online``, ``offline`` or ``disabled``.
        wandb_project: W&B project.
        wandb_group: W&B run group.
    """

    verbose: int = 2
    wandb_mode: str = "disabled"
    wandb_project: str = "gtzan-keras"
    wandb_group: str = "train"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a trained model's folder records in ``config.json``.

    Attributes:
        trial: The run's name (a trial name, or the model name for ``tuning.train``).
        model: The model's name as the user gave it (a registered alias or a canonical name).
        model_config: The resolved model configuration; its window is ``data.window_seconds``.
        training: The effective training configuration (concrete batch size and epochs).
        data: The data configuration.
        dataset: What was found in the data: ``data_dir`` (the resolved folder),
            ``synthetic``, ``genres``, ``sizes`` and ``unreadable_files``.
        space: The search space, for search trials.
    """

    trial: str
    model: str
    model_config: ModelConfig
    training: TrainConfig
    data: DataConfig
    dataset: dict[str, Any]
    space: str | None = None

    def __post_init__(self):
        if self.training.head_epochs and not self.model_config.tagger:
            raise ValueError(f"head-only epochs (head_epochs={self.training.head_epochs}) apply to pretrained models "
                             f"(musicnn-*, vgg-*), not to {self.model}")
        if self.model_config.window_seconds != self.data.window_seconds:
            raise ValueError(f"the model's window ({self.model_config.window_seconds} s) differs from the data's "
                             f"({self.data.window_seconds} s)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``data`` holds the data configuration and what was found in it.

        The window length is saved once, in ``data``: the model takes the data's windows.
        """
        model_config = {k: v for k, v in self.model_config.to_dict().items() if k != "window_seconds"}
        return {"space": self.space, "trial": self.trial, "model": self.model, "model_config": model_config,
                "training": self.training.to_dict(), "data": {**self.data.to_dict(), **self.dataset}}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Reads :meth:`to_dict` output back (extra top-level keys such as ``metrics`` are ignored).

        Raises:
            ValueError: if a section is missing or holds an invalid value.
        """
        try:
            data_fields = {f.name for f in dataclasses.fields(DataConfig)}
            data = values["data"]
            data_config = DataConfig.from_dict({k: v for k, v in data.items() if k in data_fields})
            model_values = {**values["model_config"]}
            # Folders written before the window was saved once hold it in both places.
            model_values.setdefault("window_seconds", data_config.window_seconds)
            return cls(
                trial=values["trial"], model=values["model"],
                model_config=ModelConfig.from_dict(model_values),
                training=TrainConfig.from_dict(values["training"]),
                data=data_config,
                dataset={k: v for k, v in data.items() if k not in data_fields},
                space=values.get("space"),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not a run configuration (missing or bad {error})") from None

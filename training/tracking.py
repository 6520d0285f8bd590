"""Weights & Biases through its Keras integration: one run per trained model, offline by default."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

WANDB_MODES = ("online", "offline", "disabled")


def default_wandb_mode() -> str:
    """``$WANDB_MODE`` if set, else ``online`` when a W&B API key is configured, else ``offline``."""
    if os.environ.get("WANDB_MODE") in WANDB_MODES:
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    netrc = Path.home() / ".netrc"
    return "online" if netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore") else "offline"


@contextlib.contextmanager
def wandb_run(mode: str, *, project: str, group: str, name: str, config: dict,
              directory: Path) -> Iterator[list[keras.callbacks.Callback]]:
    """A W&B run around one fit; yields the callbacks to add (none when ``mode`` is ``disabled``).

    Args:
        mode: ``online``, ``offline`` or ``disabled``.
        project: W&B project.
        group: Run group (the search space, ``train`` or ``crossval``).
        name: Run name (the trial).
        config: The resolved configuration, logged as the run's config.
        directory: Where W&B writes its files (offline runs are synced from there).
    """
    if mode == "disabled":
        yield []
        return
    # Imported here, by the runs that log: wandb takes seconds to load, and tests and most runs
    # without an account never need it.
    import wandb.integration.keras

    directory.mkdir(parents=True, exist_ok=True)
    # Offline, W&B's own lines (a dozen per run, each trial) would bury the command's output: the
    # runs are in ``directory``, and docs/search.md says how to sync them. Online keeps its link lines.
    run = wandb.init(project=project, group=group, name=name, config=config, mode=mode, dir=str(directory),
                     reinit="finish_previous", settings=wandb.Settings(silent=mode == "offline"))
    class MetricsLogger(wandb.integration.keras.WandbMetricsLogger):
        def _get_lr(self) -> float:
            # The integration calls ``.numpy()``, which only TensorFlow's tensors have; Keras 3
            # optimizers give the current rate (schedules included) as a scalar of any backend.
            return float(self.model.optimizer.learning_rate)

    try:
        yield [MetricsLogger(log_freq="epoch")]
    finally:
        run.finish()

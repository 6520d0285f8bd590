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
from data.errors import one_line
from training.config import Reporting, TrainConfig
from training.loop import PreparedData, prepare_data
from training.runstore import RunStore, RunStoreError, discard
from tuning.hypermodel import SpaceHyperModel
from tuning.spaces import Space
from tuning.tuner import make_tuner
from zoo.config import ModelConfig


def run_search(space: Space, data_config: DataConfig, training: TrainConfig, out_dir: Path, *, tuner: str = "grid",
               max_trials: int | None = None, seed: int = 42, base: ModelConfig | None = None, fresh: bool = False,
               reporting: Reporting = Reporting(), strategy: tf.distribute.Strategy | None = None) -> list[dict]:
    """Prepares the data, then searches ``space`` into ``out_dir`` (:func:`search_space`); returns the records.

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
    RunStore(out_dir).bind_settings("search", {"space": space.name, "tuner": tuner, "base": base.name if base else None,
                                               "data": data.config.to_dict(), "training": training.to_dict()})
    return search_space(space, data, training, out_dir, tuner=tuner, max_trials=max_trials, seed=seed, base=base,
                        reporting=reporting, strategy=strategy)


def mirrored_strategy() -> tuple[tf.distribute.Strategy, str]:
    """``tf.distribute.MirroredStrategy`` over this machine's GPUs (one CPU replica without), and what it is."""
    strategy = tf.distribute.MirroredStrategy()
    gpus = len(tf.config.list_physical_devices("GPU"))
    where = f"{gpus} GPU(s)" if gpus else "no GPU: 1 replica on the CPU"
    return strategy, f"{strategy.num_replicas_in_sync} replica(s), {where}"


def search_space(space: Space, data: PreparedData, training: TrainConfig, out_dir: Path, *, tuner: str = "grid",
                 max_trials: int | None = None, seed: int = 42, base: ModelConfig | None = None,
                 carried: dict | None = None, max_epochs: int | None = None, reporting: Reporting = Reporting(),
                 on_trial_end: Callable[[dict, dict], None] | None = None, strategy=None) -> list[dict]:
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

    Raises:
        RunStoreError: if KerasTuner's state in ``out_dir`` is damaged.
        RunFailed: in a worker whose chief cannot be reached.
    """
    check_tuner_state(out_dir)
    hypermodel = SpaceHyperModel(space, data, training, base=base, sample=tuner != "grid", carried=carried,
                                 max_epochs=max_epochs)
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

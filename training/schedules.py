"""Optimizers and per-epoch learning-rate schedules with PyTorch's semantics.

PyTorch's schedulers step once per epoch, after it: the learning rate of epoch ``e``
(0-based) is

* ``StepLR(step_size, gamma)``: ``lr0 * gamma ** (e // step_size)``;
* ``ExponentialLR(gamma)``: ``lr0 * gamma ** e``.

Keras' ``LearningRateScheduler`` sets the rate at the start of each epoch from these closed
forms, which gives the same rate in every epoch. ``cosine`` is per step instead: a linear
warm-up from zero, then Keras' ``CosineDecay`` to zero at the last step.
"""

from __future__ import annotations

import functools

import keras

from training.config import OPTIMIZERS, SCHEDULES, TrainConfig


def step_lr(epoch: int, *, initial: float, step_size: int, gamma: float) -> float:
    """Learning rate of 0-based ``epoch`` under PyTorch's ``StepLR``."""
    return initial * gamma ** (epoch // step_size)


def exponential_lr(epoch: int, *, initial: float, gamma: float) -> float:
    """Learning rate of 0-based ``epoch`` under PyTorch's ``ExponentialLR``."""
    return initial * gamma**epoch


def schedule_callback(schedule: str, *, initial: float, gamma: float = 1.0, step_size: int = 5):
    """A ``LearningRateScheduler`` for a per-epoch ``schedule``, or None for ``constant`` and
    ``cosine`` (a per-step schedule the optimizer holds, see :func:`learning_rate`).

    Raises:
        ValueError: for an unknown schedule.
    """
    if schedule in ("constant", "cosine"):
        return None
    if schedule == "steplr":
        rate = functools.partial(step_lr, initial=initial, step_size=step_size, gamma=gamma)
    elif schedule == "exponentiallr":
        rate = functools.partial(exponential_lr, initial=initial, gamma=gamma)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: rate(epoch))


def learning_rate(train: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning rate: a number, or for ``cosine`` a per-step schedule."""
    if train.schedule != "cosine":
        return train.learning_rate
    warmup = train.warmup_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(
        0.0 if warmup else train.learning_rate, decay_steps=max(1, (train.epochs - train.warmup_epochs) * steps_per_epoch),
        warmup_target=train.learning_rate if warmup else None, warmup_steps=warmup)


def make_optimizer(name: str, learning_rate, weight_decay: float = 0.0) -> keras.optimizers.Optimizer:
    """Builds ``adagrad``, ``adam``, ``rmsprop`` or ``adamw`` (with decoupled ``weight_decay``).

    Raises:
        ValueError: for an unknown optimizer.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    classes = {"adagrad": keras.optimizers.Adagrad, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    return classes[name](learning_rate=learning_rate)

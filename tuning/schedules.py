"""Optimizers and per-epoch learning-rate schedules with PyTorch's semantics.

PyTorch's schedulers step once per epoch, after it: the learning rate of epoch ``e``
(0-based) is

* ``StepLR(step_size, gamma)``: ``lr0 * gamma ** (e // step_size)``;
* ``ExponentialLR(gamma)``: ``lr0 * gamma ** e``.

Keras' ``LearningRateScheduler`` sets the rate at the start of each epoch from these closed
forms, which gives the same rate in every epoch.
"""

from __future__ import annotations

import functools

import keras

OPTIMIZERS = ("adagrad", "adam", "rmsprop")
SCHEDULES = ("constant", "steplr", "exponentiallr")


def step_lr(epoch: int, *, initial: float, step_size: int, gamma: float) -> float:
    """Learning rate of 0-based ``epoch`` under PyTorch's ``StepLR``."""
    return initial * gamma ** (epoch // step_size)


def exponential_lr(epoch: int, *, initial: float, gamma: float) -> float:
    """Learning rate of 0-based ``epoch`` under PyTorch's ``ExponentialLR``."""
    return initial * gamma**epoch


def schedule_callback(schedule: str, *, initial: float, gamma: float = 1.0, step_size: int = 5):
    """A ``LearningRateScheduler`` for ``schedule``, or None for ``"constant"``.

    Raises:
        ValueError: for an unknown schedule.
    """
    if schedule == "constant":
        return None
    if schedule == "steplr":
        rate = functools.partial(step_lr, initial=initial, step_size=step_size, gamma=gamma)
    elif schedule == "exponentiallr":
        rate = functools.partial(exponential_lr, initial=initial, gamma=gamma)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    return keras.callbacks.LearningRateScheduler(lambda epoch, lr: rate(epoch))


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Builds ``adagrad``, ``adam`` or ``rmsprop`` with ``learning_rate``.

    Raises:
        ValueError: for an unknown optimizer.
    """
    classes = {"adagrad": keras.optimizers.Adagrad, "adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    return classes[name](learning_rate=learning_rate)

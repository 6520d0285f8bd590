"""The study's plan as data: its sections in order, what each carries forward, its quick variant.

Loads without TensorFlow, so ``python -m tuning.study`` checks its flags against it before the
library loads. The sections that run it are in ``study.sections``.
"""

from __future__ import annotations

# The study's sections, in its order: each a search space (tuning.spaces holds more, like probe).
SECTIONS = ("mlp", "cnn", "activation", "optimizer", "training", "regularization", "input")
# --quick: every trial this short, on this small synthetic set when no data is given.
QUICK = {"epochs": 2, "window_seconds": 1.5, "synthetic": {"clips_per_genre": 5, "seconds": 3.0, "seed": 0}}

# Where each section takes its base model from: the first of these sections that finished.
BASE_FROM = {
    "activation": ("cnn",),
    "optimizer": ("activation", "cnn"),
    "training": ("activation", "cnn"),
    "regularization": ("activation", "cnn"),
    "input": ("regularization", "activation", "cnn"),
}
# Which training fields each section carries from which earlier section.
CARRY_FROM = {
    "optimizer": ("optimizer", "learning_rate", "schedule", "gamma"),
    "training": ("batch_size",),
}
CARRIED_INTO = {"training": ("optimizer",), "regularization": ("optimizer", "training"),
                "input": ("optimizer", "training")}

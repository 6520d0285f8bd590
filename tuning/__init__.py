"""Hyperparameter search over the study's experiment families with KerasTuner: the search spaces,
the HyperModel and Tuner, the chief/worker launcher, and search and cross-validation as library
functions (``tuning.searching``, ``tuning.crossvalidation``)."""

# The --tuner values: the study's grid, or a sampler of the spaces' wider ranges.
TUNERS = ("grid", "random", "hyperband", "bayesian")
# Trials of the samplers when --max-trials is not given.
DEFAULT_WIDE_TRIALS = 20

"""The training engine: configs and recipes, the training loop, the run store, metrics, callbacks,
learning-rate schedules and W&B tracking. Search trials, ``tuning.train`` and cross-validation
all train through ``training.loop.train_run``."""

"""Hyperparameter search over the study's experiment families (KerasTuner)."""

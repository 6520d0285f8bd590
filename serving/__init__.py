"""Serving: evaluation of trained run folders on their test split, SavedModel export, predictions."""

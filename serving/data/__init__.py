"""Labelled text for training and evaluation: streamed readers, the split rule, the default data."""

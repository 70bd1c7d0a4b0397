"""The run folder: its files, checkpoints, logs and report."""

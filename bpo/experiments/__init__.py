"""Experiments on top of the library: statistics over seeds and tasks, sweeps, reports."""

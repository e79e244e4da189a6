"""Runs: a run's folder and what its stages share (config, methods, model path, data read on demand), and
its results file: written atomically, reopened later without rebuilding the run's data."""

"""Evaluation: the held-out sets (tokenized once per run) and the suite that scores any predictor on them,
with the pure metric functions (accuracy, perplexity change, retention, transfer, frontier, spectra)."""

"""Inference: one way to run any model (base, tuned, routed, generated) for every evaluation, export and
device path (`predictor`), with batched scoring and greedy generation underneath, and the sentence
embedder that metrics, routers and generators share."""

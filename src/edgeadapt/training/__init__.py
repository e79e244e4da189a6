"""Training: the one loop every method trains in (transformers' Trainer), its result, and the forgetting
budget that can watch it."""

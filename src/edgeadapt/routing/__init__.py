"""Routing: per request, which experts of an adapter library to apply, or none (the base model). Routers
(SCAR, a text classifier, an oracle), the routed predictor, and the single-model baselines made from a
library (merged adapters, PEFT's Arrow)."""

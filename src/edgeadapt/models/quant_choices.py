"""The precisions a frozen linear layer can be held in (`models.quantize` builds them): read by the methods'
config checks and by a device checking a received update, neither of which needs torch to say no."""

BITS = (4, 8, 16, 32)
QUANT_TYPES = ("nf4", "fp4")

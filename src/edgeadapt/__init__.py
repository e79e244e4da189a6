"""edgeadapt: specialize small causal language models for edge devices and measure what they forget.

Layers, each importing only the ones before it (docs/ARCHITECTURE.md):
core -> data -> models -> updates -> training -> inference -> evaluation -> runs -> studies -> deploy ->
reports -> cli.
"""

__version__ = "0.1.0"

"""edgeadapt: specialize small causal language models for edge devices and measure what they forget.

Stages, each importing only the ones before it:
config -> data -> models -> methods -> train -> evaluate -> report -> pipeline; `cli` wires them.
"""

__version__ = "0.1.0"

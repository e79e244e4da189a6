"""Models: the built-in offline models (fetched once from PyPI and converted), loading any causal LM, the
tiny test model, frozen low-precision layers, and the scored-position loss.

The names most callers need are re-exported here (`models.load`, `models.fetch`, ...).
"""

from edgeadapt.models.loading import (
    INFO_FILE,
    count_parameters,
    load,
    load_tokenizer,
    model_info,
    pick_device,
    pick_dtype,
)
from edgeadapt.models.registry import (
    BUILTIN,
    DEFAULT_MODEL,
    convert_gguf,
    convert_local,
    fetch,
    is_fetched,
    list_models,
    model_dir,
    resolve,
)
from edgeadapt.models.tiny import save_tiny_random, tiny_random_model, tiny_tokenizer

__all__ = [
    "BUILTIN",
    "DEFAULT_MODEL",
    "INFO_FILE",
    "convert_gguf",
    "convert_local",
    "count_parameters",
    "fetch",
    "is_fetched",
    "list_models",
    "load",
    "load_tokenizer",
    "model_dir",
    "model_info",
    "pick_device",
    "pick_dtype",
    "resolve",
    "save_tiny_random",
    "tiny_random_model",
    "tiny_tokenizer",
]

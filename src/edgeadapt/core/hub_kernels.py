"""bitsandbytes imported without reaching the Hugging Face Hub for code.

On a CPU with AVX512-BF16, `import bitsandbytes` asks the `kernels` package for an optional CPU kernel
(`kernels-community/quantization-bitsandbytes`), which downloads code from the Hub and runs it; since
transformers 5.25 requires `kernels`, every install has it. edgeadapt downloads nothing at run time (its
4-bit layers do not use that kernel: models/quantize.py turns the repacked path off), so that one lookup
runs as if the Hub were offline: a kernel already in the local cache still loads, nothing is fetched, and
the warnings it prints (about the trust check it skips, the kernel it did not find) are not shown, since a
user cannot act on them. Everything else keeps the Hub settings the user chose (a model may be a hub id).

PEFT imports bitsandbytes at its own import, from a dozen of our modules, so the guard is an import hook
installed when `edgeadapt.core` is imported that acts on the first `import bitsandbytes` only.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The loggers of what the import prints: the kernel lookup's, and bitsandbytes' "Failed to load CPU ...".
IMPORT_TIME_LOGGERS = ("kernels", "bitsandbytes.backends")


@contextmanager
def hub_offline_and_quiet() -> Iterator[None]:
    """Within: the Hub counts as offline for code that reads huggingface_hub's setting at call time (as
    `kernels.get_kernel` does), and the import-time loggers print only errors."""
    from huggingface_hub import constants

    saved_offline = constants.HF_HUB_OFFLINE
    loggers = [logging.getLogger(name) for name in IMPORT_TIME_LOGGERS]
    saved_levels = [logger.level for logger in loggers]
    constants.HF_HUB_OFFLINE = True
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_offline
        for logger, level in zip(loggers, saved_levels, strict=True):
            logger.setLevel(level)


class _BitsandbytesWithoutHub(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for `bitsandbytes`, returns the spec the other finders give, its loading wrapped
    in `hub_offline_and_quiet`, and leaves sys.meta_path (the module is imported once per process)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "bitsandbytes":
            return None
        sys.meta_path.remove(self)  # before asking the other finders, which would otherwise ask this one
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def load_without_hub(module):
            with hub_offline_and_quiet():
                load(module)

        spec.loader.exec_module = load_without_hub  # this spec's own loader instance
        return spec


def keep_bitsandbytes_off_the_hub() -> None:
    """Install the hook (once); nothing to do when bitsandbytes is already imported."""
    if "bitsandbytes" in sys.modules or any(isinstance(f, _BitsandbytesWithoutHub) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _BitsandbytesWithoutHub())

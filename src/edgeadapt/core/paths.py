"""Where edgeadapt keeps things: its cache folder, and files shipped inside installed packages."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

from edgeadapt.core.errors import UserError

ROUTER_FILE = re.compile(r"router[A-Za-z0-9_-]{0,32}\.(json|safetensors)")
"""Every file a router may keep in a library (and a package may carry under library/): JSON or safetensors,
never anything a reader would unpickle. Here, not beside the routers, so a device that only verifies and
unpacks packages never imports torch."""


def edgeadapt_home() -> Path:
    """Cache folder for converted models and built data packs: $EDGEADAPT_HOME or ~/.cache/edgeadapt."""
    return Path(os.environ.get("EDGEADAPT_HOME") or Path.home() / ".cache" / "edgeadapt")


def package_path(module: str, *parts: str, install_hint: str = "") -> Path:
    """A file inside an installed package, found without importing it (some import runtimes we lack)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        hint = install_hint or "run `make install` (or `pip install -e .`) in the project"
        raise UserError(f"Python package '{module}' is not installed: {hint}.")
    return Path(next(iter(spec.submodule_search_locations)), *parts)

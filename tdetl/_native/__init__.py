"""Compiled parts of tdetl (built by setup.py). Importing a missing one gives a clear error."""

from __future__ import annotations

import importlib
from types import ModuleType


def load(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"tdetl._native.{name}")
    except ImportError as e:
        raise ImportError(f"tdetl's compiled extension {name!r} is not built ({e});"
                          " reinstall with `pip install -e .` (needs a C compiler and Cython)") from None

"""Ground-level helpers (files, lazy attributes) and the ``transformers.utils`` names programs import:
``logging``, ``versions``, ``check_min_version`` and the ``is_*_available`` checks."""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = ("io", "lazy", "logging", "versions", "import_utils")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # binds itself on the package
    if name in ("check_min_version", "TRANSFORMERS_API_VERSION"):
        value = getattr(importlib.import_module(f"{__name__}.versions"), name)
    elif name.startswith("is_") and name.endswith("_available"):
        checks = importlib.import_module(f"{__name__}.import_utils")
        value = None if name in checks.INTEGRATION_CHECKS else getattr(checks, name, None)
        if value is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value

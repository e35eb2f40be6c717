"""The dtype a model is loaded in: from the ``dtype`` argument, the config, or the checkpoint itself."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from pretrained.loading.checkpoint import LazyTensor


def resolve_dtype(dtype: Any) -> torch.dtype | str | None:
    """``"float16"`` / ``torch.float16`` / ``"auto"`` / ``None`` → a ``torch.dtype``, ``"auto"`` or ``None``.

    Raises:
        ValueError: not a dtype torch knows.
    """
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype, a name such as 'bfloat16', or 'auto'; got {dtype!r}.")
    return value


def pick_dtype(dtype: Any, config_dtype: str | None, tensors: Iterable[LazyTensor]) -> torch.dtype | None:
    """The dtype to load in: an explicit one, else (``"auto"``) the config's, else that of the first
    floating-point tensor of the checkpoint (``tensors``, only read then). ``None``: each keeps its own."""
    dtype = resolve_dtype(dtype)
    if dtype != "auto":
        return dtype
    if config_dtype not in (None, "auto"):
        return resolve_dtype(config_dtype)
    for lazy in tensors:
        if lazy.dtype is not None and lazy.dtype.is_floating_point:
            return lazy.dtype
    return None

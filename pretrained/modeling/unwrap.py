"""`unwrap_model`: the model inside the containers training wraps it in (DistributedDataParallel,
DataParallel, FSDP's `.module`, `torch.compile`'s `_orig_mod`), as transformers' `modeling_utils`
offers it."""

from __future__ import annotations

from typing import Any


def _unwrap_once(model: Any) -> Any:
    while True:
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if inner is None:
            inner = getattr(model, "module", None)  # DDP, DataParallel, FSDP, DeepSpeed engines
        if inner is None or inner is model:
            return model
        model = inner


def unwrap_model(model: Any, recursive: bool = False) -> Any:
    """Return the module inside any number of training wrappers.

    Args:
        model: A module, possibly wrapped.
        recursive: Also unwrap wrapped submodules in place (a compiled or DDP-wrapped layer inside the
            model is replaced by the module it wraps).
    """
    model = _unwrap_once(model)
    if recursive:
        for name, child in list(model.named_children()):
            inner = unwrap_model(child, recursive=True)
            if inner is not child:
                setattr(model, name, inner)
    return model

"""Finish a load: tie weights, initialise only what the checkpoint lacked, fill buffers, place, report.

The model is any ``nn.Module`` that follows ``PreTrainedModel``'s conventions: ``_tie_pairs()``,
``tie_weights()``, ``_init_weights(module)``, the ``_keys_to_ignore_on_load_*`` patterns, and
``_init_buffers(device)`` on modules whose non-persistent buffers were left on the meta device.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pretrained.loading.device_map import dispatch
from pretrained.loading.load import LoadingInfo, filter_keys, set_tensor
from pretrained.loading.plan import Placement

logger = logging.getLogger("pretrained")


def finish_loading(model: nn.Module, info: LoadingInfo, placement: Placement) -> None:
    """Tie, initialise missing and mismatched weights, fill buffers, run the hooks' ``after_load``, dispatch
    across devices and switch to ``eval()``; ``info``'s key lists lose what the class says to ignore."""
    tied = model._tie_pairs()
    missing = set(info.missing_keys)
    for target, source in tied.items():
        if source in missing and target not in missing:  # only the tied copy was saved
            set_tensor(model, source, model.get_parameter(target))
            missing.discard(source)
        missing.discard(target)
    model.tie_weights()
    mismatched = {name for name, _, _ in info.mismatched_keys}
    initialise_missing(model, sorted(missing | mismatched), placement.device_for, placement.dtype)
    fill_buffers(model, placement.device_for)
    info.missing_keys = filter_keys(sorted(missing), model._keys_to_ignore_on_load_missing)
    info.unexpected_keys = filter_keys(info.unexpected_keys, model._keys_to_ignore_on_load_unexpected)
    for hook in placement.hooks:
        hook.after_load(model)
    if placement.record_map:
        model.hf_device_map = {k: str(v) for k, v in placement.device_map.items()}
    dispatch(model, placement.device_map)
    model.eval()


def initialise_missing(model: nn.Module, names: list[str], device_for: Callable[[str], torch.device],
                       dtype: torch.dtype | None) -> None:
    """Give the weights ``names`` memory and run ``_init_weights`` on their modules, sparing loaded ones."""
    by_module: dict[str, list[str]] = {}
    for name in names:
        module_name, _, leaf = name.rpartition(".")
        by_module.setdefault(module_name, []).append(leaf)
    for module_name, leaves in by_module.items():
        module = model.get_submodule(module_name)
        spared = {}
        for leaf, tensor in {**module._parameters, **module._buffers}.items():
            if tensor is None:
                continue
            full = f"{module_name}.{leaf}" if module_name else leaf
            want = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
            if leaf not in leaves:
                spared[leaf] = tensor  # loaded: put aside while _init_weights runs on a scratch copy
            set_tensor(module, leaf, torch.empty(tensor.shape, dtype=want, device=device_for(full)))
        with torch.no_grad():
            model._init_weights(module)
        for leaf, tensor in spared.items():
            set_tensor(module, leaf, tensor)
    if names:
        model.tie_weights()


def fill_buffers(model: nn.Module, device_for: Callable[[str], torch.device]) -> None:
    """Compute buffers left on the meta device (``_init_buffers``); move the others to their device."""
    for module_name, module in model.named_modules():
        for leaf, tensor in module._buffers.items():
            full = f"{module_name}.{leaf}" if module_name else leaf
            if tensor is not None and not tensor.is_meta and tensor.device != device_for(full):
                module._buffers[leaf] = tensor.to(device_for(full))
        meta = [b for b, t in module._buffers.items() if t is not None and t.is_meta]
        if not meta:
            continue
        init = getattr(module, "_init_buffers", None)
        if init is None:
            raise RuntimeError(f"{type(module).__name__} at {module_name!r} has buffers {meta} that the "
                               f"checkpoint does not hold and no _init_buffers(device) to compute them.")
        init(device_for(f"{module_name}.{meta[0]}" if module_name else meta[0]))


def report_loading(owner: str, info: LoadingInfo, path: Any) -> None:
    """Log what did not line up between checkpoint and model, in transformers' words."""
    if info.unexpected_keys:
        logger.warning("Some weights of the checkpoint at %s were not used when initializing %s: %s",
                       path, owner, info.unexpected_keys)
    if info.missing_keys:
        logger.warning("Some weights of %s were not initialized from the checkpoint at %s and are newly "
                       "initialized: %s. You should probably TRAIN this model on a down-stream task.",
                       owner, path, info.missing_keys)
    if info.mismatched_keys:
        shapes = ", ".join(f"{key}: checkpoint {list(saved)} vs model {list(built)}"
                           for key, saved, built in info.mismatched_keys)
        logger.warning("Some weights of %s were newly initialized because the shapes did not match: %s",
                       owner, shapes)

"""Stream checkpoint tensors into a model built on the meta device.

Each tensor is renamed, checked against the model's shape, passed through the hook chain
(dtype → quantizer → tensor parallel → placement) and assigned in place of the meta tensor,
so at most one copy of the weights exists at any time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from pretrained.loading.checkpoint import LazyTensor
from pretrained.loading.hooks import WeightHook, rename_key


@dataclass
class LoadingInfo:
    """What did not line up between checkpoint and model (``output_loading_info=True``)."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    error_msgs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list]:
        return {"missing_keys": self.missing_keys, "unexpected_keys": self.unexpected_keys,
                "mismatched_keys": self.mismatched_keys, "error_msgs": self.error_msgs}


def _match_key(name: str, expected: dict[str, torch.Tensor], prefix: str) -> str | None:
    """Model key for a checkpoint key, adding or removing the base-model prefix when needed."""
    if name in expected:
        return name
    if prefix:
        if name.startswith(prefix + ".") and name[len(prefix) + 1 :] in expected:
            return name[len(prefix) + 1 :]  # head checkpoint -> base model
        if f"{prefix}.{name}" in expected:
            return f"{prefix}.{name}"  # base checkpoint -> head model
    return None


def set_tensor(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Put ``tensor`` in place of the parameter or buffer called ``name`` (no copy)."""
    module_name, _, leaf = name.rpartition(".")
    module = model.get_submodule(module_name)
    old = module._parameters.get(leaf)
    if leaf in module._parameters:
        grad = old.requires_grad if old is not None else True
        module._parameters[leaf] = nn.Parameter(tensor, requires_grad=grad and tensor.is_floating_point())
    elif leaf in module._buffers:
        module._buffers[leaf] = tensor
    else:
        setattr(module, leaf, tensor)


def stream_weights(
    model: nn.Module,
    tensors: Iterable[LazyTensor],
    hooks: list[WeightHook],
    *,
    ignore_mismatched_sizes: bool = False,
) -> LoadingInfo:
    """Load every checkpoint tensor into ``model``; returns what was missing / unexpected / mismatched."""
    expected = dict(model.state_dict(keep_vars=True))
    non_persistent = {f"{m}.{b}" if m else b for m, mod in model.named_modules()
                      for b in mod._non_persistent_buffers_set}
    prefix = model.base_model_prefix
    info = LoadingInfo()
    loaded: set[str] = set()
    for lazy in tensors:
        name = _match_key(rename_key(lazy.name), expected, prefix)
        if name is None:
            plain = rename_key(lazy.name)
            owner = _claimed_part(plain, hooks, expected, prefix)
            if owner is not None:  # a stored part of a quantized parameter (its scales)
                hook, owner_name, part = owner
                hook.take(owner_name, part, lazy.load(), model)
                loaded.add(owner_name)
            elif plain not in non_persistent and plain.removeprefix(prefix + ".") not in non_persistent:
                info.unexpected_keys.append(lazy.name)
            continue
        target = expected[name]
        shape = lazy.shape
        want = tuple(target.shape)
        for hook in hooks:
            want = hook.target_shape(name, want)
        if shape != want:
            if ignore_mismatched_sizes:
                info.mismatched_keys.append((name, shape, want))
                continue
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(model).__name__}: size mismatch for {name}: the "
                f"checkpoint has shape {list(shape)}, the model expects {list(want)}. Pass "
                f"ignore_mismatched_sizes=True to skip it and initialise it randomly."
            )
        _check_dtype(lazy, name, target, hooks)
        raw = tensor = _read(name, lazy, hooks)
        for hook in hooks:
            tensor = hook(name, tensor, model)
            if tensor is None:  # the hook stored it itself (e.g. a quantized layer)
                break
        if tensor is not None:
            set_tensor(model, name, tensor)
        if tensor is None or tensor.data_ptr() != raw.data_ptr():
            lazy.release(raw)  # converted: the file's pages need not stay resident
        loaded.add(name)
    info.missing_keys = [k for k in expected if k not in loaded]
    return info


def _claimed_part(key: str, hooks: list[WeightHook], expected: dict[str, torch.Tensor], prefix: str
                  ) -> tuple[WeightHook, str, str] | None:
    """``(hook, parameter, part)`` when a hook stores ``key`` as a part of one of the model's parameters."""
    for hook in hooks:
        claim = hook.owner_of(key)
        if claim is None:
            continue
        owner, part = claim
        name = _match_key(owner, expected, prefix)
        if name is not None:
            return hook, name, part
    return None


def _read(name: str, lazy: LazyTensor, hooks: list[WeightHook]) -> torch.Tensor:
    """The tensor as the first hook that reads it itself returns it (e.g. only a tensor-parallel slice), else
    the whole tensor."""
    for hook in hooks:
        tensor = hook.read(name, lazy)
        if tensor is not None:
            return tensor
    return lazy.load()


def _check_dtype(lazy: LazyTensor, name: str, target: torch.Tensor, hooks: list[WeightHook]) -> None:
    """Refuse a checkpoint tensor whose dtype is not the parameter's unless both are floating point
    (a ``dtype=`` cast) or a hook claims it (a quantizer): int8 values read as fp32 are not the weights."""
    if not isinstance(target, nn.Parameter):
        return  # buffers (position ids, masks) keep what the checkpoint stores
    stored = lazy.dtype
    if stored is None or stored == target.dtype or (stored.is_floating_point and target.is_floating_point()):
        return
    if any(hook.claims_dtype(name, stored) for hook in hooks):
        return
    where = lazy.file if lazy.file != "<state_dict>" else "the state_dict given"
    raise TypeError(
        f"The checkpoint tensor {lazy.name!r} in {where} is {stored}, but the parameter {name} is "
        f"{target.dtype}; it is not a weight of this model (a quantized checkpoint needs its "
        "quantization_config and a quantizer that reads it)."
    )


def filter_keys(keys: list[str], patterns: Iterable[str] | None) -> list[str]:
    """Drop keys matching any of the class's ignore patterns (regexes)."""
    compiled = [re.compile(p) for p in patterns or ()]
    return [k for k in keys if not any(p.search(k) for p in compiled)]

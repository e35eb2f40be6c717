"""``device_map``: which device each module's weights go to while loading.

Accepted forms, as in transformers: ``None`` (CPU), one device (``"cuda:0"``, ``0``,
``torch.device``), a dict of module prefixes to devices (``""`` is the whole model), or
``"auto"`` / ``"balanced"`` / ``"sequential"``, which fill the accelerators in order and then the CPU
within ``max_memory``. When weights end up on several devices, forward hooks move each mapped
module's inputs to its device.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "B": 1}


def parse_size(size: int | str) -> int:
    """``"50MB"`` → 50_000_000, ``"2GiB"`` → 2 * 2**30; ints are bytes."""
    if isinstance(size, int):
        return size
    text = str(size).strip().upper().replace(" ", "")
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number = text[: -len(unit)]
            try:
                return int(float(number) * _UNITS[unit])
            except ValueError:
                break
    if text.isdigit():
        return int(text)
    raise ValueError(f"Cannot read {size!r} as a size; use bytes or a string such as '50MB' or '2GiB'.")


def as_device(device: Any) -> torch.device:
    if isinstance(device, int):
        return torch.device("cuda", device)
    if isinstance(device, torch.device):
        return device
    if device == "disk":
        raise ValueError("device_map 'disk' (offloading weights to disk) is not supported by pretrained.")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"Invalid device {device!r} in device_map.") from None


def normalize_device_map(
    device_map: Any,
    model: nn.Module,
    *,
    dtype: torch.dtype | None,
    max_memory: dict[Any, int | str] | None = None,
    no_split: Iterable[str] = (),
) -> dict[str, torch.device]:
    """Turn any accepted ``device_map`` into ``{module prefix: torch.device}``."""
    if device_map is None:
        return {"": torch.device("cpu")}
    if isinstance(device_map, str) and device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
        return infer_device_map(model, dtype=dtype, max_memory=max_memory, no_split=set(no_split))
    if not isinstance(device_map, dict):
        return {"": as_device(device_map)}
    mapping = {str(k): as_device(v) for k, v in device_map.items()}
    uncovered = [n for n, _ in _named_tensors(model) if _lookup(mapping, n) is None]
    if uncovered:
        raise ValueError(f"device_map does not cover {len(uncovered)} weight(s), e.g. {uncovered[0]!r}; "
                         f"add its module (or '') to the map.")
    return mapping


def _named_tensors(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


def _lookup(mapping: dict[str, torch.device], name: str) -> torch.device | None:
    """The device of the longest module prefix of ``name`` in ``mapping``."""
    while True:
        if name in mapping:
            return mapping[name]
        if not name:
            return None
        name = name.rpartition(".")[0]


def device_lookup(mapping: dict[str, torch.device]):
    """A cached ``name -> device`` function for the loader."""
    cache: dict[str, torch.device] = {}

    def device_for(name: str) -> torch.device:
        module = name.rpartition(".")[0]
        if module not in cache:
            cache[module] = _lookup(mapping, name) or torch.device("cpu")
        return cache[module]

    return device_for


def _available_memory(max_memory: dict[Any, int | str] | None) -> list[tuple[torch.device, int]]:
    budget: list[tuple[torch.device, int]] = []
    given = {(as_device(k) if k != "cpu" else torch.device("cpu")): parse_size(v)
             for k, v in (max_memory or {}).items()}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            dev = torch.device("cuda", i)
            if max_memory is not None and dev not in given:
                continue
            budget.append((dev, given.get(dev) or int(torch.cuda.mem_get_info(i)[0] * 0.9)))
    cpu = torch.device("cpu")
    if max_memory is None or cpu in given:
        default_cpu = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        budget.append((cpu, given.get(cpu, default_cpu)))
    return budget


def _size(module: nn.Module, dtype: torch.dtype | None) -> int:
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        itemsize = (dtype.itemsize if dtype is not None and t.is_floating_point() else t.element_size())
        total += t.numel() * itemsize
    return total


def infer_device_map(
    model: nn.Module,
    *,
    dtype: torch.dtype | None,
    max_memory: dict[Any, int | str] | None,
    no_split: set[str],
) -> dict[str, torch.device]:
    """Fill devices in order (accelerators, then CPU), never splitting a ``no_split`` module."""
    budget = _available_memory(max_memory)
    if not budget:
        raise ValueError("max_memory leaves no device to load the model on.")
    mapping: dict[str, torch.device] = {}
    slot, used = 0, 0
    queue: list[tuple[str, nn.Module]] = list(model.named_children())
    own = sum(p.numel() * p.element_size() for p in model.parameters(recurse=False))
    used += own
    while queue:
        name, module = queue.pop(0)
        size = _size(module, dtype)
        while slot < len(budget):
            if used + size <= budget[slot][1]:
                mapping[name] = budget[slot][0]
                used += size
                break
            children = list(module.named_children())
            if children and type(module).__name__ not in no_split:
                queue[:0] = [(f"{name}.{c}", m) for c, m in children]
                mapping.update({f"{name}.{p}": budget[slot][0] for p, _ in module.named_parameters(recurse=False)})
                break
            slot, used = slot + 1, 0
        else:
            raise ValueError(f"The model does not fit in max_memory: {name!r} ({size} bytes) has no room left "
                             f"(offloading to disk is not supported).")
    if own:
        mapping.setdefault("", budget[0][0])
    _keep_tied_together(model, mapping)
    return _collapse(mapping)


def _keep_tied_together(model: nn.Module, mapping: dict[str, torch.device]) -> None:
    """A tied weight is one tensor: the module using it as a tied target (``lm_head``) runs on its
    source's device (the input embeddings'), and an aliased parameter follows its target's module."""
    if len(set(mapping.values())) <= 1 or not hasattr(model, "_tie_pairs"):
        return
    aliased = getattr(model, "_aliased_weights_keys", {})
    for target, source in model._tie_pairs().items():
        device = _lookup(mapping, source)
        module = target.rpartition(".")[0]
        if target in aliased or device is None or not module:
            continue
        for key in [k for k in mapping if k.startswith(module + ".")]:
            del mapping[key]
        mapping[module] = device
    for target, source in aliased.items():
        device = _lookup(mapping, target)
        if device is not None:
            mapping[source] = device


def spans_devices(model: nn.Module) -> bool:
    """Whether ``model`` was loaded with a ``device_map`` that put its weights on several devices."""
    return len(set((getattr(model, "hf_device_map", None) or {}).values())) > 1


def _collapse(mapping: dict[str, torch.device]) -> dict[str, torch.device]:
    devices = set(mapping.values())
    return {"": devices.pop()} if len(devices) == 1 else mapping


def dispatch(model: nn.Module, mapping: dict[str, torch.device]) -> None:
    """When weights sit on several devices, move each mapped module's inputs to its device."""
    if len(set(mapping.values())) <= 1:
        return
    for prefix, device in mapping.items():
        if not prefix:
            continue
        try:
            module = model.get_submodule(prefix)
        except AttributeError:
            continue  # a parameter name, not a module
        module.register_forward_pre_hook(_mover(device), with_kwargs=True)


def _mover(device: torch.device):
    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, (list, tuple)):
            return type(value)(move(v) for v in value)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return move(args), move(kwargs)

    return hook

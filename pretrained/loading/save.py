"""Write a state dict as safetensors shards with an index, atomically.

Every file is written under a temporary name and renamed into place; the index is
renamed last and stale shards are removed only after it, so a failure while the
tensors are being written leaves the previous save intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from pretrained.loading.checkpoint import PT_INDEX, PT_WEIGHTS, SAFE_INDEX, SAFE_WEIGHTS, with_variant
from pretrained.loading.device_map import parse_size
from pretrained.utils.io import atomic_path, atomic_write_text


def save_model(
    model: nn.Module,
    save_directory: str | os.PathLike,
    *,
    is_main_process: bool = True,
    state_dict: dict[str, torch.Tensor] | None = None,
    max_shard_size: int | str = "50GB",
    safe_serialization: bool = True,
    variant: str | None = None,
) -> None:
    """``PreTrainedModel.save_pretrained``: the weights (tied ones once), ``config.json`` and, for models that
    generate, ``generation_config.json``."""
    directory = Path(save_directory)
    if directory.is_file():
        raise ValueError(f"save_directory {directory} is a file, not a folder.")
    if not is_main_process:
        return
    directory.mkdir(parents=True, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.config.dtype = str(model.dtype).removeprefix("torch.")
    metadata: dict[str, str] = {}
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        if not quantizer.is_serializable():
            method = quantizer.quantization_config.quant_method
            raise ValueError(f"The model is quantized with {getattr(method, 'value', method)}, which cannot be saved.")
        if state_dict is None:  # quantized layers are saved in the method's stored form (scales, metadata)
            state_dict, metadata = quantizer.get_state_dict_and_metadata(model)
            if metadata and not safe_serialization:
                raise ValueError("This quantized model describes its tensors in the safetensors metadata; save it "
                                 "with safe_serialization=True.")
    if state_dict is None:
        state_dict = model.state_dict()
    state_dict = dedupe_shared(state_dict, prefer_drop=set(model._tie_pairs()))
    save_state_dict(state_dict, directory, max_shard_size=max_shard_size,
                    safe_serialization=safe_serialization, variant=variant, metadata=metadata or None)
    model.config.save_pretrained(directory)
    if model.generation_config is not None and hasattr(model.generation_config, "save_pretrained"):
        model.generation_config.save_pretrained(directory)


def dedupe_shared(state_dict: dict[str, torch.Tensor], prefer_drop: set[str]) -> dict[str, torch.Tensor]:
    """Keep one name per shared storage (safetensors refuses aliases); drop tied targets first."""
    by_storage: dict[tuple, list[str]] = {}
    for name, tensor in state_dict.items():
        if tensor.device.type == "meta":
            continue
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        by_storage.setdefault(key, []).append(name)
    keep = {}
    for names in by_storage.values():
        names = sorted(names, key=lambda n: n in prefer_drop)  # stable: otherwise the state-dict order
        keep[names[0]] = state_dict[names[0]]
    return {n: keep[n] for n in state_dict if n in keep}


def shard(state_dict: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Split in order into shards of at most ``max_bytes`` (a bigger tensor gets a shard of its own)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in state_dict.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    return shards


_SHARD = re.compile(r"^(model|pytorch_model)(\.[\w-]+)?-\d{5}-of-\d{5}\.(safetensors|bin)$")


def save_state_dict(
    state_dict: dict[str, torch.Tensor],
    save_directory: str | os.PathLike,
    *,
    max_shard_size: int | str = "50GB",
    safe_serialization: bool = True,
    variant: str | None = None,
    metadata: dict[str, str] | None = None,
) -> list[str]:
    """Save ``state_dict`` into ``save_directory``; returns the weight file names written."""
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    shards = shard(tensors, parse_size(max_shard_size))
    single = with_variant(SAFE_WEIGHTS if safe_serialization else PT_WEIGHTS, variant)
    index_name = with_variant(SAFE_INDEX if safe_serialization else PT_INDEX, variant)
    if len(shards) == 1:
        names = [single]
    else:
        stem, ext = single.rsplit(".", 1)
        names = [f"{stem}-{i + 1:05d}-of-{len(shards):05d}.{ext}" for i in range(len(shards))]

    # Stage every file first; only when all are written do they replace the old ones.
    with contextlib.ExitStack() as stack:
        for name, part in zip(names, shards):
            tmp = stack.enter_context(atomic_path(directory / name))
            _write(part, tmp, safe_serialization, metadata)
    if len(shards) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
            "weight_map": {k: name for name, part in zip(names, shards) for k in part},
        }
        atomic_write_text(directory / index_name, json.dumps(index, indent=2, sort_keys=True) + "\n")
    keep = set(names) | ({index_name} if len(shards) > 1 else set())
    _remove_stale(directory, keep, stale={single, index_name}, stem=single.split(".", 1)[0], variant=variant)
    return names


def _write(part: dict[str, torch.Tensor], path: str, safe: bool, metadata: dict[str, str] | None) -> None:
    if safe:
        from safetensors.torch import save_file

        save_file({k: v.cpu() for k, v in part.items()}, path, metadata={"format": "pt", **(metadata or {})})
    else:
        torch.save({k: v.cpu() for k, v in part.items()}, path)


def _remove_stale(directory: Path, keep: set[str], stale: set[str], stem: str, variant: str | None) -> None:
    # Older weight files of the same format and variant would shadow or contradict the new save.
    for path in directory.iterdir():
        name = path.name
        if name in keep:
            continue
        m = _SHARD.match(name)
        is_old_shard = bool(m) and m.group(1) == stem and (m.group(2) or "")[1:] == (variant or "")
        if name in stale or is_old_shard:
            path.unlink()

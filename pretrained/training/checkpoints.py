"""Checkpoint folders: transformers' file names, written atomically, found and rotated.

A checkpoint is built in `tmp-checkpoint-N/` and renamed to `checkpoint-N/` only
once every file is written, so a run killed mid-write leaves a `tmp-` folder
that resume never picks up (and the next save clears). A `checkpoint-N/` without
`trainer_state.json` (a half-written one from another writer) is ignored too, and resume skips, with a
warning, one whose state does not parse or that holds no weights.
Files are not fsync'ed and torch files carry no CRC32 checksums: the rename
protects against a killed process (not a power cut), and skipping both shortens
the time a save blocks training.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import re
import shutil
import threading
from typing import Any

import torch
from torch import nn

from pretrained.utils.io import replace_folder

logger = logging.getLogger(__name__)

PREFIX_CHECKPOINT_DIR = "checkpoint"
TRAINING_ARGS_NAME = "training_args.bin"
TRAINER_STATE_NAME = "trainer_state.json"
OPTIMIZER_NAME = "optimizer.pt"
SCHEDULER_NAME = "scheduler.pt"
SCALER_NAME = "scaler.pt"
RNG_STATE_NAME = "rng_state.pth"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PT_WEIGHTS_NAME = "pytorch_model.bin"

_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_TMP_PREFIX = "tmp-"


def is_complete_checkpoint(path: str) -> bool:
    """A checkpoint folder that finished writing (it holds `trainer_state.json`)."""
    return os.path.isfile(os.path.join(path, TRAINER_STATE_NAME))


def sorted_checkpoints(output_dir: str, best_model_checkpoint: str | None = None) -> list[str]:
    """Complete checkpoints by step, oldest first; the best one is moved next to last to protect it."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        m = _CHECKPOINT_RE.match(name)
        path = os.path.join(output_dir, name)
        if m and os.path.isdir(path) and is_complete_checkpoint(path):
            found.append((int(m.group(1)), path))
    paths = [p for _, p in sorted(found)]
    if best_model_checkpoint is not None:
        best = os.path.join(output_dir, os.path.basename(os.path.normpath(best_model_checkpoint)))
        if best in paths and paths[-1] != best:
            paths.remove(best)
            paths.insert(len(paths) - 1, best)
    return paths


def checkpoint_problem(path: str) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from, or None when it can.

    It must hold a `trainer_state.json` that parses as a JSON object and model weights.
    """
    state = os.path.join(path, TRAINER_STATE_NAME)
    try:
        with open(state, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return f"no {TRAINER_STATE_NAME}"
    except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
        return f"{TRAINER_STATE_NAME} does not parse ({e})"
    if not isinstance(data, dict):
        return f"{TRAINER_STATE_NAME} holds a {type(data).__name__}, not a JSON object"
    if not any(
        os.path.isfile(os.path.join(path, n)) for n in (WEIGHTS_NAME, WEIGHTS_INDEX_NAME, PT_WEIGHTS_NAME)
    ):
        return f"no model weights ({WEIGHTS_NAME}, {WEIGHTS_INDEX_NAME} or {PT_WEIGHTS_NAME})"
    return None


def get_last_checkpoint(folder: str) -> str | None:
    """The newest checkpoint in `folder` that can be resumed from, or None.

    A newer `checkpoint-N` whose `trainer_state.json` does not parse, or that holds no weights, is
    skipped with a warning naming it and what is wrong.
    """
    for path in reversed(sorted_checkpoints(folder)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        logger.warning("skipping checkpoint %s: %s; resuming from an older one", path, problem)
    return None


def rotate_checkpoints(
    output_dir: str, save_total_limit: int | None, best_model_checkpoint: str | None
) -> None:
    """Delete the oldest checkpoints beyond `save_total_limit`, never the newest or the best."""
    if not save_total_limit:
        return
    paths = sorted_checkpoints(output_dir, best_model_checkpoint)
    protected = {paths[-1]} if paths else set()
    if best_model_checkpoint is not None:
        protected.add(os.path.join(output_dir, os.path.basename(os.path.normpath(best_model_checkpoint))))
    keep = max(save_total_limit, len(protected))
    for path in paths:
        if len(paths) <= keep:
            break
        if path not in protected:
            shutil.rmtree(path, ignore_errors=True)
            paths = [p for p in paths if p != path]


def begin_checkpoint(output_dir: str, step: int) -> tuple[str, str]:
    """Return `(tmp_dir, final_dir)` for step `step`, with an empty `tmp_dir` ready to fill."""
    os.makedirs(output_dir, exist_ok=True)
    clear_partial_checkpoints(output_dir)
    final = os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}")
    tmp = os.path.join(output_dir, f"{_TMP_PREFIX}{PREFIX_CHECKPOINT_DIR}-{step}")
    os.makedirs(tmp)
    return tmp, final


def publish_checkpoint(tmp: str, final: str) -> None:
    """Rename the finished `tmp` folder to `final` (replacing an older folder of that name)."""
    replace_folder(tmp, final)


def clear_partial_checkpoints(output_dir: str) -> None:
    """Remove `tmp-checkpoint-*` folders left by a run killed while saving."""
    if not os.path.isdir(output_dir):
        return
    for name in os.listdir(output_dir):
        if name.startswith(_TMP_PREFIX + PREFIX_CHECKPOINT_DIR):
            shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)


def _no_crc32() -> contextlib.AbstractContextManager:
    # CRC32 checksums of the zip records are a large share of torch.save's time, and the
    # temp-file-then-rename write already rules out torn files, so skip them (torch >= 2.6)
    try:
        from torch.utils.serialization import config

        return config.patch({"save.compute_crc32": False})
    except (ImportError, AttributeError):
        return contextlib.nullcontext()


def atomic_torch_save(obj: Any, path: str) -> None:
    """`torch.save` to a temp file, then rename."""
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    with _no_crc32():
        torch.save(obj, tmp)
    os.replace(tmp, path)


def torch_load(path: str, numpy_arrays: bool = False) -> Any:
    """Load a `.pt`/`.pth`/`.bin` file with `weights_only=True` (no arbitrary pickles).

    Args:
        path: The file.
        numpy_arrays: Also accept pickled numpy arrays (transformers' `rng_state.pth` holds numpy's RNG
            keys as one): exactly the globals that rebuild a plain array, for this load only.
    """
    if not numpy_arrays:
        return torch.load(path, map_location="cpu", weights_only=True)
    with torch.serialization.safe_globals(_numpy_array_globals()):
        return torch.load(path, map_location="cpu", weights_only=True)


def _numpy_array_globals() -> list[Any]:
    """What unpickling a numpy array of a builtin dtype calls: the array rebuild, `ndarray`, `dtype`
    and the uint32 dtype's class (numpy's RNG keys); no other callable."""
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


# ---- model weights --------------------------------------------------------------------------


def save_model_weights(
    model: nn.Module, output_dir: str, state_dict: dict[str, torch.Tensor] | None = None
) -> None:
    """`model.save_pretrained` when the model has it, else its state dict as `model.safetensors`.

    `state_dict` (e.g. a host copy taken earlier) is written instead of the model's live tensors.
    """
    if hasattr(model, "save_pretrained"):
        model.save_pretrained(output_dir, state_dict=state_dict)
        return
    from safetensors.torch import save_file

    state_dict = model.state_dict() if state_dict is None else state_dict
    unique: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in state_dict.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset())
        if key in seen:  # a tied weight: stored once, restored by load_model_weights
            continue
        seen.add(key)
        unique[name] = tensor.detach().contiguous()
    os.makedirs(output_dir, exist_ok=True)
    tmp = os.path.join(output_dir, f"{WEIGHTS_NAME}.tmp-{os.getpid()}-{threading.get_ident()}")
    save_file(unique, tmp, metadata={"format": "pt"})
    os.replace(tmp, os.path.join(output_dir, WEIGHTS_NAME))


def clone_to_host(obj: Any, _memo: dict | None = None) -> Any:
    """A copy of nested dicts/lists/tuples of tensors with every tensor copied to the CPU.

    Tensors sharing storage (tied weights) stay shared in the copy.
    """
    memo = {} if _memo is None else _memo
    if isinstance(obj, torch.Tensor):
        key = (obj.untyped_storage().data_ptr(), obj.storage_offset(), tuple(obj.shape), obj.dtype)
        if key not in memo:
            memo[key] = obj.detach().to("cpu", copy=True)
        return memo[key]
    if isinstance(obj, dict):
        return type(obj)((k, clone_to_host(v, memo)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_to_host(v, memo) for v in obj)
    return copy.deepcopy(obj)


def _read_state_dict(folder: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    single = os.path.join(folder, WEIGHTS_NAME)
    index = os.path.join(folder, WEIGHTS_INDEX_NAME)
    if os.path.isfile(single):
        return load_file(single)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out: dict[str, torch.Tensor] = {}
        for shard in shards:
            out.update(load_file(os.path.join(folder, shard)))
        return out
    pt = os.path.join(folder, PT_WEIGHTS_NAME)
    if os.path.isfile(pt):
        return torch_load(pt)
    raise OSError(
        f"no model weights in {folder}: looked for {WEIGHTS_NAME}, {WEIGHTS_INDEX_NAME}, {PT_WEIGHTS_NAME}"
    )


def load_model_weights(model: nn.Module, folder: str) -> None:
    """Copy the weights saved in `folder` into `model` in place (the optimizer keeps its parameters)."""
    state_dict = _read_state_dict(folder)
    result = model.load_state_dict(state_dict, strict=False)
    # keys missing because they are tied to a loaded tensor (e.g. lm_head and embeddings) are fine
    shared: dict[int, list[str]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        shared.setdefault(id(tensor), []).append(name)
    loaded = set(state_dict)
    missing = [
        k
        for k in result.missing_keys
        if not any(n in loaded for ns in shared.values() if k in ns for n in ns)
    ]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {folder} does not match the model: missing {missing[:10]}, "
            f"unexpected {result.unexpected_keys[:10]}"
        )

"""Distributed checkpoints of a model and its optimizer (``torch.distributed.checkpoint``).

Every rank writes its own shards to one folder, in parallel, with a metadata file describing the global
tensors. The folder loads back onto any layout: another number of ranks, another mesh shape (FSDP over
2 ranks, saved; one process, loaded), FSDP or tensor-parallel ``DTensor``s or plain tensors — each rank
reads exactly the slices its parameters hold. State dicts are taken with
``torch.distributed.checkpoint.state_dict`` so they are keyed by parameter name (``model.layers.0...``),
optimizer state included, whatever wraps the model (FSDP, DDP, ``torch.compile``).

Without an initialised process group (one process) the same calls read and write the folder alone.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from pretrained.utils.io import replace_folder

__all__ = ["load", "save"]

_MODEL_KEY = "model"
_OPTIMIZER_KEY = "optimizer"


def _state_dicts(model: nn.Module, optimizer: torch.optim.Optimizer | None) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    if optimizer is None:
        return {_MODEL_KEY: get_model_state_dict(model)}
    model_state, optimizer_state = get_state_dict(model, optimizer)
    return {_MODEL_KEY: model_state, _OPTIMIZER_KEY: optimizer_state}


def save(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (and ``optimizer``'s state) to the folder ``path``; every rank calls it.

    Args:
        path: The checkpoint folder. It is written as ``<path>.partial`` and renamed when complete,
            replacing an older folder of that name (so every rank must see the same file system).
        model: The model, sharded or not.
        optimizer: Its optimizer, whose state (moments, steps) and hyper-parameters are saved by
            parameter name.
        extra: More entries to save alongside (tensors, numbers, strings), read back by :func:`load`.
    """
    import torch.distributed.checkpoint as dcp

    state = _state_dicts(model, optimizer)
    if extra:
        clash = set(extra) & set(state)
        if clash:
            raise ValueError(f"extra keys {sorted(clash)} clash with the checkpoint's own entries")
        state.update(extra)
    path = os.path.abspath(os.fspath(path))
    # written under a temporary name and renamed once complete, so that a run killed while saving
    # never leaves a folder that looks like a checkpoint (or half-replaces an older one)
    partial = f"{path}.partial"
    main = not dist.is_initialized() or dist.get_rank() == 0
    if main and os.path.exists(partial):
        shutil.rmtree(partial)
    _barrier()
    dcp.save(state, checkpoint_id=partial)  # returns once every rank's files and the metadata are written
    _barrier()
    if main:
        replace_folder(partial, path)
    _barrier()


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def load(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Read a folder written by :func:`save` into ``model`` (and ``optimizer``), in place; every rank
    calls it, whatever the number of ranks or the layout that saved it.

    Args:
        path: The checkpoint folder.
        model: The model to fill, already sharded the way it will run.
        optimizer: Its optimizer (built over the model's current parameters); its state is filled.
        extra: Entries to fill from the checkpoint (their values give the types and shapes expected);
            updated in place.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_state_dict

    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, ".metadata")):
        raise FileNotFoundError(f"{path} is not a distributed checkpoint (no .metadata file in it)")
    # (a fresh optimizer gets zero state tensors from get_state_dict: places for the load to fill)
    state = _state_dicts(model, optimizer)
    if extra:
        state.update(extra)
    dcp.load(state, checkpoint_id=path)
    if optimizer is None:
        set_model_state_dict(model, state[_MODEL_KEY])
    else:
        set_state_dict(
            model, optimizer, model_state_dict=state[_MODEL_KEY], optim_state_dict=state[_OPTIMIZER_KEY]
        )
    if extra:
        for key in extra:
            extra[key] = state[key]

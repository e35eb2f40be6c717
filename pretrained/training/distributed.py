"""`Trainer` over several processes: started by torchrun, data-parallel with DDP or FSDP2.

torchrun (``python -m torch.distributed.run``, or ``pretrained train --nproc-per-node N``) starts one
process per device and tells each its place in ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. The Trainer
then: joins the process group (`init_distributed`; NCCL on CUDA, gloo on the CPU, or ``ddp_backend``;
freed at exit by `pretrained.distributed.mesh.close_distributed`);
wraps the model (`wrap_model`: DDP by default, FSDP2 with ``fsdp``); gives each process its own
batches (`EpochSampler` with ``num_replicas``: batch ``k`` of the epoch goes to process
``k % world_size``, as accelerate deals them out, so a step's global batch is the one one process with
``world_size`` times the batch would see); counts the label items over all processes, so that losses
and gradients are those of the global batch; logs the mean loss of all processes; and writes files from
the main process only, with barriers around checkpoint writes.

This module does not import torch at import time (`TrainingArguments` reads `fsdp_settings`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

_FSDP_OPTIONS = ("full_shard", "shard_grad_op", "offload", "auto_wrap")
# fsdp_config keys (without their optional `fsdp_` prefix) and what is done with them
_FSDP_CONFIG_KEYS = {
    "version", "transformer_layer_cls_to_wrap", "reshard_after_forward", "cpu_offload", "offload_params",
    "auto_wrap_policy", "min_num_params", "activation_checkpointing", "state_dict_type",
    "cpu_ram_efficient_loading", "sync_module_states", "use_orig_params", "limit_all_gathers",
    "forward_prefetch", "backward_prefetch", "mixed_precision_policy", "xla", "xla_fsdp_grad_ckpt",
}  # fmt: skip


def world_size() -> int:
    """Processes in this run: torchrun's ``WORLD_SIZE`` (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_index() -> int:
    """This process's global rank (torchrun's ``RANK``; 0 without torchrun)."""
    return int(os.environ.get("RANK", "0"))


def local_process_index() -> int:
    """This process's rank on its machine (torchrun's ``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "y", "on", "t")


@dataclass(frozen=True)
class FSDPSettings:
    """What `fsdp` / `fsdp_config` ask for, as `pretrained.distributed.fsdp.apply_fsdp` takes it."""

    reshard_after_forward: bool = True
    cpu_offload: bool = False
    layer_classes: tuple[str, ...] | None = None
    activation_checkpointing: bool = False


def fsdp_settings(fsdp: Any, fsdp_config: Any) -> FSDPSettings | None:
    """Validate transformers' `fsdp` and `fsdp_config` arguments; None when FSDP is off.

    `fsdp` is `True`, or (the older spellings) a string or list of `full_shard`, `shard_grad_op`,
    `offload`, `auto_wrap`. `fsdp_config` is a dict or a JSON file; FSDP2 only (`version` 2), layers
    chosen by class name (`transformer_layer_cls_to_wrap`, default: the model's `_no_split_modules`).
    What FSDP1 or XLA alone can do (`hybrid_shard`, `no_shard`, `min_num_params`, prefetch settings) is
    refused by name.
    """
    if not fsdp:
        if fsdp_config:
            raise ValueError("`fsdp_config` is given but `fsdp` is off: set fsdp=True (or 'full_shard')")
        return None
    config = fsdp_config or {}
    if isinstance(config, str):
        import json

        try:
            with open(config, encoding="utf-8") as f:
                config = json.load(f)
        except (OSError, ValueError) as e:
            raise ValueError(f"`fsdp_config` {config!r} is not a readable JSON file: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(f"`fsdp_config` must be a dict or a JSON file path, got {type(config).__name__}")
    config = {k.removeprefix("fsdp_"): v for k, v in config.items()}
    unknown = sorted(set(config) - _FSDP_CONFIG_KEYS)
    if unknown:
        raise ValueError(f"`fsdp_config` has unknown keys: {', '.join(unknown)}")
    if int(config.get("version", 2)) != 2:
        raise ValueError("`fsdp_config['version']` must be 2: only FSDP2 (fully_shard) is implemented")
    for key in ("xla", "xla_fsdp_grad_ckpt"):
        if _truthy(config.get(key, False)):
            raise ValueError(f"`fsdp_config[{key!r}]` is not supported: XLA FSDP is not implemented")
    if int(config.get("min_num_params", 0) or 0) > 0:
        raise ValueError(
            "`fsdp_config['min_num_params']` is not supported: layers are sharded by class "
            "(transformer_layer_cls_to_wrap, default the model's _no_split_modules)"
        )
    policy = config.get("auto_wrap_policy", "TRANSFORMER_BASED_WRAP")
    if policy not in ("TRANSFORMER_BASED_WRAP", None):
        raise ValueError(
            f"`fsdp_config['auto_wrap_policy']`={policy!r} is not supported: use TRANSFORMER_BASED_WRAP"
        )
    if config.get("mixed_precision_policy") is not None:
        raise ValueError(
            "`fsdp_config['mixed_precision_policy']` is not supported: set bf16=True / fp16=True"
        )
    reshard = config.get("reshard_after_forward", True)
    offload = _truthy(config.get("cpu_offload", config.get("offload_params", False)))
    if fsdp is not True:
        items = fsdp.split() if isinstance(fsdp, str) else list(fsdp)
        for item in items:
            if item not in _FSDP_OPTIONS:
                raise ValueError(
                    f"`fsdp`={item!r} is not supported: choose among {', '.join(_FSDP_OPTIONS)} (FSDP2 has no "
                    "hybrid_shard / no_shard; use DDP, the default under torchrun, for no_shard)"
                )
        if "shard_grad_op" in items and "full_shard" in items:
            raise ValueError("`fsdp` takes one of full_shard or shard_grad_op, not both")
        if "shard_grad_op" in items:
            reshard = config.get("reshard_after_forward", False)
        offload = offload or "offload" in items
    if isinstance(reshard, str):
        if reshard.lower() in ("full_shard", "shard_grad_op"):
            reshard = reshard.lower() == "full_shard"
        else:
            reshard = _truthy(reshard)
    layers = config.get("transformer_layer_cls_to_wrap")
    if isinstance(layers, str):
        layers = [layers]
    return FSDPSettings(
        reshard_after_forward=bool(reshard),
        cpu_offload=offload,
        layer_classes=tuple(layers) if layers else None,
        activation_checkpointing=_truthy(config.get("activation_checkpointing", False)),
    )


# ---- the process group and the model --------------------------------------------------------


def is_distributed() -> bool:
    """Whether this process is one of several joined in a process group."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_distributed(args: Any) -> None:
    """Join torchrun's process group when started by it with several processes (once per process).

    The backend is ``args.ddp_backend``, else NCCL on CUDA and gloo on the CPU; ``ddp_timeout`` seconds
    bound every collective.
    """
    if world_size() <= 1:
        return
    import datetime

    from pretrained.distributed.mesh import init_distributed as start_group

    # one place starts a group (and frees it at exit: mesh.close_distributed); gloo / NCCL by default
    start_group(args.device.type, args.ddp_backend, datetime.timedelta(seconds=args.ddp_timeout))


def wrap_model(model: Any, args: Any) -> Any:
    """The model the training loop runs under several processes: FSDP2-sharded in place (``fsdp``) or
    wrapped in DDP; the model itself when alone."""
    if not is_distributed():
        return model
    settings = fsdp_settings(args.fsdp, args.fsdp_config)
    tp = tp_size(model)
    if tp > 1:
        # the DTensor weights communicate inside forward and backward: every gradient is complete
        if tp != world_size() or settings is not None:
            raise ValueError(
                f"the model is tensor-parallel over {tp} processes and {world_size()} were started"
                + (" with fsdp" if settings is not None else "")
                + ": the Trainer runs a tensor-parallel model with tp_size processes and no data parallelism "
                "(FSDP over dp x tp: see examples/3d_parallel.py)"
            )
        return model
    if settings is not None:
        from torch.distributed.device_mesh import init_device_mesh

        from pretrained.distributed.fsdp import apply_fsdp

        if settings.activation_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable()
        mesh = init_device_mesh(args.device.type, (world_size(),), mesh_dim_names=("dp",))
        dtype = "bf16" if args.bf16 else "fp16" if args.fp16 else None
        return apply_fsdp(
            model,
            mesh,
            mixed_precision=dtype,
            reshard_after_forward=settings.reshard_after_forward,
            cpu_offload=settings.cpu_offload,
            layer_classes=settings.layer_classes,
        )
    from pretrained.distributed.fsdp import apply_ddp

    options = {
        "find_unused_parameters": args.ddp_find_unused_parameters,
        "bucket_cap_mb": args.ddp_bucket_cap_mb,
        "broadcast_buffers": args.ddp_broadcast_buffers,
        "static_graph": args.ddp_static_graph,
    }
    return apply_ddp(model, **{k: v for k, v in options.items() if v is not None})


def tp_size(model: Any) -> int:
    """The tensor-parallel size of a model loaded with a `tp_plan` (1 for any other)."""
    return int(getattr(model, "tp_size", None) or getattr(model, "_tp_size", None) or 1)


def data_parallel_size(model: Any) -> int:
    """Processes that see different batches: the world over the tensor-parallel size."""
    return max(world_size() // tp_size(model), 1)


def data_parallel_rank(model: Any) -> int:
    """This process's index among `data_parallel_size` (tensor-parallel ranks are the innermost mesh
    dimension, as torchrun numbers the processes of a machine)."""
    return process_index() // tp_size(model)


def has_dtensor_parameters(model: Any) -> bool:
    """Whether some parameters of `model` are `DTensor` shards (FSDP2 or tensor parallelism)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def no_sync(model: Any, last: bool) -> Any:
    """A context for one micro-batch's backward: DDP's `no_sync()` unless it is the `last` of its
    optimizer step (the gradients accumulate locally and are reduced once). FSDP reduces every
    micro-batch, keeping its gradients sharded."""
    import contextlib

    if last or not hasattr(model, "no_sync") or not is_distributed():
        return contextlib.nullcontext()
    return model.no_sync()


def barrier() -> None:
    """Wait for every process (nothing alone)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def sum_over_processes(value: Any) -> Any:
    """The sum of a tensor (or an int) over all processes; the value itself when alone."""
    if not is_distributed():
        return value
    import torch
    import torch.distributed as dist

    tensor = value.detach().clone() if isinstance(value, torch.Tensor) else torch.tensor(value)
    dist.all_reduce(tensor)
    return tensor if isinstance(value, torch.Tensor) else tensor.item()


def full_state_dict(model: Any) -> dict[str, Any] | None:
    """The full (unsharded) state dict of a model with `DTensor` parameters on the host, gathered by
    every process (held by the main one); None for a model that is not sharded (its own `state_dict()`
    is already full)."""
    if not is_distributed() or not has_dtensor_parameters(model):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_state_dict(model: Any, state_dict: dict[str, Any]) -> None:
    """Copy full (unsharded) tensors into a model whose parameters may be `DTensor` shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    set_model_state_dict(model, state_dict, options=StateDictOptions(full_state_dict=True, strict=False))

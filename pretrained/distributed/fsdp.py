"""Data parallelism as a named step on a plain model: FSDP2 (``fully_shard``) or DDP.

``apply_fsdp(model, mesh)`` shards every decoder layer (the classes named by the model's
``_no_split_modules``, as transformers' FSDP auto-wrap policy reads them), then the root, over the
data-parallel dimensions of ``mesh``: ``dp``, or ``dp`` and ``cp`` flattened into one dimension when
context parallelism splits sequences too. Parameters become ``DTensor`` shards; each layer's weights are
gathered just before its forward and backward and freed after, so a rank keeps ``1/N`` of the
parameters, gradients and optimizer state.

Gradients are reduced as the losses were made: ranks of ``dp`` see different examples and are averaged;
ranks of ``cp`` see parts of the same sequences, their losses add up to the batch's loss (see
:mod:`context_parallel`), so they are summed — the reduction divides by the ``dp`` size only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

__all__ = [
    "all_reduce_gradients",
    "apply_ddp",
    "apply_fsdp",
    "data_parallel_mesh",
    "mixed_precision_policy",
    "sharded_layers",
]

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
           "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}  # fmt: skip
_DATA_DIMS = ("dp_replicate", "dp_shard", "dp", "cp")


def data_parallel_mesh(mesh: DeviceMesh) -> DeviceMesh:
    """The dimensions of ``mesh`` that gradients are reduced over, as one 1-d mesh.

    A 1-d mesh is used as it is. A mesh with named dimensions contributes its ``dp`` (``dp_shard``,
    ``dp_replicate``) and ``cp`` dimensions, flattened into one when there are several; ``tp`` is left
    to tensor parallelism.
    """
    if mesh.ndim == 1:
        return mesh
    names = mesh.mesh_dim_names
    if names is None:
        raise ValueError(
            f"a {mesh.ndim}-d device mesh needs named dimensions (dp, cp, tp) to find its data-parallel ones"
        )
    dims = tuple(n for n in names if n in _DATA_DIMS)
    if not dims:
        raise ValueError(f"the device mesh has no data-parallel dimension (dp or cp) among {names}")
    if len(dims) == 1:
        return mesh[dims[0]]
    return mesh[dims]._flatten("_".join(dims))


def _dp_size(mesh: DeviceMesh) -> int:
    """Ranks that see different examples: the mesh's data dimensions except ``cp``."""
    names = mesh.mesh_dim_names or ()
    if mesh.ndim == 1:
        return 1 if names == ("cp",) else mesh.size()
    size = 1
    for i, n in enumerate(names):
        if n in _DATA_DIMS and n != "cp":
            size *= mesh.size(i)
    return size


def mixed_precision_policy(mixed_precision: Any) -> Any:
    """An FSDP2 ``MixedPrecisionPolicy`` from a dtype, a name (``"bf16"``, ``"fp16"``), a dict of its
    fields (dtype names accepted) or a policy (returned as is); ``None`` for ``None``.

    A dtype ``d`` means parameters gathered and computed in ``d``, gradients reduced in float32.
    """
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if mixed_precision is None or isinstance(mixed_precision, MixedPrecisionPolicy):
        return mixed_precision
    if isinstance(mixed_precision, (str, torch.dtype)):
        dtype = _dtype(mixed_precision, "mixed_precision")
        return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    if isinstance(mixed_precision, dict):
        fields = dict(mixed_precision)
        for name in ("param_dtype", "reduce_dtype", "output_dtype"):
            if fields.get(name) is not None:
                fields[name] = _dtype(fields[name], f"mixed_precision[{name!r}]")
        try:
            return MixedPrecisionPolicy(**fields)
        except TypeError as e:
            raise ValueError(f"mixed_precision has a field MixedPrecisionPolicy does not take: {e}") from e
    raise TypeError(
        f"mixed_precision must be a dtype, a name, a dict or a MixedPrecisionPolicy, got {type(mixed_precision)}"
    )


def _dtype(value: Any, what: str) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    dtype = _DTYPES.get(str(value).removeprefix("torch."))
    if dtype is None:
        raise ValueError(f"{what}={value!r} is not a dtype; use one of {', '.join(_DTYPES)}")
    return dtype


def sharded_layers(model: nn.Module, layer_classes: Iterable[str | type] | None = None) -> list[nn.Module]:
    """The submodules sharded one by one: instances of ``layer_classes`` (class names or classes),
    by default the model's ``_no_split_modules`` (its decoder / encoder layers)."""
    if layer_classes is None:
        layer_classes = getattr(model, "_no_split_modules", None) or ()
    names = {c if isinstance(c, str) else c.__name__ for c in layer_classes}
    if not names:
        raise ValueError(
            f"{type(model).__name__} names no layer classes (_no_split_modules) to shard one by one; "
            "pass layer_classes="
        )
    return [m for m in model.modules() if type(m).__name__ in names and m is not model]


def apply_fsdp(
    model: nn.Module,
    mesh: DeviceMesh,
    *,
    mixed_precision: Any = None,
    reshard_after_forward: bool = True,
    cpu_offload: bool = False,
    layer_classes: Iterable[str | type] | None = None,
) -> nn.Module:
    """Shard ``model`` with FSDP2 over the data-parallel dimensions of ``mesh``, in place.

    Every decoder layer becomes its own FSDP unit (gathered one at a time), then the root takes what is
    left (embeddings, final norm, head; tied weights stay tied since both ends live in the root).

    Args:
        model: A plain model (or one whose weights are already tensor-parallel ``DTensor``s on the
            ``tp`` dimension of the same root mesh).
        mesh: A 1-d mesh, or a mesh with named dimensions (``dp``, ``cp``, ``tp``; see
            :func:`data_parallel_mesh`).
        mixed_precision: See :func:`mixed_precision_policy` (e.g. ``torch.bfloat16``).
        reshard_after_forward: Free the gathered weights after each forward (ZeRO-3); ``False`` keeps
            them until backward (ZeRO-2-like, more memory, less communication).
        cpu_offload: Keep sharded parameters, gradients and optimizer state in host memory.
        layer_classes: The classes sharded one by one (default: ``model._no_split_modules``).

    Returns:
        ``model`` (its class now also an ``FSDPModule``).
    """
    from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, fully_shard

    dp_mesh = data_parallel_mesh(mesh)
    options: dict[str, Any] = {"mesh": dp_mesh, "reshard_after_forward": reshard_after_forward}
    policy = mixed_precision_policy(mixed_precision)
    if policy is not None:
        options["mp_policy"] = policy
    if cpu_offload:
        options["offload_policy"] = CPUOffloadPolicy()
    for layer in sharded_layers(model, layer_classes):
        fully_shard(layer, **options)
    fully_shard(model, **options)
    divide = _dp_size(mesh)
    if divide != dp_mesh.size():  # cp ranks' gradients add up, dp ranks' are averaged
        gloo = dist.get_backend(dp_mesh.get_group()) == "gloo"
        for module in model.modules():  # each unit reduces its own gradients
            if isinstance(module, FSDPModule):
                module.set_gradient_divide_factor(float(divide))
                if gloo:  # gloo has no pre-multiplied sum: divide apart
                    module.set_force_sum_reduction_for_comms(True)
    return model


def apply_ddp(model: nn.Module, mesh: DeviceMesh | None = None, **ddp_options: Any) -> nn.Module:
    """Wrap ``model`` in ``DistributedDataParallel`` over the data-parallel dimensions of ``mesh``
    (default: the whole default process group).

    Args:
        model: The model, already on its device.
        mesh: See :func:`data_parallel_mesh`.
        ddp_options: ``find_unused_parameters``, ``bucket_cap_mb``, ``broadcast_buffers``,
            ``static_graph``, ... passed to ``DistributedDataParallel``.
    """
    from torch.nn.parallel import DistributedDataParallel

    group = None if mesh is None else data_parallel_mesh(mesh).get_group()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=device_ids, process_group=group, **ddp_options)


@torch.no_grad()
def all_reduce_gradients(model: nn.Module, mesh: DeviceMesh) -> None:
    """Synchronise the gradients of a model that is not wrapped by FSDP or DDP, in place: summed over
    ``cp`` (its ranks' losses are shares of one batch's loss) and averaged over ``dp``.

    ``DTensor`` gradients (tensor parallelism) are reduced through their local shards, which hold the
    same slice on every data-parallel rank.
    """
    group = data_parallel_mesh(mesh).get_group()
    divide = _dp_size(mesh)
    for p in model.parameters():
        if p.grad is None:
            continue
        grad = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad
        dist.all_reduce(grad, group=group)
        if divide > 1:
            grad.div_(divide)

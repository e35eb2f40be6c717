"""Gradient-norm clipping that works when some gradients are `DTensor`s and some are plain tensors.

torch's ``clip_grad_norm_`` hands every gradient to one ``_foreach_norm`` call, which refuses a list that
mixes ``DTensor`` and ``torch.Tensor`` (a tensor-parallel model whose norms or embeddings stayed plain,
or FSDP over part of a model). Here gradients are grouped by how they are laid out (plain; or the same
mesh and placements), each group's ``norm ** p`` is computed on the local shards and reduced over the
mesh dimensions its shards are spread along, and the groups' results are combined as plain tensors.
Scaling is done on the local shards, in place, so nothing is gathered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor, Replicate

__all__ = ["clip_grad_norm_", "total_grad_norm"]


def _grads(parameters: Iterable[torch.Tensor] | torch.Tensor) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def _group(grads: list[torch.Tensor]) -> dict[object, list[torch.Tensor]]:
    """Gradients keyed by layout: ``None`` for plain tensors, ``(mesh, placements)`` for DTensors."""
    groups: dict[object, list[torch.Tensor]] = {}
    for g in grads:
        key = (g.device_mesh, tuple(g.placements)) if isinstance(g, DTensor) else None
        groups.setdefault(key, []).append(g)
    return groups


def _local_power_sum(tensors: list[torch.Tensor], norm_type: float) -> torch.Tensor:
    """``sum(|x| ** p)`` over all elements (the max of ``|x|`` for the infinity norm), in float32."""
    norms = torch._foreach_norm(tensors, norm_type)
    stacked = torch.stack([n.float() for n in norms])
    if math.isinf(norm_type):
        return stacked.max()
    return stacked.pow(norm_type).sum()


def total_grad_norm(
    parameters: Iterable[torch.Tensor] | torch.Tensor, norm_type: float = 2.0
) -> torch.Tensor:
    """The ``norm_type``-norm of all the gradients of ``parameters`` taken together, as a plain tensor.

    DTensor gradients count once per element of the full tensor: sharded dimensions are reduced over
    their mesh dimension, replicated ones are not (every rank already holds the same values).
    """
    norm_type = float(norm_type)
    grads = _grads(parameters)
    if not grads:
        return torch.zeros(())
    inf = math.isinf(norm_type)
    parts: list[torch.Tensor] = []
    for key, group in _group(grads).items():
        if key is None:
            parts.append(_local_power_sum(group, norm_type))
            continue
        mesh, placements = key
        if any(p.is_partial() for p in placements):
            # partial sums have no norm of their own: finish the reduction first
            full = [Replicate() if p.is_partial() else p for p in placements]
            group = [g.redistribute(mesh, full) for g in group]
            placements = tuple(full)
        part = _local_power_sum([g.to_local() for g in group], norm_type)
        for dim, placement in enumerate(placements):
            if placement.is_shard():
                op = dist.ReduceOp.MAX if inf else dist.ReduceOp.SUM
                dist.all_reduce(part, op=op, group=mesh.get_group(dim))
        parts.append(part)
    device = grads[0].device if not isinstance(grads[0], DTensor) else grads[0].to_local().device
    stacked = torch.stack([p.to(device) for p in parts])
    return stacked.max() if inf else stacked.sum().pow(1.0 / norm_type)


@torch.no_grad()
def clip_grad_norm_(
    parameters: Iterable[torch.Tensor] | torch.Tensor,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> torch.Tensor:
    """Scale the gradients of ``parameters`` in place so that their total norm is at most ``max_norm``.

    Same contract as ``torch.nn.utils.clip_grad_norm_`` (returns the total norm before clipping), for
    any mix of plain and ``DTensor`` gradients.

    Args:
        parameters: Tensors (or one tensor) whose ``.grad`` is clipped.
        max_norm: The largest total norm allowed.
        norm_type: ``p`` of the p-norm (``inf`` for the largest absolute value).
        error_if_nonfinite: Raise when the total norm is nan or inf instead of scaling by it.
    """
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    total = total_grad_norm(parameters, norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total.item()}); "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    grads = _grads(parameters)
    if grads:
        for key, group in _group(grads).items():
            local = group if key is None else [g.to_local() for g in group]
            # `to_local()` views the shard's storage, so scaling it scales the DTensor
            torch._foreach_mul_(local, coef.to(local[0].device, local[0].dtype))
    return total

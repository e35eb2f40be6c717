"""The four collectives of tensor-parallel layers, each with the backward that makes gradients exact.

A tensor-parallel forward runs on this rank's shards as plain tensors; these functions join the ranks
where the math needs it (Megatron-LM's conjugate pairs):

==================  ==========================  ===========================
function            forward                     backward
==================  ==========================  ===========================
``copy_to``         identity                    sum over ranks
``reduce_from``     sum over ranks              identity
``gather_last``     concatenate the last dims   this rank's part
``split_last``      this rank's part            concatenate the last dims
==================  ==========================  ===========================

Outside autograd (inference, ``generate``) they call the collective directly, without an autograd node.
Shards may be uneven (the last rank shorter), as ``torch.chunk`` and ``DTensor``'s ``Shard`` lay them out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def shard_sizes(length: int, parts: int) -> list[int]:
    """The sizes of ``parts`` shards of ``length`` as ``DTensor``'s ``Shard`` cuts them (``torch.chunk``'s
    rule: ``ceil(length / parts)`` each, the rest on the last ranks, possibly empty)."""
    chunk = -(-length // parts)
    return [max(0, min(chunk, length - rank * chunk)) for rank in range(parts)]


def shard_range(length: int, parts: int, rank: int) -> tuple[int, int]:
    """``(start, stop)`` of shard ``rank`` of ``length`` (see :func:`shard_sizes`)."""
    chunk = -(-length // parts)
    start = min(rank * chunk, length)
    return start, min(start + chunk, length)


def _identity(x: torch.Tensor, group: Any, sizes: Any = None) -> torch.Tensor:
    return x.view_as(x)  # a new tensor object: autograd records the node on it


def _all_reduce(x: torch.Tensor, group: Any, sizes: Any = None) -> torch.Tensor:
    out = x.contiguous().clone()
    dist.all_reduce(out, group=group)
    return out


def _gather_last(x: torch.Tensor, group: Any, sizes: list[int]) -> torch.Tensor:
    widest = max(sizes)
    pad = widest - x.shape[-1]
    local = torch.nn.functional.pad(x, (0, pad)) if pad else x
    parts = [torch.empty_like(local.contiguous()) for _ in sizes]
    dist.all_gather(parts, local.contiguous(), group=group)
    return torch.cat([part[..., :size] for part, size in zip(parts, sizes)], dim=-1)


def _split_last(x: torch.Tensor, group: Any, sizes: list[int]) -> torch.Tensor:
    rank = dist.get_rank(group)
    start = sum(sizes[:rank])
    return x[..., start : start + sizes[rank]].contiguous()


class _Conjugate(torch.autograd.Function):
    """One row of the table above: ``forward(x, group, sizes)`` now, ``backward`` on the gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, forward: Any, backward: Any, group: Any, sizes: Any) -> torch.Tensor:
        ctx.backward_fn, ctx.group, ctx.sizes = backward, group, sizes
        return forward(x, group, sizes)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return ctx.backward_fn(grad, ctx.group, ctx.sizes), None, None, None, None


def _pair(x: torch.Tensor, forward: Any, backward: Any, group: Any, sizes: Any = None) -> torch.Tensor:
    """``forward``, through autograd with its conjugate only when a gradient will flow."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _Conjugate.apply(x, forward, backward, group, sizes)
    return forward(x, group, sizes)


def copy_to(x: torch.Tensor, group: Any) -> torch.Tensor:
    """Identity; in backward the gradients of the ranks are summed (a replicated input of sharded math)."""
    return _pair(x, _identity, _all_reduce, group)


def reduce_from(x: torch.Tensor, group: Any) -> torch.Tensor:
    """The sum over ranks of their partial results; the gradient passes through unchanged."""
    return _pair(x, _all_reduce, _identity, group)


def gather_last(x: torch.Tensor, group: Any, sizes: list[int]) -> torch.Tensor:
    """The ranks' last-dimension shards (of ``sizes``) joined in rank order; backward keeps this rank's part."""
    return _pair(x, _gather_last, _split_last, group, sizes)


def split_last(x: torch.Tensor, group: Any, sizes: list[int]) -> torch.Tensor:
    """This rank's part (of ``sizes``) of a replicated last dimension; backward joins the ranks' gradients."""
    return _pair(x, _split_last, _gather_last, group, sizes)

"""Context parallelism that runs anywhere torch.distributed does (the CPU with gloo included).

The sequence dimension of a batch is split over the ``cp`` ranks of a device mesh. Every layer then
works on its rank's tokens only, except attention, which needs every earlier key: each rank gathers the
keys and values of the whole sequence from the others (an all-gather whose backward sums the gradients
of every rank's queries back onto the rank that owns the keys), and masks them causally by *global*
sequence index. torch's own ``context_parallel`` needs flash or efficient SDPA kernels and raises on the
CPU; this one calls plain SDPA with an explicit mask.

Load balancing: a causal query attends to the keys before it, so the last tokens cost the most. With
``load_balance=True`` the sequence is cut into ``2 * cp`` chunks and rank ``i`` takes chunks ``i`` and
``2 * cp - 1 - i``: every rank gets the same amount of attention work.

Usage (models stay plain; the attention implementation is swapped only inside the block)::

    cp = ContextParallel(mesh["cp"])
    with cp.run(model, batch) as local_batch:   # batch: input_ids, labels, [attention_mask, position_ids]
        loss = model(**local_batch).loss         # this rank's share: the shares add up to the batch's loss
        loss.backward()
    # then sum the gradients over cp (and average over dp): FSDP over the dp x cp mesh
    # (fsdp.apply_fsdp) does it, or fsdp.all_reduce_gradients for a model that is not sharded.

Labels are shifted over the whole sequence *before* splitting (``shift_labels``), so the token that
starts a rank's chunk is still the target of the one before it, and ``num_items_in_batch`` counts the
targets of the whole sequence.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import DeviceMesh

from pretrained.modeling.attention import ATTENTION_FUNCTIONS, sdpa_attention

__all__ = ["ContextParallel", "context_parallel_attention", "IMPLEMENTATION"]

IMPLEMENTATION = "context_parallel"
IGNORE_INDEX = -100

_active = threading.local()  # the ContextParallel whose `run` block this thread is in


class _GatherSequence(torch.autograd.Function):
    """All-gather along dim 2 (the sequence dim of ``(batch, heads, seq, head_dim)``) in rank order.

    Backward: every rank's queries contributed a gradient to every rank's keys, so the full gradient is
    summed over the group and each rank keeps its own slice. (An all-reduce rather than a
    reduce-scatter, which gloo lacks.)
    """

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        ctx.group = group
        ctx.rank = dist.get_rank(group)
        ctx.local_len = tensor.shape[2]
        parts = [
            torch.empty_like(tensor, memory_format=torch.contiguous_format)
            for _ in range(dist.get_world_size(group))
        ]
        dist.all_gather(parts, tensor.contiguous(), group=group)
        return torch.cat(parts, dim=2)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = ctx.rank * ctx.local_len
        return grad[:, :, start : start + ctx.local_len], None


class ContextParallel:
    """Splits batches along the sequence over the ranks of a context-parallel mesh dimension, and runs a
    model's attention across them.

    Args:
        mesh: A 1-d device mesh of the ``cp`` ranks, or a mesh with a dimension named ``cp``.
        load_balance: Give rank ``i`` chunks ``i`` and ``2 * cp - 1 - i`` of ``2 * cp`` (equal causal
            work per rank; the sequence length must be a multiple of ``2 * cp``). ``False``: one
            contiguous chunk per rank (a multiple of ``cp``).
    """

    def __init__(self, mesh: DeviceMesh, load_balance: bool = True):
        if mesh.ndim > 1:
            if "cp" not in (mesh.mesh_dim_names or ()):
                raise ValueError(
                    f"the device mesh has no dimension named 'cp' (it has {mesh.mesh_dim_names})"
                )
            mesh = mesh["cp"]
        self.mesh = mesh
        self.group = mesh.get_group()
        self.size = mesh.size()
        self.rank = mesh.get_local_rank()
        self.load_balance = load_balance
        self._key_index: torch.Tensor | None = None  # global sequence index of the gathered keys
        self._query_index: torch.Tensor | None = None  # global sequence index of this rank's tokens
        self._key_padding: torch.Tensor | None = None  # (batch, seq) bool over the gathered keys

    # ---- the layout of a sequence over the ranks ---------------------------------------------

    def indices(self, seq_len: int, rank: int | None = None) -> torch.Tensor:
        """Global sequence indices held by ``rank`` (default: this one), in the order it holds them."""
        rank = self.rank if rank is None else rank
        chunks = 2 * self.size if self.load_balance else self.size
        if seq_len % chunks:
            raise ValueError(
                f"context parallelism over {self.size} ranks needs the sequence length ({seq_len}) to be a "
                f"multiple of {chunks}"
                + (" (load_balance=True cuts it into 2 * cp chunks)" if self.load_balance else "")
                + "; pad the batch (e.g. pad_to_multiple_of in the data collator)"
            )
        step = seq_len // chunks
        starts = [rank, chunks - 1 - rank] if self.load_balance else [rank]
        return torch.cat([torch.arange(s * step, (s + 1) * step) for s in starts])

    def shard(self, tensor: torch.Tensor, seq_dim: int = 1) -> torch.Tensor:
        """This rank's part of ``tensor`` along ``seq_dim``."""
        index = self.indices(tensor.shape[seq_dim]).to(tensor.device)
        return tensor.index_select(seq_dim, index)

    def unshard(self, tensor: torch.Tensor, seq_dim: int = 1) -> torch.Tensor:
        """The whole sequence from every rank's part (an all-gather, without autograd), in global order."""
        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        dist.all_gather(parts, tensor.contiguous(), group=self.group)
        local = tensor.shape[seq_dim]
        seq_len = local * self.size
        order = torch.cat([self.indices(seq_len, r) for r in range(self.size)]).to(tensor.device)
        out = torch.empty_like(torch.cat(parts, dim=seq_dim))
        return out.index_copy_(seq_dim, order, torch.cat(parts, dim=seq_dim))

    def shard_batch(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """This rank's part of a causal-LM batch, ready for ``model(**part)``.

        ``labels`` are shifted over the whole sequence first (``shift_labels``), ``position_ids``
        default to ``0..seq-1``, ``num_items_in_batch`` counts the batch's targets (so the ranks' losses
        add up to the batch's mean loss), and ``attention_mask`` is kept for the keys' padding rather
        than passed on. Other tensors shaped ``(batch, seq, ...)`` are split too; anything else is
        passed as it is.
        """
        batch = dict(batch)
        ids = batch.get("input_ids")
        if ids is None:
            ids = batch.get("inputs_embeds")
        if ids is None:
            raise ValueError("context parallelism needs `input_ids` or `inputs_embeds` in the batch")
        bsz, seq_len = ids.shape[:2]
        device = ids.device
        self._query_index = self.indices(seq_len).to(device)
        self._key_index = torch.cat([self.indices(seq_len, r) for r in range(self.size)]).to(device)
        mask = batch.pop("attention_mask", None)
        if mask is not None:
            if mask.dim() != 2:
                raise ValueError(
                    f"context parallelism takes a 2-d (batch, seq) attention_mask, got shape {tuple(mask.shape)}"
                )
            mask = mask.bool()
            self._key_padding = None if bool(mask.all()) else mask[:, self._key_index][:, None, None, :]
        else:
            self._key_padding = None
        if batch.get("position_ids") is None:
            batch["position_ids"] = torch.arange(seq_len, device=device).expand(bsz, seq_len)
        labels = batch.pop("labels", None)
        shift_labels = batch.pop("shift_labels", None)
        if shift_labels is None and labels is not None:
            shift_labels = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        if shift_labels is not None:
            if "num_items_in_batch" not in batch:
                batch["num_items_in_batch"] = shift_labels.ne(IGNORE_INDEX).sum()
            batch["shift_labels"] = shift_labels
        local: dict[str, Any] = {}
        for name, value in batch.items():
            split = isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[:2] == (bsz, seq_len)
            local[name] = self.shard(value, 1) if split else value
        if shift_labels is not None:
            local["labels"] = local["shift_labels"]  # the head computes a loss only when given labels
        return local

    # ---- running a model ---------------------------------------------------------------------

    @contextlib.contextmanager
    def attention(self, *models: nn.Module) -> Iterator[None]:
        """Within the block, ``models`` attend across the ``cp`` ranks (their ``_attn_implementation``
        is ``"context_parallel"``), for the batch last given to :meth:`shard_batch`."""
        if self._query_index is None:
            raise RuntimeError("call shard_batch(batch) before entering ContextParallel.attention")
        configs = []
        for model in models:
            config = getattr(model, "config", None)
            if config is None:
                raise TypeError(f"{type(model).__name__} has no config to set an attention implementation on")
            windows = getattr(getattr(model, "base_model", model), "windows", None) or []
            if any(w is not None for w in windows):
                raise ValueError("context parallelism does not support sliding-window attention layers")
            configs.append((config, config._attn_implementation))
        previous = getattr(_active, "cp", None)
        _active.cp = self
        for config, _ in configs:
            config._attn_implementation = IMPLEMENTATION
        try:
            yield
        finally:
            for config, name in configs:
                config._attn_implementation = name
            _active.cp = previous

    @contextlib.contextmanager
    def run(self, model: nn.Module, batch: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """:meth:`shard_batch` and :meth:`attention` in one: yields this rank's part of ``batch``."""
        local = self.shard_batch(batch)
        with self.attention(model):
            yield local

    def mask(self, device: torch.device) -> torch.Tensor:
        """Boolean ``(batch or 1, 1, local_len, seq_len)``: causal by global index, keys' padding hidden."""
        allowed = self._key_index.to(device)[None, :] <= self._query_index.to(device)[:, None]
        allowed = allowed[None, None]
        if self._key_padding is not None:
            allowed = allowed & self._key_padding.to(device)
        return allowed

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(batch, heads, local_len, head_dim)`` → ``(batch, heads, seq_len, head_dim)`` in rank order,
        differentiable."""
        return _GatherSequence.apply(tensor, self.group)


def context_parallel_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout: float = 0.0,
    scale: float | None = None,
    is_causal: bool = False,
) -> tuple[torch.Tensor, None]:
    """The ``context_parallel`` attention implementation: this rank's queries against the keys and
    values of every ``cp`` rank. Outside a :meth:`ContextParallel.attention` block it is plain SDPA."""
    cp: ContextParallel | None = getattr(_active, "cp", None)
    if cp is None:
        return sdpa_attention(query, key, value, mask, dropout=dropout, scale=scale, is_causal=is_causal)
    if key.shape[2] != query.shape[2]:
        raise RuntimeError("context parallelism runs without a KV cache (use_cache=False)")
    # the model's own mask was built for the local tokens as if they were the whole sequence: replaced
    key, value = cp.gather(key), cp.gather(value)  # (batch, kv_heads, seq_len, head_dim)
    if is_causal:
        mask = cp.mask(query.device)
    else:  # (bidirectional: only the keys' padding is hidden)
        mask = None if cp._key_padding is None else cp._key_padding.to(query.device)
    return sdpa_attention(query, key, value, mask, dropout=dropout, scale=scale)


ATTENTION_FUNCTIONS.setdefault(IMPLEMENTATION, context_parallel_attention)

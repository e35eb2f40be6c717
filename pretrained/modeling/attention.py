"""Attention through ``scaled_dot_product_attention``, with an eager path for attention weights."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(batch, keys)`` 1/0 mask → boolean ``(batch, 1, 1, keys)`` for SDPA (``True`` = attend).

    A 4-d mask is taken as already expanded and passed through. Returns ``None`` when nothing is
    masked, which lets SDPA take its fastest kernel.
    """
    if attention_mask is None or attention_mask.dim() == 4:
        return attention_mask
    mask = attention_mask.bool()
    if bool(mask.all()):
        return None
    return mask[:, None, None, :]


def attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout: float = 0.0,
    scale: float | None = None,
    is_causal: bool = False,
    output_attentions: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Attend; tensors are ``(batch, heads, seq, head_dim)``.

    ``mask`` is boolean (``True`` = attend) or additive float, broadcastable to
    ``(batch, heads, q_len, k_len)``. Returns ``(output, weights)``; weights are computed (on the eager
    path) only when ``output_attentions`` is set.
    """
    if not output_attentions:
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout,
                                             is_causal=is_causal and mask is None, scale=scale)
        return out, None
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale  # (batch, heads, q, k)
    if is_causal and mask is None:
        q, k = scores.shape[-2:]
        mask = torch.ones(q, k, dtype=torch.bool, device=scores.device).tril(k - q)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout:
        weights = F.dropout(weights, p=dropout, training=True)
    return torch.matmul(weights, value), weights


def decode_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """SDPA for one query position against a cache, written as multiplies and sums (grouped heads
    allowed: ``key``/``value`` may have fewer heads than ``query``). For graphs compiled by inductor
    on the CPU, which fuses it into the step's loops instead of calling its attention kernel: that call
    cost ~75 us per layer in a decode step, nearly all overhead at one query. Same math as SDPA
    (default scale, boolean or additive mask); the sums run in another order."""
    batch, heads, _, dim = query.shape
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    q = query.reshape(batch, kv_heads, groups, 1, dim) * dim**-0.5
    scores = (q * key.unsqueeze(2)).sum(-1)  # (batch, kv_heads, groups, kv_len)
    if mask is not None:
        mask = mask.expand(mask.shape[0], heads, 1, kv_len) if mask.shape[1] == 1 else mask
        mask = mask.reshape(mask.shape[0], kv_heads, groups, kv_len)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(dim=-1)
    out = (weights.unsqueeze(-1) * value.unsqueeze(2)).sum(-2)  # (batch, kv_heads, groups, dim)
    return out.reshape(batch, heads, 1, dim)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(batch, seq, heads * head_dim)`` → ``(batch, heads, seq, head_dim)``."""
    b, s, _ = x.shape
    return x.view(b, s, num_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, heads, seq, head_dim)`` → ``(batch, seq, heads * head_dim)``."""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)

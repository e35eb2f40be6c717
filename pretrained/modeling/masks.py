"""Attention masks for ``scaled_dot_product_attention``: causal, sliding-window and padding.

Masks are boolean, ``True`` where a query may attend to a key, shaped ``(batch or 1, 1, q_len, kv_len)``.
A builder returns ``None`` whenever SDPA needs no mask at all (a lone query that sees the whole cache, or
a plain causal prefill that ``is_causal=True`` expresses), which is also the fast path.

Positions here are *cache indices* (the slot a token occupies in the KV cache), not rotary positions:
with left padding the two differ, and the padding mask is what hides the pad slots.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padding_slice(attention_mask: torch.Tensor, kv_offset: int, kv_len: int) -> torch.Tensor:
    """Return the 2D padding mask for cache slots ``[kv_offset, kv_offset + kv_len)`` as bool.

    Slots past the end of ``attention_mask`` (not yet written in a static cache) count as padding.
    """
    pad = attention_mask[:, kv_offset : kv_offset + kv_len]
    if pad.dtype != torch.bool:
        pad = pad.bool()
    if pad.shape[1] < kv_len:
        pad = F.pad(pad, (0, kv_len - pad.shape[1]), value=False)
    return pad


def causal_mask(
    attention_mask: torch.Tensor | None,
    cache_position: torch.Tensor,
    kv_len: int,
    kv_offset: int = 0,
    sliding_window: int | None = None,
    all_slots_written: bool = True,
) -> torch.Tensor | None:
    """Build the boolean mask for causal self-attention.

    Args:
        attention_mask: 2D ``(batch, total_len)`` with 1 for real tokens, 0 for padding, or ``None`` when
            there is no padding. A 4D mask is returned unchanged (already prepared by the caller).
        cache_position: ``(q_len,)`` cache indices of the queries.
        kv_len: Number of keys the attention will see.
        kv_offset: Cache index of the first of those keys (non-zero once a sliding window dropped old keys).
        sliding_window: Keys more than ``sliding_window - 1`` slots behind a query are hidden.
        all_slots_written: False for a static cache, whose trailing slots are still empty and need the
            causal constraint even for a single query.

    Returns:
        A bool tensor ``(batch or 1, 1, q_len, kv_len)``, or ``None`` when no mask is needed.
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    q_len = cache_position.shape[0]
    # With one query and every visible key valid, the causal and window constraints hold by construction
    # (the cache only returns keys up to the query, and a sliding cache only the last window of them).
    # (keys end at the last query, so some query misses a key exactly when there are more than `window`)
    window_applies = sliding_window is not None and kv_len > sliding_window
    simple_decode = q_len == 1 and all_slots_written and not window_applies
    if attention_mask is None:
        if simple_decode:
            return None
        plain_prefill = all_slots_written and kv_offset == 0 and kv_len == q_len and not window_applies
        if plain_prefill:
            return None  # SDPA's is_causal
    if simple_decode:
        return padding_slice(attention_mask, kv_offset, kv_len)[:, None, None, :]
    kv_idx = torch.arange(kv_offset, kv_offset + kv_len, device=cache_position.device)
    q_idx = cache_position[:, None]
    allowed = kv_idx[None, :] <= q_idx  # (q_len, kv_len)
    if sliding_window is not None:
        allowed = allowed & (kv_idx[None, :] > q_idx - sliding_window)
    allowed = allowed[None, None]
    if attention_mask is not None:
        allowed = allowed & padding_slice(attention_mask, kv_offset, kv_len)[:, None, None, :]
    return allowed


def boolean_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``(batch, keys)`` 1/0 mask → boolean ``(batch, 1, 1, keys)``; a 4-d mask is kept (an additive one
    becomes ``True`` where it is 0).

    Unlike :func:`pretrained.modeling.attention.padding_mask` the mask is kept even when nothing is masked:
    for attention that always takes an additive bias (T5's position bias) dropping it gains no faster
    kernel, and checking would cost a device sync per forward."""
    if attention_mask is None:
        return None
    if attention_mask.dim() == 4:
        return attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    return attention_mask.bool()[:, None, None, :]


def explicit_causal_mask(attention_mask: torch.Tensor | None, cache_position: torch.Tensor, kv_len: int,
                         all_slots_written: bool = True) -> torch.Tensor | None:
    """:func:`causal_mask`, but never left to SDPA's ``is_causal`` shortcut: ``None`` only when a lone query
    sees every key (for attention whose additive bias is the mask, so the causal part must be in it)."""
    mask = causal_mask(attention_mask, cache_position, kv_len, all_slots_written=all_slots_written)
    if mask is None and cache_position.shape[0] > 1:
        keys = torch.arange(kv_len, device=cache_position.device)
        mask = (keys[None, :] <= cache_position[:, None])[None, None]
    return mask

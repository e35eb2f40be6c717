"""The *attend* step of every attention module, and the registry it is looked up in.

An attention module projects, rotates and caches its queries, keys and values, then calls one function
of :data:`ATTENTION_FUNCTIONS`, chosen by ``config._attn_implementation`` (set with
``attn_implementation=`` at load time or ``model.set_attn_implementation(name)``, as in transformers 5):

============  ==========================================================================
``sdpa``      ``torch.nn.functional.scaled_dot_product_attention`` (the default)
``eager``     the same math written out; the only one that returns the attention weights
============  ==========================================================================

Every function takes ``(query, key, value, mask, *, dropout, scale, is_causal)`` with tensors shaped
``(batch, heads, seq, head_dim)`` (``key`` / ``value`` may have fewer heads: grouped-query attention) and
returns ``(output, weights or None)``, the output shaped like ``query``. ``mask`` is boolean (``True`` =
attend) or additive, broadcastable to ``(batch, heads, q_len, kv_len)``; ``is_causal`` asks for the
causal constraint when there is no mask. Speed transforms (``pretrained.inference``) may route these
calls to specialised kernels; the models never know.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

AttentionFunction = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def sdpa_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout: float = 0.0,
    scale: float | None = None,
    is_causal: bool = False,
) -> tuple[torch.Tensor, None]:
    """Attention through SDPA (grouped key/value heads passed as they are)."""
    out = F.scaled_dot_product_attention(
        query,
        key,
        value,
        attn_mask=mask,
        dropout_p=dropout,
        is_causal=is_causal and mask is None and query.shape[2] > 1,
        scale=scale,
        enable_gqa=key.shape[1] != query.shape[1],
    )
    return out, None


def eager_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    dropout: float = 0.0,
    scale: float | None = None,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out, returning the weights ``(batch, heads, q_len, kv_len)`` too."""
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scale = query.shape[-1] ** -0.5 if scale is None else scale
    scores = (query @ key.transpose(-1, -2)) * scale  # (batch, heads, q_len, kv_len)
    q_len, kv_len = scores.shape[-2:]
    if mask is None and is_causal and q_len > 1:
        mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).tril(kv_len - q_len)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout:
        weights = F.dropout(weights, p=dropout, training=True)
    return weights @ value, weights


ATTENTION_FUNCTIONS: dict[str, AttentionFunction] = {"sdpa": sdpa_attention, "eager": eager_attention}


def attention_function(name: str | None, output_attentions: bool = False) -> AttentionFunction:
    """The registered function called ``name`` (``None`` means ``"sdpa"``); ``eager`` whenever the weights
    are asked for, since only it computes them."""
    if output_attentions:
        return eager_attention
    fn = ATTENTION_FUNCTIONS.get(name or "sdpa")
    if fn is None:
        raise ValueError(
            f"attn_implementation {name!r} is not available; choose one of {sorted(ATTENTION_FUNCTIONS)}"
        )
    return fn


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


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(batch, seq, heads * head_dim)`` → ``(batch, heads, seq, head_dim)``."""
    b, s, _ = x.shape
    return x.view(b, s, num_heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(batch, heads, seq, head_dim)`` → ``(batch, seq, heads * head_dim)``."""
    b, h, s, d = x.shape
    return x.transpose(1, 2).reshape(b, s, h * d)

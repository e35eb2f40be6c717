"""`inference.kernels.decode_attention`: one query against a cache, as SDPA computes it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pretrained.inference.kernels import decode_attention


@pytest.mark.parametrize("kv_heads", [6, 2, 1])
@pytest.mark.parametrize("mask_kind", [None, "bool", "bool per head", "float"])
def test_decode_attention_matches_sdpa(kv_heads, mask_kind):
    g = torch.Generator().manual_seed(kv_heads)
    batch, heads, kv_len, dim = 2, 6, 11, 16
    q = torch.randn(batch, heads, 1, dim, generator=g)
    k = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    v = torch.randn(batch, kv_heads, kv_len, dim, generator=g)
    mask = None
    if mask_kind is not None:
        keep = torch.rand(batch, heads if mask_kind == "bool per head" else 1, 1, kv_len, generator=g) > 0.3
        keep[..., -1] = True  # the current token always attends
        mask = keep if mask_kind.startswith("bool") else torch.zeros(keep.shape).masked_fill(~keep, -1e4)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=kv_heads != heads)
    got = decode_attention(q, k, v, mask)
    assert got.shape == (batch, heads, 1, dim)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_registry_eager_matches_sdpa_and_names_unknown_implementations():
    from pretrained.modeling.attention import ATTENTION_FUNCTIONS, attention_function

    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 4, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g), torch.randn(2, 2, 5, 8, generator=g)
    sdpa, none = ATTENTION_FUNCTIONS["sdpa"](q, k, v, None, is_causal=True)
    eager, weights = ATTENTION_FUNCTIONS["eager"](q, k, v, None, is_causal=True)
    assert none is None and weights.shape == (2, 4, 5, 5)
    torch.testing.assert_close(eager, sdpa, atol=1e-5, rtol=0)
    assert float(weights[0, 0, 0, 1:].abs().sum()) == 0.0  # causal
    assert attention_function("sdpa", output_attentions=True) is ATTENTION_FUNCTIONS["eager"]
    with pytest.raises(ValueError, match="flash_attention_2.*eager.*sdpa"):
        attention_function("flash_attention_2")

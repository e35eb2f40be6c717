"""`modeling.attention`: the registry of attend functions."""

from __future__ import annotations

import pytest
import torch


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

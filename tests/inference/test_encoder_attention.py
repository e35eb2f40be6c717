"""The unmasked many-query attention kernel (pretrained.inference.encoder_attention) against SDPA: head sizes
16-128, lengths on and off its 16 / 24 / 48 tiles, strided heads, 1-2 threads, peaked scores; what it refuses;
and ManyRowsKernels sending an encoder's attention to it (ViT, Whisper: outputs within float32 rounding of
the plain forward, heads merged without a copy)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import pretrained as P
from pretrained.inference import encoder_attention
from pretrained.inference.many_rows import ManyRowsKernels

lib = encoder_attention.load()
needs_lib = pytest.mark.skipif(lib is None, reason="no AVX-512 or no C++ compiler")


def _heads(batch, heads, length, d, seed, spread=1.0):
    """(batch, heads, length, d) views of a (batch, length, heads * d) projection, as split_heads makes them."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, length, heads, d, generator=g) * spread).transpose(1, 2)


@needs_lib
@pytest.mark.parametrize("d", [16, 48, 64, 80, 128])
@pytest.mark.parametrize("length", [128, 197, 200, 257])
def test_kernel_against_sdpa(d, length):
    q, k, v = (_heads(2, 3, length, d, seed) for seed in range(3))
    expected = F.scaled_dot_product_attention(q, k, v)
    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            try:
                out = encoder_attention.encoder_attention(q, k, v)
            finally:
                torch.set_num_threads(1)
            assert out is not None and out.shape == expected.shape
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=2e-6)
            assert out.transpose(1, 2).is_contiguous()  # merging the heads is a view


@needs_lib
def test_long_peaked_and_contiguous_inputs():
    """1,500 positions (a Whisper encoder's), scores spread wide (softmax of a few dominant keys), plain
    contiguous (batch, heads, length, d) tensors and an explicit scale."""
    q = _heads(1, 2, 1500, 64, 0, spread=4.0).contiguous()
    k, v = _heads(1, 2, 1500, 64, 1).contiguous(), _heads(1, 2, 1500, 64, 2)
    with torch.no_grad():
        out = encoder_attention.encoder_attention(q, k, v, scale=0.3)
        sdpa = F.scaled_dot_product_attention(q, k, v, scale=0.3)
        exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double(), scale=0.3)
    # scores of +-30 carry float32 rounding into the exponentials: both kernels miss the float64 result by
    # ~1e-5; this one no worse than SDPA
    error, sdpa_error = (out.double() - exact).abs().max(), (sdpa.double() - exact).abs().max()
    assert error <= 1.5 * sdpa_error + 1e-6, (error, sdpa_error)


@needs_lib
def test_refused_calls():
    q = _heads(2, 2, 130, 16, 0)
    call = encoder_attention.encoder_attention
    with torch.no_grad():
        assert call(q, q, q) is not None
        assert call(q, q, q, attn_mask=torch.ones(2, 1, 1, 130, dtype=torch.bool)) is None
        assert call(q, q, q, is_causal=True) is None
        assert call(q, q, q, dropout_p=0.1) is None
        assert call(q[:, :, :100], q[:, :, :100], q[:, :, :100]) is None  # shorter than MIN_LENGTH
        assert call(q, q[:, :, :129], q[:, :, :129]) is None  # cross-attention lengths
        long = torch.zeros(1, 2, encoder_attention.MAX_LENGTH + 1, 16)
        assert call(long, long, long) is None
        assert call(q, q[:, :1], q[:, :1], enable_gqa=True) is None  # grouped heads
        short = _heads(2, 4, 130, 8, 1)
        assert call(short, short, short) is None  # head size not a multiple of 16
        wide = _heads(1, 2, 130, 144, 1)
        assert call(wide, wide, wide) is None  # over 128
        assert call(q.double(), q.double(), q.double()) is None
        assert call(q.transpose(2, 3), q.transpose(2, 3), q.transpose(2, 3)) is None  # last dim strided
        torch.set_num_threads(2)
        try:
            one = _heads(1, 3, 130, 16, 2)
            assert call(one, one, one) is None  # 3 items for 2 threads: SDPA splits them better
        finally:
            torch.set_num_threads(1)
    assert call(q, q, q) is None  # autograd on


def _spy(monkeypatch):
    calls = []
    real = lib.encoder_attention
    monkeypatch.setattr(lib, "encoder_attention", lambda *a: calls.append(a[5:9]) or real(*a))
    return calls


@needs_lib
def test_vit_attention_routed(monkeypatch):
    torch.manual_seed(0)
    config = P.ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                         image_size=64, patch_size=4, num_labels=3)  # 257 tokens, head size 16
    model = P.ViTForImageClassification(config).eval()
    pixels = torch.randn(2, 3, 64, 64)
    calls = _spy(monkeypatch)
    with torch.inference_mode():
        plain = model(pixels, output_hidden_states=True)
        assert not calls
        with ManyRowsKernels(model):
            routed = model(pixels, output_hidden_states=True)
    assert calls == [(2, 4, 257, 16)] * 2
    for a, b in zip(routed.hidden_states, plain.hidden_states, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(routed.logits, plain.logits, rtol=1e-5, atol=1e-5)
    calls.clear()
    with torch.inference_mode(), ManyRowsKernels(model):
        logits = model(pixels).logits
    assert calls == [(2, 4, 257, 16)]  # the last layer computes the class token alone: one query, SDPA's
    torch.testing.assert_close(logits, plain.logits, rtol=1e-5, atol=1e-5)


@needs_lib
def test_whisper_encoder_attention_routed(monkeypatch):
    torch.manual_seed(0)
    config = P.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
                             vocab_size=100, max_source_positions=150, max_target_positions=32,
                             pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)  # fmt: skip
    model = P.WhisperForConditionalGeneration(config).eval()
    features = torch.randn(3, 16, 300)
    calls = _spy(monkeypatch)
    with torch.inference_mode():
        plain = model.model.encoder(features).last_hidden_state
        with ManyRowsKernels(model):
            routed = model.model.encoder(features).last_hidden_state
    assert calls == [(3, 2, 150, 16)] * 2
    torch.testing.assert_close(routed, plain, rtol=1e-5, atol=1e-5)


@needs_lib
def test_switched_off(monkeypatch):
    monkeypatch.setattr(encoder_attention, "ENABLED", False)
    calls = _spy(monkeypatch)
    q = _heads(2, 2, 130, 16, 0)
    with torch.inference_mode(), ManyRowsKernels():
        F.scaled_dot_product_attention(q, q, q)
    assert not calls

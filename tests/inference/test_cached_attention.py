"""Cross-attention of encoder-decoder decode steps in one C++ call (decode_ops.cached_attention): the kernel
against SDPA (grouped heads, padding masks, strided cache buffers, head sizes around its 128-column blocks),
and generate() of a BART model with and without it (same tokens, scores within fp32 rounding, with padding and
beams); anything it does not serve runs the layer's own forward."""

from __future__ import annotations

import pytest
import torch
from seq2seq_models import padded_batch, save_tiny_seq2seq
from tiny_models import generate_greedy

import pretrained
from pretrained.inference import decode_ops
from pretrained.modeling.attention import sdpa_attention
from pretrained.modeling.cache import DynamicLayer

lib = decode_ops.load_decode_ops()
needs_lib = pytest.mark.skipif(lib is None, reason="no AVX-512 or no C++ compiler")


def _kernel(q, keys, values, mask, heads, scale, threads=1):
    batch, kv_heads, length, d = keys.shape
    out = torch.empty(batch, 1, heads * d)
    lib.cached_attention(q.data_ptr(), q.stride(0), keys.data_ptr(), values.data_ptr(), *keys.stride()[:3], length,
                         None if mask is None else mask.data_ptr(), 0 if mask is None else mask.stride(0),
                         out.data_ptr(), batch, heads, kv_heads, d, scale, threads)  # fmt: skip
    return out


@needs_lib
@pytest.mark.parametrize("d", [32, 80, 136])
@pytest.mark.parametrize("length", [1, 17, 300])
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_kernel_against_sdpa(d, length, grouped, padded):
    torch.manual_seed(0)
    batch, heads = 3, 6
    kv_heads = 2 if grouped else heads
    layer = DynamicLayer()  # the cache's own layout: a buffer with room past `length` (strided slots)
    layer.update(torch.randn(batch, kv_heads, length, d), torch.randn(batch, kv_heads, length, d))
    layer.reserve(5)
    keys, values = layer.keys, layer.values
    assert not keys.is_contiguous() or length == 1
    q = torch.randn(batch, 1, heads * d) * 3
    mask = None
    if padded:
        mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
        mask[0, ..., max(1, length // 2) :] = False
        mask[2] = False  # every slot masked out: zeros, as SDPA gives
    for threads in (1, 2):
        out = _kernel(q, keys, values, mask, heads, d**-0.5, threads)
        split = q.view(batch, 1, heads, d).transpose(1, 2)
        expected, _ = sdpa_attention(split, keys, values, mask, scale=d**-0.5)
        torch.testing.assert_close(out, expected.transpose(1, 2).flatten(2), rtol=1e-5, atol=2e-6)


def _bart(tmp_path):
    save_tiny_seq2seq(tmp_path / "bart", "bart")
    return pretrained.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "bart").eval()


@needs_lib
@pytest.mark.parametrize("case", ["plain", "padded", "beams"])
def test_generate_same_tokens(tmp_path, case, monkeypatch):
    model = _bart(tmp_path)
    ids, mask = padded_batch()
    if case != "padded":
        mask = torch.ones_like(ids)
    extra = {"num_beams": 3} if case == "beams" else {}
    calls = []
    real = lib.cached_attention
    monkeypatch.setattr(lib, "cached_attention", lambda *a: calls.append(1) or real(*a))
    plain = generate_greedy(model, False, input_ids=ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10,
                      **extra)  # fmt: skip
    assert not calls
    fused = generate_greedy(model, True, input_ids=ids, attention_mask=mask, max_new_tokens=10, min_new_tokens=10,
                      **extra)  # fmt: skip
    steps = fused.sequences.shape[1] - 2  # the decoder start token, and the first step projects the encoder output
    assert len(calls) == steps * model.config.decoder_layers
    assert torch.equal(plain.sequences, fused.sequences)
    for a, b in zip(plain.scores, fused.scores):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert all("forward" not in vars(m) for m in model.modules())  # restored after each step


@needs_lib
def test_other_calls_fall_back(tmp_path, monkeypatch):
    """Self-attention, the first (projecting) step, autograd and attention weights run the layer's own path."""
    model = _bart(tmp_path)
    attention = model.model.decoder.layers[0].encoder_attn
    forwards = dict(decode_ops.decode_forwards(model))
    assert attention in forwards and model.model.decoder.layers[0].self_attn not in forwards
    assert model.model.encoder.layers[0].self_attn not in forwards
    calls = []
    real = lib.cached_attention
    monkeypatch.setattr(lib, "cached_attention", lambda *a: calls.append(1) or real(*a))
    ids, mask = padded_batch()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.full((3, 1), 2), use_cache=True)
    cache, encoder = out.past_key_values, out.encoder_last_hidden_state
    hidden = torch.randn(3, 1, 32)
    encoder_mask = mask.bool()[:, None, None, :]
    with torch.no_grad():
        expected = attention(hidden, encoder_mask, cache, key_value_states=encoder)[0]
        fused = forwards[attention](hidden, encoder_mask, cache, key_value_states=encoder)[0]
        assert len(calls) == 1
        torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)
        weights = forwards[attention](hidden, encoder_mask, cache, key_value_states=encoder, output_attentions=True)[1]
        assert weights is not None and len(calls) == 1
        longer = torch.randn(3, 2, 32)  # two queries a row
        torch.testing.assert_close(forwards[attention](longer, encoder_mask, cache, key_value_states=encoder)[0],
                                   attention(longer, encoder_mask, cache, key_value_states=encoder)[0])  # fmt: skip
        additive = torch.zeros(3, 1, 1, ids.shape[1])  # another mask kind
        forwards[attention](hidden, additive, cache, key_value_states=encoder)
    with torch.enable_grad():
        own = forwards[attention](hidden, encoder_mask, cache, key_value_states=encoder)[0]
    assert own.requires_grad and len(calls) == 1

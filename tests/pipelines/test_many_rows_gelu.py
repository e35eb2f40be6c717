"""``ManyRowsKernels`` given a model fuses the exact GELU after a feed-forward block's first linear into
oneDNN's matmul: which linears qualify (ViT's ``intermediate.dense``, the shared encoder-decoder layers'
``fc1``; not other activations, not hooked layers), and that outputs match the unfused mode's (1e-6) and
the plain forward's (float32 rounding)."""

from __future__ import annotations

import pytest
import torch

import pretrained as P
from pretrained.inference import kernels
from pretrained.inference.many_rows import ManyRowsKernels, gelu_weights

pytestmark = pytest.mark.skipif(not kernels.onednn_available(), reason="torch built without oneDNN")


def tiny_vit(**overrides):
    torch.manual_seed(0)
    config = P.ViTConfig(**{**dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                                   image_size=64, patch_size=8, num_labels=3), **overrides})
    return P.ViTForImageClassification(config).eval()


def tiny_whisper():
    torch.manual_seed(0)
    config = P.WhisperConfig(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                             decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128, num_mel_bins=16,
                             vocab_size=100, max_source_positions=100, max_target_positions=32,
                             pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    return P.WhisperForConditionalGeneration(config).eval()


def test_vit_intermediates_fused():
    model = tiny_vit()
    layers = model.vit.encoder.layer
    assert set(map(id, gelu_weights(model)._keep)) == {id(layer.intermediate.dense.weight) for layer in layers}
    pixels = torch.randn(2, 3, 64, 64)  # 65 tokens an image: rerouted
    with torch.inference_mode():
        plain = model(pixels, output_hidden_states=True)
        with ManyRowsKernels():
            unfused = model(pixels, output_hidden_states=True)
        with ManyRowsKernels(model) as mode:
            fused = model(pixels, output_hidden_states=True)
        assert mode._activated is None  # every fused output met its GELU call
    for a, b, c in zip(fused.hidden_states, unfused.hidden_states, plain.hidden_states, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)
        assert torch.allclose(a, c, atol=1e-5, rtol=1e-5)
    assert torch.allclose(fused.logits, plain.logits, atol=1e-5)


def test_whisper_encoder_and_decoder_blocks_fused():
    model = tiny_whisper()
    blocks = [*model.model.encoder.layers, *model.model.decoder.layers]
    assert set(map(id, gelu_weights(model)._keep)) == {id(layer.fc1.weight) for layer in blocks}
    features = torch.randn(1, 16, 200)
    with torch.inference_mode():
        plain = model.model.encoder(features).last_hidden_state
        with ManyRowsKernels(model):
            fused = model.model.encoder(features).last_hidden_state
            tokens = model.generate(features, max_new_tokens=4, do_sample=False)
        expected = model.generate(features, max_new_tokens=4, do_sample=False)
    assert torch.allclose(fused, plain, atol=1e-5, rtol=1e-5)
    assert torch.equal(tokens, expected)


def test_what_is_not_fused():
    assert len(gelu_weights(tiny_vit(hidden_act="gelu_new"))) == 0  # not the exact GELU
    assert len(gelu_weights(tiny_vit(hidden_act="relu"))) == 0
    model = tiny_vit()
    seen = []
    handle = model.vit.encoder.layer[0].intermediate.dense.register_forward_hook(
        lambda module, args, out: seen.append(out.clone()))
    assert len(gelu_weights(model)) == 1  # a hooked linear keeps its own output
    pixels = torch.randn(1, 3, 64, 64)
    with torch.inference_mode(), ManyRowsKernels(model):
        model(pixels)
    assert seen and (seen[0] < -0.2).any()  # the hook saw the linear's output, not GELU's (>= -0.17)
    handle.remove()
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *args: None)
    try:
        assert len(gelu_weights(model)) == 0
    finally:
        handle.remove()
    assert len(gelu_weights(model)) == 2


def test_autograd_and_few_rows_are_untouched():
    model = tiny_vit()
    pixels = torch.randn(1, 3, 64, 64)
    expected = model(pixels).logits
    with ManyRowsKernels(model):
        out = model(pixels).logits  # gradients on: nothing rerouted or fused
    assert out.requires_grad and torch.equal(out, expected)
    with torch.inference_mode(), ManyRowsKernels(model) as mode:
        small = model.vit.encoder.layer[0].intermediate(torch.randn(1, 4, 64))  # 4 rows: F.linear
        assert mode._activated is None
    assert small.shape == (1, 4, 128)


def test_around_modules_routes_inside_the_modules_only(monkeypatch):
    import contextlib

    calls = []
    real = kernels.onednn_linear
    monkeypatch.setattr(kernels, "onednn_linear", lambda x, w, b: calls.append(x.shape) or real(x, w, b))
    model = tiny_whisper()
    encoder = model.get_encoder()
    enter = ManyRowsKernels.around_modules(contextlib.nullcontext, [encoder], model)
    many, weight = torch.randn(64, 64), torch.randn(128, 64)
    with torch.inference_mode():
        expected = encoder(torch.randn(1, 16, 200)).last_hidden_state
        with enter():
            assert "forward" in vars(encoder)
            torch.nn.functional.linear(many, weight)  # outside the encoder: not rerouted
            assert calls == []
            torch.manual_seed(0)
            features = torch.randn(1, 16, 200)
            got = encoder(features).last_hidden_state
        assert "forward" not in vars(encoder)  # restored
        assert calls and all(shape[-2] == 100 for shape in calls)
        assert torch.allclose(got, encoder(features).last_hidden_state, atol=1e-5, rtol=1e-5)
    assert expected.shape == got.shape

"""Marian against transformers on tiny random models (fp32): shared and separate vocabularies."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from safetensors.torch import load_file  # noqa: E402
from seq2seq_models import padded_batch, save_tiny_seq2seq  # noqa: E402

from pretrained import AutoModelForSeq2SeqLM, MarianConfig, MarianMTModel  # noqa: E402
from pretrained.modeling.cache import DynamicCache, EncoderDecoderCache  # noqa: E402
from pretrained.modeling.seq2seq import sinusoidal_table  # noqa: E402

ATOL = 1e-4


@pytest.fixture(scope="module", params=["marian", "marian_separate_vocab"])
def checkpoint(request, tmp_path_factory):
    return (request.param, *save_tiny_seq2seq(tmp_path_factory.mktemp(request.param), request.param))


DEC = torch.tensor([[1, 30, 31, 32, 33], [1, 40, 41, 42, 43], [1, 50, 51, 52, 53]])


def test_forward_and_cached_decoding_match(checkpoint):
    family, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    assert isinstance(model, MarianMTModel)
    shared = family == "marian"
    assert (model.lm_head.weight is model.model.decoder.embed_tokens.weight) == shared
    assert (model.model.encoder.embed_tokens is model.model.decoder.embed_tokens) == shared
    ids, mask = padded_batch()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=DEC, output_hidden_states=True)
        got = model(input_ids=ids, attention_mask=mask, decoder_input_ids=DEC, output_hidden_states=True)
        torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=0)
        for a, b in zip(got.decoder_hidden_states, want.decoder_hidden_states):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
        encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        steps = []
        for t in range(DEC.shape[1]):
            steps.append(model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=DEC[:, t:t + 1],
                               past_key_values=cache).logits)
        torch.testing.assert_close(torch.cat(steps, 1), want.logits, atol=ATOL, rtol=0)
    labels = DEC.roll(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask, labels=labels).loss,
                                   hf(input_ids=ids, attention_mask=mask, labels=labels).loss, atol=ATOL, rtol=0)


def test_sinusoidal_positions_are_computed_not_saved(checkpoint, tmp_path):
    _, hf, folder = checkpoint
    model = MarianMTModel.from_pretrained(folder)
    torch.testing.assert_close(model.model.encoder.embed_positions.weight, hf.model.encoder.embed_positions.weight,
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(sinusoidal_table(7, 5), transformers.models.marian.modeling_marian
                               .MarianSinusoidalPositionalEmbedding(7, 5).create_weight(), atol=1e-6, rtol=0)
    model.save_pretrained(tmp_path)
    assert not [k for k in load_file(tmp_path / "model.safetensors") if "embed_positions" in k]
    back = transformers.MarianMTModel.from_pretrained(tmp_path).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids, decoder_input_ids=DEC).logits,
                                   hf(input_ids=ids, decoder_input_ids=DEC).logits, atol=ATOL, rtol=0)


def test_old_checkpoints_with_the_table_load(tmp_path):
    # Checkpoints converted from Marian hold the positions table; it is read past, not used.
    hf, folder = save_tiny_seq2seq(tmp_path / "m", "marian")
    from safetensors.torch import save_file

    tensors = load_file(folder / "model.safetensors")
    tensors["model.encoder.embed_positions.weight"] = torch.zeros(64, 32)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    model, info = MarianMTModel.from_pretrained(folder, output_loading_info=True)
    assert info["unexpected_keys"] == [] and info["missing_keys"] == []
    assert model.model.encoder.embed_positions.weight.abs().sum() > 0


def test_config_defaults_and_decoder_inputs_required():
    ours, theirs = MarianConfig(), transformers.MarianConfig()
    for name in ("vocab_size", "decoder_vocab_size", "decoder_start_token_id", "pad_token_id", "eos_token_id",
                 "forced_eos_token_id", "share_encoder_decoder_embeddings", "scale_embedding", "is_encoder_decoder"):
        assert getattr(ours, name) == getattr(theirs, name), name
    model = MarianMTModel(MarianConfig(vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1,
                                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=8,
                                       decoder_ffn_dim=8, pad_token_id=1, decoder_start_token_id=1))
    with pytest.raises(ValueError, match="decoder_input_ids"):
        model(input_ids=torch.tensor([[3, 4]]))


def test_resize_token_embeddings(checkpoint):
    family, hf, folder = checkpoint
    model = MarianMTModel.from_pretrained(folder)
    new = model.resize_token_embeddings(120)
    assert new.num_embeddings == 120 and model.model.encoder.embed_tokens is new
    target = 120 if family == "marian" else 77
    assert model.lm_head.weight.shape[0] == model.final_logits_bias.shape[-1] == target
    ids, mask = padded_batch()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=DEC).logits
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=DEC).logits
    torch.testing.assert_close(logits[..., :want.shape[-1]], want, atol=ATOL, rtol=0)


def test_bfloat16_matches(checkpoint):
    # The computed sinusoidal table stays fp32; it is added in the weights' dtype, as transformers' bf16 table is.
    _, hf, folder = checkpoint
    model = MarianMTModel.from_pretrained(folder, dtype=torch.bfloat16)
    reference = transformers.MarianMTModel.from_pretrained(folder, dtype=torch.bfloat16).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask, decoder_input_ids=DEC).logits
        want = reference(input_ids=ids, attention_mask=mask, decoder_input_ids=DEC).logits
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=0)

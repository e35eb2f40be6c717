"""BART and mBART against transformers on tiny random models (fp32): forward, cached decoding, heads."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from seq2seq_models import padded_batch, save_tiny_seq2seq  # noqa: E402

import pretrained  # noqa: E402
from pretrained import AutoModel, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification  # noqa: E402
from pretrained.modeling.cache import DynamicCache, EncoderDecoderCache, StaticCache  # noqa: E402

ATOL = 1e-4


@pytest.fixture(scope="module", params=["bart", "mbart"])
def checkpoint(request, tmp_path_factory):
    return (request.param, *save_tiny_seq2seq(tmp_path_factory.mktemp(request.param), request.param))


def _decoder_inputs():
    return torch.tensor([[2, 0, 30, 31, 32, 33], [2, 0, 40, 41, 42, 43], [2, 0, 50, 51, 52, 53]])


def test_forward_matches_with_every_output(checkpoint):
    family, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager")
    hf.set_attn_implementation("eager")
    assert type(model).__name__ == type(hf).__name__
    assert model.config.is_encoder_decoder and model.config.model_type == family
    assert model.lm_head.weight is model.model.shared.weight is model.model.encoder.embed_tokens.weight
    ids, mask = padded_batch()
    dec = _decoder_inputs()
    kwargs = dict(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, output_hidden_states=True,
                  output_attentions=True)
    with torch.no_grad():
        want, got = hf(**kwargs), model(**kwargs)
    torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.encoder_last_hidden_state, want.encoder_last_hidden_state, atol=ATOL, rtol=0)
    for name in ("encoder_hidden_states", "decoder_hidden_states", "encoder_attentions", "decoder_attentions",
                 "cross_attentions"):
        theirs, ours = getattr(want, name), getattr(got, name)
        assert len(ours) == len(theirs), name
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0, msg=name)
    assert isinstance(got.past_key_values, EncoderDecoderCache)
    # tuples when return_dict=False, in the output's field order
    with torch.no_grad():
        as_tuple = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, return_dict=False)
    torch.testing.assert_close(as_tuple[0], want.logits, atol=ATOL, rtol=0)


def test_cached_decoding_matches_full_forward(checkpoint):
    _, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask = padded_batch()
    dec = _decoder_inputs()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        encoded = model.get_encoder()(input_ids=ids, attention_mask=mask)
        for self_cache in (DynamicCache(), StaticCache(model.config, max_cache_len=10)):
            cache = EncoderDecoderCache(self_cache, DynamicCache())
            out = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=dec[:, :2],
                        past_key_values=cache, use_cache=True)
            steps = [out.logits]
            for t in range(2, dec.shape[1]):
                out = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=dec[:, t:t + 1],
                            past_key_values=out.past_key_values, cache_position=torch.tensor([t]))
                steps.append(out.logits)
            assert all(cache.is_updated.values()) and cache.get_seq_length() == dec.shape[1]
            torch.testing.assert_close(torch.cat(steps, 1), want, atol=ATOL, rtol=0)
        # legacy tuples in, cache out
        out = model(encoder_outputs=(encoded.last_hidden_state,), attention_mask=mask,
                    decoder_input_ids=dec[:, :3], use_cache=True)
        legacy = out.past_key_values.to_legacy_cache()
        nxt = model(encoder_outputs=encoded, attention_mask=mask, decoder_input_ids=dec[:, 3:4],
                    past_key_values=legacy)
        torch.testing.assert_close(nxt.logits[:, 0], want[:, 3], atol=ATOL, rtol=0)


def test_labels_loss_and_decoder_inputs_from_labels(checkpoint):
    family, hf, folder = checkpoint
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask = padded_batch()
    labels = torch.tensor([[0, 30, 31, 2, 7], [0, 40, 2, -100, -100], [0, 50, 51, 52, 2]])
    if family == "mbart":  # labels end with the language code, which becomes the first decoder input
        labels = torch.tensor([[30, 31, 2, 7, 98], [40, 2, 98, -100, -100], [50, 51, 52, 2, 98]])
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, labels=labels)
        got = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=0)
    # transformers' head ignores num_items_in_batch (the Trainer passes it under gradient accumulation):
    # so does ours, so the Trainer logs what transformers logs
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(40))
        got = model(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=torch.tensor(40))
    torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    assert torch.equal(model.prepare_decoder_input_ids_from_labels(labels),
                       hf.prepare_decoder_input_ids_from_labels(labels=labels))
    # without decoder inputs or labels BART denoises: the decoder reads the input shifted right
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits,
                                   hf(input_ids=ids, attention_mask=mask).logits, atol=ATOL, rtol=0)
    # training mode: gradients flow through the (tied) embeddings
    model.train()
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    assert model.model.shared.weight.grad is not None


def test_bare_model_and_round_trip(checkpoint, tmp_path):
    family, hf, folder = checkpoint
    bare = AutoModel.from_pretrained(folder)
    assert type(bare).__name__ == {"bart": "BartModel", "mbart": "MBartModel"}[family]
    ids, mask = padded_batch()
    with torch.no_grad():
        want = hf.model(input_ids=ids, attention_mask=mask, decoder_input_ids=_decoder_inputs())
        got = bare(input_ids=ids, attention_mask=mask, decoder_input_ids=_decoder_inputs())
    torch.testing.assert_close(got.last_hidden_state, want.last_hidden_state, atol=ATOL, rtol=0)
    # a folder we write loads in transformers with the same logits
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    back = transformers.AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids, decoder_input_ids=_decoder_inputs()).logits,
                                   hf(input_ids=ids, decoder_input_ids=_decoder_inputs()).logits, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", ["bart", "mbart"])
def test_sequence_classification_pools_at_the_last_eos(family, tmp_path):
    cls = {"bart": "BartForSequenceClassification", "mbart": "MBartForSequenceClassification"}[family]
    hf, folder = save_tiny_seq2seq(tmp_path, family, head=cls, num_labels=3)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert type(model).__name__ == cls
    ids = torch.tensor([[0, 5, 6, 2, 7, 8, 2], [0, 9, 2, 10, 2, 1, 1]])
    mask = (ids != 1).long()
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, labels=labels)
        got = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.logits, want.logits, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="same number of <eos>"):
        model(input_ids=torch.tensor([[0, 5, 2, 2], [0, 5, 6, 2]]))


def test_question_answering_matches(tmp_path):
    hf, folder = save_tiny_seq2seq(tmp_path, "bart", head="BartForQuestionAnswering")
    model = pretrained.AutoModelForQuestionAnswering.from_pretrained(folder)
    ids, mask = padded_batch()
    starts, ends = torch.tensor([1, 2, 3]), torch.tensor([3, 3, 4])
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, start_positions=starts, end_positions=ends)
        got = model(input_ids=ids, attention_mask=mask, start_positions=starts, end_positions=ends)
    for name in ("start_logits", "end_logits", "loss"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), atol=ATOL, rtol=0)


def test_config_defaults_follow_transformers():
    for ours, theirs in ((pretrained.BartConfig(), transformers.BartConfig()),
                         (pretrained.MBartConfig(), transformers.MBartConfig())):
        for name in ("vocab_size", "d_model", "encoder_layers", "decoder_start_token_id", "forced_eos_token_id",
                     "pad_token_id", "eos_token_id", "num_labels", "scale_embedding", "is_encoder_decoder",
                     "hidden_size", "num_attention_heads"):
            assert getattr(ours, name) == getattr(theirs, name), name


def test_resize_keeps_the_embedding_scale_and_the_bias(tmp_path):
    hf, folder = save_tiny_seq2seq(tmp_path, "bart", scale_embedding=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    model.resize_token_embeddings(120)
    hf.resize_token_embeddings(120)
    assert model.final_logits_bias.shape == (1, 120) and model.lm_head.weight is model.model.shared.weight
    assert model.model.encoder.embed_tokens is model.model.shared and model.model.shared.embed_scale > 1
    ids, mask = padded_batch()
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask, decoder_input_ids=_decoder_inputs()).logits
        want = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=_decoder_inputs()).logits
    torch.testing.assert_close(got[..., :99], want[..., :99], atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", ["bart", "mbart", "marian"])
def test_decoder_only_causal_lm(family, tmp_path):
    head = {"bart": "BartForCausalLM", "mbart": "MBartForCausalLM", "marian": "MarianForCausalLM"}[family]
    hf, folder = save_tiny_seq2seq(tmp_path, family, head=head)
    model = pretrained.AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == head and not model.config.is_encoder_decoder
    assert model.lm_head.weight is model.model.decoder.embed_tokens.weight
    ids = torch.tensor([[1, 1, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14]])
    mask = (ids != 1).long()
    encoder_states = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(0))
    labels = ids.masked_fill(mask == 0, -100)
    with torch.no_grad():
        for extra in ({}, {"encoder_hidden_states": encoder_states}):
            want = hf(input_ids=ids, attention_mask=mask, labels=labels, **extra)
            got = model(input_ids=ids, attention_mask=mask, labels=labels, **extra)
            real = mask.bool()
            torch.testing.assert_close(got.logits[real], want.logits[real], atol=ATOL, rtol=0)
            torch.testing.assert_close(got.loss, want.loss, atol=ATOL, rtol=0)
    for kwargs in (dict(max_new_tokens=6), dict(max_new_tokens=6, num_beams=3)):
        assert torch.equal(model.generate(ids, attention_mask=mask, **kwargs),
                           hf.generate(ids, attention_mask=mask, **kwargs))


def test_transformers_module_paths():
    from pretrained.models.bart.modeling_bart import BartForConditionalGeneration, shift_tokens_right
    from pretrained.models.mbart.modeling_mbart import MBartConfig
    from pretrained.models.mbart.modeling_mbart import shift_tokens_right as mbart_shift

    assert BartForConditionalGeneration is pretrained.BartForConditionalGeneration
    assert MBartConfig is pretrained.MBartConfig
    labels = torch.tensor([[5, 6, 2, 98, -100], [7, 2, 98, -100, -100]])
    reference = transformers.models.mbart.modeling_mbart.shift_tokens_right
    assert torch.equal(mbart_shift(labels, 1), reference(labels.clone(), 1))
    assert torch.equal(shift_tokens_right(labels, 1, 2),
                       transformers.models.bart.modeling_bart.shift_tokens_right(labels, 1, 2))


def test_gradient_checkpointing_and_summed_loss(checkpoint):
    _, _, folder = checkpoint
    ids, mask = padded_batch()
    labels = torch.tensor([[0, 30, 31, 2, 98], [0, 40, 2, 98, -100], [0, 50, 51, 2, 98]])
    grads = []
    for checkpointing in (False, True):
        model = AutoModelForSeq2SeqLM.from_pretrained(folder)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.model.encoder.gradient_checkpointing and model.is_gradient_checkpointing
        out = model(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=(labels != -100).sum())
        out.loss.backward()
        grads.append(model.model.shared.weight.grad.clone())
        mean = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        torch.testing.assert_close(out.loss, mean, atol=1e-5, rtol=0)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=0)

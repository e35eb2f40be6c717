"""generate() for encoder-decoders against transformers' generate on tiny random BART / mBART / Marian
models: token-identical sequences on padded batches for greedy, beam and seeded sampling."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")

from seq2seq_models import padded_batch, save_tiny_seq2seq  # noqa: E402

from pretrained import AutoModelForSeq2SeqLM  # noqa: E402
from pretrained.generation.outputs import (  # noqa: E402
    GenerateBeamEncoderDecoderOutput,
    GenerateEncoderDecoderOutput,
)
from pretrained.modeling.cache import EncoderDecoderCache, StaticCache  # noqa: E402

FAMILIES = ["bart", "mbart", "marian", "marian_separate_vocab"]
CASES = {
    "greedy": dict(max_new_tokens=12),
    "default_length": dict(),
    "beams": dict(max_new_tokens=12, num_beams=4),
    "beams_options": dict(max_new_tokens=12, num_beams=4, length_penalty=0.5, early_stopping=True,
                          no_repeat_ngram_size=2, forced_bos_token_id=0, forced_eos_token_id=2,
                          num_return_sequences=2),
    "beams_never": dict(max_new_tokens=10, num_beams=3, early_stopping="never", length_penalty=2.0),
    "sampling": dict(do_sample=True, max_new_tokens=12, top_k=10, temperature=0.8),
    "beam_sampling": dict(do_sample=True, num_beams=2, max_new_tokens=8),
    "sampling_several": dict(do_sample=True, num_return_sequences=2, max_new_tokens=6, top_p=0.9),
    "min_max_length": dict(min_length=6, max_length=15),
    "repetition": dict(max_new_tokens=10, repetition_penalty=1.5, no_repeat_ngram_size=1),
    "encoder_processors": dict(max_new_tokens=10, num_beams=2, encoder_repetition_penalty=3.0,
                               encoder_no_repeat_ngram_size=2),
    "encoder_unigrams": dict(max_new_tokens=6, encoder_no_repeat_ngram_size=1, encoder_repetition_penalty=0.5),
}


@pytest.fixture(scope="module", params=FAMILIES)
def models(request, tmp_path_factory):
    hf, folder = save_tiny_seq2seq(tmp_path_factory.mktemp(request.param), request.param)
    return hf, AutoModelForSeq2SeqLM.from_pretrained(folder)


def _both(models, **kwargs):
    outs = []
    for model in models:
        torch.manual_seed(0)
        outs.append(model.generate(**kwargs))
    return outs


@pytest.mark.parametrize("case", list(CASES))
def test_sequences_match_transformers(models, case):
    ids, mask = padded_batch()
    want, got = _both(models, input_ids=ids, attention_mask=mask, **CASES[case])
    assert got.shape == want.shape and torch.equal(got, want), (case, want, got)


def test_eos_ends_rows_and_pads_them(tmp_path):
    # A head biased towards </s> after a few tokens: rows end at different steps and are padded after.
    hf, folder = save_tiny_seq2seq(tmp_path, "bart")
    with torch.no_grad():
        hf.final_logits_bias[0, 2] = 3.0
    hf.save_pretrained(folder)
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask = padded_batch()
    for kwargs in (dict(max_new_tokens=15), dict(max_new_tokens=15, num_beams=3, num_return_sequences=3)):
        want, got = _both((hf, ours), input_ids=ids, attention_mask=mask, **kwargs)
        assert torch.equal(got, want)
        assert (want == 2).any()


def test_user_decoder_inputs_and_encoder_outputs(models):
    hf, ours = models
    ids, mask = padded_batch()
    start = hf.generation_config.decoder_start_token_id
    # decoder inputs without the start token get it put first; with it they are continued
    for prefix in (torch.tensor([[7, 8]] * 3), torch.tensor([[start, 7]] * 3)):
        want, got = _both(models, input_ids=ids, attention_mask=mask, decoder_input_ids=prefix, max_new_tokens=6)
        assert torch.equal(got, want)
    encoded = ours.get_encoder()(input_ids=ids, attention_mask=mask)
    got = ours.generate(encoder_outputs=encoded, attention_mask=mask, max_new_tokens=6)
    assert torch.equal(got, ours.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6))


def test_dict_outputs_match(models):
    ids, mask = padded_batch()
    common = dict(input_ids=ids, attention_mask=mask, max_new_tokens=5, return_dict_in_generate=True,
                  output_scores=True)
    want, got = _both(models, **common)
    assert isinstance(got, GenerateEncoderDecoderOutput) and isinstance(got.past_key_values, EncoderDecoderCache)
    assert torch.equal(got.sequences, want.sequences)
    for a, b in zip(got.scores, want.scores):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    want, got = _both(models, **common, num_beams=3, output_hidden_states=True)
    assert isinstance(got, GenerateBeamEncoderDecoderOutput)
    assert torch.equal(got.sequences, want.sequences)
    torch.testing.assert_close(got.sequences_scores, want.sequences_scores, atol=1e-4, rtol=0)
    assert torch.equal(got.beam_indices, want.beam_indices)
    assert len(got.encoder_hidden_states) == len(want.encoder_hidden_states)
    torch.testing.assert_close(got.encoder_hidden_states[-1], want.encoder_hidden_states[-1], atol=1e-4, rtol=0)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_static_self_attention_cache(models, num_beams):
    hf, ours = models
    ids, mask = padded_batch()
    want = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, num_beams=num_beams)
    out = ours.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, num_beams=num_beams,
                        cache_implementation="static", return_dict_in_generate=True)
    assert isinstance(out.past_key_values.self_attention_cache, StaticCache)
    assert torch.equal(out.sequences, want)


def test_no_encoder_input_is_a_clear_error(models):
    with pytest.raises(ValueError, match="input_ids"):
        models[1].generate(max_new_tokens=3)


@pytest.mark.slow
@pytest.mark.parametrize("num_beams", [1, 3])
def test_compiled_static_decode_matches(tmp_path, num_beams):
    # About 40 s per case on 2 cores with a cold inductor cache; inductor's C++ wrapper needs a compiler.
    if os.environ.get("PRETRAINED_TEST_COMPILE") == "0" or not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        pytest.skip("no C++ compiler for inductor, or PRETRAINED_TEST_COMPILE=0")
    hf, folder = save_tiny_seq2seq(tmp_path, "bart")
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask = padded_batch()
    want = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, num_beams=num_beams)
    for _ in range(2):  # the second run reuses the graph
        got = ours.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, num_beams=num_beams,
                            cache_implementation="static", compile_config={})
        assert torch.equal(got, want)


def test_step_attentions_and_hidden_states_match(tmp_path):
    _, folder = save_tiny_seq2seq(tmp_path, "bart")
    hf = transformers.AutoModelForSeq2SeqLM.from_pretrained(folder, attn_implementation="eager").eval()
    ours = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask = padded_batch()
    kwargs = dict(input_ids=ids, attention_mask=mask, max_new_tokens=4, return_dict_in_generate=True,
                  output_attentions=True, output_hidden_states=True)
    want, got = hf.generate(**kwargs), ours.generate(**kwargs)
    for name in ("decoder_attentions", "cross_attentions", "decoder_hidden_states"):
        assert len(getattr(got, name)) == len(getattr(want, name)) == 4, name
        for ours_step, want_step in zip(getattr(got, name), getattr(want, name)):
            for a, b in zip(ours_step, want_step, strict=True):
                torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    for name in ("encoder_attentions", "encoder_hidden_states"):
        for a, b in zip(getattr(got, name), getattr(want, name), strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_decoder_ids_checked_against_the_decoder_vocabulary(tmp_path):
    _, folder = save_tiny_seq2seq(tmp_path, "marian_separate_vocab")  # source 99 ids, target 77
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    ids, mask = padded_batch()
    with pytest.raises(ValueError, match="token id 90, outside the model's vocabulary of 77"):
        model.generate(input_ids=ids, attention_mask=mask, decoder_input_ids=torch.tensor([[1, 90]] * 3))
    with pytest.raises(ValueError, match="outside the model's vocabulary of 99"):
        model.generate(input_ids=ids + 200, max_new_tokens=2)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_encoder_processors_match_transformers(n):
    from transformers.generation import logits_process as theirs

    from pretrained.generation.logits_process import (
        EncoderNoRepeatNGramLogitsProcessor,
        EncoderRepetitionPenaltyLogitsProcessor,
    )

    g = torch.Generator().manual_seed(n)
    encoder_ids = torch.randint(0, 3, (2, 9), generator=g)  # few ids: n-grams recur
    decoder_ids = torch.randint(0, 3, (6, 5), generator=g)  # 3 beams per prompt
    scores = torch.randn(6, 8, generator=g)
    pairs = [(EncoderNoRepeatNGramLogitsProcessor(n, encoder_ids),
              theirs.EncoderNoRepeatNGramLogitsProcessor(n, encoder_ids)),
             (EncoderRepetitionPenaltyLogitsProcessor(1.0 + n, encoder_ids),
              theirs.EncoderRepetitionPenaltyLogitsProcessor(1.0 + n, encoder_ids))]
    for ours, reference in pairs:
        changed = False
        for length in range(1, 6):
            want = reference(decoder_ids[:, :length], scores.clone())
            assert torch.equal(ours(decoder_ids[:, :length], scores.clone()), want)
            changed |= not torch.equal(want, scores)
        assert changed


def test_labels_passed_by_a_trainer_are_not_model_inputs(models):
    # Seq2SeqTrainer.prediction_step calls generate(**batch) with the batch's labels still in it.
    _, ours = models
    ids, mask = padded_batch()
    labels = torch.tensor([[5, 6, 2], [7, 2, -100], [8, 9, 2]])
    want = ours.generate(input_ids=ids, attention_mask=mask, max_new_tokens=5, num_beams=2)
    assert torch.equal(ours.generate(input_ids=ids, attention_mask=mask, labels=labels, max_new_tokens=5,
                                     num_beams=2), want)


def test_decoder_start_set_on_model_config_after_loading_is_ignored(models):
    # run_translation.py sets model.config.decoder_start_token_id for mBART after from_pretrained; generate()
    # reads the generation config only (then its bos), in transformers 5.x and here
    hf, ours = models
    ids, mask = padded_batch()
    start = ours.config.vocab_size - 1
    # an mBART checkpoint without decoder_start_token_id: the generation config has none either
    saved = [(m.config.decoder_start_token_id, m.generation_config.decoder_start_token_id) for m in (hf, ours)]
    for model in (hf, ours):
        model.config.decoder_start_token_id, model.generation_config.decoder_start_token_id = start, None
    try:
        theirs_ids, ours_ids = _both((hf, ours), input_ids=ids, attention_mask=mask, max_new_tokens=4)
    finally:
        for model, values in zip((hf, ours), saved):
            model.config.decoder_start_token_id, model.generation_config.decoder_start_token_id = values
    assert torch.equal(theirs_ids, ours_ids)
    assert (ours_ids[:, 0] != start).all()

"""T5 / mT5 / UMT5 generate() against transformers on tiny random models: greedy, beam search and seeded
sampling on a padded batch must give the same tokens.

These need generate() for encoder-decoders (the encoder once, an EncoderDecoderCache, decoder_start_token_id),
which the generation package gains separately; until then they fail.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoModelForSeq2SeqLM, EncoderDecoderCache  # noqa: E402

# (as many decoder as encoder layers: transformers 5.24 sizes its generation cache by num_layers)
TINY = dict(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, relative_attention_max_distance=20, decoder_start_token_id=0,
            eos_token_id=1, pad_token_id=0)
VARIANTS = {"t5": ("T5", {}), "t5-v1_1": ("T5", {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}),
            "mt5": ("MT5", {}), "umt5": ("UMT5", {})}


@pytest.fixture(scope="module", params=list(VARIANTS))
def pair(request, tmp_path_factory):
    prefix, extra = VARIANTS[request.param]
    torch.manual_seed(0)
    config = getattr(transformers, f"{prefix}Config")(**TINY, **extra)
    hf = getattr(transformers, f"{prefix}ForConditionalGeneration")(config).eval()
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return hf, AutoModelForSeq2SeqLM.from_pretrained(folder)


def _inputs():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(2, TINY["vocab_size"], (3, 9), generator=g)
    mask = torch.ones_like(ids)
    ids[1, -3:], mask[1, -3:] = 0, 0  # right padding, as T5's tokenizer pads
    ids[2, -5:], mask[2, -5:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("options", [
    dict(max_new_tokens=12, do_sample=False),
    dict(max_new_tokens=10, num_beams=3, do_sample=False),
    dict(max_new_tokens=10, num_beams=4, num_return_sequences=2, length_penalty=0.5, early_stopping=True),
    dict(max_new_tokens=10, no_repeat_ngram_size=2, repetition_penalty=1.3),
    dict(max_length=8, min_new_tokens=3),
])
def test_generate_matches_transformers(pair, options):
    hf, model = pair
    inputs = _inputs()
    with torch.no_grad():
        want = hf.generate(**inputs, **options)
        got = model.generate(**inputs, **options)
    assert got.tolist() == want.tolist()
    assert (got[:, 0] == TINY["decoder_start_token_id"]).all()


def test_seeded_sampling_matches_transformers(pair):
    hf, model = pair
    inputs = _inputs()
    options = dict(max_new_tokens=10, do_sample=True, top_k=20, top_p=0.9, temperature=0.8)
    outputs = []
    for m in (hf, model):
        torch.manual_seed(11)
        with torch.no_grad():
            outputs.append(m.generate(**inputs, **options).tolist())
    assert outputs[0] == outputs[1]


def test_generate_returns_scores_and_cache(pair):
    hf, model = pair
    inputs = _inputs()
    kw = dict(max_new_tokens=6, return_dict_in_generate=True, output_scores=True)
    with torch.no_grad():
        want, got = hf.generate(**inputs, **kw), model.generate(**inputs, **kw)
    assert got.sequences.tolist() == want.sequences.tolist()
    for a, b in zip(got.scores, want.scores):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert isinstance(got.past_key_values, EncoderDecoderCache)


def test_generate_from_encoder_outputs(pair):
    _, model = pair
    inputs = _inputs()
    with torch.no_grad():
        direct = model.generate(**inputs, max_new_tokens=6)
        encoded = model.get_encoder()(**inputs)
        again = model.generate(encoder_outputs=encoded, attention_mask=inputs["attention_mask"], max_new_tokens=6)
    assert direct.tolist() == again.tolist()

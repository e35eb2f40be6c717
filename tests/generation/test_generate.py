"""generate() against transformers: token-identical outputs on tiny random models (fp32)."""

from __future__ import annotations

import threading

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoModelForCausalLM, GenerationConfig, TextIteratorStreamer, TextStreamer  # noqa: E402
from pretrained.generation.stopping_criteria import StoppingCriteria, StoppingCriteriaList  # noqa: E402
from pretrained.modeling.cache import StaticCache  # noqa: E402

VOCAB = 64
EOS, PAD, BOS = 3, 0, 1
LLAMA = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=PAD,
    eos_token_id=EOS,
    bos_token_id=BOS,
)
ARCHS = {
    "llama": lambda: transformers.LlamaConfig(**LLAMA),
    "mistral": lambda: transformers.MistralConfig(**LLAMA, sliding_window=6),
    "qwen2": lambda: transformers.Qwen2Config(**LLAMA, tie_word_embeddings=True),
    "qwen3": lambda: transformers.Qwen3Config(**{**LLAMA, "head_dim": 8}),
    "gpt2": lambda: transformers.GPT2Config(
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=BOS,
    ),  # fmt: skip
}


def _pair(arch: str, folder):
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(ARCHS[arch]()).eval()
    # Random tiny models are nearly uniform; sharpen the head so EOS and beams actually matter.
    with torch.no_grad():
        head = hf.get_output_embeddings().weight
        if head is not hf.get_input_embeddings().weight:
            head.mul_(8)
    hf.save_pretrained(folder)
    return hf, AutoModelForCausalLM.from_pretrained(folder)


@pytest.fixture(scope="module", params=sorted(ARCHS))
def pair(request, tmp_path_factory):
    return (request.param, *_pair(request.param, tmp_path_factory.mktemp(request.param)))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return _pair("llama", tmp_path_factory.mktemp("llama_gen"))


def _prompts(batch: int = 2, length: int = 7, pad: int = 3):
    ids = torch.randint(4, VOCAB, (batch, length), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    ids[0, :pad], mask[0, :pad] = PAD, 0
    return ids, mask


MODES = {
    "greedy": dict(max_new_tokens=14),
    "beam": dict(max_new_tokens=10, num_beams=3, num_return_sequences=2),
    "beam_penalised": dict(max_new_tokens=10, num_beams=4, length_penalty=0.6, early_stopping=True),
    "beam_never": dict(max_new_tokens=8, num_beams=2, early_stopping="never", length_penalty=1.5),
    "static": dict(max_new_tokens=12, cache_implementation="static"),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_token_identical_to_transformers(pair, mode):
    arch, hf, model = pair
    ids, mask = _prompts()
    want = hf.generate(ids, attention_mask=mask, **MODES[mode])
    got = model.generate(ids, attention_mask=mask, **MODES[mode])
    assert torch.equal(got, want)


def test_seeded_sampling_matches_and_repeats(pair):
    arch, hf, model = pair
    ids, mask = _prompts()
    kwargs = dict(max_new_tokens=10, do_sample=True, top_p=0.9, temperature=0.7, repetition_penalty=1.1,
                  num_return_sequences=2)  # fmt: skip
    torch.manual_seed(7)
    first = model.generate(ids, attention_mask=mask, **kwargs)
    torch.manual_seed(7)
    assert torch.equal(model.generate(ids, attention_mask=mask, **kwargs), first)
    torch.manual_seed(7)
    assert torch.equal(hf.generate(ids, attention_mask=mask, **kwargs), first)


PROCESSOR_SETTINGS = [
    dict(repetition_penalty=1.5, no_repeat_ngram_size=2),
    dict(bad_words_ids=[[5], [9, 10], [EOS]], min_new_tokens=6),
    dict(forced_bos_token_id=7, forced_eos_token_id=EOS, max_length=16),
    dict(suppress_tokens=[4, 5, 6], begin_suppress_tokens=[8]),
    dict(do_sample=True, top_k=5, typical_p=0.8, min_p=0.05),
    dict(do_sample=True, epsilon_cutoff=0.02, temperature=1.3),
    dict(do_sample=True, eta_cutoff=0.05, num_beams=2),
    dict(sequence_bias={(11,): 5.0}, renormalize_logits=True, exponential_decay_length_penalty=(2, 1.5)),
    dict(eos_token_id=[EOS, 12, 20], max_new_tokens=20),
]


@pytest.mark.parametrize("settings", PROCESSOR_SETTINGS, ids=[",".join(s) for s in PROCESSOR_SETTINGS])
def test_processors_in_generate_match(llama, settings):
    hf, model = llama
    ids, mask = _prompts()
    if "forced_bos_token_id" in settings:
        ids, mask = ids[:, -1:], mask[:, -1:]  # forced BOS applies at length 1
    kwargs = {"max_new_tokens": 10, **settings}
    if "max_length" in kwargs:
        kwargs.pop("max_new_tokens")
    torch.manual_seed(3)
    want = hf.generate(ids, attention_mask=mask, **kwargs)
    torch.manual_seed(3)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(got, want)


def test_return_dict_scores_and_logits(llama):
    hf, model = llama
    ids, mask = _prompts()
    kwargs = dict(max_new_tokens=6, return_dict_in_generate=True, output_scores=True, output_logits=True,
                  repetition_penalty=1.2)  # fmt: skip
    want = hf.generate(ids, attention_mask=mask, **kwargs)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(got.sequences, want.sequences)
    assert len(got.scores) == len(want.scores) == len(got.logits)
    for a, b in zip(got.scores + got.logits, want.scores + want.logits):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert got.past_key_values.get_seq_length() == got.sequences.shape[1] - 1


def test_beam_return_dict(llama):
    hf, model = llama
    ids, mask = _prompts()
    kwargs = dict(max_new_tokens=8, num_beams=3, num_return_sequences=3, return_dict_in_generate=True,
                  output_scores=True, output_logits=True)  # fmt: skip
    want = hf.generate(ids, attention_mask=mask, **kwargs)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(got.sequences, want.sequences)
    assert torch.equal(got.beam_indices.long(), want.beam_indices.long())
    torch.testing.assert_close(got.sequences_scores, want.sequences_scores, atol=1e-4, rtol=0)
    assert len(got.scores) == len(want.scores)


def test_eos_stops_early_and_pads(llama):
    hf, model = llama
    ids, mask = _prompts()
    # Every token is an end token: generation stops after one step.
    out = model.generate(ids, attention_mask=mask, max_new_tokens=10, eos_token_id=list(range(VOCAB)))
    assert out.shape == (2, ids.shape[1] + 1)
    # A finished row is padded while the other continues, as in transformers.
    first = model.generate(ids, attention_mask=mask, max_new_tokens=10)
    stop = int(first[1, ids.shape[1] + 2])
    kwargs = dict(max_new_tokens=10, eos_token_id=[EOS, stop], pad_token_id=PAD)
    got = model.generate(ids, attention_mask=mask, **kwargs)
    assert torch.equal(got, hf.generate(ids, attention_mask=mask, **kwargs))
    assert (got[1, ids.shape[1] + 3 :] == PAD).all() or got.shape[1] == ids.shape[1] + 3


def test_static_and_dynamic_caches_give_identical_tokens(pair):
    arch, hf, model = pair
    ids, mask = _prompts(pad=0)  # no padding: the mask-free fast path
    dynamic = model.generate(ids, max_new_tokens=40 if arch == "mistral" else 12)
    static = model.generate(
        ids, max_new_tokens=40 if arch == "mistral" else 12, cache_implementation="static"
    )
    assert torch.equal(dynamic, static)
    assert torch.equal(dynamic, hf.generate(ids, max_new_tokens=40 if arch == "mistral" else 12))
    # A model split across devices gets a cache whose layers allocate where their keys are.
    model.hf_device_map = {"model.embed_tokens": "cpu", "model.layers": "cpu:0"}  # (two names, one CPU)
    try:
        split = model.generate(ids, max_new_tokens=40 if arch == "mistral" else 12, cache_implementation="static")
    finally:
        del model.hf_device_map
    assert torch.equal(dynamic, split)
    # A user-provided static cache works too.
    cache = StaticCache(model.config, max_cache_len=ids.shape[1] + 12)
    assert torch.equal(model.generate(ids, max_new_tokens=12, past_key_values=cache)[:, :19], dynamic[:, :19])


class WordTokenizer:
    """Enough of a tokenizer for streamers and stop strings: token i decodes to 'w{i} '."""

    def decode(self, ids, skip_special_tokens=False, **kwargs):
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        ids = [ids] if isinstance(ids, int) else ids
        return "".join(f"w{i} " if i % 7 else f"w{i}\n" for i in ids)


def test_text_streamer_prints_like_transformers(llama, capsys):
    hf, model = llama
    ids = _prompts(batch=1, pad=0)[0]
    tok = WordTokenizer()
    hf.generate(ids, max_new_tokens=8, streamer=transformers.TextStreamer(tok, skip_prompt=True))
    want = capsys.readouterr().out
    model.generate(ids, max_new_tokens=8, streamer=TextStreamer(tok, skip_prompt=True))
    got = capsys.readouterr().out
    assert got == want and got.strip()


def test_text_iterator_streamer_in_a_thread(llama):
    hf, model = llama
    ids = _prompts(batch=1, pad=0)[0]
    tok = WordTokenizer()
    streamer = TextIteratorStreamer(tok, timeout=30)
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(out=model.generate(ids, max_new_tokens=6, streamer=streamer))
    )
    thread.start()
    text = "".join(streamer)
    thread.join()
    assert text == tok.decode(result["out"][0])
    with pytest.raises(ValueError, match="batch size 1"):
        model.generate(_prompts()[0], max_new_tokens=2, streamer=TextStreamer(tok))


def test_stop_strings_and_custom_criteria(llama):
    hf, model = llama
    ids = _prompts(batch=1, pad=0)[0]
    tok = WordTokenizer()
    free = model.generate(ids, max_new_tokens=10)
    target = f"w{int(free[0, ids.shape[1] + 3])}"
    out = model.generate(ids, max_new_tokens=10, stop_strings=target, tokenizer=tok)
    assert target in tok.decode(out[0, ids.shape[1] :]) and out.shape[1] <= ids.shape[1] + 4
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(ids, max_new_tokens=3, stop_strings="x")

    class StopAfter(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), input_ids.shape[1] >= ids.shape[1] + 2)

    out = model.generate(ids, max_new_tokens=10, stopping_criteria=StoppingCriteriaList([StopAfter()]))
    assert out.shape[1] == ids.shape[1] + 2
    assert model.generate(ids, max_new_tokens=50, max_time=0.0).shape[1] == ids.shape[1] + 1


def test_default_length_and_generation_config_file(llama, tmp_path):
    hf, model = llama
    ids = _prompts(batch=1, pad=0)[0]
    assert torch.equal(model.generate(ids), hf.generate(ids))  # 20 new tokens by default
    hf.generation_config.max_new_tokens = 5
    hf.generation_config.repetition_penalty = 1.4
    hf.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert loaded.generation_config.max_new_tokens == 5
    assert torch.equal(loaded.generate(ids), hf.generate(ids))
    # Saved by pretrained, read by transformers.
    loaded.generation_config.top_k = 7
    loaded.save_pretrained(tmp_path / "again")
    back = transformers.GenerationConfig.from_pretrained(tmp_path / "again")
    assert (back.max_new_tokens, back.repetition_penalty, back.top_k) == (5, 1.4, 7)
    hf.generation_config.max_new_tokens = None
    hf.generation_config.repetition_penalty = None


def test_generation_config_validation(tmp_path):
    with pytest.raises(ValueError, match="num_return_sequences"):
        GenerationConfig(num_beams=2, num_return_sequences=3)
    with pytest.raises(ValueError, match="greedy"):
        GenerationConfig(num_return_sequences=2)
    with pytest.raises(ValueError, match="cache_implementation"):
        GenerationConfig(cache_implementation="paged-ish")
    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationConfig(min_new_tokens=5, max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
    with pytest.warns(UserWarning, match="temperature"):
        GenerationConfig(temperature=0.5)
    config = GenerationConfig(
        max_new_tokens=9, do_sample=True, top_p=0.8, eos_token_id=[2, 3], custom_field=1
    )
    config.save_pretrained(tmp_path)
    again = GenerationConfig.from_pretrained(tmp_path)
    assert again == config and again.custom_field == 1
    assert GenerationConfig.from_pretrained(tmp_path, top_p=0.5).top_p == 0.5
    with pytest.raises(OSError, match="generation_config.json"):
        GenerationConfig.from_pretrained(tmp_path / "missing")


def test_generate_rejects_unsupported_arguments(llama):
    hf, model = llama
    ids = _prompts()[0]
    with pytest.raises(NotImplementedError, match="assistant_model"):
        model.generate(ids, assistant_model=model)
    with pytest.raises(ValueError, match="nothing to generate"):
        model.generate(ids, max_length=3)


def test_gpt2_token_type_ids_follow_transformers(tmp_path):
    hf, model = _pair("gpt2", tmp_path)
    ids, mask = _prompts()
    types = torch.zeros_like(ids)
    types[:, -3:] = 1
    for kwargs in (dict(max_new_tokens=6), dict(max_new_tokens=6, num_beams=2)):
        want = hf.generate(ids, attention_mask=mask, token_type_ids=types, **kwargs)
        assert torch.equal(model.generate(ids, attention_mask=mask, token_type_ids=types, **kwargs), want)

"""Whisper generate() token-identical to transformers on a tiny random model: language / task / prompt
tokens, forced_decoder_ids, timestamps, greedy and beam search, long-form sequential decoding."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import WhisperForConditionalGeneration  # noqa: E402
from pretrained.generation.whisper import WhisperTimeStampLogitsProcessor  # noqa: E402

# ids: 0-49 text, 50 <|endoftext|>, 51 <|startoftranscript|>, 52 <|en|>, 53 <|fr|>, 54 <|translate|>,
# 55 <|transcribe|>, 57 <|startofprev|>, 59 <|notimestamps|>, 60-119 timestamps <|0.00|> .. <|1.18|>
TINY = dict(vocab_size=120, num_mel_bins=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, d_model=32,
            max_source_positions=30, max_target_positions=40, pad_token_id=50, bos_token_id=50,
            eos_token_id=50, decoder_start_token_id=51, begin_suppress_tokens=[3, 50], init_std=0.3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    ref = transformers.WhisperForConditionalGeneration(transformers.WhisperConfig(**TINY)).eval()
    gc = ref.generation_config
    gc.lang_to_id = {"<|en|>": 52, "<|fr|>": 53}
    gc.task_to_id = {"translate": 54, "transcribe": 55}
    gc.no_timestamps_token_id = 59
    gc.prev_sot_token_id = 57
    gc.is_multilingual = True
    gc.suppress_tokens = [1, 2]
    path = tmp_path_factory.mktemp("whisper-gen")
    ref.save_pretrained(path)
    return ref, WhisperForConditionalGeneration.from_pretrained(path).eval()


def _features(batch, frames=60, seed=3):
    return torch.randn(batch, TINY["num_mel_bins"], frames, generator=torch.Generator().manual_seed(seed)) * 3


CASES = [
    dict(),  # language detected from the audio
    dict(language="fr"),
    dict(language="english", task="translate"),
    dict(language=["en", "fr"]),
    dict(return_timestamps=True),
    dict(language="en", return_timestamps=True, num_beams=3),
    dict(num_beams=2, language="fr"),
    dict(num_beams=2, num_return_sequences=2, language="en"),
    dict(prompt_ids=torch.tensor([57, 7, 8]), language="en"),
]


@pytest.mark.parametrize("kwargs", CASES, ids=lambda kw: ",".join(kw) or "default")
def test_short_form_matches_transformers(models, kwargs):
    ref, ours = models
    feats = _features(2)
    want = ref.generate(feats, max_new_tokens=12, **kwargs)
    got = ours.generate(feats, max_new_tokens=12, **kwargs)
    assert got.tolist() == want.tolist()


def test_forced_decoder_ids_from_the_generation_config(models):
    import copy

    ref, ours = models
    feats = _features(2, seed=11)
    configs = [copy.deepcopy(m.generation_config) for m in (ref, ours)]
    for config in configs:
        config.forced_decoder_ids = [[1, 53], [2, 54], [3, 59]]
    want = ref.generate(feats, generation_config=configs[0], max_new_tokens=12)
    got = ours.generate(feats, generation_config=configs[1], max_new_tokens=12)
    assert got.tolist() == want.tolist()


def test_return_dict_in_generate(models):
    ref, ours = models
    feats = _features(2, seed=13)
    want = ref.generate(feats, max_new_tokens=8, language="en", return_dict_in_generate=True, output_scores=True)
    got = ours.generate(feats, max_new_tokens=8, language="en", return_dict_in_generate=True, output_scores=True)
    assert got.sequences.tolist() == want.sequences.tolist()
    assert len(got.scores) == len(want.scores)
    torch.testing.assert_close(torch.stack(got.scores), torch.stack(want.scores), atol=1e-4, rtol=1e-4)


def test_default_length_and_segments(models):
    ref, ours = models
    feats = _features(1, seed=5)
    want = ref.generate(feats, return_timestamps=True, return_segments=True)
    got = ours.generate(feats, return_timestamps=True, return_segments=True)
    assert got["sequences"].tolist() == want["sequences"].tolist()
    assert [[(float(s["start"]), float(s["end"]), s["tokens"].tolist()) for s in row] for row in got["segments"]] \
        == [[(float(s["start"]), float(s["end"]), s["tokens"].tolist()) for s in row] for row in want["segments"]]


@pytest.mark.parametrize("num_beams", [1, 2])
def test_long_form_sequential_decoding(models, num_beams):
    ref, ours = models
    feats = _features(2, frames=170, seed=7)
    mask = torch.ones(2, 170, dtype=torch.long)
    mask[1, 110:] = 0
    kwargs = dict(attention_mask=mask, max_new_tokens=10, language="en", num_beams=num_beams, return_segments=True)
    want = ref.generate(feats, **kwargs)
    got = ours.generate(feats, **kwargs)
    assert got["sequences"].tolist() == want["sequences"].tolist()
    assert [[(float(s["start"]), float(s["end"])) for s in row] for row in got["segments"]] \
        == [[(float(s["start"]), float(s["end"])) for s in row] for row in want["segments"]]
    assert len(got["segments"][0]) > 1  # more than one window was decoded


@pytest.mark.parametrize("extra", [dict(num_beams=1), dict(num_beams=2),
                                   dict(prompt_ids=torch.tensor([57, 7, 8, 9])),
                                   dict(prompt_ids=torch.tensor([57, 7, 8]), prompt_condition_type="all-segments")],
                         ids=["greedy", "beams", "prompt-first-segment", "prompt-all-segments"])
def test_long_form_conditioned_on_previous_text(models, extra):
    ref, ours = models
    feats = _features(2, frames=200, seed=17)
    mask = torch.ones(2, 200, dtype=torch.long)
    mask[1, 130:] = 0
    kwargs = dict(attention_mask=mask, max_new_tokens=8, language="en", condition_on_prev_tokens=True,
                  return_segments=True, **extra)
    want = ref.generate(feats, **kwargs)
    got = ours.generate(feats, **kwargs)
    assert got["sequences"].tolist() == want["sequences"].tolist()
    assert [[(float(s["start"]), float(s["end"])) for s in row] for row in got["segments"]] \
        == [[(float(s["start"]), float(s["end"])) for s in row] for row in want["segments"]]
    assert len(got["segments"][0]) > 2


@pytest.mark.parametrize("extra", [
    dict(compression_ratio_threshold=0.3),
    dict(logprob_threshold=-1.0, num_beams=2),
    dict(logprob_threshold=-1.0, no_speech_threshold=0.01, condition_on_prev_tokens=True),
    dict(compression_ratio_threshold=1.1, logprob_threshold=-0.9, return_timestamps=True, frames=60),
], ids=["compression", "logprob-beams", "no-speech-conditioned", "short-form"])
def test_temperature_fallback(models, extra):
    ref, ours = models
    extra = dict(extra)
    feats = _features(2, frames=extra.pop("frames", 200), seed=19)
    mask = torch.ones(2, feats.shape[-1], dtype=torch.long)
    mask[1, feats.shape[-1] * 2 // 3:] = 0
    kwargs = dict(attention_mask=mask, max_new_tokens=8, language="en", temperature=(0.0, 0.4, 0.8, 1.2),
                  return_segments=True, **extra)
    torch.manual_seed(3)
    want = ref.generate(feats, **kwargs)
    torch.manual_seed(3)
    got = ours.generate(feats, **kwargs)
    assert got["sequences"].tolist() == want["sequences"].tolist()
    assert [[(float(s["start"]), float(s["end"])) for s in row] for row in got["segments"]] \
        == [[(float(s["start"]), float(s["end"])) for s in row] for row in want["segments"]]


def test_timestamp_processor_rules():
    cfg = type("C", (), dict(no_timestamps_token_id=59, eos_token_id=50, bos_token_id=50))()
    proc = WhisperTimeStampLogitsProcessor(cfg, begin_index=2)
    scores = torch.zeros(3, 120)
    ids = torch.tensor([[51, 52, 70, 10, 11], [51, 52, 10, 70, 72], [51, 52, 70, 10, 72]])
    out = proc(ids[:, :2], scores[:1].expand(3, -1).clone())
    assert torch.isinf(out[:, :60]).all()  # the first token is a timestamp
    out = proc(ids, scores)
    assert torch.isinf(out[0, 60:70]).all() and not torch.isinf(out[0, 71]).any()  # no going back in time
    assert torch.isinf(out[1, 60:]).all()  # a pair closed: text next
    assert torch.isinf(out[2, :50]).all() and not torch.isinf(out[2, 72])  # a pair is open


def test_long_input_without_timestamps_is_an_error(models):
    _, ours = models
    with pytest.raises(ValueError, match="return_timestamps"):
        ours.generate(_features(1, frames=90), return_timestamps=False)
    with pytest.raises(ValueError, match="logprob_threshold"):
        ours.generate(_features(1), no_speech_threshold=0.5)

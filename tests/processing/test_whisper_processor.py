"""WhisperProcessor through AutoProcessor against transformers: audio, text, both (labels), prompt helpers,
and the processor_config.json it writes."""

import json

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")

from whisper_fixtures import build_reference_tokenizer  # noqa: E402

from pretrained import AutoProcessor, WhisperProcessor  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("whisper-proc")
    ref = transformers.WhisperProcessor(transformers.WhisperFeatureExtractor(feature_size=16),
                                        build_reference_tokenizer())
    ref.save_pretrained(path)
    return transformers.AutoProcessor.from_pretrained(path), path


def _audio(seconds, seed=0):
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)


def test_auto_processor_and_calls(saved):
    ref, path = saved
    ours = AutoProcessor.from_pretrained(path)
    assert isinstance(ours, WhisperProcessor)
    clips = [_audio(1.5), _audio(0.7, seed=1)]
    want = ref(clips, sampling_rate=16000, return_tensors="np")
    got = ours(clips, sampling_rate=16000, return_tensors="np")
    np.testing.assert_allclose(got["input_features"], want["input_features"], atol=1e-5)
    assert ours(text="hello world")["input_ids"] == ref(text="hello world")["input_ids"]
    both_ref = ref(audio=clips[0], text="the quick fox", sampling_rate=16000)
    both = ours(audio=clips[0], text="the quick fox", sampling_rate=16000)
    assert both["labels"] == both_ref["labels"]
    assert ours.get_decoder_prompt_ids(language="fr", task="translate") == \
        ref.get_decoder_prompt_ids(language="fr", task="translate")
    assert list(ours.get_prompt_ids("lazy dog")) == list(ref.get_prompt_ids("lazy dog"))
    ids = ref.tokenizer(" hello world")["input_ids"]
    assert ours.batch_decode([ids], skip_special_tokens=True) == ref.batch_decode([ids], skip_special_tokens=True)
    with pytest.raises(ValueError, match="audio"):
        ours()


def test_language_through_from_pretrained(saved):
    _, path = saved
    ref = transformers.AutoProcessor.from_pretrained(path, language="german", task="transcribe")
    ours = AutoProcessor.from_pretrained(path, language="german", task="transcribe")
    assert ours(text="hallo")["input_ids"] == ref(text="hallo")["input_ids"]


def test_save_round_trip(saved, tmp_path):
    _, path = saved
    AutoProcessor.from_pretrained(path).save_pretrained(tmp_path)
    written = json.loads((tmp_path / "processor_config.json").read_text())
    assert written["processor_class"] == "WhisperProcessor"
    assert written["feature_extractor"]["feature_size"] == 16
    again = transformers.AutoProcessor.from_pretrained(tmp_path)
    assert type(again).__name__ == "WhisperProcessor"
    assert again.feature_extractor.feature_size == 16


def test_transformers_module_paths():
    import importlib

    for path, name in [("models.whisper", "WhisperTokenizer"), ("models.whisper", "WhisperProcessor"),
                       ("models.whisper", "WhisperForConditionalGeneration"),
                       ("models.whisper.tokenization_whisper", "WhisperTokenizer"),
                       ("models.whisper.processing_whisper", "WhisperProcessor"),
                       ("models.whisper.feature_extraction_whisper", "WhisperFeatureExtractor"),
                       ("models.whisper.modeling_whisper", "WhisperModel"),
                       ("models.whisper.configuration_whisper", "WhisperConfig"),
                       ("generation", "WhisperTimeStampLogitsProcessor"),
                       ("models.auto.modeling_auto", "AutoModelForSpeechSeq2Seq"),
                       ("pipelines", "AutomaticSpeechRecognitionPipeline")]:
        import pretrained.compat  # noqa: F401  (installs the module paths)

        assert getattr(importlib.import_module(f"pretrained.{path}"), name).__name__ == name

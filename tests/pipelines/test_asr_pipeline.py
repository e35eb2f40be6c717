"""automatic-speech-recognition pipeline against transformers' on a tiny random Whisper: text, timestamps,
chunked long audio, batched and unbatched; audio files read and resampled; the resampler on analytic
signals; the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
soundfile = pytest.importorskip("soundfile")

from whisper_fixtures import build_reference_tokenizer  # noqa: E402

from pretrained import pipeline  # noqa: E402
from pretrained.processing.audio import load_audio, resample  # noqa: E402

# tokenizer ids: 300 <|endoftext|>, 301 <|startoftranscript|>, 302.. languages, 402 <|translate|>,
# 403 <|transcribe|>, 405 <|startofprev|>, 407 <|notimestamps|>, 408.. timestamps
TINY = dict(vocab_size=1909, num_mel_bins=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, d_model=32,
            max_source_positions=1500, max_target_positions=64, pad_token_id=300, bos_token_id=300,
            eos_token_id=300, decoder_start_token_id=301, begin_suppress_tokens=[220, 300], init_std=0.5)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("whisper-asr")
    model = transformers.WhisperForConditionalGeneration(transformers.WhisperConfig(**TINY)).eval()
    gc = model.generation_config
    gc.lang_to_id = {"<|en|>": 302, "<|fr|>": 306}
    gc.task_to_id = {"translate": 402, "transcribe": 403}
    gc.no_timestamps_token_id = 407
    gc.prev_sot_token_id = 405
    gc.is_multilingual = True
    gc.max_length = 40  # as real checkpoints set 448: the pipeline's max_new_tokens default then yields
    gc._from_model_config = False  # else transformers drops the Whisper fields when it reads the file back
    model.save_pretrained(path)
    transformers.WhisperProcessor(transformers.WhisperFeatureExtractor(feature_size=16),
                                  build_reference_tokenizer()).save_pretrained(path)
    return path


def _speech(seconds, rate=16000, seed=0):
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * (150 + 200 * np.sin(t)) * t) + 0.1 * rng.standard_normal(t.shape)
            ).astype(np.float32)


GEN = dict(max_new_tokens=12, num_beams=1)


@pytest.mark.parametrize("kwargs", [dict(), dict(return_timestamps=True), dict(language="fr", num_beams=2),
                                    dict(chunk_length_s=4.0, return_timestamps=True),
                                    dict(chunk_length_s=3.0, stride_length_s=[1.0, 0.5]),
                                    dict(return_language=True, return_timestamps=True)],
                         ids=["text", "timestamps", "beams", "chunked-timestamps", "chunked", "language"])
def test_matches_transformers(saved, kwargs):
    ref = transformers.pipeline("automatic-speech-recognition", model=str(saved))
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    clips = [_speech(2.5), _speech(9.0, seed=1)]
    call = {**GEN, **kwargs}
    for clip in clips:
        assert ours(clip, **call) == ref(clip, **call)
    if "return_language" not in kwargs:  # (transformers' batching fails on return_language: ours is checked alone)
        assert ours(clips, batch_size=2, **call) == ref(clips, batch_size=2, **call)
    assert ours(clips, batch_size=2, **call) == [ours(c, **call) for c in clips]


def test_inference_context_routes_encoder_and_cross_projections(saved):
    # the encoder and the cross-attention key / value projections (many rows: the encoder's positions) run
    # inside ManyRowsKernels for the length of the context; nothing else is swapped, and all is restored after
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    encoder, decoder = ours.model.get_encoder(), ours.model.get_decoder()
    cross = [m for layer in decoder.layers for m in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)]
    others = [m for m in decoder.modules() if isinstance(m, torch.nn.Linear) and all(m is not c for c in cross)]
    assert len(cross) == 2 * TINY["decoder_layers"] and others
    with ours.get_inference_context()():
        assert "forward" in vars(encoder) and all("forward" in vars(m) for m in cross)
        assert not any("forward" in vars(m) for m in others)
    assert "forward" not in vars(encoder) and not any("forward" in vars(m) for m in cross)


def test_encoder_attention_on_the_kernel(saved, monkeypatch):
    # the encoder's self-attention (1,500 positions, head size 16) runs on the many-query kernel, and the
    # transcriptions still equal transformers' (test_matches_transformers, same model)
    from pretrained.inference import encoder_attention

    lib = encoder_attention.load()
    if lib is None:
        pytest.skip("no AVX-512 or no C++ compiler")
    calls = []
    real = lib.encoder_attention
    monkeypatch.setattr(lib, "encoder_attention", lambda *a: calls.append(a[5:9]) or real(*a))
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    ref = transformers.pipeline("automatic-speech-recognition", model=str(saved))
    clips = [_speech(2.5), _speech(9.0, seed=1)]
    assert ours(clips, batch_size=2, **GEN) == ref(clips, batch_size=2, **GEN)
    # (a random model's timestamp tokens can make both libraries encode a clip's window more than once)
    assert calls[0] == (2, 2, 1500, 16) and all(call[1:] == (2, 1500, 16) for call in calls)


def test_pipeline_generation_defaults(saved):
    # the pipeline's 5 beams, and the model's max_length instead of the default max_new_tokens
    ref = transformers.pipeline("automatic-speech-recognition", model=str(saved))
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    clip = _speech(4.0, seed=8)
    assert ours(clip) == ref(clip)
    assert ours(clip, return_timestamps=True) == ref(clip, return_timestamps=True)


def test_long_audio_sequential_and_dict_inputs(saved):
    ref = transformers.pipeline("automatic-speech-recognition", model=str(saved))
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    clip = _speech(35.0, seed=2)
    assert ours(clip, return_timestamps=True, **GEN) == ref(clip, return_timestamps=True, **GEN)
    given = {"raw": _speech(3.0, seed=3), "sampling_rate": 16000}
    assert ours(dict(given), **GEN) == ref(dict(given), **GEN)


def test_save_and_reload(saved, tmp_path):
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    ours.save_pretrained(tmp_path)
    again = pipeline("automatic-speech-recognition", model=str(tmp_path))
    clip = _speech(2.0, seed=9)
    assert again(clip, **GEN) == ours(clip, **GEN)
    with pytest.raises(ValueError, match="automatic-speech-recognition"):
        pipeline("fill-mask", model=ours.model, tokenizer=ours.tokenizer, feature_extractor=ours.feature_extractor)


def test_files_and_resampling(saved, tmp_path):
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    ref = transformers.pipeline("automatic-speech-recognition", model=str(saved))
    clip = _speech(3.0, rate=16000, seed=4)
    stereo = np.stack([clip, clip * 0.5], axis=1)
    soundfile.write(tmp_path / "a.wav", stereo, 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "a.flac", clip, 16000)
    mono = stereo.mean(axis=1)
    assert ours(str(tmp_path / "a.wav"), **GEN) == ref(mono, **GEN)
    samples, rate = load_audio(tmp_path / "a.flac")
    assert rate == 16000 and np.abs(samples - clip).max() < 1e-4  # 16-bit FLAC
    # 44.1 kHz file: read and resampled by us; the oracle gets our resampled samples
    soundfile.write(tmp_path / "b.wav", _speech(2.0, rate=44100, seed=5), 44100, subtype="FLOAT")
    resampled = resample(_speech(2.0, rate=44100, seed=5), 44100, 16000)
    assert ours(str(tmp_path / "b.wav"), **GEN) == ref(resampled, **GEN)
    with pytest.raises(FileNotFoundError, match="No audio file"):
        ours(str(tmp_path / "missing.wav"))


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampler_on_analytic_signals(rate):
    t = np.arange(rate) / rate
    x = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 2500 * t)
    y = resample(x, rate, 16000)
    assert y.shape == (16000,) and y.dtype == np.float32
    t2 = np.arange(16000) / 16000
    want = np.sin(2 * np.pi * 440 * t2) + 0.5 * np.sin(2 * np.pi * 2500 * t2)
    inner = slice(300, -300)  # the edges see zero padding
    assert np.abs(y - want)[inner].max() < (5e-3 if rate == 8000 else 1e-3)
    # a tone above the new Nyquist frequency (past the Hann-windowed sinc's transition band) is removed
    high = resample(np.sin(2 * np.pi * 10000 * t), rate, 16000) if rate > 20000 else None
    if high is not None:
        assert np.abs(high[inner]).max() < 1e-2
    np.testing.assert_allclose(resample(np.stack([x, 2 * x]), rate, 16000)[1], 2 * y, atol=1e-5)


def test_cli_prints_json_lines(saved, tmp_path):
    soundfile.write(tmp_path / "s.wav", _speech(2.0, seed=6), 16000, subtype="FLOAT")
    ours = pipeline("automatic-speech-recognition", model=str(saved))
    done = subprocess.run([sys.executable, "-m", "pretrained", "run", "automatic-speech-recognition", "--model",
                           str(saved), "--max-new-tokens", "12", "--language", "en", str(tmp_path / "s.wav")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert lines == [ours(str(tmp_path / "s.wav"), max_new_tokens=12, language="en")]

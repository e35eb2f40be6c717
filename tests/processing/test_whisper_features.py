"""WhisperFeatureExtractor against transformers' (test-only oracle) on WAV files written with soundfile:
a chirp plus noise at 8 / 16 / 44.1 kHz, mono and stereo, shorter and longer than 30 s. Log-mel features
within 1e-5; padding, truncation, masks, normalisation; the settings file both ways; the mel filters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch
import transformers as T

import pretrained as P
from pretrained.processing.audio_utils import mel_filter_bank

TOL = 1e-5


def chirp(rate: int, seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    sweep = np.sin(2 * np.pi * np.cumsum(np.linspace(80, min(6000, rate / 2 - 100), n)) / rate) * 0.5
    mono = sweep + 0.05 * rng.standard_normal(n)
    if channels == 1:
        return mono
    return np.stack([mono, 0.5 * mono + 0.02 * rng.standard_normal(n)], axis=1)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    """{(rate, channels, seconds): path}: PCM-16 WAV files, read back as soundfile returns them."""
    folder = tmp_path_factory.mktemp("audio")
    files = {}
    for i, (rate, channels, seconds) in enumerate([(16000, 1, 3.2), (16000, 2, 7.5), (16000, 1, 31.0),
                                                   (8000, 1, 4.0), (44100, 2, 2.5), (16000, 1, 0.3)]):
        path = folder / f"clip{i}_{rate}_{channels}ch.wav"
        soundfile.write(path, chirp(rate, seconds, channels, i), rate, subtype="PCM_16")
        files[(rate, channels, seconds)] = path
    return files


def read_mono(path) -> np.ndarray:
    data, _ = soundfile.read(path, dtype="float32")
    return data.mean(axis=1) if data.ndim == 2 else data


@pytest.fixture(scope="module")
def extractors():
    return P.WhisperFeatureExtractor(), T.WhisperFeatureExtractor()


def close(a, b):
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    assert a.shape == b.shape and a.dtype == b.dtype
    assert torch.allclose(a.float(), b.float(), atol=TOL, rtol=0), (a.float() - b.float()).abs().max()


def test_mel_filters_match():
    ours, theirs = P.WhisperFeatureExtractor(feature_size=128), T.WhisperFeatureExtractor(feature_size=128)
    assert np.allclose(ours.mel_filters, theirs.mel_filters, atol=1e-12, rtol=0)
    for scale in ("htk", "kaldi", "slaney"):
        ref = T.audio_utils.mel_filter_bank(201, 40, 20.0, 7600.0, 16000, norm=None, mel_scale=scale)
        assert np.allclose(mel_filter_bank(201, 40, 20.0, 7600.0, 16000, mel_scale=scale), ref, atol=1e-12, rtol=0)


def test_each_file_alone(wavs, extractors):
    ours, theirs = extractors
    for (rate, _, _), path in wavs.items():
        audio = read_mono(path)
        if rate == 16000:
            a, b = ours(audio, sampling_rate=rate, return_tensors="pt"), theirs(audio, sampling_rate=rate,
                                                                                 return_tensors="pt")
        else:  # other rates are refused by both; the arithmetic is still compared without the check
            with pytest.raises(ValueError, match=str(rate)):
                ours(audio, sampling_rate=rate)
            a, b = ours(audio, return_tensors="pt"), theirs(audio, return_tensors="pt")
        assert a["input_features"].shape == (1, 80, 3000)
        close(a["input_features"], b["input_features"])


def test_batches_and_options(wavs, extractors):
    ours, theirs = extractors
    batch = [read_mono(p) for (rate, _, _), p in wavs.items() if rate == 16000]
    for options in ({}, {"return_attention_mask": True}, {"do_normalize": True}, {"padding": "longest"},
                    {"padding": "longest", "return_attention_mask": True, "pad_to_multiple_of": 1000},
                    {"max_length": 48000}, {"padding": "longest", "truncation": False}):
        a = ours(batch, sampling_rate=16000, return_tensors="pt", **options)
        b = theirs(batch, sampling_rate=16000, return_tensors="pt", **options)
        assert sorted(a) == sorted(b), options
        for key in b:
            close(a[key], b[key])
    # no tensors asked for: numpy arrays, as transformers returns them
    a, b = ours(batch[:2], sampling_rate=16000), theirs(batch[:2], sampling_rate=16000)
    assert isinstance(a["input_features"], np.ndarray)
    close(a["input_features"], b["input_features"])
    # lists of floats, float64, a 2-d batch array, torch tensors
    short = batch[0][:20000]
    for x in (short.tolist(), short.astype(np.float64), np.stack([short, short[::-1]]), torch.from_numpy(short)):
        y = x.numpy() if isinstance(x, torch.Tensor) else x
        close(ours(x, sampling_rate=16000, return_tensors="np")["input_features"],
              theirs(y, sampling_rate=16000, return_tensors="np")["input_features"])


def test_batched_equals_alone(wavs, extractors):
    ours, _ = extractors
    clips = [read_mono(p) for (rate, _, _), p in wavs.items() if rate == 16000]
    together = ours(clips, sampling_rate=16000, return_tensors="pt")["input_features"]
    for i, clip in enumerate(clips):
        close(together[i:i + 1], ours(clip, sampling_rate=16000, return_tensors="pt")["input_features"])


def test_settings_file_both_ways(tmp_path):
    ours = P.WhisperFeatureExtractor(feature_size=128, return_attention_mask=True)
    ours.save_pretrained(tmp_path / "ours")
    T.WhisperFeatureExtractor(feature_size=128, return_attention_mask=True).save_pretrained(tmp_path / "theirs")
    ours_file = json.loads((tmp_path / "ours" / "preprocessor_config.json").read_text())
    assert ours_file == json.loads((tmp_path / "theirs" / "preprocessor_config.json").read_text())
    loaded = P.AutoFeatureExtractor.from_pretrained(tmp_path / "theirs")
    assert type(loaded) is P.WhisperFeatureExtractor and loaded.feature_size == 128
    assert np.array_equal(loaded.mel_filters, ours.mel_filters)
    assert T.AutoFeatureExtractor.from_pretrained(tmp_path / "ours").feature_size == 128
    assert type(P.AutoProcessor.from_pretrained(tmp_path / "ours")) is P.WhisperFeatureExtractor
    extractor, unused = P.WhisperFeatureExtractor.from_pretrained(tmp_path / "ours", hop_length=100, foo=1,
                                                                   return_unused_kwargs=True)
    assert extractor.hop_length == 100 and unused == {"foo": 1}


def test_sequence_padding_parity():
    ours = P.SequenceFeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.5)
    theirs = T.SequenceFeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.5)
    ours.model_input_names = theirs.model_input_names = ["input_values"]
    features = {"input_values": [np.arange(5, dtype=np.float64), np.arange(9, dtype=np.float64)]}
    for options in ({}, {"padding": "max_length", "max_length": 12}, {"max_length": 6, "truncation": True},
                    {"pad_to_multiple_of": 4}, {"padding": False}, {"return_attention_mask": False}):
        a = ours.pad(dict(features), **options)
        b = theirs.pad(dict(features), **options)
        assert sorted(a) == sorted(b), options
        for key in b:
            for x, y in zip(a[key], b[key], strict=True):
                assert np.array_equal(x, y) and np.asarray(x).dtype == np.asarray(y).dtype, (options, key)
    with pytest.raises(ValueError, match="max_length"):
        ours.pad(dict(features), padding="max_length")


def test_bad_audio_is_named(extractors):
    ours, _ = extractors
    with pytest.raises(ValueError, match="mono"):
        ours(np.zeros((2, 3, 100), np.float32), sampling_rate=16000)
    with pytest.raises(ValueError, match="mono"):
        ours([np.zeros((100, 2), np.float32)], sampling_rate=16000)
    with pytest.raises(ValueError, match="padding"):
        ours(np.zeros(100, np.float32), sampling_rate=16000, padding="everything")

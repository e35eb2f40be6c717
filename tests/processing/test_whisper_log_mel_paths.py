"""The per-clip CPU log-mel route of WhisperFeatureExtractor against transformers' (the test-only oracle)
``torch.stft`` route: other FFT sizes, hops and mel counts, clips at the edges of the reflect padding
(shorter ones take the ``torch.stft`` route), exact-length clips used without a copy, left padding,
empty filter blocks. Features within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as T

import pretrained as P

TOL = 1e-5


def noise_chirp(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.4 * np.sin(2 * np.pi * (200 + 3000 * t / max(t[-1], 1e-3)) * t)
            + 0.05 * rng.standard_normal(n)).astype(np.float32)


def assert_close(ours, theirs, clips, **call):
    a = ours(clips, sampling_rate=16000, return_tensors="pt", **call)
    b = theirs(clips, sampling_rate=16000, return_tensors="pt", **call)
    assert set(a) == set(b)
    for key in b:
        assert a[key].shape == b[key].shape and a[key].dtype == b[key].dtype, key
        assert torch.allclose(a[key].float(), b[key].float(), atol=TOL, rtol=0), (key, (a[key] - b[key]).abs().max())


@pytest.mark.parametrize("settings", [
    {},
    {"feature_size": 128},
    {"n_fft": 512, "hop_length": 128, "feature_size": 64},
    {"n_fft": 256, "hop_length": 100, "feature_size": 40, "chunk_length": 5},
    {"feature_size": 200},  # more filters than the bins can separate: some filter blocks are all zero
])
def test_settings_match_transformers(settings):
    ours, theirs = P.WhisperFeatureExtractor(**settings), T.WhisperFeatureExtractor(**settings)
    full = ours.n_samples
    clips = [noise_chirp(full, 0), noise_chirp(16000, 1), noise_chirp(full + 999, 2)]
    assert_close(ours, theirs, clips[0])  # exactly the target length: used without a copy
    assert_close(ours, theirs, clips)
    assert_close(ours, theirs, clips, return_attention_mask=True)
    assert_close(ours, theirs, clips, do_normalize=True)


@pytest.mark.parametrize("length", [150, 201, 202, 203, 401, 1601])
def test_short_clips_at_the_padding_edges(length):
    # padding="longest" keeps the clip's own length; 201 samples or fewer cannot be reflect-padded by 200 on
    # the fast route (torch.stft's route handles or refuses them as transformers does)
    ours, theirs = P.WhisperFeatureExtractor(), T.WhisperFeatureExtractor()
    clip = noise_chirp(length, length)
    try:
        expected = theirs([clip], sampling_rate=16000, padding="longest", return_tensors="pt")["input_features"]
    except RuntimeError:
        with pytest.raises(RuntimeError):
            ours([clip], sampling_rate=16000, padding="longest", return_tensors="pt")
        return
    got = ours([clip], sampling_rate=16000, padding="longest", return_tensors="pt")["input_features"]
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=TOL, rtol=0)


def test_left_padding_and_batch_equals_alone():
    ours, theirs = P.WhisperFeatureExtractor(padding_side="left"), T.WhisperFeatureExtractor(padding_side="left")
    clips = [noise_chirp(n, n) for n in (8000, 40000, 480000)]
    assert_close(ours, theirs, clips)
    batched = ours(clips, sampling_rate=16000)["input_features"]
    for clip, row in zip(clips, batched, strict=True):
        assert np.array_equal(ours([clip], sampling_rate=16000)["input_features"][0], row)


def test_filters_replaced_after_first_use():
    ours = P.WhisperFeatureExtractor()
    clip = noise_chirp(32000, 3)
    ours(clip, sampling_rate=16000)
    ours.mel_filters = ours.mel_filters * 2.0  # derived blocks follow the new filters
    theirs = T.WhisperFeatureExtractor()
    theirs.mel_filters = theirs.mel_filters * 2.0
    assert_close(ours, theirs, clip)

"""Audio input: read WAV / FLAC files (with soundfile), mix to mono, resample.

:func:`resample` is a windowed-sinc polyphase resampler: the rates are reduced by their gcd to ``orig``
input and ``new`` output samples per period; each of the ``new`` output phases has its own filter, a sinc
low-passed at ``rolloff`` times the lower Nyquist frequency, tapered by a Hann window ``lowpass_filter_width``
zero crossings wide; one strided 1-d convolution applies every phase at once. This is the interpolation
torchaudio's default ``resample`` uses (and ffmpeg's ``swr`` approximates), so audio at another rate reaches
the feature extractor as those libraries would give it.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def _sinc_kernels(orig: int, new: int, lowpass_filter_width: int, rolloff: float) -> tuple[np.ndarray, int]:
    cutoff = min(orig, new) * rolloff  # in cycles per period of the reduced rates
    width = math.ceil(lowpass_filter_width * orig / cutoff)
    taps = np.arange(-width, width + orig, dtype=np.float64) / orig
    # phase p of the output sits p / new of an input period after the input sample it starts from
    t = (-np.arange(new, dtype=np.float64)[:, None] / new + taps[None, :]) * cutoff
    t = np.clip(t, -lowpass_filter_width, lowpass_filter_width)
    window = np.cos(t * math.pi / lowpass_filter_width / 2) ** 2
    t = t * math.pi
    safe = np.where(t == 0, 1.0, t)
    sinc = np.where(t == 0, 1.0, np.sin(safe) / safe)
    return sinc * window * (cutoff / orig), width


def resample(waveform: Any, orig_freq: int, new_freq: int, lowpass_filter_width: int = 6,
             rolloff: float = 0.99) -> np.ndarray:
    """``waveform`` (``(..., samples)``, numpy or torch) from ``orig_freq`` Hz to ``new_freq`` Hz.

    The output has ``ceil(samples * new_freq / orig_freq)`` samples, float32.
    """
    import torch
    import torch.nn.functional as F

    if orig_freq <= 0 or new_freq <= 0:
        raise ValueError(f"sampling rates must be positive, got {orig_freq} and {new_freq}")
    array = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else np.asarray(waveform)
    array = array.astype(np.float32, copy=False)
    if orig_freq == new_freq:
        return array
    gcd = math.gcd(int(orig_freq), int(new_freq))
    orig, new = int(orig_freq) // gcd, int(new_freq) // gcd
    kernels, width = _sinc_kernels(orig, new, lowpass_filter_width, rolloff)
    shape = array.shape
    flat = torch.from_numpy(np.ascontiguousarray(array.reshape(-1, shape[-1])))[:, None, :]
    length = shape[-1]
    padded = F.pad(flat.double(), (width, width + orig))
    out = F.conv1d(padded, torch.from_numpy(kernels)[:, None, :], stride=orig)  # (rows, new, periods)
    out = out.transpose(1, 2).reshape(flat.shape[0], -1)
    target = math.ceil(new * length / orig)
    return out[:, :target].float().numpy().reshape(*shape[:-1], target)


def load_audio(path: str | os.PathLike, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file (WAV, FLAC, OGG: whatever libsndfile reads) as mono float32.

    Channels are averaged (as ffmpeg's ``-ac 1`` does); with ``sampling_rate`` the samples are resampled to it.
    Returns ``(samples, rate)``.
    """
    try:
        import soundfile
    except ImportError as e:
        raise ImportError("Reading audio files needs the soundfile package: pip install soundfile "
                          "(or pass the samples as an array with their sampling_rate).") from e
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No audio file at {os.fspath(path)!r}")
    try:
        data, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except RuntimeError as e:  # soundfile's error for unreadable or unknown formats
        raise ValueError(f"Could not read {os.fspath(path)!r} as audio: {e}") from e
    samples = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sampling_rate is not None and sampling_rate != rate:
        samples, rate = resample(samples, rate, sampling_rate), sampling_rate
    return np.ascontiguousarray(samples, dtype=np.float32), int(rate)

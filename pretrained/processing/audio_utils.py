"""Audio helpers of the feature extractors: mel scales and mel filter banks (numpy, float64)."""

from __future__ import annotations

import numpy as np

_MIN_LOG_HERTZ, _MIN_LOG_MEL = 1000.0, 15.0
_SLANEY_LOGSTEP = np.log(6.4) / 27.0  # the log-region step of the Slaney scale, per mel


def hertz_to_mel(freq: float | np.ndarray, mel_scale: str = "htk") -> float | np.ndarray:
    """Frequencies in Hz on the ``"htk"``, ``"kaldi"`` or ``"slaney"`` mel scale (Slaney: linear below
    1 kHz, logarithmic above)."""
    if mel_scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    if mel_scale == "kaldi":
        return 1127.0 * np.log(1.0 + freq / 700.0)
    if mel_scale != "slaney":
        raise ValueError(f'mel_scale should be one of "htk", "slaney" or "kaldi", got {mel_scale!r}.')
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= _MIN_LOG_HERTZ
    mels = np.where(log_region, _MIN_LOG_MEL + np.log(np.maximum(freq, 1e-300) / _MIN_LOG_HERTZ) / _SLANEY_LOGSTEP,
                    mels)
    return mels if mels.ndim else float(mels)


def mel_to_hertz(mels: float | np.ndarray, mel_scale: str = "htk") -> float | np.ndarray:
    """The inverse of :func:`hertz_to_mel`."""
    if mel_scale == "htk":
        return 700.0 * (np.power(10, mels / 2595.0) - 1.0)
    if mel_scale == "kaldi":
        return 700.0 * (np.exp(mels / 1127.0) - 1.0)
    if mel_scale != "slaney":
        raise ValueError(f'mel_scale should be one of "htk", "slaney" or "kaldi", got {mel_scale!r}.')
    mels = np.asarray(mels, dtype=np.float64)
    freq = np.where(mels >= _MIN_LOG_MEL, _MIN_LOG_HERTZ * np.exp(_SLANEY_LOGSTEP * (mels - _MIN_LOG_MEL)),
                    200.0 * mels / 3.0)
    return freq if freq.ndim else float(freq)


def mel_filter_bank(num_frequency_bins: int, num_mel_filters: int, min_frequency: float, max_frequency: float,
                    sampling_rate: int, norm: str | None = None, mel_scale: str = "htk",
                    triangularize_in_mel_space: bool = False, dtype: np.dtype | str = np.float64) -> np.ndarray:
    """Triangular mel filters, ``(num_frequency_bins, num_mel_filters)``: each filter rises from the previous
    filter's centre to its own and falls to the next one's; ``norm="slaney"`` scales each to unit area.

    Raises:
        ValueError: an unknown ``norm`` / ``mel_scale``, fewer than 2 frequency bins, or min > max frequency.
    """
    if norm not in (None, "slaney"):
        raise ValueError(f'norm must be None or "slaney", got {norm!r}.')
    if num_frequency_bins < 2:
        raise ValueError(f"Require num_frequency_bins: {num_frequency_bins} >= 2")
    if min_frequency > max_frequency:
        raise ValueError(f"Require min_frequency: {min_frequency} <= max_frequency: {max_frequency}")
    mel_edges = np.linspace(hertz_to_mel(min_frequency, mel_scale), hertz_to_mel(max_frequency, mel_scale),
                            num_mel_filters + 2)
    edges = mel_to_hertz(mel_edges, mel_scale)
    if triangularize_in_mel_space:
        bin_width = sampling_rate / ((num_frequency_bins - 1) * 2)
        bins = hertz_to_mel(bin_width * np.arange(num_frequency_bins), mel_scale)
        edges = mel_edges
    else:
        bins = np.linspace(0, sampling_rate // 2, num_frequency_bins)
    widths = np.diff(edges)
    slopes = edges[None, :] - bins[:, None]  # (bins, filters + 2)
    rising = -slopes[:, :-2] / widths[:-1]
    falling = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(rising, falling)).astype(dtype, copy=False)
    if norm == "slaney":
        filters *= (2.0 / (edges[2:num_mel_filters + 2] - edges[:num_mel_filters]))[None, :]
    return filters

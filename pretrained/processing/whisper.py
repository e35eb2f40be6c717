"""Whisper's feature extractor: 16 kHz audio, padded or cut to 30 s, as an 80-bin log-mel spectrogram.

The whole batch goes through one ``torch.stft`` and one matrix product with the mel filters; padding and
truncation write straight into one preallocated array (no per-example padding calls).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from pretrained.processing.audio_utils import mel_filter_bank
from pretrained.processing.feature_extraction import BatchFeature, SequenceFeatureExtractor

logger = logging.getLogger("pretrained")


class WhisperFeatureExtractor(SequenceFeatureExtractor):
    """Log-mel features for Whisper: ``extractor(audio, sampling_rate=16000, return_tensors="pt")`` →
    ``input_features`` ``(batch, feature_size, frames)`` (3000 frames for 30 s).

    Args:
        feature_size: Mel bins (80; 128 for large-v3).
        sampling_rate: The audio's sample rate (16000); other rates are refused, not resampled.
        hop_length: Samples between frames (160).
        chunk_length: Seconds the audio is padded or cut to (30).
        n_fft: FFT size (400).
        padding_value: The value padding samples hold.
        dither: Gaussian noise added to the samples (0: none).
        return_attention_mask: Return a per-frame ``attention_mask`` by default.
    """

    model_input_names = ["input_features"]

    def __init__(self, feature_size: int = 80, sampling_rate: int = 16000, hop_length: int = 160,
                 chunk_length: int = 30, n_fft: int = 400, padding_value: float = 0.0, dither: float = 0.0,
                 return_attention_mask: bool = False, **kwargs: Any) -> None:
        for key in ("n_samples", "nb_max_frames"):  # derived, but saved files carry them
            kwargs.pop(key, None)
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         return_attention_mask=return_attention_mask, **kwargs)
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.chunk_length = chunk_length
        self.n_samples = chunk_length * sampling_rate
        self.nb_max_frames = self.n_samples // hop_length
        self.dither = dither
        self.mel_filters = mel_filter_bank(num_frequency_bins=1 + n_fft // 2, num_mel_filters=feature_size,
                                           min_frequency=0.0, max_frequency=8000.0, sampling_rate=sampling_rate,
                                           norm="slaney", mel_scale="slaney")

    def __call__(self, raw_speech: Any, truncation: bool = True, pad_to_multiple_of: int | None = None,
                 return_tensors: str | None = None, return_attention_mask: bool | None = None,
                 padding: bool | str = "max_length", max_length: int | None = None, sampling_rate: int | None = None,
                 do_normalize: bool | None = None, device: str = "cpu", **kwargs: Any) -> BatchFeature:
        """Features of one clip (a 1-d array or list of floats) or a batch (a list of them, or a 2-d array).

        Raises:
            ValueError: a ``sampling_rate`` other than the extractor's, or audio with more than one channel.
        """
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(f"{type(self).__name__} expects audio sampled at {self.sampling_rate} Hz, got "
                             f"{sampling_rate} Hz; resample it first.")
        if sampling_rate is None:
            logger.warning("Pass sampling_rate=... to %s() so that audio at another rate is caught.",
                           type(self).__name__)
        clips = _clips(raw_speech)
        strategy = {True: "longest", False: "do_not_pad"}.get(padding, getattr(padding, "value", padding))
        if strategy not in ("longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}.")
        target = max_length if max_length else self.n_samples
        lengths = [min(len(c), target) if truncation else len(c) for c in clips]
        if strategy == "longest":
            target = max(lengths)
        elif strategy == "do_not_pad":
            if len(set(lengths)) > 1:
                raise ValueError("Clips of different lengths need padding; pass padding='longest' or 'max_length'.")
            target = lengths[0]
        if pad_to_multiple_of and target % pad_to_multiple_of:
            target = (target // pad_to_multiple_of + 1) * pad_to_multiple_of
        target = max(target, max(lengths))
        samples = np.full((len(clips), target), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(clips), target), dtype=np.int32)
        left = self.padding_side == "left"
        for row, (clip, length) in enumerate(zip(clips, lengths, strict=True)):
            start = target - length if left else 0
            samples[row, start:start + length] = clip[:length]
            mask[row, start:start + length] = 1
        if do_normalize:
            samples = self._normalize(samples, mask)
        out: dict[str, Any] = {"input_features": self._log_mel(samples, device)}
        # As transformers: asked for, the mask is per frame; kept by default or for do_normalize, per sample.
        keep = return_attention_mask or do_normalize
        if return_attention_mask:
            frames = mask[:, ::self.hop_length]
            out["attention_mask"] = frames[:, :-1] if target % self.hop_length else frames
        elif self.return_attention_mask if keep is None else keep:
            out["attention_mask"] = mask
        return BatchFeature(out, tensor_type=return_tensors)

    def _normalize(self, samples: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # Zero mean, unit variance over each clip's real samples; padding keeps padding_value.
        out = samples.copy()
        for row in range(len(samples)):
            real = mask[row].astype(bool)
            values = samples[row][real]
            out[row] = (samples[row] - values.mean()) / np.sqrt(values.var() + 1e-7)
            out[row][~real] = self.padding_value
        return out

    def _log_mel(self, samples: np.ndarray, device: str) -> np.ndarray:
        import torch

        waveform = torch.from_numpy(samples).to(device, torch.float32)
        if self.dither:
            waveform = waveform + self.dither * torch.randn_like(waveform)
        window = torch.hann_window(self.n_fft, device=device)
        stft = torch.stft(waveform, self.n_fft, self.hop_length, window=window, return_complex=True)
        # |z|^2 as re^2 + im^2 (no square root; within 2 float32 ulps of abs() ** 2); (batch, bins, frames),
        # the last frame dropped, as Whisper does
        frames = stft[..., :-1]
        power = frames.real.square() + frames.imag.square()
        filters = torch.from_numpy(self.mel_filters).to(device, torch.float32)
        log_spec = torch.clamp(filters.T @ power, min=1e-10).log10()  # (batch, mels, frames)
        peak = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = (torch.maximum(log_spec, peak - 8.0) + 4.0) / 4.0
        return log_spec.cpu().numpy()


def _clips(raw_speech: Any) -> list[np.ndarray]:
    """The input as a list of 1-d float32 clips (one clip, a list of clips, or a 2-d batch array)."""
    if hasattr(raw_speech, "detach"):
        raw_speech = raw_speech.detach().cpu().numpy()
    if isinstance(raw_speech, np.ndarray):
        if raw_speech.ndim > 2:
            raise ValueError(f"Only mono-channel audio is supported; got an array of shape {raw_speech.shape}.")
        clips = list(raw_speech) if raw_speech.ndim == 2 else [raw_speech]
    elif isinstance(raw_speech, (list, tuple)) and raw_speech and isinstance(raw_speech[0], (np.ndarray, list, tuple)):
        clips = list(raw_speech)
    elif isinstance(raw_speech, (list, tuple)):
        clips = [raw_speech]
    else:
        raise ValueError(f"Audio must be an array or a list of floats (or a list of those), got "
                         f"{type(raw_speech).__name__}.")
    if not clips or any(len(clip) == 0 for clip in clips):
        raise ValueError("Got no audio: pass at least one clip with at least one sample.")
    out = []
    for clip in clips:
        array = np.asarray(clip.detach().cpu().numpy() if hasattr(clip, "detach") else clip, dtype=np.float32)
        if array.ndim != 1:
            raise ValueError(f"Only mono-channel audio is supported; got a clip of shape {array.shape} (average the "
                             "channels, e.g. audio.mean(axis=1)).")
        out.append(array)
    return out

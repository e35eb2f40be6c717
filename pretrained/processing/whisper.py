"""Whisper's feature extractor: 16 kHz audio, padded or cut to 30 s, as an 80-bin log-mel spectrogram.

Padding and truncation write straight into one preallocated array (no per-example padding calls; a clip
that already has the target length is used as it is, and the per-sample mask is only built when it is
returned or needed). On the CPU each clip then goes through its own short-time Fourier transform, so a
batch costs what its clips cost alone (one batched transform of 8 clips spends half its time waiting on
memory): the reflect padding is written with numpy, the frames are a strided view windowed in one
multiplication, one real FFT, ``re² + im²`` in place, and the mel projection is a few small matrix products,
one per block of 8 filters over only the frequency bins those filters cover (the filters are triangles, so
the full product is 90% multiplications by zero), into the output, where clamp, log10 and the
``max - 8`` floor run in place. Equal to transformers' ``torch.stft`` route within float32 rounding
(about 1e-7). Other devices take that route.
"""

from __future__ import annotations

import logging
import threading
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
        keep = return_attention_mask or do_normalize
        want_mask = bool(return_attention_mask) or (self.return_attention_mask if keep is None else keep)
        left = self.padding_side == "left"
        if len(clips) == 1 and lengths[0] == target == len(clips[0]) and not want_mask:
            samples = clips[0][None]  # nothing to pad or cut: no copy
            mask = None
        else:
            samples = np.empty((len(clips), target), dtype=np.float32)
            mask = np.zeros((len(clips), target), dtype=np.int32) if want_mask else None
            for row, (clip, length) in enumerate(zip(clips, lengths, strict=True)):
                start = target - length if left else 0
                samples[row, start:start + length] = clip[:length]
                samples[row, :start] = self.padding_value
                samples[row, start + length:] = self.padding_value
                if mask is not None:
                    mask[row, start:start + length] = 1
        if do_normalize:
            samples = self._normalize(samples, mask)
        out: dict[str, Any] = {"input_features": self._log_mel(samples, device)}
        # As transformers: asked for, the mask is per frame; kept by default or for do_normalize, per sample.
        if return_attention_mask:
            frames = mask[:, ::self.hop_length]
            out["attention_mask"] = frames[:, :-1] if target % self.hop_length else frames
        elif want_mask:
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
        pad = self.n_fft // 2
        if waveform.device.type == "cpu" and waveform.shape[-1] > pad + 1:
            out = torch.empty(len(samples), self.feature_size, _frames(waveform.shape[-1], self.n_fft,
                                                                       self.hop_length) - 1)
            for row in range(len(samples)):
                self._clip_log_mel(waveform[row].numpy(), out[row])
            return out.numpy()
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

    def _clip_log_mel(self, clip: np.ndarray, out: Any) -> None:
        """One clip's features into ``out`` (``(mels, frames - 1)``), on the CPU (see the module docstring)."""
        import torch

        n, n_fft, hop, pad = len(clip), self.n_fft, self.hop_length, self.n_fft // 2
        padded = np.empty(n + 2 * pad, dtype=np.float32)  # torch.stft's centring: reflect n_fft // 2 each side
        padded[pad:pad + n] = clip
        padded[:pad] = clip[1:pad + 1][::-1]
        padded[pad + n:] = clip[n - 1 - pad:n - 1][::-1]
        count = out.shape[-1]  # every frame but the last, which Whisper drops
        frames = torch.from_numpy(padded).as_strided((count, n_fft), (hop, 1))  # overlapping views, no copy
        spectrum = torch.fft.rfft(frames * self._window())  # (frames, bins)
        parts = torch.view_as_real(spectrum)
        parts.square_()
        power = (parts[..., 0] + parts[..., 1]).T  # (bins, frames), a view
        for first, last, low, high, weights in self._mel_blocks():
            if high > low:
                torch.matmul(weights, power[low:high], out=out[first:last])
            else:
                out[first:last] = 0.0
        out.clamp_(min=1e-10).log10_()
        torch.maximum(out, out.max() - 8.0, out=out)
        out.add_(4.0).div_(4.0)

    def _window(self) -> Any:
        cache = self._cache()
        if cache.get("window") is None or cache["window"].shape[0] != self.n_fft:
            import torch

            cache["window"] = torch.hann_window(self.n_fft)
        return cache["window"]

    def _mel_blocks(self) -> list[tuple[int, int, int, int, Any]]:
        """``(first, last, low, high, weights)`` per block of 8 filters: the block's filters are zero outside
        frequency bins ``low:high``; ``weights`` is their ``(last - first, high - low)`` float32 part."""
        cache = self._cache()
        if cache.get("filters") is not self.mel_filters:
            import torch

            filters = np.asarray(self.mel_filters)
            blocks = []
            for first in range(0, filters.shape[1], 8):
                part = filters[:, first:first + 8]
                used = np.flatnonzero(part.any(axis=1))
                low, high = (int(used[0]), int(used[-1]) + 1) if len(used) else (0, 0)
                weights = torch.from_numpy(np.ascontiguousarray(part[low:high].T, dtype=np.float32))
                blocks.append((first, first + part.shape[1], low, high, weights))
            cache["filters"], cache["blocks"] = self.mel_filters, blocks
        return cache["blocks"]

    def _cache(self) -> dict[str, Any]:
        # derived tensors, rebuilt when the settings they come from change; not settings themselves
        cache = self.__dict__.get("_derived")
        if cache is None:
            with _CACHE_LOCK:
                cache = self.__dict__.setdefault("_derived", {})
        return cache


_CACHE_LOCK = threading.Lock()


def _frames(samples: int, n_fft: int, hop: int) -> int:
    """Frames of a centred STFT (``n_fft // 2`` padding each side) of ``samples`` samples."""
    return 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop


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

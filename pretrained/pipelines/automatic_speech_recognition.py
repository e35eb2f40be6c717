"""``automatic-speech-recognition``: transcribe audio with Whisper.

Inputs are a path to an audio file (read with soundfile, mixed to mono and resampled to the feature
extractor's rate), raw file bytes, a 1-d array (already at the feature extractor's rate; 2-d arrays are
``(channels, samples)`` and are averaged), or a dict ``{"raw" or "array": samples, "sampling_rate": rate}``.
Output: ``{"text": ...}``, plus ``"chunks"`` (``{"text", "timestamp": (start, end)}``) with
``return_timestamps=True``. ``chunk_length_s`` cuts long audio into overlapping windows (``stride_length_s``
on each side, a sixth of the window by default) that are transcribed separately and merged; without it,
audio over 30 s is decoded by Whisper's own sequential long-form ``generate``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pretrained.inference.many_rows import ManyRowsKernels

from .base import ChunkPipeline, pad_collate

# The pipeline's generation defaults, below what the model's generation config sets (transformers 5.24's).
_PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 5}


def _to_mono(samples: np.ndarray) -> np.ndarray:
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"audio must be (samples,) or (channels, samples), got shape {tuple(samples.shape)}")
    if samples.shape[0] > 2:
        raise ValueError(f"audio of shape {tuple(samples.shape)}: axis 0 is read as channels and has more than "
                         "2; transpose (samples, channels) arrays (what soundfile returns) or mix them to mono")
    return samples.mean(axis=0)


def _read_bytes(data: bytes, sampling_rate: int) -> np.ndarray:
    from pretrained.processing.audio import resample

    try:
        import soundfile
    except ImportError as e:
        raise ImportError("Reading audio bytes needs the soundfile package: pip install soundfile") from e
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except RuntimeError as e:
        raise ValueError(f"Could not read the given bytes as audio (WAV, FLAC, OGG): {e}") from e
    return resample(samples.mean(axis=1), rate, sampling_rate)


def _chunks(samples: np.ndarray, extractor: Any, chunk_len: int, left: int, right: int) -> Any:
    """Overlapping windows of ``chunk_len`` samples, ``left`` / ``right`` of each shared with its neighbours
    (none at the audio's ends), as the feature extractor's features plus their ``stride``."""
    total = samples.shape[0]
    step = chunk_len - left - right
    for start in range(0, total, step):
        piece = samples[start:start + chunk_len]
        features = extractor(piece, sampling_rate=extractor.sampling_rate, return_tensors="pt",
                             return_attention_mask=True)
        is_last = start + chunk_len >= total
        stride = (piece.shape[0], 0 if start == 0 else left, 0 if is_last else right)
        if piece.shape[0] > stride[1]:
            yield {"is_last": is_last, "stride": stride, **features}
        if is_last:
            break


def _cross_projections(decoder: Any) -> list[Any]:
    """The key and value projections of ``decoder``'s cross-attention (its layers' ``encoder_attn``)."""
    found = []
    for layer in getattr(decoder, "layers", ()):
        attention = getattr(layer, "encoder_attn", None)
        found += [m for m in (getattr(attention, "k_proj", None), getattr(attention, "v_proj", None))
                  if isinstance(m, torch.nn.Linear)]
    return found


class AutomaticSpeechRecognitionPipeline(ChunkPipeline):
    """Speech to text with Whisper: ``pipe("speech.wav")`` → ``{"text": ...}``.

    Call parameters: ``return_timestamps`` (segment ``chunks``), ``return_language`` (each chunk's
    ``language``), ``chunk_length_s`` / ``stride_length_s`` (seconds), ``generate_kwargs`` and any
    ``generate`` argument (``language``, ``task``, ``num_beams``, ``max_new_tokens``, ...).
    """

    _model_tasks = ("speech_seq2seq",)
    _pipeline_calls_generate = True
    _load_feature_extractor = True

    def __init__(self, *args: Any, feature_extractor: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.model.config, "model_type", None) != "whisper":
            raise ValueError(f"pretrained's automatic-speech-recognition pipeline runs Whisper models, not "
                             f"{type(self.model).__name__}")
        if feature_extractor is None:
            raise ValueError("The automatic-speech-recognition pipeline needs a feature extractor: pass "
                             "feature_extractor=... or save preprocessor_config.json next to the model")
        self.feature_extractor = feature_extractor
        self.type = "seq2seq_whisper"

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Transcribe one input, or a list of them (one result each)."""
        if inputs is None:
            raise ValueError("Cannot call the automatic-speech-recognition pipeline without an inputs argument!")
        if isinstance(inputs, np.ndarray):  # one clip, not a stream of rows
            inputs = torch.from_numpy(inputs)
        return super().__call__(inputs, **kwargs)

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> None:
        """Save the model, the tokenizer and the feature extractor to one folder."""
        super().save_pretrained(save_directory, **kwargs)
        self.feature_extractor.save_pretrained(save_directory)

    # --- parameters ---------------------------------------------------------------------------------------
    def _sanitize_parameters(self, chunk_length_s: float | None = None, stride_length_s: Any = None,
                             ignore_warning: bool | None = None, decoder_kwargs: Any = None,
                             return_timestamps: Any = None, return_language: bool | None = None,
                             **generate_kwargs: Any) -> tuple[dict, dict, dict]:
        pre: dict[str, Any] = {}
        fwd: dict[str, Any] = {}
        post: dict[str, Any] = {}
        if chunk_length_s is not None:
            pre["chunk_length_s"] = chunk_length_s
        if stride_length_s is not None:
            pre["stride_length_s"] = stride_length_s
        fwd.update(generate_kwargs.pop("generate_kwargs", None) or {})
        fwd.update(generate_kwargs)
        if return_language is not None:
            post["return_language"] = fwd["return_language"] = return_language
        config = getattr(self.model, "generation_config", None)
        if getattr(config, "return_timestamps", False):
            return_timestamps = return_timestamps or config.return_timestamps
        if return_timestamps is not None:
            if return_timestamps == "char":
                raise ValueError("Whisper gives segment timestamps (return_timestamps=True), not 'char' ones")
            if return_timestamps == "word":
                raise NotImplementedError("word-level timestamps are not implemented in pretrained")
            fwd["return_timestamps"] = post["return_timestamps"] = return_timestamps
        return pre, fwd, post

    def _generation_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The pipeline's defaults (5 beams, 256 new tokens) where neither the call nor the model's
        generation config sets them (a max_length the model sets wins over the default max_new_tokens)."""
        if "generation_config" in kwargs:
            return kwargs
        config = getattr(self.model, "generation_config", None)
        set_by_model = {name for name, default in (("num_beams", 1), ("max_new_tokens", None),
                                                   ("max_length", 20))
                        if getattr(config, name, default) not in (default, None)}
        out = dict(kwargs)
        given = set(kwargs) | set_by_model
        for name, value in _PIPELINE_DEFAULTS.items():
            if name not in given and not (name == "max_new_tokens" and "max_length" in given):
                out[name] = value
        if out.get("pad_token_id") is None and self.tokenizer is not None and self.tokenizer.pad_token_id is not None:
            out["pad_token_id"] = self.tokenizer.pad_token_id
        return out

    # --- steps ----------------------------------------------------------------------------------------
    def preprocess(self, inputs: Any, chunk_length_s: float = 0, stride_length_s: Any = None) -> Any:
        rate = self.feature_extractor.sampling_rate
        if isinstance(inputs, str):
            if inputs.startswith(("http://", "https://")):
                raise ValueError(f"pretrained does not download audio ({inputs!r}); save it and pass the path")
            from pretrained.processing.audio import load_audio

            inputs = load_audio(inputs, rate)[0]
        elif isinstance(inputs, bytes):
            inputs = _read_bytes(inputs, rate)
        if isinstance(inputs, torch.Tensor):
            inputs = inputs.detach().cpu().numpy()
        extra: dict[str, Any] = {}
        if isinstance(inputs, dict):
            inputs = dict(inputs)
            if "stride" in inputs:
                raise NotImplementedError("a 'stride' in the input dict is for CTC models; Whisper does not take it")
            if "sampling_rate" not in inputs or ("raw" not in inputs and "array" not in inputs):
                raise ValueError('an audio dict needs "raw" (or "array") samples and their "sampling_rate"')
            samples = inputs.pop("raw", None)
            if samples is None:
                inputs.pop("path", None)
                samples = inputs.pop("array")
            given_rate = inputs.pop("sampling_rate")
            extra = inputs
            if isinstance(samples, torch.Tensor):
                samples = samples.detach().cpu().numpy()
            samples = _to_mono(np.asarray(samples))
            if given_rate != rate:
                from pretrained.processing.audio import resample

                samples = resample(samples, given_rate, rate)
            inputs = samples
        if not isinstance(inputs, np.ndarray):
            raise TypeError(f"audio must be a path, bytes, a numpy array, a tensor or a dict, got "
                            f"{type(inputs).__name__}")
        inputs = _to_mono(inputs)
        if chunk_length_s:
            if stride_length_s is None:
                stride_length_s = chunk_length_s / 6
            if isinstance(stride_length_s, (int, float)):
                stride_length_s = [stride_length_s, stride_length_s]
            chunk_len = int(round(chunk_length_s * rate))
            left, right = (int(round(s * rate)) for s in stride_length_s)
            if chunk_len < left + right:
                raise ValueError("chunk_length_s must be longer than the two strides together")
            for item in _chunks(inputs, self.feature_extractor, chunk_len, left, right):
                yield {**item, **extra}
            return
        long = inputs.shape[0] > self.feature_extractor.n_samples
        features = self.feature_extractor(inputs, sampling_rate=rate, return_tensors="pt", return_attention_mask=True,
                                          **({"truncation": False, "padding": "longest"} if long else {}))
        if self.dtype is not None:
            features = features.to(dtype=self.dtype)
        yield {"is_last": True, **features, **extra}

    def get_inference_context(self) -> Callable[[], Any]:
        # the encoder's many-row linears (1,500 frames a clip) on oneDNN's matmul, the mode entered around the
        # encoder alone (in the decode steps it would only add a Python look at every torch call) and around
        # the decoder's cross-attention key / value projections, which read the encoder's 1,500 rows a clip
        # once per generation (later steps take them from the cache)
        modules = [self.model.get_encoder(), *_cross_projections(self.model.get_decoder())]
        return ManyRowsKernels.around_modules(super().get_inference_context(), modules, self.model)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_collate(items, None)

    def _forward(self, model_inputs: dict[str, Any], return_timestamps: Any = False,
                 return_language: bool | None = None, **generate_kwargs: Any) -> dict[str, Any]:
        attention_mask = model_inputs.pop("attention_mask", None)
        stride = model_inputs.pop("stride", None)
        is_last = model_inputs.pop("is_last")
        features = model_inputs.pop("input_features")
        if return_timestamps:
            generate_kwargs["return_timestamps"] = bool(return_timestamps)
        if return_language:
            generate_kwargs["return_segments"] = True
        generate_kwargs = self._generation_kwargs(generate_kwargs)
        tokens = self.model.generate(input_features=features.to(self.model.dtype), attention_mask=attention_mask,
                                     **generate_kwargs)
        out: dict[str, Any] = {"tokens": tokens["sequences"] if isinstance(tokens, dict) else tokens}
        if stride is not None:
            out["stride"] = stride
        if return_language and isinstance(tokens, dict) and tokens.get("segments"):
            # each row's language: the first language token of its first window's prompt (-1: none)
            config = generate_kwargs.get("generation_config", self.model.generation_config)
            languages = set(getattr(config, "lang_to_id", {}).values())
            found = []
            for segments in tokens["segments"]:
                result = segments[0]["result"] if segments else None
                full = result["sequences"] if isinstance(result, dict) else result
                found.append(next((t for t in full.tolist() if t in languages), -1) if full is not None else -1)
            out["lang_id"] = torch.tensor(found)
        return {"is_last": is_last, **out, **model_inputs}

    def postprocess(self, model_outputs: list[dict[str, Any]], decoder_kwargs: Any = None,
                    return_timestamps: Any = None, return_language: bool | None = None) -> dict[str, Any]:
        precision = self.feature_extractor.chunk_length / self.model.config.max_source_positions
        rate = self.feature_extractor.sampling_rate
        for output in model_outputs:
            if "stride" in output:
                output["stride"] = tuple(value / rate for value in output["stride"])
            if return_language and "lang_id" in output and int(output["lang_id"].reshape(-1)[0]) >= 0:
                lang = output["lang_id"].reshape(1, 1).to(output["tokens"].dtype)
                output["tokens"] = torch.cat([lang, output["tokens"]], dim=-1)
        text, optional = self.tokenizer._decode_asr(model_outputs, return_timestamps=return_timestamps,
                                                    return_language=return_language, time_precision=precision)
        extra: dict[str, list[Any]] = {}
        for output in model_outputs:
            for key, value in output.items():
                if key not in ("tokens", "is_last", "stride", "lang_id", "token_timestamps"):
                    extra.setdefault(key, []).append(value)
        return {"text": text, **optional, **extra}

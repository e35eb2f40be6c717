"""Whisper's ``generate()``: the decoder prompt (start, language, task, timestamps), the timestamp rules,
and sequential decoding of audio longer than one 30 s window.

The flow follows transformers' ``WhisperGenerationMixin`` so the tokens are the same:

* the prompt is ``<|startoftranscript|>`` then a language token (given, from ``forced_decoder_ids``, or
  detected: the most likely language token after the start token), a task token and, without timestamps,
  ``<|notimestamps|>``; ``prompt_ids`` (``<|startofprev|>`` + text) go before it;
* ``begin_suppress_tokens`` / ``suppress_tokens`` become processors anchored at the prompt's end, and with
  ``return_timestamps`` :class:`WhisperTimeStampLogitsProcessor` enforces paired, non-decreasing timestamps;
* every window (3000 mel frames) is decoded with the generic :func:`pretrained.generation.utils.generate`;
  its tokens are cut into segments at timestamp pairs and the next window starts where the last complete
  segment ended (all of it when the window ends on a single timestamp or has none);
* the result is each row's segment tokens (prompt and end-of-text dropped), right-padded.

With ``condition_on_prev_tokens`` each window's prompt starts with the text decoded so far
(``<|startofprev|>`` + its last tokens, rows left-padded; decoder positions count from each row's first
real token). With a list of temperatures, rows whose text compresses too well
(``compression_ratio_threshold``) or is too unlikely (``logprob_threshold``) are decoded again at the next
temperature; with ``no_speech_threshold`` too, an unlikely window whose no-speech probability is high is
skipped as silence. Not supported (a clear error says so): token-level timestamps.
"""

from __future__ import annotations

import copy
import math
import zlib
from typing import Any

import torch
import torch.nn.functional as F

from pretrained.generation.configuration_utils import GenerationConfig
from pretrained.generation.logits_process import (
    LogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
)
from pretrained.generation.utils import generate as _generate
from pretrained.modeling.outputs import BaseModelOutput
from pretrained.tokenization.whisper import LANGUAGES, TASK_IDS, TO_LANGUAGE_CODE


class WhisperTimeStampLogitsProcessor(LogitsProcessor):
    """Whisper's timestamp rules over the tokens generated after ``begin_index``.

    ``<|notimestamps|>`` is never generated; timestamps come in pairs (after a lone timestamp only another
    timestamp or end-of-text may follow, after a pair only text); they never decrease (nor repeat, except
    to close a pair); the first token is a timestamp (at most ``max_initial_timestamp_index`` steps in);
    and when the timestamps together are likelier than the best text token, a timestamp must come.
    """

    def __init__(self, generate_config: Any, begin_index: int,
                 _detect_timestamp_from_logprob: bool | None = None) -> None:
        self.no_timestamps_token_id = generate_config.no_timestamps_token_id
        self.timestamp_begin = self.no_timestamps_token_id + 1
        eos = generate_config.eos_token_id or generate_config.bos_token_id
        self.eos_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
        if _detect_timestamp_from_logprob is None:
            _detect_timestamp_from_logprob = getattr(generate_config, "_detect_timestamp_from_logprob", True)
        self._detect_timestamp_from_logprob = _detect_timestamp_from_logprob
        self.begin_index = begin_index
        self.max_initial_timestamp_index = getattr(generate_config, "max_initial_timestamp_index", None)

    def set_begin_index(self, begin_index: int) -> None:
        self.begin_index = begin_index

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.clone()
        first = self.timestamp_begin
        scores[:, self.no_timestamps_token_id] = float("-inf")
        lowest_allowed = []
        for row, seq in enumerate(input_ids.tolist()):
            seq = seq[self.begin_index:]
            last_ts = len(seq) >= 1 and seq[-1] >= first
            penultimate_ts = len(seq) < 2 or seq[-2] >= first
            if last_ts:
                if penultimate_ts:
                    scores[row, first:] = float("-inf")  # a pair just closed: text next
                else:
                    scores[row, : self.eos_token_id] = float("-inf")  # a pair is open: close it (or end)
            stamps = [t for t in seq if t >= first]
            low = first
            if stamps:
                # closing a pair may repeat its opening timestamp; otherwise time moves forward
                low = stamps[-1] if last_ts and not penultimate_ts else stamps[-1] + 1
            lowest_allowed.append(low)
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        low_t = torch.tensor(lowest_allowed, device=scores.device).unsqueeze(-1)
        scores.masked_fill_((vocab >= first) & (vocab < low_t), float("-inf"))
        if input_ids.shape[1] == self.begin_index:
            scores[:, :first] = float("-inf")
            if self.max_initial_timestamp_index is not None:
                scores[:, first + self.max_initial_timestamp_index + 1:] = float("-inf")
        if self._detect_timestamp_from_logprob:
            logprobs = F.log_softmax(scores.float(), dim=-1)
            stamp_mass = logprobs[:, first:].logsumexp(dim=-1)
            best_text = logprobs[:, :first].max(dim=-1).values
            scores[:, :first].masked_fill_((stamp_mass > best_text).unsqueeze(-1), float("-inf"))
        return scores


def _previous_text(segments: list[list[dict[str, Any]]], pad: int, prev: torch.Tensor | None, keep: int,
                   timestamp_begin: int, device: torch.device) -> torch.Tensor:
    """Each row's decoded text as a decoder prefix: its segment tokens (a segment ending on two timestamps
    gives one), the last ``keep`` of them, after ``prev`` (``<|startofprev|>``), left-padded with ``pad``."""
    rows = []
    for segs in segments:
        if segs:
            pieces = [s["tokens"][:-1] if len(s["tokens"]) > 2 and s["tokens"][-2] >= timestamp_begin
                      else s["tokens"] for s in segs]
            row = torch.cat([p.to(device) for p in pieces])[-keep:]
            rows.append(row if prev is None else torch.cat([prev.to(row), row]))
        else:
            rows.append(prev if prev is not None else torch.tensor([], dtype=torch.long, device=device))
    longest = max(len(r) for r in rows)
    return torch.stack([F.pad(r, (longest - len(r), 0), value=pad) for r in rows])


def _pad_segments(segments: list[list[dict[str, Any]]], pad: int, device: torch.device) -> torch.Tensor:
    """Each row's segment tokens joined and right-padded with ``pad`` to the longest row."""
    rows = [torch.cat([s["tokens"] for s in segs]) if segs else torch.tensor([], device=device)
            for segs in segments]
    longest = max((len(r) for r in rows), default=0)
    return torch.stack([F.pad(r, (0, longest - len(r)), value=pad) for r in rows])


# --- the prompt ---------------------------------------------------------------------------------------
def _language_id(config: Any, language: str) -> int:
    name = language.lower()
    if name in config.lang_to_id:
        token = name
    elif name in TO_LANGUAGE_CODE:
        token = f"<|{TO_LANGUAGE_CODE[name]}|>"
    elif name in LANGUAGES:
        token = f"<|{name}|>"
    else:
        raise ValueError(f"Unsupported language: {language!r}; give a code (e.g. 'en') or a name (e.g. "
                         f"'english') of a language Whisper knows")
    if token not in config.lang_to_id:
        raise ValueError(f"{token} is not in this model's generation_config.lang_to_id")
    return config.lang_to_id[token]

def _init_tokens(model: Any, config: Any, input_features: torch.Tensor | None, encoder_outputs: Any,
                 batch: int) -> torch.Tensor:
    """Each row's decoder prompt: start, language, task, and ``<|notimestamps|>`` without timestamps."""
    task, language = getattr(config, "task", None), getattr(config, "language", None)
    init = [config.decoder_start_token_id]
    if task is None and language is None:
        forced = getattr(config, "forced_decoder_ids", None)
        if forced is None:
            forced = getattr(model.config, "forced_decoder_ids", None)
        if forced and forced[0][0] == 1:
            forced = [list(pair) for pair in forced]
            position = 1
            while forced and forced[0][0] == position:
                init.append(forced.pop(0)[1])
                position += 1
            if forced:
                raise ValueError(f"forced_decoder_ids {forced} do not follow Whisper's prompt pattern (one "
                                 "entry for every index from 1 on)")
    undefined = len(init) <= 1 or init[1] is None
    if isinstance(language, (list, tuple)):
        if any(lang is None for lang in language) or len(language) != batch:
            raise ValueError(f"a list of languages needs one language per row ({batch}), none of them None")
        languages = list(language)
    else:
        languages = [language] if language is not None else [None] * batch
    rows = [list(init) for _ in languages]
    lang_ids = None
    if language is not None:
        lang_ids = [_language_id(config, lang) for lang in languages]
    elif hasattr(config, "lang_to_id") and undefined:
        lang_ids = model.detect_language(
            input_features=None if encoder_outputs is not None else input_features,
            encoder_outputs=encoder_outputs, generation_config=config).tolist()
    for i, row in enumerate(rows):
        if lang_ids is not None:
            if len(row) > 1:
                row[1] = lang_ids[i]
            else:
                row.append(lang_ids[i])
        if task is not None:
            if task not in TASK_IDS:
                raise ValueError(f"task must be one of {TASK_IDS}, got {task!r}")
            # appended even after a task token from forced_decoder_ids, as transformers does
            row.append(config.task_to_id[task])
        elif (language is not None and hasattr(config, "task_to_id")
              and not any(t in config.task_to_id.values() for t in row)):
            row.append(config.task_to_id["transcribe"])
        no_ts = getattr(config, "no_timestamps_token_id", None)
        if not config.return_timestamps and no_ts is not None and row[-1] != no_ts:
            row.append(no_ts)
        elif config.return_timestamps and row[-1] == no_ts:
            row.pop()
        rows[i] = [t for t in row if t is not None]
    return torch.as_tensor(rows, dtype=torch.long, device=model.device).expand(batch, -1)


# --- generate -------------------------------------------------------------------------------------------
def generate(  # fmt: skip
    # the generic generate()'s arguments (input_features for inputs), then Whisper's own, as transformers'
    model: Any, input_features: torch.Tensor | None = None, generation_config: GenerationConfig | None = None,
    logits_processor: list[Any] | None = None, stopping_criteria: list[Any] | None = None,
    prefix_allowed_tokens_fn: Any = None, synced_gpus: bool = False,
    return_timestamps: bool | None = None,
    task: str | None = None,
    language: str | list[str] | None = None,
    is_multilingual: bool | None = None,
    prompt_ids: torch.Tensor | None = None,
    prompt_condition_type: str | None = None,
    condition_on_prev_tokens: bool | None = None,
    temperature: float | list[float] | None = None,
    compression_ratio_threshold: float | None = None,
    logprob_threshold: float | None = None,
    no_speech_threshold: float | None = None,
    num_segment_frames: int | None = None,
    attention_mask: torch.Tensor | None = None,
    time_precision: float = 0.02,
    time_precision_features: float = 0.01,
    return_token_timestamps: bool | None = None,
    return_segments: bool = False,
    return_dict_in_generate: bool | None = None,
    force_unique_generate_call: bool | None = None,
    monitor_progress: Any = None,
    **kwargs: Any,
) -> Any:
    """Transcribe (or translate) log-mel ``input_features`` ``(batch, mels, frames)``.

    Up to 3000 frames (30 s) is one window; longer input is decoded window after window and needs
    ``return_timestamps`` (set automatically) and, for batches, the feature extractor's
    ``attention_mask``. Returns the token ids ``(batch, length)`` without the decoder prompt; with
    ``return_segments`` (or ``return_dict_in_generate`` with timestamps) a dict with ``sequences`` and
    each row's ``segments`` (``start`` / ``end`` seconds, ``tokens``, ``result``). Other keyword
    arguments are ``GenerationConfig`` fields (``num_beams``, ``max_new_tokens``, ...).

    Long-form options as in transformers: ``condition_on_prev_tokens``, ``temperature`` as a tuple with
    ``compression_ratio_threshold`` / ``logprob_threshold`` (fallback) and ``no_speech_threshold``.
    """
    unsupported = {
        "return_token_timestamps": return_token_timestamps, "prefix_allowed_tokens_fn": prefix_allowed_tokens_fn,
        "assistant_model": kwargs.get("assistant_model"),
    }
    for name, value in unsupported.items():
        if value:
            raise NotImplementedError(f"Whisper generate: `{name}` is not supported by pretrained")
    if no_speech_threshold is not None and logprob_threshold is None:
        raise ValueError("no_speech_threshold works together with logprob_threshold: set both")
    temperatures = list(temperature) if isinstance(temperature, (list, tuple)) else [temperature]
    temperature = temperatures[0]
    config = copy.deepcopy(generation_config if generation_config is not None else model.generation_config)
    known = set(GenerationConfig.default_values()) | set(vars(config))
    for key in [k for k in kwargs if k in known and k not in ("decoder_input_ids",)]:
        setattr(config, key, kwargs.pop(key))
    # The first window is conditioned only when the call asks (as transformers); later ones when the
    # setting (the call's, else the generation config's) is on and the row's last temperature was low.
    condition_first = bool(condition_on_prev_tokens)
    if condition_on_prev_tokens is None:
        condition_on_prev_tokens = getattr(config, "condition_on_prev_tokens", None)
    condition_setting = bool(condition_on_prev_tokens)
    if prompt_ids is not None:
        prompt_ids = torch.as_tensor(prompt_ids, dtype=torch.long, device=model.device)

    encoder = model.model.encoder
    stride = encoder.conv1.stride[0] * encoder.conv2.stride[0]
    window = num_segment_frames or stride * model.config.max_source_positions
    given_encoder = kwargs.pop("encoder_outputs", None)
    if input_features is not None:
        batch, total_frames = input_features.shape[0], input_features.shape[-1]
    elif given_encoder is not None:
        hidden = given_encoder[0]
        batch, total_frames = hidden.shape[0], hidden.shape[1] * stride
    else:
        raise ValueError("give input_features (or encoder_outputs) to generate from")
    short = total_frames <= window

    if return_dict_in_generate is None:
        return_dict_in_generate = bool(config.return_dict_in_generate)
    else:
        config.return_dict_in_generate = return_dict_in_generate
    if logprob_threshold is not None:  # the average log-probability needs each step's scores
        config.return_dict_in_generate = True
        config.output_scores = True
    if return_timestamps is None:
        return_timestamps = getattr(config, "return_timestamps", None)
    if not short:
        if return_timestamps is False:
            raise ValueError("input longer than 3000 mel frames (30 s) is decoded window by window, which "
                             "needs timestamp tokens: pass return_timestamps=True (or at most 3000 frames)")
        return_timestamps = True
    if return_timestamps and not hasattr(config, "no_timestamps_token_id"):
        raise ValueError("return_timestamps needs generation_config.no_timestamps_token_id (the "
                         "checkpoint's generation_config.json sets it)")
    config.return_timestamps = return_timestamps
    timestamp_begin = (config.no_timestamps_token_id + 1 if hasattr(config, "no_timestamps_token_id")
                       else model.config.vocab_size + 1)
    if is_multilingual is not None:
        config.is_multilingual = is_multilingual
    if getattr(config, "is_multilingual", True) is False and (task is not None or language is not None):
        raise ValueError("task and language cannot be set for an English-only model")
    for name, value, table in (("language", language, "lang_to_id"), ("task", task, "task_to_id")):
        if value is not None:
            if not hasattr(config, table):
                raise ValueError(f"`{name}` needs generation_config.{table} (the checkpoint's "
                                 "generation_config.json sets it)")
            setattr(config, name, value)
    if prompt_condition_type is None:
        prompt_condition_type = getattr(config, "prompt_condition_type", None) or "first-segment"
    if prompt_condition_type not in ("first-segment", "all-segments"):
        raise ValueError("prompt_condition_type must be 'first-segment' or 'all-segments'")

    init_tokens = _init_tokens(model, config, input_features, given_encoder, batch)
    begin_index = init_tokens.shape[1]
    processors: list[Any] = []
    if config.begin_suppress_tokens is not None:
        processors.append(SuppressTokensAtBeginLogitsProcessor(config.begin_suppress_tokens, begin_index))
        config.begin_suppress_tokens = None
    suppress = None
    if config.suppress_tokens is not None:
        suppress = [int(t) for t in config.suppress_tokens]
        processors.append(SuppressTokensLogitsProcessor(suppress))
        config.suppress_tokens = None
    if return_timestamps:
        processors.append(WhisperTimeStampLogitsProcessor(config, begin_index))
    processors += list(logits_processor or [])

    if batch > 1 and not short:
        if attention_mask is None:
            raise ValueError("batched long-form transcription needs the feature extractor's attention_mask "
                             "(processor(audio, return_attention_mask=True, ...))")
        max_frames = attention_mask.sum(-1).cpu().long()
    else:
        max_frames = torch.full((batch,), total_frames, dtype=torch.long)
    seek = torch.zeros(batch, dtype=torch.long)
    if config.num_return_sequences and config.num_return_sequences > 1:
        repeat = config.num_return_sequences
        if input_features is not None:
            input_features = input_features.repeat_interleave(repeat, dim=0)
        seek, max_frames = seek.repeat_interleave(repeat), max_frames.repeat_interleave(repeat)
        init_tokens = init_tokens.repeat_interleave(repeat, dim=0)
        if given_encoder is not None:
            given_encoder = BaseModelOutput(last_hidden_state=given_encoder[0].repeat_interleave(repeat, 0))
        batch *= repeat
        config.num_return_sequences = 1
    rows = list(range(batch))
    segments: list[list[dict[str, Any]]] = [[] for _ in range(batch)]
    if prompt_ids is not None and prompt_condition_type == "first-segment":
        prev_sot = getattr(config, "prev_sot_token_id", None)
        first = prompt_ids[1:] if int(prompt_ids[0]) == prev_sot else prompt_ids
        segments = [[{"tokens": first}] for _ in range(batch)]
    if force_unique_generate_call is None:
        force_unique_generate_call = bool(getattr(config, "force_unique_generate_call", False))

    # whether each row's next window is conditioned on its text so far: the call's setting for the first
    # window, then the setting and a low final temperature (indexed as transformers does)
    condition: list[bool] = [condition_first] * batch
    last_output = None
    while bool((seek < max_frames).any()):
        if monitor_progress is not None:
            monitor_progress(torch.stack((seek, max_frames), dim=1))
        # rows whose audio is done leave the batch
        keep = [i for i, row in enumerate(rows) if seek[row] < max_frames[row]]
        if input_features is not None and len(keep) < len(rows):
            input_features = input_features[keep]
        rows = [rows[i] for i in keep]
        offsets = seek.double() * time_precision / stride
        num_frames = (max_frames - seek).clamp(max=window)
        if input_features is not None:
            pieces = []
            for i, row in enumerate(rows):
                piece = input_features[i:i + 1, :, seek[row]: seek[row] + num_frames[row]]
                pieces.append(F.pad(piece, (0, window - piece.shape[-1])))
            segment_input = torch.cat(pieces, dim=0)
            encoded = model.model.encoder(segment_input, return_dict=True)
        else:
            encoded = given_encoder
        decoder_ids = init_tokens[rows]
        step_kwargs = dict(kwargs)
        if any(condition[row] for row in rows) and segments[0]:
            # the text so far (its last half-context of tokens) after <|startofprev|>, left-padded
            if prompt_ids is not None and prompt_condition_type == "all-segments":
                prev = prompt_ids
            else:
                prev_sot = getattr(config, "prev_sot_token_id", None)
                if prev_sot is None and suppress is not None and len(suppress) >= 2:
                    prev_sot = suppress[-2]
                prev = None if prev_sot is None else torch.tensor([prev_sot], device=decoder_ids.device)
            previous = _previous_text([segments[row] if condition[row] else None for row in rows],
                                      config.pad_token_id, prev,
                                      model.config.max_target_positions // 2 - 1, timestamp_begin,
                                      decoder_ids.device)
            decoder_ids = torch.cat([previous.to(decoder_ids), decoder_ids], dim=-1)
            step_kwargs["decoder_attention_mask"] = (decoder_ids != config.pad_token_id).long()
        elif prompt_ids is not None:
            decoder_ids = torch.cat([prompt_ids.to(decoder_ids)[None].expand(len(rows), -1), decoder_ids], -1)
        max_new = config.max_new_tokens or 0
        if max_new + decoder_ids.shape[-1] > model.config.max_target_positions:
            raise ValueError(f"the decoder prompt ({decoder_ids.shape[-1]} tokens) plus max_new_tokens "
                             f"({max_new}) exceed max_target_positions ({model.config.max_target_positions})")
        initial = min(model.config.max_target_positions // 2 - 1, decoder_ids.shape[-1])
        if config.max_new_tokens is None:
            # transformers grows max_length by the prompt each window (and keeps it): done alike
            config.max_length = min((config.max_length or 20) + initial, model.config.max_target_positions)
        for proc in processors:
            if hasattr(proc, "set_begin_index"):
                proc.set_begin_index(decoder_ids.shape[-1])
            elif isinstance(proc, SuppressTokensAtBeginLogitsProcessor):
                proc.begin_index = decoder_ids.shape[-1]
        no_speech = None
        if no_speech_threshold is not None and init_tokens.shape[1] <= 1:
            raise NotImplementedError("no_speech_threshold with a decoder prompt of <|startoftranscript|> alone "
                                      "(no language, task or <|notimestamps|> token) is not supported by pretrained")
        if no_speech_threshold is not None:
            # the no-speech token's probability right after <|startoftranscript|> (raw logits)
            extra = {}
            if "decoder_attention_mask" in step_kwargs:
                mask = step_kwargs["decoder_attention_mask"]
                extra = {"decoder_attention_mask": mask,
                         "decoder_position_ids": (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)}
            with torch.no_grad():
                logits = model(encoder_outputs=encoded, decoder_input_ids=decoder_ids, use_cache=False,
                               **extra).logits
            no_speech = logits[:, decoder_ids.shape[-1] - init_tokens.shape[1]].float().softmax(-1)[
                :, config.no_timestamps_token_id - 1]
        results, skips, last_output = _decode_window(
            model, config, temperatures, encoded, decoder_ids, step_kwargs, processors, stopping_criteria,
            condition, condition_setting, logprob_threshold, compression_ratio_threshold, no_speech_threshold,
            no_speech)
        for i, row in enumerate(rows):
            if skips[i]:
                seek[row] += num_frames[row]
                continue
            tokens, result = results[i]
            new, advance = _split_segments(tokens, result, offsets[row], timestamp_begin, int(num_frames[row]),
                                           time_precision, time_precision_features, stride)
            seek[row] += advance
            segments[row] += new
        if force_unique_generate_call:
            break

    final = ([s[1:] for s in segments] if prompt_ids is not None and prompt_condition_type == "first-segment"
             else segments)
    if return_dict_in_generate and (force_unique_generate_call or not return_timestamps):
        return last_output
    if force_unique_generate_call:
        sequences = torch.stack([s[0]["result"] if isinstance(s[0]["result"], torch.Tensor)
                                 else s[0]["result"]["sequences"] for s in final])
    else:
        sequences = _pad_segments(final, config.pad_token_id, model.device)
    if return_dict_in_generate:
        return_segments = True
    if not return_segments:
        return sequences
    return {"sequences": sequences, "segments": final}

def _decode_window(model: Any, config: Any, temperatures: list[float | None], encoded: Any,
                   decoder_ids: torch.Tensor, step_kwargs: dict[str, Any], processors: list[Any],
                   stopping_criteria: Any, condition: list[bool], condition_setting: bool,
                   logprob_threshold: float | None, compression_ratio_threshold: float | None,
                   no_speech_threshold: float | None, no_speech: torch.Tensor | None
                   ) -> tuple[list[Any], list[bool], Any]:
    """One window of every row: decoded at the first temperature, rows whose text is too repetitive
    (compression ratio) or unlikely (average log-probability) again at the next, and so on. Returns each
    row's ``(tokens, result)`` (prompt, padding and end-of-text dropped), whether to skip it (no speech),
    and the last ``generate`` output."""
    rows = decoder_ids.shape[0]
    results: list[Any] = [None] * rows
    needs_fallback = [False] * rows
    skips = [False] * rows
    index_map = list(range(rows))
    hidden = encoded[0] if not isinstance(encoded, BaseModelOutput) else encoded.last_hidden_state
    kwargs = dict(step_kwargs)
    pad = config.pad_token_id
    eos = config.eos_token_id[0] if isinstance(config.eos_token_id, (list, tuple)) else config.eos_token_id
    output = None
    for attempt, temperature in enumerate(temperatures):
        # (as transformers, the settings of an attempt stay on the config for later windows)
        config.do_sample = temperature is not None and temperature > 0.0
        config.temperature = temperature if config.do_sample else 1.0
        if config.do_sample:
            config.num_beams = 1
        inner = copy.deepcopy(config)
        # the prompt is the decoder's whole start: no start token is put before it
        inner.decoder_start_token_id = decoder_ids[:, 0].tolist()
        output = _generate(
            model, None, generation_config=inner, logits_processor=processors, stopping_criteria=stopping_criteria,
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden), decoder_input_ids=decoder_ids, **kwargs,
            # explicit, so the model's generation config does not bring them back: the processors apply
            # them from the prompt's end
            suppress_tokens=None, begin_suppress_tokens=None)
        full = output if isinstance(output, torch.Tensor) else output.sequences
        start = decoder_ids.shape[-1]
        retry = []
        for i in range(full.shape[0]):
            tokens = full[i, start:]
            if len(tokens) and tokens[-1] == pad:
                count = int((tokens == pad).sum()) - (1 if pad == eos else 0)
                if count:
                    tokens = tokens[:-count]
            result = full[i] if isinstance(output, torch.Tensor) else _row_result(output, i)
            needs_fallback[i], skips[i] = _needs_fallback(
                tokens, result, i, model.config.vocab_size, temperature, logprob_threshold,
                compression_ratio_threshold, no_speech_threshold, no_speech)
            if len(tokens) and tokens[-1] == eos:
                tokens = tokens[:-1]
            results[index_map[i]] = (tokens, result)
            condition[index_map[i]] = condition_setting and (temperature is None or temperature < 0.5)
            if needs_fallback[i]:
                retry.append(i)
        index_map = [index_map[i] for i in retry]
        if not index_map or attempt == len(temperatures) - 1:
            break
        decoder_ids, hidden = decoder_ids[retry], hidden[retry]
        if "decoder_attention_mask" in kwargs:
            kwargs["decoder_attention_mask"] = kwargs["decoder_attention_mask"][retry]
    return results, skips, output


def _row_result(output: Any, i: int) -> dict[str, Any]:
    """Row ``i`` of a ``generate`` output dict: its sequence and its per-step scores (the chosen beam's)."""
    result: dict[str, Any] = {"sequences": output.sequences[i]}
    if output.scores is not None:
        beams = getattr(output, "beam_indices", None)
        if beams is not None:
            picks = beams[i][: len(output.scores)].tolist()
            result["scores"] = [step[beam] for step, beam in zip(output.scores, picks)]
        else:
            result["scores"] = [step[i] for step in output.scores]
    return result


def _needs_fallback(tokens: torch.Tensor, result: Any, index: int, vocab_size: int, temperature: float | None,
                    logprob_threshold: float | None, compression_ratio_threshold: float | None,
                    no_speech_threshold: float | None, no_speech: torch.Tensor | None) -> tuple[bool, bool]:
    """(decode again at the next temperature, skip the window as silence) for one row's tokens."""
    fallback = skip = False
    logprob = None
    if compression_ratio_threshold is not None:
        width = int(math.log2(vocab_size) / 8) + 1
        raw = b"".join(int(t).to_bytes(width, "little") for t in tokens.tolist())
        if len(raw) / len(zlib.compress(raw)) > compression_ratio_threshold:
            fallback = True
    if logprob_threshold is not None:
        scores = torch.stack(result["scores"]).to(tokens.device)
        picked = tokens
        if scores.shape[0] > picked.shape[0]:
            scores = scores[: picked.shape[0]]
        else:
            picked = picked[-scores.shape[0]:]
        scale = temperature if temperature is not None and temperature > 0.0 else 1
        logprobs = F.log_softmax((scores * scale).float(), dim=-1).to(scores.dtype)
        chosen = logprobs.gather(-1, picked.unsqueeze(-1)).squeeze(-1).cpu()
        logprob = sum(chosen[i] for i in range(chosen.shape[0])) / len(picked)
        if logprob < logprob_threshold:
            fallback = True
    if no_speech_threshold is not None and no_speech is not None and logprob is not None \
            and logprob < logprob_threshold and no_speech[index] > no_speech_threshold:
        fallback, skip = False, True
    return fallback, skip


def _split_segments(tokens: torch.Tensor, result: torch.Tensor, offset: torch.Tensor, timestamp_begin: int,
                    num_frames: int, time_precision: float, time_precision_features: float, stride: int
                    ) -> tuple[list[dict[str, Any]], int]:
    """One window's tokens cut into segments at consecutive timestamp pairs, and how many frames the
    next window moves on (to the last complete segment's end, or the whole window)."""
    is_ts = [t >= timestamp_begin for t in tokens.tolist()]
    single_ending = is_ts[-2:] == [False, True]
    cuts = [i + 1 for i in range(len(is_ts) - 1) if is_ts[i] and is_ts[i + 1]]
    if cuts:
        if single_ending:
            cuts.append(len(tokens))
        else:
            cuts[-1] += 1
        segments, last = [], 0
        for n, cut in enumerate(cuts):
            piece = tokens[last:cut]
            end_at = -1 if n < len(cuts) - 1 or single_ending else -2
            segments.append({
                "start": offset + (piece[0] - timestamp_begin).double() * time_precision,
                "end": offset + (piece[end_at] - timestamp_begin).double() * time_precision,
                "tokens": piece, "result": result,
            })
            last = cut
        if single_ending:
            return segments, num_frames
        return segments, (int(tokens[last - 2]) - timestamp_begin) * stride
    stamps = [i for i, flag in enumerate(is_ts) if flag]
    end_pos: Any = int(num_frames * time_precision_features / time_precision)
    if stamps and tokens[stamps[-1]] != timestamp_begin:
        end_pos = (tokens[stamps[-1]] - timestamp_begin).double()
    return [{"start": offset, "end": offset + end_pos * time_precision, "tokens": tokens,
             "result": result}], num_frames

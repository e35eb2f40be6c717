"""Whisper's tokenizer: byte-level BPE with language / task / timestamp special tokens, and the tables of
the languages and tasks those tokens name (shared with ``generate()``)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from tokenizers import processors

from .base import to_py_obj
from .fast import PreTrainedTokenizerFast

# Language names and codes Whisper knows (the code is what its ``<|xx|>`` token holds).
LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog", "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala",
    "ha": "hausa", "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}
TO_LANGUAGE_CODE = {
    **{name: code for code, name in LANGUAGES.items()},
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
    "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si", "castilian": "es",
    "mandarin": "zh",
}
TASK_IDS = ["translate", "transcribe"]



_TIMESTAMP = re.compile(r"<\|(\d+\.\d+)\|>")


class WhisperTokenizer(PreTrainedTokenizerFast):
    """Whisper's byte-level BPE tokenizer with its prompt tokens.

    Encoding puts :attr:`prefix_tokens` first (``<|startoftranscript|>``, then the ``language`` token, the
    ``task`` token and ``<|notimestamps|>`` unless ``predict_timestamps``) and ``<|endoftext|>`` last.
    Timestamp tokens (``<|0.00|>`` ... ``<|30.00|>``) are added tokens ranked after the last special token;
    decoding drops them (or writes them with ``decode_with_timestamps``, or returns segment ``offsets`` with
    ``output_offsets``), and ``skip_special_tokens`` also drops a ``<|startofprev|>`` prompt.
    """

    saved_class_name = "WhisperTokenizer"
    default_special_tokens = {
        "unk_token": "<|endoftext|>",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
    }

    def __init__(self, *args: Any, language: str | None = None, task: str | None = None,
                 predict_timestamps: bool = False, normalizer_file: str | None = None, **kwargs: Any) -> None:
        self.language, self.task, self.predict_timestamps = language, task, predict_timestamps
        if normalizer_file is not None:
            kwargs["normalizer_file"] = normalizer_file
        super().__init__(*args, language=language, task=task, predict_timestamps=predict_timestamps, **kwargs)
        self.timestamp_pat = _TIMESTAMP

    def _set_family_post_processor(self) -> None:
        self.set_prefix_tokens()

    # --- the prompt -------------------------------------------------------------------------------------
    def set_prefix_tokens(self, language: str | None = None, task: str | None = None,
                          predict_timestamps: bool | None = None) -> None:
        """Change the language / task / timestamp prefix that encoding puts before the text."""
        self.language = language if language is not None else self.language
        self.task = task if task is not None else self.task
        if predict_timestamps is not None:
            self.predict_timestamps = predict_timestamps
        ids = self.prefix_tokens
        tokens = self.convert_ids_to_tokens(ids)
        eos, eos_id = str(self.eos_token), self.eos_token_id
        prefix = " ".join(f"{t}:0" for t in tokens)
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{prefix} $A:0 {eos}:0", pair=f"{prefix} $A:0 $B:1 {eos}:1",
            special_tokens=[(eos, eos_id), *zip(tokens, ids)])

    @property
    def prefix_tokens(self) -> list[int]:
        """The ids encoding puts first: start of transcript, language, task, ``<|notimestamps|>``."""
        start = self.convert_tokens_to_ids("<|startoftranscript|>")
        ids = [start]
        if self.language is not None:
            self.language = self.language.lower()
            if self.language in TO_LANGUAGE_CODE:
                code = TO_LANGUAGE_CODE[self.language]
            elif self.language in TO_LANGUAGE_CODE.values():
                code = self.language
            else:
                raise ValueError(f"Unsupported language: {self.language!r}; give a code (e.g. 'es') or a name "
                                 "(e.g. 'spanish') of a language Whisper knows")
            # the language tokens follow <|startoftranscript|> in LANGUAGES' order
            ids.append(start + 1 + list(LANGUAGES).index(code))
        if self.task is not None:
            if self.task not in TASK_IDS:
                raise ValueError(f"Unsupported task: {self.task!r}; choose one of {TASK_IDS}")
            ids.append(self.convert_tokens_to_ids(f"<|{self.task}|>"))
        if not self.predict_timestamps:
            ids.append(self.convert_tokens_to_ids("<|notimestamps|>"))
        return ids

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None
                                         ) -> list[int]:
        """``prefix_tokens + ids (+ pair ids) + [eos]``."""
        return self.prefix_tokens + token_ids_0 + (token_ids_1 or []) + [self.eos_token_id]

    def get_special_tokens_mask(self, token_ids_0: list[int], token_ids_1: list[int] | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        return [1] * len(self.prefix_tokens) + [0] * (len(token_ids_0) + len(token_ids_1 or [])) + [1]

    def get_decoder_prompt_ids(self, task: str | None = None, language: str | None = None,
                               no_timestamps: bool = True) -> list[tuple[int, int]]:
        """``forced_decoder_ids`` for the prompt after the start token: ``[(1, lang), (2, task), ...]``."""
        self.set_prefix_tokens(task=task, language=language, predict_timestamps=not no_timestamps)
        return [(rank + 1, token) for rank, token in enumerate(self.prefix_tokens[1:])]

    def get_prompt_ids(self, text: str, return_tensors: str | None = "np") -> Any:
        """``<|startofprev|>`` and the ids of ``text``: the ``prompt_ids`` of ``generate``."""
        ids = [self.convert_tokens_to_ids("<|startofprev|>")]
        ids += self(" " + text.strip(), add_special_tokens=False)["input_ids"]
        first_special = self.all_special_ids[0]
        bad = next((i for i in ids[1:] if i >= first_special), None)
        if bad is not None:
            raise ValueError(f"the prompt text holds the special token {self.convert_ids_to_tokens(bad)}")
        if return_tensors == "pt":
            import torch

            return torch.tensor(ids)
        return np.array(ids) if return_tensors == "np" else ids

    # --- decoding -------------------------------------------------------------------------------------
    @property
    def _timestamp_begin(self) -> int:
        return self.all_special_ids[-1] + 1

    def _strip_prompt(self, token_ids: Any) -> Any:
        # A <|startofprev|> prompt is dropped up to <|startoftranscript|> (all of it when that is missing).
        if not isinstance(token_ids, list) or not token_ids or isinstance(token_ids[0], list):
            return token_ids
        if token_ids[0] == self.convert_tokens_to_ids("<|startofprev|>"):
            start = self.convert_tokens_to_ids("<|startoftranscript|>")
            return token_ids[token_ids.index(start):] if start in token_ids else []
        return token_ids

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
               output_offsets: bool = False, time_precision: float = 0.02, decode_with_timestamps: bool = False,
               normalize: bool = False, basic_normalize: bool = False, remove_diacritics: bool = False,
               **kwargs: Any) -> Any:
        """Text of ``token_ids`` without timestamp tokens (``decode_with_timestamps``: written as
        ``<|1.08|>``); ``output_offsets`` returns ``{"text", "offsets"}`` with each segment's text and
        ``(start, end)`` seconds."""
        if normalize or basic_normalize:
            raise NotImplementedError("Whisper's text normalizers are not implemented in pretrained")
        token_ids = to_py_obj(token_ids)
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        kept = self._strip_prompt(token_ids) if skip_special_tokens else token_ids
        text = super().decode(kept, skip_special_tokens=skip_special_tokens,
                              clean_up_tokenization_spaces=clean_up_tokenization_spaces, **kwargs)
        if decode_with_timestamps:
            if kept and isinstance(kept[0], list):
                text = [self._decode_with_timestamps(row, skip_special_tokens, time_precision) for row in kept]
            else:
                text = self._decode_with_timestamps(kept, skip_special_tokens, time_precision)
        elif isinstance(text, list):
            text = [_TIMESTAMP.sub("", t) for t in text]
        else:
            text = _TIMESTAMP.sub("", text)
        if output_offsets:
            return {"text": text, "offsets": self._compute_offsets(token_ids, time_precision)}
        return text

    def _decode_with_timestamps(self, token_ids: list[int], skip_special_tokens: bool = False,
                                time_precision: float = 0.02, segment_size: int = 1500) -> str:
        """Text with each timestamp written ``<|t|>``; times keep growing across 30 s windows (a timestamp
        smaller than the last starts a new window)."""
        begin = self._timestamp_begin
        parts: list[Any] = [[]]
        clock = _WindowClock(time_precision * segment_size)
        for i, token in enumerate(token_ids):
            if token < begin:
                parts[-1].append(token)
                continue
            time = float((token - begin) * time_precision)
            if clock.see(time, token_ids, i, begin):
                parts = parts[:-2]  # the pair that closed the last window opens this one
            parts += [f"<|{time + clock.shift:.2f}|>", []]
        return "".join(p if isinstance(p, str) else super(WhisperTokenizer, self).decode(
            p, skip_special_tokens=skip_special_tokens) if p else "" for p in parts)

    def _compute_offsets(self, token_ids: Any, time_precision: float = 0.02, segment_size: int = 1500
                         ) -> list[dict[str, Any]]:
        """Each timestamped segment's text and ``(start, end)`` in seconds."""
        ids = np.array(token_ids)
        if ids.ndim > 1 and ids.shape[0] > 1:
            raise ValueError("output_offsets takes one sequence at a time")
        ids = ids.reshape(-1)
        begin = self._timestamp_begin
        is_ts = ids >= begin
        cuts = np.where(is_ts[:-1] & is_ts[1:])[0] + 1
        if cuts.shape[0] == 0 and is_ts.sum() <= 1:
            return []
        stamps = np.where(is_ts)[0]
        if stamps[-1] + 1 not in cuts:
            cuts = np.append(cuts, stamps[-1] + 1)
        last, latest, shift = stamps[0], 0, 0
        offsets = []
        for cut in cuts:
            piece = ids[last:cut]
            if len(piece) > 1:
                start, end = int(piece[0]) - begin, int(piece[-1]) - begin
                if start < latest:
                    single_ending = last >= 2 and not (ids[last - 2] >= begin and ids[last - 1] >= begin)
                    shift += segment_size if single_ending else latest
                latest = end
                text = _TIMESTAMP.sub("", self._decode(piece.tolist()))
                offsets.append({"text": text, "timestamp": (start * time_precision + shift * time_precision,
                                                            end * time_precision + shift * time_precision)})
            last = cut
        return offsets


    # --- the speech-recognition pipeline's decoding -------------------------------------------------------
    def _decode_asr(self, model_outputs: list[dict[str, Any]], *, return_timestamps: Any, return_language: Any,
                    time_precision: float, segment_size: int = 1500) -> tuple[str, dict[str, Any]]:
        """Text (and ``chunks``) of a pipeline input's chunk outputs (``tokens``, optional ``stride`` in
        seconds): overlapping chunks are merged at their longest agreement, timestamps are shifted to the
        whole audio's clock, and with ``return_timestamps`` each ``(start, end)`` segment is a chunk."""
        if return_timestamps == "word":
            raise NotImplementedError("word-level timestamps are not implemented in pretrained")
        begin = self.convert_tokens_to_ids("<|notimestamps|>") + 1
        specials = set(self.all_special_ids)
        chunks: list[dict[str, Any]] = []
        language = None

        def fresh() -> dict[str, Any]:
            return {"language": language, "timestamp": [None, None], "text": ""}

        def close(chunk: dict[str, Any], runs: list[list[int]]) -> dict[str, Any]:
            # A finished chunk's text: the longest agreement of its runs (one per overlapping audio chunk).
            chunk["text"] = self.decode(_longest_common_sequence(runs))
            chunks.append(chunk)
            return fresh()

        chunk = fresh()
        offset = 0.0
        pending: list[list[int]] = []  # the token runs of the open chunk, one per audio chunk
        skip = False
        for output in model_outputs:
            ids = self._strip_prompt(to_py_obj(output["tokens"])[0])
            last_ts = None
            first_ts: float = begin
            clock = _WindowClock(time_precision * segment_size)
            if "stride" in output:
                chunk_len, stride_left, stride_right = output["stride"]
                offset -= stride_left
                right_start = chunk_len - stride_right
                if stride_left:
                    first_ts = stride_left / time_precision + begin
                if stride_right:
                    # the last timestamp before the right stride: segments from there are the next chunk's
                    for token in reversed(ids):
                        if token >= begin:
                            if last_ts is not None and (token - begin) * time_precision < right_start:
                                break
                            last_ts = token
            run: list[int] = []
            for i, token in enumerate(ids):
                if token in specials:
                    name = LANGUAGES.get(self.decode([token])[2:-2])
                    if name is not None:
                        if language and name != language and not return_timestamps:
                            chunk, pending, run = close(chunk, [*pending, run]), [], []
                        chunk["language"] = name
                        language = name
                elif token >= begin:
                    clock.see(float((token - begin) * time_precision), ids, i, begin)
                    time = round((token - begin) * time_precision + offset + clock.shift, 2)
                    if last_ts and token >= last_ts:
                        skip = True
                    elif skip or (pending and token < first_ts):
                        skip = False
                    elif chunk["timestamp"][0] is None:
                        chunk["timestamp"][0] = time
                    elif time != chunk["timestamp"][0]:
                        chunk["timestamp"][1] = time
                        chunk, pending, run = close(chunk, [*pending, run]), [], []
                else:
                    run.append(token)
            if "stride" in output:
                offset += chunk_len - stride_right
            if run:
                pending.append(run)
            elif not any(pending):
                chunk, pending = fresh(), []
        if pending:
            close(chunk, pending)
        text = "".join(c["text"] for c in chunks)
        if not (return_timestamps or return_language):
            return text, {}
        for c in chunks:
            if return_timestamps:
                c["timestamp"] = tuple(c["timestamp"])
            else:
                c.pop("timestamp")
            if not return_language:
                c.pop("language")
        return text, {"chunks": chunks}


class _WindowClock:
    """Whisper's timestamps restart at each 30 s window of audio; this keeps the shift that makes the times
    of one token sequence keep growing across windows."""

    def __init__(self, window: float):
        self.window = window  # seconds of one window
        self.shift = self.latest = self.penultimate = 0.0

    def see(self, time: float, ids: Any, i: int, begin: int) -> bool:
        """Move on to ``time``, the timestamp token ``ids[i]`` (timestamp ids start at ``begin``). A time
        below the last one starts a new window: after a single timestamp the shift grows by a whole window,
        after a pair by the time the pair marked. Returns whether it was a pair."""
        after_pair = False
        if time < self.latest:
            if i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin):
                self.shift += self.window
            else:
                self.latest = self.penultimate
                self.shift += self.penultimate
                after_pair = True
        self.penultimate, self.latest = self.latest, time
        return after_pair


def _longest_common_sequence(sequences: list[list[int]]) -> list[int]:
    """Token runs of overlapping audio chunks joined into one: each next run is slid along the joined one,
    the alignment with the best share of equal tokens (more than one; ties go to longer overlaps by a tiny
    bonus) is kept, and the two are cut in the middle of the overlap."""
    left = list(sequences[0])
    total: list[int] = []
    for right in sequences[1:]:
        best, cut = 0.0, (len(left), len(left), 0, 0)
        for i in range(1, len(left) + len(right)):
            l0, l1 = max(0, len(left) - i), min(len(left), len(left) + len(right) - i)
            r0, r1 = max(0, i - len(left)), min(len(right), i)
            matches = int(np.sum(np.array(left[l0:l1]) == np.array(right[r0:r1])))
            score = matches / i + i / 10000.0
            if matches > 1 and score > best:
                best, cut = score, (l0, l1, r0, r1)
        l0, l1, r0, r1 = cut
        total.extend(left[: (l0 + l1) // 2])
        left = list(right[(r0 + r1) // 2:])
    total.extend(left)
    return total


WhisperTokenizerFast = WhisperTokenizer

"""`PreTrainedTokenizerFast`: the tokenizer API on top of a Rust `tokenizers.Tokenizer`.

The Rust tokenizer splits, truncates and adds special tokens. For tensor outputs, padding is done
here with numpy instead of in Rust: only the unpadded ids cross into Python, and the Rust encodings
are padded later, only if someone looks at them (`BatchEncoding.encodings`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from itertools import chain
from typing import Any

import numpy as np
from tokenizers import AddedToken, Tokenizer, processors

from ..utils.io import atomic_path, atomic_write_text
from .base import PreTrainedTokenizerBase
from .batch_encoding import BatchEncoding, PaddingStrategy, TruncationStrategy, _PendingPad

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
CHAT_TEMPLATE_DIR = "additional_chat_templates"

_TEXT_INPUT_ERROR = (
    "text input must be of type `str` (single example), `list[str]` (batch or single pretokenized example) "
    "or `list[list[str]]` (batch of pretokenized examples) or `list[tuple[list[str], list[str]]]` (batch of "
    "pretokenized sequence pairs)."
)


def _is_valid_text_input(t: Any) -> bool:
    if isinstance(t, str):
        return True
    if not isinstance(t, (list, tuple)):
        return False
    if len(t) == 0 or isinstance(t[0], str):
        return True
    if not isinstance(t[0], (list, tuple)):
        return False
    if len(t[0]) == 0 or isinstance(t[0][0], str):
        return True
    if isinstance(t[0][0], (list, tuple)):
        return len(t[0][0]) == 0 or isinstance(t[0][0][0], str)
    return False


def _processor_keeps_single_type_ids_zero(state: dict[str, Any] | None) -> bool:
    # For single sequences, these post-processors give every token type id 0, so the ids need not
    # be fetched from Rust.
    if state is None:
        return True
    kind = state.get("type")
    if kind in ("BertProcessing", "RobertaProcessing", "ByteLevel"):
        return True
    if kind == "TemplateProcessing":
        return all(next(iter(piece.values()))["type_id"] == 0 for piece in state["single"])
    if kind == "Sequence":
        return all(_processor_keeps_single_type_ids_zero(p) for p in state["processors"])
    return False


def _pad_rows(
    rows: list[list[Any]], lengths: np.ndarray, mask: np.ndarray, fill: int, width: int = 0
) -> np.ndarray:
    # Scatter ragged rows into a (batch, length[, width]) array; `mask` marks the non-padding slots.
    total = int(lengths.sum())
    flat_rows = chain.from_iterable(rows)
    if width:
        flat = np.fromiter(chain.from_iterable(flat_rows), dtype=np.int64, count=total * width).reshape(
            -1, width
        )
        out = np.full((*mask.shape, width), fill, dtype=np.int64)
    else:
        flat = np.fromiter(flat_rows, dtype=np.int64, count=total)
        out = np.full(mask.shape, fill, dtype=np.int64)
    out[mask] = flat
    return out


class PreTrainedTokenizerFast(PreTrainedTokenizerBase):
    """A tokenizer backed by the Rust `tokenizers` library (`tokenizer.json`).

    Built from a `tokenizers.Tokenizer` (`tokenizer_object`), a `tokenizer.json` (`tokenizer_file`), or,
    in subclasses, legacy vocabulary files. See `PreTrainedTokenizerBase` for the other arguments.

    Args:
        tokenizer_object: A `tokenizers.Tokenizer` to wrap (it is copied).
        tokenizer_file: Path of a `tokenizer.json`.
        add_bos_token: Rebuild the post-processor so that it adds `bos_token` at the start.
        add_eos_token: Rebuild the post-processor so that it adds `eos_token` at the end.
    """

    vocab_files_names: dict[str, str] = {"tokenizer_file": TOKENIZER_FILE}
    # The class name written to tokenizer_config.json, so transformers picks its matching class.
    saved_class_name: str = "TokenizersBackend"
    # Special tokens a model family has even when its files do not name them.
    default_special_tokens: dict[str, str] = {}
    # Model type ("WordPiece", "BPE", "Unigram") a family class rebuilds from a tokenizer.json's vocabulary.
    rebuild_model_type: str | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        for key, value in self.default_special_tokens.items():
            kwargs.setdefault(key, value)
        tokenizer_object = kwargs.pop("tokenizer_object", None)
        tokenizer_file = kwargs.pop("tokenizer_file", None)
        added_tokens_decoder = kwargs.get("added_tokens_decoder") or {}
        vocab_file = kwargs.get("vocab_file")
        for key in ("is_local", "local_files_only", "special_tokens_map_file", "added_tokens_file"):
            kwargs.pop(key, None)

        if tokenizer_object is not None:
            backend = copy.deepcopy(tokenizer_object)
        elif tokenizer_file is not None and os.path.isfile(tokenizer_file):
            backend = self._backend_from_tokenizer_json(tokenizer_file, kwargs)
        else:
            backend = self._build_backend(kwargs)
        if backend is None:
            raise ValueError(
                f"Couldn't instantiate {type(self).__name__}: give a `tokenizer_object`, a `tokenizer_file` "
                f"(tokenizer.json) or the vocabulary files {sorted(self.vocab_files_names.values())}."
            )
        self._tokenizer = backend

        # Truncation/padding saved in tokenizer.json become the tokenizer's defaults, as in transformers.
        truncation = backend.truncation
        if truncation is not None:
            kwargs.setdefault("max_length", truncation["max_length"])
            kwargs.setdefault("truncation_side", truncation["direction"])
            kwargs.setdefault("stride", truncation["stride"])
            kwargs.setdefault("truncation_strategy", truncation["strategy"])
        padding = backend.padding
        if padding is not None:
            kwargs.setdefault("pad_token", padding["pad_token"])
            kwargs.setdefault("pad_token_type_id", padding["pad_type_id"])
            kwargs.setdefault("padding_side", padding["direction"])
            kwargs.setdefault("max_length", padding["length"])
            kwargs.setdefault("pad_to_multiple_of", padding["pad_to_multiple_of"])
        kwargs.setdefault("backend", "tokenizers")

        explicit_bos_eos = "add_bos_token" in kwargs or "add_eos_token" in kwargs
        self._add_bos_token = kwargs.get("add_bos_token", False)
        self._add_eos_token = kwargs.get("add_eos_token", False)
        post_processor = kwargs.pop("post_processor", None)
        if post_processor is not None:
            backend.post_processor = post_processor
        super().__init__(**kwargs)
        if vocab_file is not None:
            self.vocab_file = vocab_file
        self.add_prefix_space = kwargs.get("add_prefix_space", False)
        self._tokenizer.encode_special_tokens = self.split_special_tokens
        self._single_type_ids_cache: tuple[Any, bool] = (object(), False)

        # Added tokens listed in the config and special tokens missing from the backend are added to it.
        present = {repr(t) for t in self.added_tokens_decoder.values()}
        to_add: list[Any] = [t for _, t in sorted(added_tokens_decoder.items()) if repr(t) not in present]
        known = set(self.added_tokens_encoder) | {str(t) for t in to_add}
        for token in [*self._special_tokens_map.values(), *self._extra_special_tokens]:
            if token is not None and str(token) not in known and token not in to_add:
                to_add.append(token)
        if to_add:
            named = {str(t) for t in self._special_tokens_map.values() if t}
            tokens = []
            for token in to_add:
                if isinstance(token, str):
                    token = AddedToken(token, special=True)
                elif not token.special and str(token) in named:
                    token.special = True
                tokens.append(token)
            self.add_tokens(tokens)

        if explicit_bos_eos or self._tokenizer.post_processor is None:
            self.update_post_processor()
        self._set_family_post_processor()

    @classmethod
    def _backend_from_tokenizer_json(cls, path: str, kwargs: dict[str, Any]) -> Tokenizer:
        """The Rust tokenizer for a `tokenizer.json`: as written, or rebuilt by a family class."""
        if cls.rebuild_model_type is None:
            return Tokenizer.from_file(path)
        from .builders import tokenizer_json_parts

        parts = tokenizer_json_parts(path)
        if parts["model_type"] != cls.rebuild_model_type:
            return Tokenizer.from_file(path)
        return cls._rebuilt(path, parts, kwargs)

    @classmethod
    def _rebuilt(cls, path: str, parts: dict[str, Any], kwargs: dict[str, Any]) -> Tokenizer:
        # The family's tokenizer over the file's vocabulary, with the file's post-processor and settings.
        backend = cls._build_backend(kwargs, parts)
        if backend is None:
            return Tokenizer.from_file(path)
        backend.post_processor = parts["post_processor"]
        if parts["truncation"] is not None:
            backend.enable_truncation(**parts["truncation"])
        if parts["padding"] is not None:
            backend.enable_padding(**parts["padding"])
        return backend

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any], parts: dict[str, Any] | None = None) -> Tokenizer | None:
        """Build the family's Rust tokenizer from `parts` of a tokenizer.json or legacy files named in `kwargs`."""
        return None

    def _set_family_post_processor(self) -> None:
        """Families with a fixed special-token layout (BERT, RoBERTa, T5) set their post-processor here."""

    # -- backend access ------------------------------------------------------------------------------

    @property
    def is_fast(self) -> bool:
        return True

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The Rust `tokenizers.Tokenizer` doing the work."""
        return self._tokenizer

    @property
    def decoder(self) -> Any:
        """The Rust decoder of the backend tokenizer."""
        return self._tokenizer.decoder

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def get_vocab(self) -> dict[str, int]:
        """The full vocabulary (with added tokens) as `token -> id`."""
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Added tokens as `id -> AddedToken`."""
        return self._tokenizer.get_added_tokens_decoder()

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        """Added tokens as `content -> id`, sorted by id."""
        return {t.content: i for i, t in sorted(self.added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        """Added tokens as `content -> id`, sorted by id."""
        return self.added_tokens_encoder

    def __repr__(self) -> str:
        added = "\n\t".join(f"{k}: {v!r}," for k, v in self.added_tokens_decoder.items())
        added = f"\n\t{added}\n" if added else ""
        return (
            f"{self.__class__.__name__}(name_or_path='{self.name_or_path}', vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side='{self.padding_side}', "
            f"truncation_side='{self.truncation_side}', special_tokens={self.special_tokens_map}, "
            f"added_tokens_decoder={{{added}}})"
        )

    def _add_tokens(self, new_tokens: list[str | AddedToken], special_tokens: bool = False) -> int:
        if special_tokens:
            return self._tokenizer.add_special_tokens(new_tokens)
        return self._tokenizer.add_tokens(new_tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens the post-processor adds to a single sequence or a pair."""
        return self._tokenizer.num_special_tokens_to_add(pair)

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        """Token(s) to id(s); unknown tokens give `unk_token_id`."""
        if isinstance(tokens, str):
            return self._convert_token_to_id(tokens)
        return [self._convert_token_to_id(t) for t in tokens]

    def _convert_token_to_id(self, token: str) -> int | None:
        index = self._tokenizer.token_to_id(token)
        return self.unk_token_id if index is None else index

    def convert_ids_to_tokens(
        self, ids: int | list[int], skip_special_tokens: bool = False
    ) -> str | list[str]:
        """Id(s) to token string(s), optionally dropping special tokens."""
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens into text with the backend's decoder."""
        decoder = self._tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def tokenize(
        self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """Split a text (and optional pair) into token strings."""
        return self._encode_plus(
            text=text, text_pair=pair, add_special_tokens=add_special_tokens, **kwargs
        ).tokens()

    # -- bos/eos post-processor ----------------------------------------------------------------------

    def update_post_processor(self) -> None:
        """Rebuild the post-processor from `add_bos_token` / `add_eos_token`."""
        bos, eos = self.bos_token, self.eos_token
        if bos is None and self.add_bos_token:
            self._add_bos_token = False
        if eos is None and self.add_eos_token:
            self._add_eos_token = False
        add_bos, add_eos = self.add_bos_token, self.add_eos_token
        single = f"{(bos + ':0 ') if add_bos else ''}$A:0{(' ' + eos + ':0') if add_eos else ''}"
        pair = f"{single}{(' ' + bos + ':1') if add_bos else ''} $B:1{(' ' + eos + ':1') if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self.bos_token_id))
        if add_eos:
            special.append((eos, self.eos_token_id))
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=special
        )

    @property
    def add_bos_token(self) -> bool:
        return self.__dict__.get("_add_bos_token", False)

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        object.__setattr__(self, "_add_bos_token", value)
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        return self.__dict__.get("_add_eos_token", False)

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        object.__setattr__(self, "_add_eos_token", value)
        self.update_post_processor()

    # -- encoding ------------------------------------------------------------------------------------

    def _set_truncation(self, strategy: TruncationStrategy, max_length: int | None, stride: int) -> None:
        current = self._tokenizer.truncation
        if strategy == TruncationStrategy.DO_NOT_TRUNCATE:
            if current is not None:
                self._tokenizer.no_truncation()
            return
        target = {
            "max_length": max_length,
            "stride": stride,
            "strategy": strategy.value,
            "direction": self.truncation_side,
        }
        if current is None or {k: current.get(k) for k in target} != target:
            self._tokenizer.enable_truncation(**target)

    def _set_rust_padding(self, target: dict[str, Any] | None) -> None:
        current = self._tokenizer.padding
        if target is None:
            if current is not None:
                self._tokenizer.no_padding()
        elif current != target:
            self._tokenizer.enable_padding(**target)

    def _single_type_ids_are_zero(self) -> bool:
        processor = self._tokenizer.post_processor
        state = processor.__getstate__() if processor is not None else None
        cached_state, answer = self._single_type_ids_cache
        if state != cached_state:
            answer = _processor_keeps_single_type_ids_zero(json.loads(state) if state is not None else None)
            self._single_type_ids_cache = (state, answer)
        return answer

    def _encode_plus(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        truncation_strategy: TruncationStrategy = TruncationStrategy.DO_NOT_TRUNCATE,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        if not _is_valid_text_input(text) or (text_pair is not None and not _is_valid_text_input(text_pair)):
            raise ValueError(_TEXT_INPUT_ERROR)
        if is_split_into_words:
            is_batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
        else:
            is_batched = isinstance(text, (list, tuple))
        if is_batched:
            if isinstance(text_pair, str):
                raise TypeError(
                    "when tokenizing batches of text, `text_pair` must be a list or tuple with the same length as"
                    " `text`."
                )
            if text_pair is not None and len(text) != len(text_pair):
                raise ValueError(
                    f"batch length of `text`: {len(text)} does not match batch length of `text_pair`:"
                    f" {len(text_pair)}."
                )
            batch = list(zip(text, text_pair)) if text_pair is not None else text
        else:
            batch = [(text, text_pair)] if text_pair else [text]
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        side = padding_side if padding_side is not None else self.padding_side

        self._set_truncation(truncation_strategy, max_length, stride)
        numpy_padding = return_tensors is not None and padding_strategy != PaddingStrategy.DO_NOT_PAD
        if numpy_padding or padding_strategy == PaddingStrategy.DO_NOT_PAD:
            self._set_rust_padding(None)
        else:
            self._set_rust_padding(
                {
                    "length": max_length if padding_strategy == PaddingStrategy.MAX_LENGTH else None,
                    "direction": side,
                    "pad_id": self.pad_token_id,
                    "pad_token": self.pad_token,
                    "pad_type_id": self.pad_token_type_id,
                    "pad_to_multiple_of": pad_to_multiple_of,
                }
            )
        if split_special_tokens is None:
            split_special_tokens = self.split_special_tokens
        if self._tokenizer.encode_special_tokens != split_special_tokens:
            self._tokenizer.encode_special_tokens = split_special_tokens

        encodings = self._tokenizer.encode_batch(
            batch, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
        )
        if return_overflowing_tokens:
            counts = []
            rows = []
            for encoding in encodings:
                group = [encoding, *encoding.overflowing]
                counts.append(len(group))
                rows.extend(group)
        else:
            counts = None
            rows = encodings
        fields = (
            return_token_type_ids,
            return_attention_mask,
            return_special_tokens_mask,
            return_offsets_mapping,
        )

        if numpy_padding:
            if side not in ("right", "left"):
                raise ValueError(f"Invalid padding strategy:{side}")
            if padding_strategy != PaddingStrategy.LONGEST:
                length = max_length
            elif counts is None:
                length = None  # the longest row: known once the ids are fetched
            else:  # as in Rust, the longest *first* window of each text sets the length
                length = max((len(e) for e in encodings), default=0)
            # Pairs can also come inside `text` as [first, second] items: only plain texts are single.
            single = text_pair is None and all(
                isinstance(x, str)
                or (is_split_into_words and isinstance(x, (list, tuple)) and (not x or isinstance(x[0], str)))
                for x in batch
            )
            output = self._padded_arrays(
                rows, length, pad_to_multiple_of, side, single, fields, return_length
            )
            if isinstance(output, int):  # rows longer than the padded length: ragged, pad as Rust would
                length = output
                for row in rows:
                    row.pad(
                        length,
                        direction=side,
                        pad_id=self.pad_token_id,
                        pad_type_id=self.pad_token_type_id,
                        pad_token=self.pad_token,
                    )
                data, pending = self._lists(rows, fields, return_length), None
            else:
                data, pending = output
        else:
            data, pending = self._lists(rows, fields, return_length), None
        if counts is not None:
            data["overflow_to_sample_mapping"] = np.repeat(np.arange(len(counts)), counts).tolist()
        if max_length is None and verbose:
            longest = max((len(e) for e in rows), default=0)
            self._eventual_warn_about_too_long_sequence(range(longest), max_length, verbose)

        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            data = {k: (v[0] if v and isinstance(v[0], list) else v) for k, v in data.items()}
            return BatchEncoding(data, rows)
        return BatchEncoding(data, rows, tensor_type=return_tensors, _pending_pad=pending)

    @staticmethod
    def _lists(rows: list[Any], fields: tuple[bool, bool, bool, bool], return_length: bool) -> dict[str, Any]:
        type_ids, attention, special, offsets = fields
        data: dict[str, Any] = {"input_ids": [e.ids for e in rows]}
        if type_ids:
            data["token_type_ids"] = [e.type_ids for e in rows]
        if attention:
            data["attention_mask"] = [e.attention_mask for e in rows]
        if special:
            data["special_tokens_mask"] = [e.special_tokens_mask for e in rows]
        if offsets:
            data["offset_mapping"] = [e.offsets for e in rows]
        if return_length:
            data["length"] = [len(ids) for ids in data["input_ids"]]
        return data

    def _padded_arrays(
        self,
        rows: list[Any],
        length: int | None,
        pad_to_multiple_of: int | None,
        side: str,
        single: bool,
        fields: tuple[bool, bool, bool, bool],
        return_length: bool,
    ) -> tuple[dict[str, Any], _PendingPad | None] | int:
        # Returns the arrays and the padding still owed to the Rust encodings, or, when some row is
        # longer than the target, just the target length (the caller then pads row by row).
        type_ids, attention, special, offsets = fields
        ids = [e.ids for e in rows]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        longest = int(lengths.max()) if len(ids) else 0
        if length is None:
            length = longest
        if pad_to_multiple_of and length % pad_to_multiple_of:
            length += pad_to_multiple_of - length % pad_to_multiple_of
        if longest > length:
            return length
        positions = np.arange(length)
        if side == "right":
            mask = positions[None, :] < lengths[:, None]
        else:
            mask = positions[None, :] >= (length - lengths)[:, None]
        data: dict[str, Any] = {"input_ids": _pad_rows(ids, lengths, mask, self.pad_token_id)}
        if type_ids:
            if single and self._single_type_ids_are_zero():
                data["token_type_ids"] = np.where(mask, 0, self.pad_token_type_id).astype(np.int64)
            else:
                data["token_type_ids"] = _pad_rows(
                    [e.type_ids for e in rows], lengths, mask, self.pad_token_type_id
                )
        if attention:
            data["attention_mask"] = mask.astype(np.int64)
        if special:
            data["special_tokens_mask"] = _pad_rows([e.special_tokens_mask for e in rows], lengths, mask, 1)
        if offsets:
            data["offset_mapping"] = _pad_rows([e.offsets for e in rows], lengths, mask, 0, width=2)
        if return_length:
            data["length"] = np.full(len(rows), length, dtype=np.int64)
        pending = None
        if len(ids) and int(lengths.min()) < length:
            pending = _PendingPad(length, side, self.pad_token_id, self.pad_token_type_id, self.pad_token)
        return data, pending

    # -- decoding ------------------------------------------------------------------------------------

    def _decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        text = self._tokenizer.decode(token_ids, skip_special_tokens=skip_special_tokens)
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        if clean_up_tokenization_spaces:
            # The clean-up was designed for WordPiece; on BPE it deletes real spaces before punctuation.
            if (
                type(self._tokenizer.model).__name__ == "BPE"
                and not self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output
            ):
                if not self.deprecation_warnings.get("bpe-cleanup"):
                    logger.warning(
                        "Ignoring clean_up_tokenization_spaces=True for BPE tokenizer %s: the clean-up is "
                        "destructive for BPE. Set clean_up_tokenization_spaces=False to silence this warning.",
                        type(self).__name__,
                    )
                    self.deprecation_warnings["bpe-cleanup"] = True
            else:
                text = self.clean_up_tokenization(text)
        return text

    # -- loading and saving --------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *init_inputs: Any, **kwargs: Any
    ) -> Any:
        """Load a tokenizer from a folder or a repo id in the Hugging Face cache.

        Reads `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`, the legacy
        `special_tokens_map.json` / `added_tokens.json`, and, without `tokenizer.json`, the class's legacy
        vocabulary files. Keyword arguments override the saved configuration.

        Args:
            pretrained_model_name_or_path: A folder, a repo id, or the path of a `tokenizer.json`.
            cache_dir: Hugging Face cache to search.
            revision: Branch, tag or commit of a repo.
            local_files_only: Never download.
            token: Token for private repos.
            subfolder: Folder inside the repo holding the files.
        """
        from .loading import load_tokenizer

        return load_tokenizer(cls, pretrained_model_name_or_path, *init_inputs, **kwargs)

    def _config_for_saving(self) -> dict[str, Any]:
        config = copy.deepcopy(self.init_kwargs)
        for key in ("add_bos_token", "add_eos_token"):
            config.pop(key, None)
        for key in [k for k in self.init_kwargs if k not in ("add_bos_token", "add_eos_token")] + [
            "model_max_length"
        ]:
            if key in self.__dict__ or key in ("model_max_length", "backend"):
                config[key] = getattr(self, key)
        for key in (
            "padding_side",
            "truncation_side",
            "model_input_names",
            "clean_up_tokenization_spaces",
            "split_special_tokens",
        ):
            if key in self.init_kwargs:
                config[key] = getattr(self, key)
        config.update(self.special_tokens_map)
        if self._extra_special_tokens:
            config["extra_special_tokens"] = self.extra_special_tokens
        for key in (
            "chat_template",
            "added_tokens_decoder",
            "additional_special_tokens",
            "name_or_path",
            "special_tokens_map_file",
            "tokenizer_file",
            "device_map",
            "slow_tokenizer_class",
            "files_loaded",
            "tokenizer_object",
            "post_processor",
            *self.vocab_files_names,
        ):
            config.pop(key, None)
        if self.response_template is not None:
            config["response_template"] = self.response_template
        if self.chat_control_tokens is not None:
            config["chat_control_tokens"] = list(self.chat_control_tokens)
        if self._processor_class is not None:
            config["processor_class"] = self._processor_class
        config["tokenizer_class"] = self.saved_class_name
        return _jsonable(config)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        legacy_format: bool | None = None,
        filename_prefix: str | None = None,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> tuple[str, ...]:
        """Write `tokenizer_config.json`, `tokenizer.json` and the chat template(s) to a folder (atomically).

        Args:
            save_directory: Target folder (created if needed).
            legacy_format: Ignored: the unified `tokenizer.json` is always written.
            filename_prefix: Prefix for the file names.
            push_to_hub: Not supported (raises).
            save_jinja_files: Write chat templates as `.jinja` files (default) instead of into the config.

        Returns:
            The paths written.
        """
        if push_to_hub:
            raise NotImplementedError(
                "push_to_hub is not supported by pretrained; upload the folder yourself."
            )
        if os.path.isfile(save_directory):
            raise ValueError(f"Provided path ({save_directory}) should be a directory, not a file")
        os.makedirs(save_directory, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config = self._config_for_saving()
        written: list[str] = []
        template = self.chat_template
        if kwargs.get("save_jinja_files", True) and template is not None:
            templates = template if isinstance(template, dict) else {"default": template}
            template_dir = os.path.join(save_directory, prefix + CHAT_TEMPLATE_DIR)
            for name, text in templates.items():
                if name == "default":
                    path = os.path.join(save_directory, prefix + CHAT_TEMPLATE_FILE)
                else:
                    if not name or os.path.basename(name) != name or name.startswith("."):
                        raise ValueError(f"Invalid chat template name: {name!r}")
                    os.makedirs(template_dir, exist_ok=True)
                    path = os.path.join(template_dir, f"{name}.jinja")
                atomic_write_text(path, text)
                written.append(path)
        elif isinstance(template, dict):
            config["chat_template"] = [{"name": k, "template": v} for k, v in template.items()]
        elif template is not None:
            config["chat_template"] = template
        config_path = os.path.join(save_directory, prefix + TOKENIZER_CONFIG_FILE)
        atomic_write_text(
            config_path, json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
        tokenizer_path = os.path.join(save_directory, prefix + TOKENIZER_FILE)
        with atomic_path(tokenizer_path) as tmp:
            self._tokenizer.save(tmp)
        return (config_path, *written, tokenizer_path)


def _jsonable(obj: Any) -> Any:
    # AddedToken values are written the way transformers writes them, with a "__type" marker.
    if isinstance(obj, AddedToken):
        return {"__type": "AddedToken", **obj.__getstate__()}
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


# transformers 5 names for the same class: there is a single (Rust-backed) implementation here.
TokenizersBackend = PreTrainedTokenizerFast
PreTrainedTokenizer = PreTrainedTokenizerFast

"""`PreTrainedTokenizerFast`: the tokenizer API on top of a Rust `tokenizers.Tokenizer`.

The Rust tokenizer splits, truncates and adds special tokens. For tensor outputs, padding is done
with numpy instead of in Rust: only the unpadded ids cross into Python, and the Rust encodings are
padded later, only if someone looks at them (`BatchEncoding.encodings`). The steps of an encoding
call are in `fast_encoding.py` and `padding.py`; saving is in `saving.py`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from typing import Any

import numpy as np
from tokenizers import AddedToken, Encoding, Tokenizer, processors

from .base import PreTrainedTokenizerBase
from .batch_encoding import BatchEncoding, PaddingStrategy, TruncationStrategy
from .fast_encoding import (
    as_batch,
    is_single_sequences,
    overflow_rows,
    overflow_to_sample_mapping,
    row_lists,
    single_type_ids_are_zero,
    sync_padding,
    sync_truncation,
)
from .loading import CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE
from .padding import OutputFields, RowPadding, padded_arrays, padded_length
from .saving import SavingMixin

__all__ = [
    "CHAT_TEMPLATE_DIR",
    "CHAT_TEMPLATE_FILE",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "BatchEncoding",
    "PaddingStrategy",
    "PreTrainedTokenizer",
    "PreTrainedTokenizerBase",
    "PreTrainedTokenizerFast",
    "TokenizersBackend",
    "TruncationStrategy",
]

logger = logging.getLogger(__name__)

# Constructor keyword -> key of the truncation / padding settings a tokenizer.json holds.
_SAVED_TRUNCATION = {
    "max_length": "max_length",
    "truncation_side": "direction",
    "stride": "stride",
    "truncation_strategy": "strategy",
}
_SAVED_PADDING = {
    "pad_token": "pad_token",
    "pad_token_type_id": "pad_type_id",
    "padding_side": "direction",
    "max_length": "length",
    "pad_to_multiple_of": "pad_to_multiple_of",
}


def _rebuilds_post_processor(name: str) -> property:
    # A flag whose setter rebuilds the post-processor, for `add_bos_token` / `add_eos_token`.
    attribute = f"_{name}"

    def get(self: PreTrainedTokenizerFast) -> bool:
        return self.__dict__.get(attribute, False)

    def set_(self: PreTrainedTokenizerFast, value: bool) -> None:
        object.__setattr__(self, attribute, value)
        self.update_post_processor()

    return property(get, set_, doc=f"Whether the post-processor adds `{name.split('_')[1]}_token`.")


class PreTrainedTokenizerFast(PreTrainedTokenizerBase, SavingMixin):
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
        for saved, keywords in ((backend.truncation, _SAVED_TRUNCATION), (backend.padding, _SAVED_PADDING)):
            if saved is not None:
                for keyword, key in keywords.items():
                    kwargs.setdefault(keyword, saved[key])
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

    add_bos_token = _rebuilds_post_processor("add_bos_token")
    add_eos_token = _rebuilds_post_processor("add_eos_token")

    # -- encoding ------------------------------------------------------------------------------------

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
        # The arguments of `__call__`, with padding and truncation resolved into strategies.
        batch, is_batched = as_batch(text, text_pair, is_split_into_words)
        side = padding_side if padding_side is not None else self.padding_side
        # Tensor outputs are padded with numpy after `encode_batch`, list outputs by Rust.
        pad_in_numpy = return_tensors is not None and padding_strategy != PaddingStrategy.DO_NOT_PAD
        rust_strategy = PaddingStrategy.DO_NOT_PAD if pad_in_numpy else padding_strategy
        sync_truncation(self._tokenizer, truncation_strategy, max_length, stride, self.truncation_side)
        sync_padding(self._tokenizer, self._rust_padding(rust_strategy, max_length, side, pad_to_multiple_of))
        self._sync_split_special_tokens(split_special_tokens)

        # Rust truncates, keeps the overflowing windows and adds the special tokens.
        encodings = self._tokenizer.encode_batch(
            batch, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
        )
        rows, counts = overflow_rows(encodings) if return_overflowing_tokens else (encodings, None)

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        fields = OutputFields(
            return_token_type_ids,
            return_attention_mask,
            return_special_tokens_mask,
            return_offsets_mapping,
            return_length,
        )
        if pad_in_numpy:
            length = _numpy_pad_target(padding_strategy, max_length, return_overflowing_tokens, encodings)
            zero_type_ids = return_token_type_ids and self._type_ids_are_zero(
                batch, text_pair, is_split_into_words
            )
            data, pending = self._pad_with_numpy(
                rows, length, pad_to_multiple_of, side, fields, zero_type_ids
            )
        else:
            data, pending = row_lists(rows, fields), None
        if counts is not None:
            data["overflow_to_sample_mapping"] = overflow_to_sample_mapping(counts)
        if max_length is None and verbose:
            longest = max((len(e) for e in rows), default=0)
            self._eventual_warn_about_too_long_sequence(range(longest), max_length, verbose)

        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            data = {k: (v[0] if v and isinstance(v[0], list) else v) for k, v in data.items()}
            return BatchEncoding(data, rows)
        return BatchEncoding(data, rows, tensor_type=return_tensors, _pending_pad=pending)

    def _rust_padding(
        self, strategy: PaddingStrategy, max_length: int | None, side: str, pad_to_multiple_of: int | None
    ) -> dict[str, Any] | None:
        # `enable_padding` arguments for a padding strategy; `None` for no padding.
        if strategy == PaddingStrategy.DO_NOT_PAD:
            return None
        return {
            "length": max_length if strategy == PaddingStrategy.MAX_LENGTH else None,
            "direction": side,
            "pad_id": self.pad_token_id,
            "pad_token": self.pad_token,
            "pad_type_id": self.pad_token_type_id,
            "pad_to_multiple_of": pad_to_multiple_of,
        }

    def _sync_split_special_tokens(self, split_special_tokens: bool | None) -> None:
        if split_special_tokens is None:
            split_special_tokens = self.split_special_tokens
        if self._tokenizer.encode_special_tokens != split_special_tokens:
            self._tokenizer.encode_special_tokens = split_special_tokens

    def _type_ids_are_zero(self, batch: list[Any], text_pair: Any, is_split_into_words: bool) -> bool:
        # Whether every real token gets type id 0, so they need not be fetched from Rust. The answer
        # for the post-processor is cached per post-processor state.
        if not is_single_sequences(batch, text_pair, is_split_into_words):
            return False
        processor = self._tokenizer.post_processor
        state = processor.__getstate__() if processor is not None else None
        cached_state, answer = self._single_type_ids_cache
        if state != cached_state:
            answer = single_type_ids_are_zero(json.loads(state) if state is not None else None)
            self._single_type_ids_cache = (state, answer)
        return answer

    def _pad_with_numpy(
        self,
        rows: list[Encoding],
        length: int | None,
        pad_to_multiple_of: int | None,
        side: str,
        fields: OutputFields,
        zero_type_ids: bool,
    ) -> tuple[dict[str, Any], RowPadding | None]:
        # The padded outputs, and the padding still owed to the Rust encodings (None when no row is short).
        if side not in ("right", "left"):
            raise ValueError(f"Invalid padding strategy:{side}")
        ids = [e.ids for e in rows]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        padding = RowPadding(
            padded_length(lengths, length, pad_to_multiple_of),
            side,
            self.pad_token_id,
            self.pad_token_type_id,
            self.pad_token,
        )
        if len(ids) and int(lengths.max()) > padding.length:
            # Without truncation, rows can be longer than the length asked for: pad the others as Rust
            # would and return ragged lists, which fail tensor conversion as they do in transformers.
            padding.apply(rows)
            return row_lists(rows, fields), None
        data = padded_arrays(rows, ids, lengths, padding, fields, zero_type_ids)
        return data, (padding if len(ids) and int(lengths.min()) < padding.length else None)

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


def _numpy_pad_target(
    strategy: PaddingStrategy, max_length: int | None, overflowing: bool, encodings: list[Encoding]
) -> int | None:
    # The length numpy pads to, before rounding up; `None` is the longest row, known once ids are fetched.
    if strategy != PaddingStrategy.LONGEST:
        return max_length
    if overflowing:  # as in Rust, the longest *first* window of each text sets the length
        return max((len(e) for e in encodings), default=0)
    return None


# transformers 5 names for the same class: there is a single (Rust-backed) implementation here.
TokenizersBackend = PreTrainedTokenizerFast
PreTrainedTokenizer = PreTrainedTokenizerFast

"""`PreTrainedTokenizerBase`: special tokens, argument resolution, padding, decoding and chat templates.

Everything here is independent of how text is split into tokens; `fast.py` plugs in the Rust
`tokenizers` backend.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Mapping, Sequence, Sized
from typing import Any

import numpy as np
from tokenizers import AddedToken

from .batch_encoding import (
    BatchEncoding,
    PaddingStrategy,
    TensorType,
    TruncationStrategy,
    is_torch_tensor,
    to_py_obj,
)

logger = logging.getLogger(__name__)

VERY_LARGE_INTEGER = int(1e30)  # model_max_length of a model with no length limit
LARGE_INTEGER = int(1e20)

TextInput = str
PreTokenizedInput = list[str]


class PreTrainedTokenizerBase:
    """Base class of every tokenizer: special tokens, padding/truncation arguments, `pad`, `decode`, chat templates.

    Class attributes a subclass may override: `model_input_names` (the first one is the main input),
    `padding_side`, `truncation_side`, `vocab_files_names` (legacy vocabulary files it can be built from).

    Args:
        model_max_length: Maximum input length of the model (`VERY_LARGE_INTEGER` when unknown).
        padding_side: `"right"` or `"left"`.
        truncation_side: `"right"` or `"left"`.
        model_input_names: Names of the inputs of the model's forward pass.
        chat_template: A Jinja chat template, or a dict of named templates.
        clean_up_tokenization_spaces: Remove the spaces before punctuation when decoding (WordPiece only).
        split_special_tokens: Tokenize special tokens as plain text.
        bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: Named special tokens.
        extra_special_tokens: Further special tokens (a list), or a dict of extra *named* special tokens.
    """

    vocab_files_names: dict[str, str] = {}
    model_input_names: list[str] = ["input_ids", "attention_mask"]
    padding_side: str = "right"
    truncation_side: str = "right"

    SPECIAL_TOKENS_ATTRIBUTES = [
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
    ]

    def __init__(self, **kwargs: Any):
        self.init_inputs = ()
        for key in kwargs:
            if callable(getattr(type(self), key, None)):
                raise AttributeError(f"{key} conflicts with the method {key} in {self.__class__.__name__}")
        if "additional_special_tokens" in kwargs and "extra_special_tokens" not in kwargs:
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")

        self.init_kwargs = copy.deepcopy(kwargs)
        self.name_or_path = kwargs.pop("name_or_path", "")
        self._processor_class = kwargs.pop("processor_class", None)
        self._pad_token_type_id = 0
        self.verbose = kwargs.pop("verbose", False)
        self._special_tokens_map: dict[str, str | AddedToken | None] = dict.fromkeys(
            self.SPECIAL_TOKENS_ATTRIBUTES
        )
        self._extra_special_tokens: list[str | AddedToken] = []

        named_extra = kwargs.pop("model_specific_special_tokens", None) or {}
        if not isinstance(named_extra, dict):
            raise TypeError("model_specific_special_tokens must be a dictionary of token name to token value")
        auto_named: dict[str, str | AddedToken] = {}
        for key in list(kwargs):
            if key in self.SPECIAL_TOKENS_ATTRIBUTES:
                value = kwargs.pop(key)
                if value is None:
                    continue
                if not isinstance(value, (str, AddedToken)):
                    raise TypeError(
                        f"Special token {key} has to be either str or AddedToken but got: {type(value)}"
                    )
                self._special_tokens_map[key] = value
            elif key == "extra_special_tokens":
                value = kwargs.pop(key)
                if value is None:
                    continue
                if isinstance(value, dict):
                    self._set_model_specific_special_tokens(value)
                elif isinstance(value, (list, tuple)):
                    self._extra_special_tokens = list(value)
                else:
                    raise TypeError(
                        "extra_special_tokens must be a list/tuple of tokens or a dict of named tokens"
                    )
            elif key.endswith("_token") and isinstance(kwargs[key], (str, AddedToken)):
                auto_named[key] = kwargs.pop(key)

        model_max_length = kwargs.pop("model_max_length", kwargs.pop("max_len", None))
        self.model_max_length = model_max_length if model_max_length is not None else VERY_LARGE_INTEGER
        self.padding_side = kwargs.pop("padding_side", self.padding_side)
        if self.padding_side not in ("right", "left"):
            raise ValueError(
                f"Padding side should be selected between 'right' and 'left', current value: {self.padding_side}"
            )
        self.truncation_side = kwargs.pop("truncation_side", self.truncation_side)
        if self.truncation_side not in ("right", "left"):
            raise ValueError(
                f"Truncation side should be selected between 'right' and 'left', current value: {self.truncation_side}"
            )
        self.model_input_names = list(kwargs.pop("model_input_names", self.model_input_names))
        self.clean_up_tokenization_spaces = kwargs.pop("clean_up_tokenization_spaces", False)
        self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output = kwargs.pop(
            "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False
        )
        self.split_special_tokens = kwargs.pop("split_special_tokens", False)
        self.chat_template = kwargs.pop("chat_template", None)
        if isinstance(self.chat_template, (list, tuple)):
            # tokenizer_config.json stores several templates as [{"name": ..., "template": ...}]
            self.chat_template = {t["name"]: t["template"] for t in self.chat_template}
        self.response_template = kwargs.pop("response_template", None)
        kwargs.pop("response_schema", None)
        self.chat_control_tokens = kwargs.pop("chat_control_tokens", None)
        named = {**auto_named, **named_extra}
        if named:
            self._set_model_specific_special_tokens(named)
        self.deprecation_warnings: dict[str, bool] = {}
        self.backend = kwargs.pop("backend", None)
        self.files_loaded = kwargs.pop("files_loaded", [])

    # -- special tokens ------------------------------------------------------------------------------

    def _set_model_specific_special_tokens(self, special_tokens: dict[str, str | AddedToken]) -> None:
        # Named tokens beyond the standard seven (e.g. `image_token`); the list is per instance.
        self.SPECIAL_TOKENS_ATTRIBUTES = self.SPECIAL_TOKENS_ATTRIBUTES + [
            k for k in special_tokens if k not in self.SPECIAL_TOKENS_ATTRIBUTES
        ]
        for key, value in special_tokens.items():
            if not isinstance(value, (str, AddedToken)):
                raise TypeError(
                    f"Special token {key} has to be either str or AddedToken but got: {type(value)}"
                )
            self._special_tokens_map[key] = value

    def __setattr__(self, key: str, value: Any) -> None:
        base = key.removesuffix("_ids").removesuffix("_id") if key.endswith(("_id", "_ids")) else key
        specials = self.__dict__.get("SPECIAL_TOKENS_ATTRIBUTES", type(self).SPECIAL_TOKENS_ATTRIBUTES)
        if base in specials:
            if key != base and value is not None:
                value = self.convert_ids_to_tokens(value)
            if value is not None and not isinstance(value, (str, AddedToken)):
                raise ValueError(f"Cannot set a non-string value as the {base}")
            self._special_tokens_map[base] = value
            return
        if base in ("extra_special_tokens", "additional_special_tokens"):
            if value is not None and not isinstance(value, (list, tuple)):
                raise ValueError(f"extra_special_tokens must be a list or tuple, got {type(value)}")
            if key != base and value is not None:
                value = [self.convert_ids_to_tokens(v) for v in value]
            self._extra_special_tokens = [] if value is None else list(value)
            return
        super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails: named special tokens and their ids live in a map.
        if key.startswith("__"):
            raise AttributeError(key)
        base = key.removesuffix("_ids").removesuffix("_id") if key.endswith(("_id", "_ids")) else key
        specials = self.__dict__.get("SPECIAL_TOKENS_ATTRIBUTES", type(self).SPECIAL_TOKENS_ATTRIBUTES)
        if base in specials:
            value = self.__dict__.get("_special_tokens_map", {}).get(base)
            if value is None:
                return None
            return self.convert_tokens_to_ids(str(value)) if key != base else str(value)
        if base in ("extra_special_tokens", "additional_special_tokens"):
            tokens = [str(t) for t in self.__dict__.get("_extra_special_tokens", [])]
            return self.convert_tokens_to_ids(tokens) if key != base else tokens
        raise AttributeError(f"{self.__class__.__name__} has no attribute {key}")

    @property
    def pad_token_type_id(self) -> int:
        """Token type id used for padding positions."""
        return self._pad_token_type_id

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set, as strings (`{"pad_token": "[PAD]", ...}`)."""
        return {
            attr: str(self._special_tokens_map[attr])
            for attr in self.SPECIAL_TOKENS_ATTRIBUTES
            if self._special_tokens_map.get(attr) is not None
        }

    @property
    def all_special_tokens(self) -> list[str]:
        """Named and extra special tokens, deduplicated, in declaration order."""
        seen: dict[str, None] = {}
        for attr in self.SPECIAL_TOKENS_ATTRIBUTES:
            value = self._special_tokens_map.get(attr)
            if value is not None:
                seen.setdefault(str(value))
        for token in self._extra_special_tokens:
            seen.setdefault(str(token))
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of `all_special_tokens`."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_special_tokens(
        self,
        special_tokens_dict: Mapping[str, str | AddedToken | Sequence[str | AddedToken]],
        replace_extra_special_tokens: bool = True,
    ) -> int:
        """Set named special tokens (and `extra_special_tokens`) and add the missing ones to the vocabulary.

        Args:
            special_tokens_dict: Keys among `SPECIAL_TOKENS_ATTRIBUTES` and `"extra_special_tokens"`
                (`"additional_special_tokens"` is accepted as its old name).
            replace_extra_special_tokens: Replace the current extra special tokens instead of extending them.

        Returns:
            The number of tokens added to the vocabulary.
        """
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get(
            "extra_special_tokens"
        ):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        allowed = set(self.SPECIAL_TOKENS_ATTRIBUTES) | {"extra_special_tokens"}
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise ValueError(f"Key {key} is not a valid special token. Valid keys are: {allowed}")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(
                    isinstance(t, (str, AddedToken)) for t in value
                ):
                    raise ValueError(
                        f"Tokens {value} for key {key} should all be str or AddedToken instances"
                    )
                new = [
                    AddedToken(t, rstrip=False, lstrip=False, normalized=False, special=True)
                    if isinstance(t, str)
                    else t
                    for t in value
                    if replace_extra_special_tokens or str(t) not in self.extra_special_tokens
                ]
                if replace_extra_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"Token {value} for key {key} should be a str or an AddedToken instance")
                if isinstance(value, str):
                    value = AddedToken(value, rstrip=False, lstrip=False, normalized=False, special=True)
                setattr(self, key, value)
                to_add.append(value)
        return self.add_tokens(to_add, special_tokens=True)

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens to the vocabulary (those already present keep their id).

        Args:
            new_tokens: A token or a list of tokens (`str` or `tokenizers.AddedToken`).
            special_tokens: Add them as special tokens (never split, not normalized, skippable in decode).

        Returns:
            The number of tokens added to the vocabulary.
        """
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        return self._add_tokens(list(new_tokens), special_tokens=special_tokens)

    def _add_tokens(self, new_tokens: list[str | AddedToken], special_tokens: bool = False) -> int:
        raise NotImplementedError

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for special tokens, 0 for others, over ids that already contain the special tokens."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "You should not supply a second sequence if the provided sequence of ids is already formatted "
                    "with special tokens for the model."
                )
            special = set(self.all_special_ids)
            return [1 if int(t) in special else 0 for t in token_ids_0]
        raise NotImplementedError(
            f"{self.__class__.__name__} does not implement get_special_tokens_mask for non-formatted sequences"
        )

    # -- argument resolution -------------------------------------------------------------------------

    def _get_padding_truncation_strategies(
        self,
        padding: bool | str | PaddingStrategy = False,
        truncation: bool | str | TruncationStrategy | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        verbose: bool = True,
        **kwargs: Any,
    ) -> tuple[PaddingStrategy, TruncationStrategy, int | None, dict[str, Any]]:
        # A bare max_length means "truncate to it", as it always has in transformers.
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"

        if padding is False:
            padding_strategy = PaddingStrategy.DO_NOT_PAD
        elif padding is True:
            if verbose and max_length is not None and truncation in (None, False, "do_not_truncate"):
                warnings.warn(
                    "`max_length` is ignored when `padding`=`True` and there is no truncation strategy. "
                    "To pad to max length, use `padding='max_length'`."
                )
            padding_strategy = PaddingStrategy.LONGEST
        else:
            padding_strategy = PaddingStrategy(padding)

        if truncation is False or truncation is None:
            truncation_strategy = TruncationStrategy.DO_NOT_TRUNCATE
        elif truncation is True:
            truncation_strategy = TruncationStrategy.LONGEST_FIRST
        else:
            truncation_strategy = TruncationStrategy(truncation)

        if max_length is None:
            if padding_strategy == PaddingStrategy.MAX_LENGTH:
                if self.model_max_length > LARGE_INTEGER:
                    padding_strategy = PaddingStrategy.DO_NOT_PAD
                else:
                    max_length = self.model_max_length
            if truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE:
                if self.model_max_length > LARGE_INTEGER:
                    truncation_strategy = TruncationStrategy.DO_NOT_TRUNCATE
                else:
                    max_length = self.model_max_length

        if padding_strategy != PaddingStrategy.DO_NOT_PAD and (
            self.pad_token is None or self.pad_token_id < 0
        ):
            raise ValueError(
                "Asking to pad but the tokenizer does not have a padding token. "
                "Please select a token to use as `pad_token` `(tokenizer.pad_token = tokenizer.eos_token e.g.)` "
                "or add a new pad token via `tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
            )
        if (
            truncation_strategy != TruncationStrategy.DO_NOT_TRUNCATE
            and padding_strategy != PaddingStrategy.DO_NOT_PAD
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise ValueError(
                "Truncation and padding are both activated but "
                f"truncation length ({max_length}) is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})."
            )
        return padding_strategy, truncation_strategy, max_length, kwargs

    # -- encoding entry points -----------------------------------------------------------------------

    def __call__(
        self,
        text: Any = None,
        text_pair: Any = None,
        text_target: Any = None,
        text_pair_target: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str | PaddingStrategy = False,
        truncation: bool | str | TruncationStrategy | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | TensorType | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        tokenizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenize one text, a pair, or a batch of texts or pairs, and prepare them for the model.

        Args:
            text: A string, a list of strings (a batch, or one pre-tokenized text when
                `is_split_into_words=True`), or a list of lists of words.
            text_pair: The second sequence(s) of pairs, shaped like `text`.
            text_target: Target text(s); returned alone, or as `labels` next to `text`'s encoding.
            text_pair_target: Second sequence(s) of the targets.
            add_special_tokens: Add the model's special tokens (`[CLS]`, `<s>`, ...).
            padding: `True`/`"longest"`, `"max_length"`, or `False`/`"do_not_pad"`.
            truncation: `True`/`"longest_first"`, `"only_first"`, `"only_second"`, or `False`/`"do_not_truncate"`.
            max_length: Length for truncation and `"max_length"` padding (default: `model_max_length`).
            stride: Overlap between overflowing windows when `return_overflowing_tokens=True`.
            is_split_into_words: The inputs are lists of words.
            pad_to_multiple_of: Round the padded length up to a multiple of this.
            padding_side: `"right"` or `"left"` (default: the tokenizer's `padding_side`).
            return_tensors: `"pt"`, `"np"`, or `None` for Python lists.
            return_token_type_ids: Return `token_type_ids` (default: when in `model_input_names`).
            return_attention_mask: Return `attention_mask` (default: when in `model_input_names`).
            return_overflowing_tokens: Return the truncated-away windows as extra rows, with
                `overflow_to_sample_mapping`.
            return_special_tokens_mask: Return `special_tokens_mask`.
            return_offsets_mapping: Return `(start, end)` character offsets of each token.
            return_length: Return the length of each row.
            verbose: Emit warnings.
            tokenizer_kwargs: More arguments, merged before `**kwargs`.

        Returns:
            A `BatchEncoding`.
        """
        all_kwargs: dict[str, Any] = {
            "add_special_tokens": add_special_tokens,
            "padding": padding,
            "truncation": truncation,
            "max_length": max_length,
            "stride": stride,
            "is_split_into_words": is_split_into_words,
            "pad_to_multiple_of": pad_to_multiple_of,
            "padding_side": padding_side,
            "return_tensors": return_tensors,
            "return_token_type_ids": return_token_type_ids,
            "return_attention_mask": return_attention_mask,
            "return_overflowing_tokens": return_overflowing_tokens,
            "return_special_tokens_mask": return_special_tokens_mask,
            "return_offsets_mapping": return_offsets_mapping,
            "return_length": return_length,
            "split_special_tokens": kwargs.pop("split_special_tokens", self.split_special_tokens),
            "verbose": verbose,
        }
        max_target_length = kwargs.pop("max_target_length", None)
        if tokenizer_kwargs is not None:
            all_kwargs.update(tokenizer_kwargs)
        all_kwargs.update(kwargs)
        if text is None and text_target is None:
            raise ValueError("You need to specify either `text` or `text_target`.")
        padding_strategy, truncation_strategy, max_length, _ = self._get_padding_truncation_strategies(
            padding=all_kwargs.pop("padding", False),
            truncation=all_kwargs.pop("truncation", None),
            max_length=all_kwargs.pop("max_length", None),
            pad_to_multiple_of=all_kwargs.get("pad_to_multiple_of"),
            verbose=all_kwargs.get("verbose", True),
        )
        encodings = targets = None
        if text is not None:
            encodings = self._encode_plus(
                text=text,
                text_pair=text_pair,
                padding_strategy=padding_strategy,
                truncation_strategy=truncation_strategy,
                max_length=max_length,
                **all_kwargs,
            )
        if text_target is not None:
            targets = self._encode_plus(
                text=text_target,
                text_pair=text_pair_target,
                padding_strategy=padding_strategy,
                truncation_strategy=truncation_strategy,
                max_length=max_target_length if max_target_length is not None else max_length,
                **all_kwargs,
            )
        if encodings is None:
            return targets
        if targets is not None:
            encodings["labels"] = targets["input_ids"]
        return encodings

    def encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        """Same as calling the tokenizer on one text (kept for code written against transformers 4)."""
        return self(text, text_pair, **kwargs)

    def batch_encode_plus(self, batch_text_or_text_pairs: Sequence[Any], **kwargs: Any) -> BatchEncoding:
        """Same as calling the tokenizer on a batch of texts or `(text, pair)` tuples (transformers 4 name)."""
        batch = list(batch_text_or_text_pairs)
        split = kwargs.get("is_split_into_words", False)
        if batch and isinstance(batch[0], tuple) and (not split or isinstance(batch[0][0], (list, tuple))):
            return self([a for a, _ in batch], [b for _, b in batch], **kwargs)
        return self(batch, **kwargs)

    def encode(
        self,
        text: Any,
        text_pair: Any = None,
        add_special_tokens: bool = True,
        padding: bool | str | PaddingStrategy = False,
        truncation: bool | str | TruncationStrategy | None = None,
        max_length: int | None = None,
        stride: int = 0,
        padding_side: str | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs: Any,
    ) -> Any:
        """Tokenize and return only the `input_ids` (a list, or a tensor with `return_tensors`)."""
        padding_strategy, truncation_strategy, max_length, extra = self._get_padding_truncation_strategies(
            padding=padding, truncation=truncation, max_length=max_length, **kwargs
        )
        kwargs.update(extra)
        return self._encode_plus(
            text,
            text_pair=text_pair,
            add_special_tokens=add_special_tokens,
            padding_strategy=padding_strategy,
            truncation_strategy=truncation_strategy,
            max_length=max_length,
            stride=stride,
            padding_side=padding_side,
            return_tensors=return_tensors,
            **kwargs,
        )["input_ids"]

    def _encode_plus(self, text: Any, text_pair: Any = None, **kwargs: Any) -> BatchEncoding:
        raise NotImplementedError

    @property
    def max_len_single_sentence(self) -> int:
        """Longest single sequence the model accepts, special tokens excluded."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        """Longest pair of sequences the model accepts, special tokens excluded."""
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        raise NotImplementedError

    def _eventual_warn_about_too_long_sequence(
        self, ids: Sized, max_length: int | None, verbose: bool
    ) -> None:
        if max_length is None and len(ids) > self.model_max_length and verbose and self.model_max_length != 0:
            if not self.deprecation_warnings.get("sequence-too-long", False):
                logger.warning(
                    "Token indices sequence length is longer than the specified maximum sequence length "
                    f"for this model ({len(ids)} > {self.model_max_length}). Running this sequence through the model "
                    "will result in indexing errors"
                )
            self.deprecation_warnings["sequence-too-long"] = True

    # -- padding of already encoded inputs -----------------------------------------------------------

    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str | PaddingStrategy = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | TensorType | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad one encoded input or a batch of them (a dict of lists, or a list of dicts, e.g. in a collator).

        Tensors and arrays are accepted; the output keeps their kind unless `return_tensors` says otherwise.

        Args:
            encoded_inputs: A `BatchEncoding`/dict (one example or a batch), or a list of them.
            padding: `True`/`"longest"`, `"max_length"`, or `False`/`"do_not_pad"`.
            max_length: Length for `"max_length"` padding.
            pad_to_multiple_of: Round the padded length up to a multiple of this.
            padding_side: `"right"` or `"left"` (default: the tokenizer's).
            return_attention_mask: Add/pad the attention mask (default: when in `model_input_names`).
            return_tensors: `"pt"`, `"np"` or `None`.
            verbose: Emit warnings.
        """
        if (
            isinstance(encoded_inputs, (list, tuple))
            and encoded_inputs
            and isinstance(encoded_inputs[0], Mapping)
        ):
            encoded_inputs = {key: [ex[key] for ex in encoded_inputs] for key in encoded_inputs[0]}
        main = self.model_input_names[0]
        if main not in encoded_inputs:
            raise ValueError(
                "You should supply an encoding or a list of encodings to this method "
                f"that includes {main}, but you provided {list(encoded_inputs.keys())}"
            )
        preserved_mask = None
        mask = encoded_inputs.get("attention_mask")
        if isinstance(mask, list) and mask and getattr(mask[0], "ndim", 0) > 1:
            preserved_mask = encoded_inputs.pop("attention_mask")  # 4D masks are stacked, not padded
        required = encoded_inputs[main]
        if required is None or (isinstance(required, Sized) and len(required) == 0):
            if return_attention_mask:
                encoded_inputs["attention_mask"] = []
            return encoded_inputs

        first = required[0]
        if isinstance(first, (list, tuple)):
            first = next((row[0] for row in required if len(row) != 0), first)
        if not isinstance(first, (int, list, tuple)):
            if is_torch_tensor(first):
                return_tensors = "pt" if return_tensors is None else return_tensors
            elif isinstance(first, (np.ndarray, np.generic)):
                return_tensors = "np" if return_tensors is None else return_tensors
            else:
                raise ValueError(
                    f"type of {first} unknown: {type(first)}. Should be one of a python, numpy, or pytorch object."
                )
            encoded_inputs = {key: to_py_obj(value) for key, value in encoded_inputs.items()}

        padding_strategy, _, max_length, _ = self._get_padding_truncation_strategies(
            padding=padding, max_length=max_length, verbose=verbose
        )
        required = encoded_inputs[main]
        if required and not isinstance(required[0], (list, tuple)):
            padded = self._pad(
                dict(encoded_inputs),
                max_length=max_length,
                padding_strategy=padding_strategy,
                pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side,
                return_attention_mask=return_attention_mask,
            )
            return BatchEncoding(padded, tensor_type=return_tensors)

        batch_size = len(required)
        if any(len(v) != batch_size for v in encoded_inputs.values()):
            raise ValueError("Some items in the output dictionary have a different batch size than others.")
        if padding_strategy == PaddingStrategy.LONGEST:
            max_length = max(len(row) for row in required)
            padding_strategy = PaddingStrategy.MAX_LENGTH
        outputs: dict[str, list[Any]] = {}
        for i in range(batch_size):
            row = self._pad(
                {k: v[i] for k, v in encoded_inputs.items()},
                max_length=max_length,
                padding_strategy=padding_strategy,
                pad_to_multiple_of=pad_to_multiple_of,
                padding_side=padding_side,
                return_attention_mask=return_attention_mask,
            )
            for key, value in row.items():
                outputs.setdefault(key, []).append(value)
        if preserved_mask is not None:
            sample = preserved_mask[0]
            if is_torch_tensor(sample):
                import torch

                outputs["attention_mask"] = torch.stack(preserved_mask)
            else:
                outputs["attention_mask"] = np.stack(preserved_mask)
        return BatchEncoding(outputs, tensor_type=return_tensors)

    def _pad(
        self,
        encoded_inputs: dict[str, Any],
        max_length: int | None = None,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
    ) -> dict[str, Any]:
        # Pad one example (a dict of flat lists).
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        main = self.model_input_names[0]
        required = encoded_inputs[main]
        if padding_strategy == PaddingStrategy.LONGEST:
            max_length = len(required)
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of != 0:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in encoded_inputs:
            encoded_inputs["attention_mask"] = [1] * len(required)
        if padding_strategy == PaddingStrategy.DO_NOT_PAD or len(required) == max_length:
            return encoded_inputs
        difference = max_length - len(required)
        side = padding_side if padding_side is not None else self.padding_side
        if side not in ("right", "left"):
            raise ValueError(f"Invalid padding strategy:{side}")
        fills = {main: self.pad_token_id, "token_type_ids": self.pad_token_type_id, "special_tokens_mask": 1}
        if return_attention_mask:
            fills["attention_mask"] = 0
        for key, fill in fills.items():
            if key in encoded_inputs:
                values = list(encoded_inputs[key])
                pad = [fill] * difference
                encoded_inputs[key] = values + pad if side == "right" else pad + values
        return encoded_inputs

    # -- decoding ------------------------------------------------------------------------------------

    def decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str | list[str]:
        """Turn ids back into text; a batch (list of lists, 2D tensor) gives a list of strings.

        Args:
            token_ids: An id, a list of ids, a batch of them, or a tensor/array.
            skip_special_tokens: Drop special tokens from the text.
            clean_up_tokenization_spaces: Remove spaces before punctuation (default: the tokenizer's setting).
        """
        token_ids = to_py_obj(token_ids)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            clean = kwargs.pop("clean_up_tokenization_spaces", None)
            return [
                self._decode(
                    ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=clean, **kwargs
                )
                for ids in token_ids
            ]
        return self._decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Decode a batch of id sequences into a list of strings."""
        sequences = to_py_obj(sequences)
        if len(sequences) == 0:
            return []
        result = self.decode(
            sequences,
            skip_special_tokens=skip_special_tokens,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            **kwargs,
        )
        return [result] if isinstance(result, str) else result

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        raise NotImplementedError

    def clean_up_tokenization(self, text: str) -> str:
        """Remove the spaces a WordPiece decode leaves before punctuation and contractions."""
        for before, after in (
            (" .", "."),
            (" ?", "?"),
            (" !", "!"),
            (" ,", ","),
            (" ' ", "'"),
            (" n't", "n't"),
            (" 'm", "'m"),
            (" 's", "'s"),
            (" 've", "'ve"),
            (" 're", "'re"),
        ):
            text = text.replace(before, after)
        return text

    # -- chat templates ------------------------------------------------------------------------------

    def get_chat_template(self, chat_template: str | None = None, tools: list[dict] | None = None) -> str:
        """The template `apply_chat_template` would use: by name, passed in, or the tokenizer's own."""
        if isinstance(self.chat_template, dict):
            templates = self.chat_template
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError(
                    "This model has multiple chat templates with no default specified! Please either pass a chat "
                    "template or the name of the template you wish to use to the `chat_template` argument. Available "
                    f"template names are {sorted(templates.keys())}."
                )
        elif chat_template is None:
            if self.chat_template is None:
                raise ValueError(
                    "Cannot use chat template functions because tokenizer.chat_template is not set and no template "
                    "argument was passed! For information about writing templates and setting the "
                    "tokenizer.chat_template attribute, please see the documentation at "
                    "https://huggingface.co/docs/transformers/main/en/chat_templating"
                )
            return self.chat_template
        return chat_template

    def apply_chat_template(
        self,
        conversation: Any,
        tools: list[dict | Any] | None = None,
        documents: list[dict[str, str]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool | str = False,
        tokenize: bool = True,
        padding: bool | str | PaddingStrategy = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | TensorType | None = None,
        return_dict: bool = True,
        return_assistant_tokens_mask: bool = False,
        tokenizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Render a conversation (or a batch of them) with the Jinja chat template, and tokenize it.

        The template runs in jinja2's immutable sandbox, with `raise_exception`, `strftime_now` and a
        `tojson` that does not escape HTML. Templates mark assistant text with `{% generation %}` for
        `return_assistant_tokens_mask`.

        Args:
            conversation: A list of `{"role", "content", ...}` messages, or a list of such lists.
            tools: JSON schemas (dicts) or type-hinted, documented Python functions.
            documents: Dicts (`"title"`, `"text"`) for retrieval-augmented templates.
            chat_template: A template, or the name of one of the tokenizer's templates.
            add_generation_prompt: Append the header that starts an assistant turn.
            continue_final_message: Leave the final message open (True for `"content"`, or the field name).
            tokenize: Return ids instead of the rendered string.
            padding, truncation, max_length, return_tensors: As for `__call__`.
            return_dict: Return a `BatchEncoding` instead of bare ids.
            return_assistant_tokens_mask: Add `assistant_masks` (1 on tokens inside `{% generation %}`).
            tokenizer_kwargs: More arguments for the tokenizer call.
            **kwargs: Extra variables for the template.
        """
        from .chat_template import render_chat_template

        if kwargs.pop("sanitize_control_tokens", False):
            raise NotImplementedError("`sanitize_control_tokens=True` is not supported by pretrained.")
        if not tokenize:
            return_dict = False
        if return_assistant_tokens_mask and not (return_dict and tokenize):
            raise ValueError(
                "`return_assistant_tokens_mask=True` requires `return_dict=True` and `tokenize=True`"
            )
        template = self.get_chat_template(chat_template, tools)
        if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
            raise ValueError(
                "Cannot apply chat template to an empty conversation. Provide at least one message."
            )
        batched = isinstance(conversation, (list, tuple)) and (
            isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")
        )
        conversations = list(conversation) if batched else [conversation]
        if continue_final_message:
            if add_generation_prompt:
                raise ValueError(
                    "continue_final_message and add_generation_prompt are not compatible. Use continue_final_message "
                    "when you want the model to continue the final message, and add_generation_prompt when you want "
                    "to add a header that will prompt it to start a new assistant message instead."
                )
            if return_assistant_tokens_mask:
                raise ValueError(
                    "continue_final_message is not compatible with return_assistant_tokens_mask."
                )
        rendered, generation_spans = render_chat_template(
            conversations,
            template,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            return_assistant_tokens_mask=return_assistant_tokens_mask,
            template_kwargs={**self.special_tokens_map, **kwargs},
        )
        if not batched:
            rendered = rendered[0]
        if not tokenize:
            return rendered
        out = self(
            rendered,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            add_special_tokens=False,
            return_tensors=return_tensors,
            **(tokenizer_kwargs or {}),
        )
        if not return_dict:
            return out["input_ids"]
        if return_assistant_tokens_mask:
            masks = []
            for i, spans in enumerate(generation_spans):
                offsets = out.encodings[i].offsets
                mask = [0] * len(offsets)
                # Spans and offsets are both sorted: one pass marks every token overlapping a span.
                span = 0
                for t, (start, end) in enumerate(offsets):
                    while span < len(spans) and start >= spans[span][1]:
                        span += 1
                    if span == len(spans):
                        break
                    if end > spans[span][0]:
                        mask[t] = 1
                masks.append(mask)
            out["assistant_masks"] = masks if batched or return_tensors else masks[0]
            if return_tensors:
                out.convert_to_tensors(tensor_type=return_tensors)
        return out

"""`PreTrainedTokenizerBase`: the tokenizer API that does not depend on how text is split into tokens.

Here: the padding/truncation arguments, the encoding entry points (`__call__`, `encode`, ...) and
decoding. Mixins, one module each, bring the rest: `special_tokens.py` (named special tokens, adding
tokens), `padding.py` (`pad`) and `chat_template.py` (`apply_chat_template`). `fast.py` plugs in
the Rust `tokenizers` backend.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator, Sequence, Sized
from typing import Any

from .batch_encoding import (
    BatchEncoding,
    PaddingStrategy,
    TensorType,
    TruncationStrategy,
    is_torch_tensor,
    to_py_obj,
)
from .chat_template import ChatTemplateMixin
from .padding import PaddingMixin
from .special_tokens import SpecialTokensMixin

__all__ = [
    "LARGE_INTEGER",
    "VERY_LARGE_INTEGER",
    "BatchEncoding",
    "PaddingStrategy",
    "PreTokenizedInput",
    "PreTrainedTokenizerBase",
    "TensorType",
    "TextInput",
    "TruncationStrategy",
    "is_torch_tensor",
    "to_py_obj",
]

logger = logging.getLogger(__name__)

VERY_LARGE_INTEGER = int(1e30)  # model_max_length of a model with no length limit
LARGE_INTEGER = int(1e20)  # a model_max_length above this means "no limit"

TextInput = str
PreTokenizedInput = list[str]


class PreTrainedTokenizerBase(SpecialTokensMixin, PaddingMixin, ChatTemplateMixin):
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
        named_special_tokens = self._init_special_tokens(kwargs)

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
        if named_special_tokens:
            self._set_model_specific_special_tokens(named_special_tokens)
        self.deprecation_warnings: dict[str, bool] = {}
        self.backend = kwargs.pop("backend", None)
        self.files_loaded = kwargs.pop("files_loaded", [])

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
        all_kwargs.update(padding_strategy=padding_strategy, truncation_strategy=truncation_strategy)
        encodings = None
        if text is not None:
            # Inside as_target_tokenizer() the plain text is a target: the mode stays as the block set it.
            if not self._in_target_context_manager:
                self._switch_to_input_mode()
            encodings = self._encode_plus(text, text_pair, max_length=max_length, **all_kwargs)
        if text_target is None:
            return encodings
        if max_target_length is None:
            max_target_length = max_length
        self._switch_to_target_mode()
        try:
            targets = self._encode_plus(text_target, text_pair_target, max_length=max_target_length, **all_kwargs)
        finally:
            self._switch_to_input_mode()
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    # -- source / target modes (tokenizers whose targets differ: mBART language codes, Marian's two models)

    _in_target_context_manager: bool = False

    def _switch_to_input_mode(self) -> None:
        """Make the tokenizer encode source texts (the default; a no-op for most tokenizers)."""

    def _switch_to_target_mode(self) -> None:
        """Make the tokenizer encode target texts (the labels of a sequence-to-sequence model)."""

    @contextlib.contextmanager
    def as_target_tokenizer(self) -> Iterator[None]:
        """Inside the block, texts are encoded as targets (the transformers 4 spelling of ``text_target=``)."""
        warnings.warn(
            "`as_target_tokenizer` is deprecated: tokenize targets with the `text_target` argument of the "
            "tokenizer's call instead.", FutureWarning, stacklevel=3)
        self._switch_to_target_mode()
        self._in_target_context_manager = True
        try:
            yield
        finally:
            self._in_target_context_manager = False
            self._switch_to_input_mode()

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

"""`BatchEncoding`: the dict a tokenizer call returns, plus the token/word/char alignment helpers.

torch is imported only when `"pt"` tensors are asked for, so tokenizing stays torch-free otherwise.
"""

from __future__ import annotations

import sys
from collections import UserDict
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .padding import RowPadding


class _ExplicitEnum(str, Enum):  # noqa: UP042 (str() must stay the member name, as in transformers)
    """A string enum whose bad values raise an error listing the accepted ones."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        raise ValueError(
            f"{value} is not a valid {cls.__name__}, please select one of {list(cls._value2member_map_.keys())}"
        )


class PaddingStrategy(_ExplicitEnum):
    """Values accepted by the `padding` argument."""

    LONGEST = "longest"
    MAX_LENGTH = "max_length"
    DO_NOT_PAD = "do_not_pad"


class TruncationStrategy(_ExplicitEnum):
    """Values accepted by the `truncation` argument."""

    ONLY_FIRST = "only_first"
    ONLY_SECOND = "only_second"
    LONGEST_FIRST = "longest_first"
    DO_NOT_TRUNCATE = "do_not_truncate"


class TensorType(_ExplicitEnum):
    """Values accepted by `return_tensors` (`"mlx"` is listed for error parity but not supported)."""

    PYTORCH = "pt"
    NUMPY = "np"
    MLX = "mlx"


class CharSpan(NamedTuple):
    """Character span `[start, end)` in the original string."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Token span `[start, end)` in an encoded sequence."""

    start: int
    end: int


def is_torch_tensor(obj: Any) -> bool:
    """True for a `torch.Tensor`, without importing torch when nobody else has."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def to_py_obj(obj: Any) -> Any:
    """Convert tensors, arrays and nested sequences of them to plain Python lists and numbers."""
    if isinstance(obj, (int, float, str)) or obj is None:
        return obj
    if isinstance(obj, (dict, UserDict)):
        return {k: to_py_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        if all(isinstance(x, (int, float, np.number)) for x in obj):
            return list(obj)
        return [to_py_obj(x) for x in obj]
    if isinstance(obj, (np.ndarray, np.number)) or is_torch_tensor(obj):
        return obj.tolist()
    return obj


def _is_empty(value: Any) -> bool:
    if len(value) == 0:
        return True
    if not isinstance(value[0], (list, tuple)):
        return False
    return all(_is_empty(v) for v in value)


def _as_numpy(value: Any, dtype: Any = None) -> np.ndarray:
    if (
        isinstance(value, (list, tuple))
        and value
        and isinstance(value[0], (list, tuple, np.ndarray))
        and len({len(v) for v in value}) > 1
        and dtype is None
    ):
        # Ragged rows become an object array of arrays, as transformers does.
        ragged = np.empty(len(value), dtype=object)
        for i, row in enumerate(value):
            ragged[i] = np.asarray(row)
        return ragged
    if _is_empty(value) and dtype is None:
        dtype = np.int64
    return np.asarray(value, dtype=dtype)


def _as_torch(value: Any) -> Any:
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
        return torch.from_numpy(np.array(value))
    dtype = torch.int64 if _is_empty(value) else None
    return torch.tensor(value, dtype=dtype)


class BatchEncoding(UserDict):
    """Output of a tokenizer call: a dict of model inputs plus, for each row, its `tokenizers.Encoding`.

    Values are reachable as items (`enc["input_ids"]`) and attributes (`enc.input_ids`); an integer index
    returns the row's `tokenizers.Encoding`. The alignment helpers (`word_ids`, `char_to_token`, ...)
    take a batch index first when the batch has more than one row.

    Args:
        data: The model inputs (`input_ids`, `attention_mask`, ...).
        encoding: The `tokenizers.Encoding` (or list of them, one per row) behind `data`.
        tensor_type: Convert the values to `"pt"` or `"np"` tensors.
        prepend_batch_axis: Add a batch axis when converting to tensors.
        n_sequences: Number of sequences per row (1 or 2), taken from the encodings when not given.
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        encoding: Any = None,
        tensor_type: str | TensorType | None = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
        *,
        _pending_pad: RowPadding | None = None,
    ):
        super().__init__(data)
        if encoding is not None and not isinstance(encoding, (list, tuple)):
            encoding = [encoding]
        self._encodings = list(encoding) if encoding is not None else None
        self._pending_pad = _pending_pad
        if n_sequences is None and self._encodings:
            n_sequences = self._encodings[0].n_sequences
        self._n_sequences = n_sequences
        self.convert_to_tensors(tensor_type=tensor_type, prepend_batch_axis=prepend_batch_axis)

    # -- dict behaviour ------------------------------------------------------------------------------

    def __getitem__(self, item: int | str | slice) -> Any:
        if isinstance(item, str):
            return self.data[item]
        if self._encodings is not None:
            return self.encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.data.items()}
        raise KeyError(
            "Invalid key. Only three types of key are available: "
            "(1) string, (2) integers for backend Encoding, and (3) slices for data subsetting."
        )

    def __getattr__(self, item: str) -> Any:
        if item.startswith("__") or item == "data":
            raise AttributeError(item)
        try:
            return self.data[item]
        except KeyError:
            raise AttributeError(item) from None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "encodings": self.encodings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.data = state.get("data", {})
        self._encodings = state.get("encodings")
        self._pending_pad = None
        self._n_sequences = self._encodings[0].n_sequences if self._encodings else None

    # -- encodings -----------------------------------------------------------------------------------

    @property
    def n_sequences(self) -> int | None:
        """Number of sequences per row: 1 (single texts), 2 (pairs) or `None` (unknown)."""
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        """Whether the Rust encodings are available (always the case for tokenizer outputs)."""
        return self._encodings is not None

    @property
    def encodings(self) -> list[Any] | None:
        """The `tokenizers.Encoding` of each row, padded like the returned arrays."""
        # The numpy fast path pads the arrays only; the encodings get the same padding on first access.
        if self._pending_pad is not None and self._encodings is not None:
            pad, self._pending_pad = self._pending_pad, None
            pad.apply(self._encodings)
        return self._encodings

    def _encoding(self, batch_index: int, what: str) -> Any:
        encodings = self.encodings
        if not encodings:
            raise ValueError(f"{what}() is not available when using Python based tokenizers")
        return encodings[batch_index]

    @staticmethod
    def _split(batch_or_index: int, index: int | None) -> tuple[int, int]:
        return (batch_or_index, index) if index is not None else (0, batch_or_index)

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The token strings of row `batch_index`."""
        return self._encoding(batch_index, "tokens").tokens

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of the row: 0 or 1 for the sequence it came from, `None` for special tokens."""
        return self._encoding(batch_index, "sequence_ids").sequence_ids

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of the row: the index of its word, `None` for special tokens."""
        return self._encoding(batch_index, "word_ids").word_ids

    def _token(self, batch_or_token_index: int, token_index: int | None, what: str) -> tuple[Any, int]:
        # The row's encoding and the token index in it; negative indices count from the end.
        batch_index, token_index = self._split(batch_or_token_index, token_index)
        encoding = self._encoding(batch_index, what)
        if token_index < 0:
            token_index += len(encoding)
        return encoding, token_index

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int:
        """Sequence (0 or 1) of a token; call with `(token)` or `(batch, token)`."""
        encoding, token_index = self._token(batch_or_token_index, token_index, "token_to_sequence")
        return encoding.token_to_sequence(token_index)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int:
        """Word index of a token; call with `(token)` or `(batch, token)`."""
        encoding, token_index = self._token(batch_or_token_index, token_index, "token_to_word")
        return encoding.token_to_word(token_index)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        """Token span of a word, or `None` when the word produced no token."""
        batch_index, word_index = self._split(batch_or_word_index, word_index)
        span = self._encoding(batch_index, "word_to_tokens").word_to_tokens(word_index, sequence_index)
        return TokenSpan(*span) if span is not None else None

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None) -> CharSpan | None:
        """Character span of a token in its original text, `None` for special tokens."""
        batch_index, token_index = self._split(batch_or_token_index, token_index)
        span = self._encoding(batch_index, "token_to_chars").token_to_chars(token_index)
        return CharSpan(*span) if span is not None else None

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        """Index of the token containing a character of the original text."""
        batch_index, char_index = self._split(batch_or_char_index, char_index)
        return self._encoding(batch_index, "char_to_token").char_to_token(char_index, sequence_index)

    def word_to_chars(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> CharSpan:
        """Character span of a word in its original text."""
        batch_index, word_index = self._split(batch_or_word_index, word_index)
        return CharSpan(
            *self._encoding(batch_index, "word_to_chars").word_to_chars(word_index, sequence_index)
        )

    def char_to_word(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int:
        """Index of the word containing a character of the original text."""
        batch_index, char_index = self._split(batch_or_char_index, char_index)
        return self._encoding(batch_index, "char_to_word").char_to_word(char_index, sequence_index)

    # -- tensors -------------------------------------------------------------------------------------

    def convert_to_tensors(
        self, tensor_type: str | TensorType | None = None, prepend_batch_axis: bool = False
    ) -> BatchEncoding:
        """Convert the values in place to `"pt"` or `"np"` tensors (no-op for `None`)."""
        if tensor_type is None:
            return self
        tensor_type = TensorType(tensor_type)
        if tensor_type == TensorType.PYTORCH:
            try:
                import torch
            except ImportError as error:
                raise ImportError(
                    "Unable to convert output to PyTorch tensors format, PyTorch is not installed."
                ) from error
            as_tensor, is_tensor = _as_torch, torch.is_tensor
        elif tensor_type == TensorType.NUMPY:
            as_tensor, is_tensor = _as_numpy, (lambda x: isinstance(x, np.ndarray))
        else:
            raise ImportError(
                "Unable to convert output to MLX tensors format, MLX is not supported by pretrained."
            )
        for key, value in self.items():
            try:
                if prepend_batch_axis:
                    value = [value]
                if not is_tensor(value):
                    self[key] = as_tensor(value)
            except Exception as error:
                if key == "overflowing_tokens":
                    raise ValueError(
                        "Unable to create tensor returning overflowing tokens of different lengths. "
                        "Please see if a fast version of this tokenizer is available to have this feature available."
                    ) from error
                raise ValueError(
                    "Unable to create tensor, you should probably activate truncation and/or padding with"
                    " 'padding=True' 'truncation=True' to have batched tensors with the same length. Perhaps your"
                    f" features (`{key}` in this case) have excessive nesting (inputs type `list` where type `int` is"
                    " expected)."
                ) from error
        return self

    def to(self, device: Any, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every tensor value to `device` (PyTorch only); returns `self`."""
        import torch

        if isinstance(device, (str, int, torch.device)):
            self.data = {
                k: v.to(device=device, non_blocking=non_blocking) if callable(getattr(v, "to", None)) else v
                for k, v in self.data.items()
            }
        else:
            raise TypeError(
                f"Cannot move a BatchEncoding to {device!r}: expected a device, a string or an int."
            )
        return self

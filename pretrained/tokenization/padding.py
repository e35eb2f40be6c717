"""Padding: of already encoded inputs (`PaddingMixin.pad`), and of Rust encodings into numpy arrays.

`pad` works on Python lists (tensors in, tensors out). The tokenizer call's tensor path pads with
numpy instead: rows are scattered into one preallocated array per output, without Python lists.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sized
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from .batch_encoding import BatchEncoding, PaddingStrategy, TensorType, is_torch_tensor, to_py_obj


class OutputFields(NamedTuple):
    """Which optional outputs a tokenizer call returns, besides `input_ids`."""

    token_type_ids: bool
    attention_mask: bool
    special_tokens_mask: bool
    offset_mapping: bool
    length: bool


class RowPadding(NamedTuple):
    """How rows are padded: to `length` tokens on the `direction` side, with these pad values."""

    length: int
    direction: str
    pad_id: int
    pad_type_id: int
    pad_token: str

    def apply(self, encodings: list[Any]) -> None:
        """Pad `tokenizers.Encoding`s in place (rows already longer are left as they are)."""
        for encoding in encodings:
            encoding.pad(
                self.length,
                direction=self.direction,
                pad_id=self.pad_id,
                pad_type_id=self.pad_type_id,
                pad_token=self.pad_token,
            )


def padded_length(lengths: np.ndarray, length: int | None, pad_to_multiple_of: int | None) -> int:
    """The length rows are padded to: `length` (the longest row when `None`), rounded up to a multiple."""
    if length is None:
        length = int(lengths.max()) if len(lengths) else 0
    if pad_to_multiple_of and length % pad_to_multiple_of:
        length += pad_to_multiple_of - length % pad_to_multiple_of
    return length


def pad_rows(
    rows: list[list[Any]], lengths: np.ndarray, mask: np.ndarray, fill: int, width: int = 0
) -> np.ndarray:
    """Scatter ragged rows into a `(batch, length[, width])` array; `mask` marks the non-padding slots."""
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


def padded_arrays(
    encodings: list[Any],
    ids: list[list[int]],
    lengths: np.ndarray,
    padding: RowPadding,
    fields: OutputFields,
    zero_type_ids: bool,
) -> dict[str, np.ndarray]:
    """The requested outputs of `encodings` as `(batch, padding.length)` int64 arrays.

    Args:
        encodings: The `tokenizers.Encoding` rows, none longer than `padding.length`.
        ids: Their ids, already fetched (the lengths come from them).
        lengths: `len(ids[i])` for each row.
        padding: Target length, side and pad values.
        fields: The outputs to build besides `input_ids`.
        zero_type_ids: Every real token has type id 0, so the type ids need not be fetched.
    """
    positions = np.arange(padding.length)
    if padding.direction == "right":
        mask = positions[None, :] < lengths[:, None]
    else:
        mask = positions[None, :] >= (padding.length - lengths)[:, None]
    data: dict[str, np.ndarray] = {"input_ids": pad_rows(ids, lengths, mask, padding.pad_id)}
    if fields.token_type_ids:
        if zero_type_ids:
            data["token_type_ids"] = np.where(mask, 0, padding.pad_type_id).astype(np.int64)
        else:
            type_ids = [e.type_ids for e in encodings]
            data["token_type_ids"] = pad_rows(type_ids, lengths, mask, padding.pad_type_id)
    if fields.attention_mask:
        data["attention_mask"] = mask.astype(np.int64)
    if fields.special_tokens_mask:
        data["special_tokens_mask"] = pad_rows([e.special_tokens_mask for e in encodings], lengths, mask, 1)
    if fields.offset_mapping:
        data["offset_mapping"] = pad_rows([e.offsets for e in encodings], lengths, mask, 0, width=2)
    if fields.length:
        data["length"] = np.full(len(encodings), padding.length, dtype=np.int64)
    return data


def _as_columns(encoded_inputs: Any) -> Any:
    # A list of examples (dicts) becomes one dict of lists, as collators pass them.
    if (
        isinstance(encoded_inputs, (list, tuple))
        and encoded_inputs
        and isinstance(encoded_inputs[0], Mapping)
    ):
        return {key: [example[key] for example in encoded_inputs] for key in encoded_inputs[0]}
    return encoded_inputs


def _tensor_kind(sample: Any) -> str:
    # The `return_tensors` value that gives back inputs of the kind `sample` is.
    if is_torch_tensor(sample):
        return "pt"
    if isinstance(sample, (np.ndarray, np.generic)):
        return "np"
    raise ValueError(
        f"type of {sample} unknown: {type(sample)}. Should be one of a python, numpy, or pytorch object."
    )


def _stack(masks: list[Any]) -> Any:
    if is_torch_tensor(masks[0]):
        import torch

        return torch.stack(masks)
    return np.stack(masks)


class PaddingMixin:
    """`pad` and `_pad` of `PreTrainedTokenizerBase`.

    The host class provides `model_input_names`, `padding_side`, the pad token attributes and
    `_get_padding_truncation_strategies`.
    """

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
        encoded_inputs = _as_columns(encoded_inputs)
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
            kind = _tensor_kind(first)
            return_tensors = kind if return_tensors is None else return_tensors
            encoded_inputs = {key: to_py_obj(value) for key, value in encoded_inputs.items()}

        padding_strategy, _, max_length, _ = self._get_padding_truncation_strategies(
            padding=padding, max_length=max_length, verbose=verbose
        )
        pad_one = functools.partial(
            self._pad,
            pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side,
            return_attention_mask=return_attention_mask,
        )
        required = encoded_inputs[main]
        if required and not isinstance(required[0], (list, tuple)):
            padded = pad_one(dict(encoded_inputs), max_length=max_length, padding_strategy=padding_strategy)
            return BatchEncoding(padded, tensor_type=return_tensors)

        batch_size = len(required)
        if any(len(v) != batch_size for v in encoded_inputs.values()):
            raise ValueError("Some items in the output dictionary have a different batch size than others.")
        if padding_strategy == PaddingStrategy.LONGEST:
            max_length = max(len(row) for row in required)
            padding_strategy = PaddingStrategy.MAX_LENGTH
        outputs: dict[str, list[Any]] = {}
        for i in range(batch_size):
            row = pad_one(
                {k: v[i] for k, v in encoded_inputs.items()},
                max_length=max_length,
                padding_strategy=padding_strategy,
            )
            for key, value in row.items():
                outputs.setdefault(key, []).append(value)
        if preserved_mask is not None:
            outputs["attention_mask"] = _stack(preserved_mask)
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


"""The steps of `PreTrainedTokenizerFast._encode_plus`, the encoding hot path.

A call goes: check and batch the inputs -> bring the Rust tokenizer's truncation and padding settings
in line with the call -> `encode_batch` (Rust truncates, splits off the overflowing windows and adds
special tokens) -> flatten the overflowing windows into rows -> collect the rows as lists, or pad them
into numpy arrays (`padding.py`) -> `BatchEncoding`, which makes the tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from .batch_encoding import TruncationStrategy
from .padding import OutputFields

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


def as_batch(text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list[Any], bool]:
    """The inputs as one list for `encode_batch` (pairs as tuples), and whether the call was batched.

    Raises:
        ValueError: The inputs are not text, or `text` and `text_pair` are batches of different sizes.
        TypeError: `text` is a batch but `text_pair` a single string.
    """
    if not _is_valid_text_input(text) or (text_pair is not None and not _is_valid_text_input(text_pair)):
        raise ValueError(_TEXT_INPUT_ERROR)
    if is_split_into_words:
        is_batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
    else:
        is_batched = isinstance(text, (list, tuple))
    if not is_batched:
        return ([(text, text_pair)] if text_pair else [text]), False
    if isinstance(text_pair, str):
        raise TypeError(
            "when tokenizing batches of text, `text_pair` must be a list or tuple with the same length as"
            " `text`."
        )
    if text_pair is None:
        return text, True
    if len(text) != len(text_pair):
        raise ValueError(
            f"batch length of `text`: {len(text)} does not match batch length of `text_pair`:"
            f" {len(text_pair)}."
        )
    return list(zip(text, text_pair)), True


def is_single_sequences(batch: list[Any], text_pair: Any, is_split_into_words: bool) -> bool:
    """Whether every item of the batch is one sequence (pairs can also come as `[first, second]` items)."""
    return text_pair is None and all(
        isinstance(x, str)
        or (is_split_into_words and isinstance(x, (list, tuple)) and (not x or isinstance(x[0], str)))
        for x in batch
    )


def single_type_ids_are_zero(state: dict[str, Any] | None) -> bool:
    """Whether a post-processor (its JSON state) gives every token of a single sequence type id 0."""
    if state is None:
        return True
    kind = state.get("type")
    if kind in ("BertProcessing", "RobertaProcessing", "ByteLevel"):
        return True
    if kind == "TemplateProcessing":
        return all(next(iter(piece.values()))["type_id"] == 0 for piece in state["single"])
    if kind == "Sequence":
        return all(single_type_ids_are_zero(p) for p in state["processors"])
    return False


# The Rust tokenizer keeps its truncation and padding settings between calls; they are only changed
# when a call needs different ones, since setting them is not free.


def sync_truncation(
    backend: Tokenizer, strategy: TruncationStrategy, max_length: int | None, stride: int, direction: str
) -> None:
    """Set the Rust tokenizer's truncation for a call (none for `DO_NOT_TRUNCATE`)."""
    current = backend.truncation
    if strategy == TruncationStrategy.DO_NOT_TRUNCATE:
        if current is not None:
            backend.no_truncation()
        return
    target = {"max_length": max_length, "stride": stride, "strategy": strategy.value, "direction": direction}
    if current is None or {k: current.get(k) for k in target} != target:
        backend.enable_truncation(**target)


def sync_padding(backend: Tokenizer, target: dict[str, Any] | None) -> None:
    """Set the Rust tokenizer's padding (`enable_padding` arguments) for a call, or disable it for `None`."""
    current = backend.padding
    if target is None:
        if current is not None:
            backend.no_padding()
    elif current != target:
        backend.enable_padding(**target)


def overflow_rows(encodings: list[Encoding]) -> tuple[list[Encoding], list[int]]:
    """Each text's encoding followed by its overflowing windows, and how many rows each text gave."""
    counts = []
    rows = []
    for encoding in encodings:
        group = [encoding, *encoding.overflowing]
        counts.append(len(group))
        rows.extend(group)
    return rows, counts


def overflow_to_sample_mapping(counts: list[int]) -> list[int]:
    """The index of the text each row came from."""
    return np.repeat(np.arange(len(counts)), counts).tolist()


def row_lists(rows: list[Encoding], fields: OutputFields) -> dict[str, list[Any]]:
    """The requested outputs of the rows as Python lists, as the rows are (padded or not)."""
    data: dict[str, list[Any]] = {"input_ids": [e.ids for e in rows]}
    if fields.token_type_ids:
        data["token_type_ids"] = [e.type_ids for e in rows]
    if fields.attention_mask:
        data["attention_mask"] = [e.attention_mask for e in rows]
    if fields.special_tokens_mask:
        data["special_tokens_mask"] = [e.special_tokens_mask for e in rows]
    if fields.offset_mapping:
        data["offset_mapping"] = [e.offsets for e in rows]
    if fields.length:
        data["length"] = [len(ids) for ids in data["input_ids"]]
    return data

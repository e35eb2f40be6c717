"""Data collators: turn a list of examples into a batch of tensors (transformers' classes and outputs).

Each collator takes `features`, a list of dicts (or of token id lists), and returns
a dict of `torch` tensors. Padding goes through `tokenizer.pad`, so the padding
side and pad id are the tokenizer's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

IGNORE_INDEX = -100


def default_data_collator(features: list[Any], return_tensors: str = "pt") -> dict[str, Any]:
    """Stack examples that already have equal shapes; `label`/`label_ids` become `labels`.

    Strings and None values are dropped. Integer labels become `torch.long`, others `torch.float`.
    """
    if return_tensors != "pt":
        raise ValueError(f"only return_tensors='pt' is supported, got {return_tensors!r}")
    if not isinstance(features[0], Mapping):
        features = [vars(f) for f in features]
    first = features[0]
    batch: dict[str, Any] = {}
    if first.get("label") is not None:
        label = first["label"].item() if isinstance(first["label"], torch.Tensor) else first["label"]
        dtype = torch.long if isinstance(label, (int, np.integer)) else torch.float
        batch["labels"] = torch.tensor([f["label"] for f in features], dtype=dtype)
    elif first.get("label_ids") is not None:
        if isinstance(first["label_ids"], torch.Tensor):
            batch["labels"] = torch.stack([f["label_ids"] for f in features])
        else:
            dtype = torch.long if isinstance(first["label_ids"][0], (int, np.integer)) else torch.float
            batch["labels"] = torch.tensor([f["label_ids"] for f in features], dtype=dtype)
    for k, v in first.items():
        if k in ("label", "label_ids") or v is None or isinstance(v, str):
            continue
        values = [f[k] for f in features]
        if isinstance(v, torch.Tensor):
            batch[k] = torch.stack(values)
        elif isinstance(v, np.ndarray):
            batch[k] = torch.from_numpy(np.stack(values))
        else:
            try:
                batch[k] = torch.tensor(values)
            except ValueError as e:
                raise ValueError(
                    f"default_data_collator cannot stack {k!r}: examples have different lengths; "
                    "use DataCollatorWithPadding"
                ) from e
    return batch


class DefaultDataCollator:
    """Class form of `default_data_collator`."""

    def __init__(self, return_tensors: str = "pt"):
        self.return_tensors = return_tensors

    def __call__(self, features: list[Any], return_tensors: str | None = None) -> dict[str, Any]:
        return default_data_collator(features, return_tensors or self.return_tensors)


def _pad(tokenizer: Any, features: list[dict], **kwargs: Any) -> dict[str, Any]:
    if tokenizer is None:
        raise ValueError("this collator needs a tokenizer to pad")
    batch = tokenizer.pad(features, return_tensors="pt", **kwargs)
    return dict(batch.items()) if hasattr(batch, "items") else batch


def _pad_inputs_split_labels(collator: Any, features: list[dict]) -> tuple[dict[str, Any], str, list[Any] | None]:
    """The features without their labels padded as :func:`_pad_as` does, the labels' key (``label`` or
    ``labels``), and the labels as given (``None`` without)."""
    label_name = "label" if "label" in features[0] else "labels"
    labels = [f[label_name] for f in features] if label_name in features[0] else None
    inputs = [{k: v for k, v in f.items() if k != label_name} for f in features]
    return _pad_as(collator, inputs), label_name, labels


def _pad_as(collator: Any, features: list[dict]) -> dict[str, Any]:
    """``features`` padded by ``collator.tokenizer`` with the collator's padding settings."""
    return _pad(
        collator.tokenizer,
        features,
        padding=collator.padding,
        max_length=collator.max_length,
        pad_to_multiple_of=collator.pad_to_multiple_of,
    )


def _padded_length(length: int, multiple: int | None) -> int:
    if multiple and length % multiple:
        length = (length // multiple + 1) * multiple
    return length


def _pad_labels(labels: list[Any], length: int, side: str, pad_id: int = IGNORE_INDEX) -> torch.Tensor:
    rows = []
    for label in labels:
        label = label.tolist() if hasattr(label, "tolist") else list(label)
        fill = [pad_id] * (length - len(label))
        rows.append(label + fill if side == "right" else fill + label)
    return torch.tensor(rows, dtype=torch.long)


@dataclass
class DataCollatorWithPadding:
    """Pad `input_ids`, `attention_mask`, ... to the longest example (or `max_length`) with the tokenizer.

    Args:
        tokenizer: Tokenizer whose `pad` does the padding.
        padding: `True`/"longest", "max_length" or `False`.
        max_length: Length for "max_length" padding.
        pad_to_multiple_of: Round the padded length up to a multiple of this.
    """

    tokenizer: Any
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = _pad_as(self, features)
        if "label" in batch:
            batch["labels"] = batch.pop("label")
        if "label_ids" in batch:
            batch["labels"] = batch.pop("label_ids")
        return batch


@dataclass
class DataCollatorForTokenClassification:
    """Pad the inputs with the tokenizer and the per-token labels with `label_pad_token_id` (-100)."""

    tokenizer: Any
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = IGNORE_INDEX
    return_tensors: str = "pt"

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch, label_name, labels = _pad_inputs_split_labels(self, features)
        if labels is None:
            return batch
        length = batch["input_ids"].shape[1]
        batch[label_name] = _pad_labels(labels, length, self.tokenizer.padding_side, self.label_pad_token_id)
        return batch


@dataclass
class DataCollatorForMultipleChoice:
    """Pad every choice of every example to one length, for a multiple-choice model.

    Each example holds, per input key, one sequence per choice (``input_ids: [[...], [...], ...]``) and one
    ``label`` (or ``labels``): the right choice. The batch has ``(batch, num_choices, length)`` tensors and
    ``labels`` of shape ``(batch,)``.

    Args:
        tokenizer: Tokenizer whose `pad` does the padding.
        padding: `True`/"longest", "max_length" or `False`.
        max_length: Length for "max_length" padding.
        pad_to_multiple_of: Round the padded length up to a multiple of this.
        return_tensors: Only "pt".
    """

    tokenizer: Any
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __call__(self, features: list[dict[str, Any]], return_tensors: str | None = None) -> dict[str, Any]:
        if (return_tensors or self.return_tensors) != "pt":
            raise ValueError(f"DataCollatorForMultipleChoice supports return_tensors='pt' only, got "
                             f"{return_tensors or self.return_tensors!r}")
        label_name = "label" if "label" in features[0] else "labels"
        num_choices = len(features[0]["input_ids"])
        for i, feature in enumerate(features):
            if len(feature["input_ids"]) != num_choices:
                raise ValueError(f"example {i} has {len(feature['input_ids'])} choices, example 0 has "
                                 f"{num_choices}: every example needs the same number of choices")
        # One row per choice, padded together like any batch, then folded back to (batch, choices, length).
        flat = [{k: v[c] for k, v in f.items() if k != label_name} for f in features for c in range(num_choices)]
        batch = {k: v.view(len(features), num_choices, -1) for k, v in _pad_as(self, flat).items()}
        if label_name in features[0]:
            batch["labels"] = torch.tensor([f[label_name] for f in features], dtype=torch.int64)
        return batch


def _collate_ids(examples: list[Any], tokenizer: Any, pad_to_multiple_of: int | None) -> torch.Tensor:
    examples = [e if isinstance(e, torch.Tensor) else torch.tensor(e, dtype=torch.long) for e in examples]
    length = max(e.size(0) for e in examples)
    same = all(e.size(0) == length for e in examples)
    if same and (pad_to_multiple_of is None or length % pad_to_multiple_of == 0):
        return torch.stack(examples)
    if tokenizer.pad_token_id is None:
        raise ValueError(f"padding needs a pad token, and {type(tokenizer).__name__} has none")
    length = _padded_length(length, pad_to_multiple_of)
    out = examples[0].new_full((len(examples), length), tokenizer.pad_token_id)
    for i, e in enumerate(examples):
        if tokenizer.padding_side == "right":
            out[i, : e.size(0)] = e
        else:
            out[i, length - e.size(0) :] = e
    return out


@dataclass
class DataCollatorForLanguageModeling:
    """Batches for masked (`mlm=True`) or causal (`mlm=False`) language modeling.

    MLM picks `mlm_probability` of the non-special tokens as targets; of those, `mask_replace_prob`
    become the mask token, `random_replace_prob` a random token, the rest stay. Labels are -100
    everywhere else. Causal LM copies `input_ids` to `labels` with padding set to -100 (the model
    shifts them). Randomness comes from torch's global RNG, or from a private generator when
    `seed` is set.
    """

    tokenizer: Any
    mlm: bool = True
    mlm_probability: float | None = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.mlm:
            if getattr(self.tokenizer, "mask_token", None) is None:
                raise ValueError(
                    "masked language modeling needs a tokenizer with a mask token; pass mlm=False for causal LM"
                )
            if self.mlm_probability is None or not 0 <= self.mlm_probability <= 1:
                raise ValueError(f"mlm_probability must be in [0, 1], got {self.mlm_probability}")
        for name in ("mask_replace_prob", "random_replace_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise ValueError("mask_replace_prob + random_replace_prob must not exceed 1")
        self.generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None

    def __call__(self, examples: list[Any]) -> dict[str, Any]:
        if isinstance(examples[0], Mapping):
            batch = _pad(self.tokenizer, examples, pad_to_multiple_of=self.pad_to_multiple_of)
        else:
            batch = {"input_ids": _collate_ids(examples, self.tokenizer, self.pad_to_multiple_of)}
        special = batch.pop("special_tokens_mask", None)
        if self.mlm:
            batch["input_ids"], batch["labels"] = self.torch_mask_tokens(batch["input_ids"], special)
        else:
            labels = batch["input_ids"].clone()
            if self.tokenizer.pad_token_id is not None:
                labels[labels == self.tokenizer.pad_token_id] = IGNORE_INDEX
            batch["labels"] = labels
        return batch

    def torch_mask_tokens(
        self, inputs: torch.Tensor, special_tokens_mask: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Choose MLM targets in `inputs` (modified in place) and return `(inputs, labels)`."""
        labels = inputs.clone()
        if special_tokens_mask is None:
            special_tokens_mask = [
                self.tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
                for row in labels.tolist()
            ]
        special = torch.as_tensor(special_tokens_mask, dtype=torch.bool)
        probability = torch.full(labels.shape, self.mlm_probability)
        probability.masked_fill_(special, 0.0)
        masked = torch.bernoulli(probability, generator=self.generator).bool()
        labels[~masked] = IGNORE_INDEX
        replaced = torch.bernoulli(
            torch.full(labels.shape, self.mask_replace_prob), generator=self.generator
        ).bool()
        replaced &= masked
        inputs[replaced] = self.tokenizer.convert_tokens_to_ids(self.tokenizer.mask_token)
        if self.mask_replace_prob == 1 or self.random_replace_prob == 0:
            return inputs, labels
        scaled = self.random_replace_prob / (1 - self.mask_replace_prob)
        randomised = torch.bernoulli(torch.full(labels.shape, scaled), generator=self.generator).bool()
        randomised &= masked & ~replaced
        words = torch.randint(len(self.tokenizer), labels.shape, dtype=torch.long, generator=self.generator)
        inputs[randomised] = words[randomised]
        return inputs, labels


@dataclass
class DataCollatorForSeq2Seq:
    """Pad encoder inputs with the tokenizer and `labels` with -100; add `decoder_input_ids` when the
    model has `prepare_decoder_input_ids_from_labels`."""

    tokenizer: Any
    model: Any | None = None
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = IGNORE_INDEX
    return_tensors: str = "pt"

    def __call__(self, features: list[dict[str, Any]], return_tensors: str | None = None) -> dict[str, Any]:
        batch, _, labels = _pad_inputs_split_labels(self, features)
        if labels is not None and all(label is None for label in labels):
            labels = None
        if labels is None:
            batch["labels"] = None
            return batch
        if self.padding is False or self.padding == "do_not_pad":
            batch["labels"] = [torch.as_tensor(label, dtype=torch.long) for label in labels]
            return batch
        if self.padding == "max_length" and self.max_length is not None:
            length = self.max_length
        else:
            length = max(len(label) for label in labels)
        length = _padded_length(length, self.pad_to_multiple_of)
        batch["labels"] = _pad_labels(labels, length, self.tokenizer.padding_side, self.label_pad_token_id)
        if self.model is not None and hasattr(self.model, "prepare_decoder_input_ids_from_labels"):
            batch["decoder_input_ids"] = self.model.prepare_decoder_input_ids_from_labels(
                labels=batch["labels"]
            )
        return batch


class DataCollatorWithFlattening(DefaultDataCollator):
    """Padding-free batches: concatenate the examples into one row of shape (1, total_tokens).

    Returns `input_ids`, `labels` (the first label of each example replaced by `separator_id` so no
    token is predicted across a boundary) and `position_ids` restarting at each example; optionally
    `cu_seq_lens_q/k` + `max_length_q/k` (flash-attention kwargs) and `seq_idx`.
    """

    def __init__(
        self,
        *args: Any,
        return_position_ids: bool = True,
        separator_id: int = IGNORE_INDEX,
        return_flash_attn_kwargs: bool = False,
        return_seq_idx: bool = False,
        position_ids_start: int = 0,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.return_position_ids = return_position_ids
        self.separator_id = separator_id
        self.return_flash_attn_kwargs = return_flash_attn_kwargs
        self.return_seq_idx = return_seq_idx
        self.position_ids_start = position_ids_start

    def __call__(
        self,
        features: list[dict[str, Any]],
        return_tensors: str | None = None,
        separator_id: int | None = None,
    ) -> dict[str, Any]:
        sep = self.separator_id if separator_id is None else separator_id
        features = [f for f in features if len(f["input_ids"]) > 0]
        if not features:
            raise ValueError("DataCollatorWithFlattening received a batch where every example is empty")
        has_labels = "labels" in features[0]
        ids: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        seq_idx: list[int] = []
        cu = [0]
        for n, f in enumerate(features):
            x = f["input_ids"].tolist() if hasattr(f["input_ids"], "tolist") else list(f["input_ids"])
            y = f["labels"] if has_labels else x
            y = y.tolist() if hasattr(y, "tolist") else list(y)
            ids += x
            labels += [sep] + y[1:]
            positions += range(self.position_ids_start, self.position_ids_start + len(x))
            seq_idx += [n] * len(x)
            cu.append(cu[-1] + len(x))
        batch: dict[str, Any] = {
            "input_ids": torch.tensor([ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
        }
        if self.return_position_ids:
            batch["position_ids"] = torch.tensor([positions], dtype=torch.long)
        if self.return_seq_idx:
            batch["seq_idx"] = torch.tensor([seq_idx], dtype=torch.int32)
        if self.return_flash_attn_kwargs:
            lengths = torch.tensor(cu, dtype=torch.int32)
            batch["cu_seq_lens_q"] = batch["cu_seq_lens_k"] = lengths
            longest = max(b - a for a, b in zip(cu, cu[1:]))
            batch["max_length_q"] = batch["max_length_k"] = longest
        return batch

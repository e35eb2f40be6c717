"""Model outputs: dataclasses that also behave like tuples and dicts, as in transformers.

``out.logits``, ``out["logits"]`` and ``out[0]`` all work; fields left ``None`` are skipped
by the dict and tuple views, so ``loss`` is element 0 only when it was computed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

import torch

FloatTensor = torch.Tensor


def output_flag(config: Any, name: str, value: bool | None) -> bool:
    """An output switch of a forward (``output_attentions``, ``output_hidden_states``, ``return_dict``): the
    argument as given, or the config's attribute ``name`` when it is ``None``."""
    return getattr(config, name) if value is None else value


class ModelOutput(OrderedDict):
    """Base class of model outputs. Subclasses are ``@dataclass``es whose fields default to ``None``."""

    def __post_init__(self) -> None:
        # The dataclass __init__ assigned the fields with setattr; mirror the non-None ones as items.
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() or value is not None and name in self.__dataclass_fields__:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def __delitem__(self, key: str) -> None:
        raise TypeError(f"You cannot delete items of a {type(self).__name__}.")

    def setdefault(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"You cannot use setdefault on a {type(self).__name__}.")

    def pop(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"You cannot pop from a {type(self).__name__}.")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"You cannot update a {type(self).__name__}.")

    def to_tuple(self) -> tuple[Any, ...]:
        """The non-``None`` fields, in field order."""
        values = (getattr(self, f.name) for f in fields(self))
        return tuple(v for v in values if v is not None)

    def __reduce__(self):
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        return (_rebuild, (type(self), state))


def _rebuild(cls: type[ModelOutput], state: dict[str, Any]) -> ModelOutput:
    return cls(**state)


@dataclass
class BaseModelOutput(ModelOutput):
    """A bare model's output: the last layer's states, plus every layer's states and attention weights
    when asked for."""

    last_hidden_state: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    """:class:`BaseModelOutput` with ``pooler_output``, the sentence vector made from the first token."""

    last_hidden_state: FloatTensor | None = None
    pooler_output: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class BaseModelOutputWithPast(ModelOutput):
    """:class:`BaseModelOutput` with the key/value cache to continue from."""

    last_hidden_state: FloatTensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class _ScoredOutput(ModelOutput):
    # The fields of every head whose ``logits`` are scored against ``labels``; the public classes
    # below differ only in name, as in transformers.
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class _ScoredOutputWithPast(ModelOutput):
    # The same for the decoder heads, with the key/value cache before the per-layer tuples.
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class CausalLMOutputWithPast(_ScoredOutputWithPast):
    """A causal language model's output: next-token ``logits``, the shifted loss, the cache."""


@dataclass
class MaskedLMOutput(_ScoredOutput):
    """A masked language model's output: vocabulary ``logits`` at every position."""


@dataclass
class SequenceClassifierOutput(_ScoredOutput):
    """A sequence classifier's output: one row of class ``logits`` per sequence."""


@dataclass
class SequenceClassifierOutputWithPast(_ScoredOutputWithPast):
    """A decoder's sequence classifier output: class ``logits`` per sequence, and the cache."""


@dataclass
class ImageClassifierOutput(_ScoredOutput):
    """An image classifier's output: ``logits`` ``(batch, num_labels)``."""


@dataclass
class TokenClassifierOutput(_ScoredOutput):
    """A token classifier's output: class ``logits`` at every position."""


@dataclass
class MultipleChoiceModelOutput(_ScoredOutput):
    """A multiple-choice head's output: ``logits`` of shape ``(batch, num_choices)``, one score per choice."""


@dataclass
class NextSentencePredictorOutput(_ScoredOutput):
    """A next-sentence head's output: ``logits`` of shape ``(batch, 2)`` (0: B follows A, 1: B is random)."""


@dataclass
class _SpanScores(ModelOutput):
    # The leading fields of both question-answering outputs (the encoder-decoder one adds SEQ2SEQ_FIELDS).
    loss: FloatTensor | None = None
    start_logits: FloatTensor | None = None
    end_logits: FloatTensor | None = None


@dataclass
class QuestionAnsweringModelOutput(_SpanScores):
    """An extractive question-answering output: per-position scores for the answer's start and end."""

    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


# The two outputs with cross-attention weights are their without-cross-attention classes plus that last
# field (dataclass inheritance keeps the base's fields first: the tuple order of transformers' classes).
@dataclass
class BaseModelOutputWithPastAndCrossAttentions(BaseModelOutputWithPast):
    """A decoder stack's output in an encoder-decoder: the cache and, when asked for, the attention
    weights over the encoder output (``cross_attentions``)."""

    cross_attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class CausalLMOutputWithCrossAttentions(_ScoredOutputWithPast):
    """A decoder language model's output when it may attend to an encoder's states (a seq2seq decoder
    used alone): next-token ``logits``, the loss, the cache and the cross-attention weights."""

    cross_attentions: tuple[FloatTensor, ...] | None = None


# The fields every encoder-decoder output ends with, in this order (after its own leading ones): the
# decoder's cache and per-layer tuples, then the encoder's output.
SEQ2SEQ_FIELDS: dict[str, str] = {
    "past_key_values": "Any",
    "decoder_hidden_states": "tuple[FloatTensor, ...] | None",
    "decoder_attentions": "tuple[FloatTensor, ...] | None",
    "cross_attentions": "tuple[FloatTensor, ...] | None",
    "encoder_last_hidden_state": "FloatTensor | None",
    "encoder_hidden_states": "tuple[FloatTensor, ...] | None",
    "encoder_attentions": "tuple[FloatTensor, ...] | None",
}


def _seq2seq_output(cls: type) -> type:
    """``@dataclass`` for an encoder-decoder output: the class's own fields, then :data:`SEQ2SEQ_FIELDS`
    (all defaulting to ``None``)."""
    cls.__annotations__ = {**cls.__dict__.get("__annotations__", {}), **SEQ2SEQ_FIELDS}
    for name in SEQ2SEQ_FIELDS:
        setattr(cls, name, None)
    return dataclass(cls)


@_seq2seq_output
class Seq2SeqModelOutput(ModelOutput):
    """A bare encoder-decoder's output: the decoder's last states, its cache, and the encoder's output."""

    last_hidden_state: FloatTensor | None = None


@_seq2seq_output
class _Seq2SeqScoredOutput(ModelOutput):
    # The fields of every encoder-decoder head scored against ``labels`` (the classes differ by name only).
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None


@dataclass
class Seq2SeqLMOutput(_Seq2SeqScoredOutput):
    """An encoder-decoder language model's output: next-token ``logits`` of the decoder, the loss, the
    cache and the encoder's output."""


@dataclass
class Seq2SeqSequenceClassifierOutput(_Seq2SeqScoredOutput):
    """An encoder-decoder classifier's output: class ``logits`` per sequence."""


@_seq2seq_output
class Seq2SeqQuestionAnsweringModelOutput(_SpanScores):
    """An encoder-decoder question-answering output: start / end scores over the decoder positions."""

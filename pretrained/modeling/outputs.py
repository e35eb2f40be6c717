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
    last_hidden_state: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: FloatTensor | None = None
    pooler_output: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: FloatTensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class CausalLMOutputWithPast(ModelOutput):
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class SequenceClassifierOutputWithPast(ModelOutput):
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    past_key_values: Any = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: FloatTensor | None = None
    logits: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: FloatTensor | None = None
    start_logits: FloatTensor | None = None
    end_logits: FloatTensor | None = None
    hidden_states: tuple[FloatTensor, ...] | None = None
    attentions: tuple[FloatTensor, ...] | None = None

"""The embedding accessors every model answers (``get_input_embeddings`` and friends), written once.

A module names where its table lives instead of writing the two methods: :class:`InputEmbeddings` reads
``input_embeddings_path`` (a dotted submodule path: ``"wte"``, ``"model.decoder.embed_tokens"``),
:class:`OutputEmbeddings` is the vocabulary projection ``lm_head`` of the language-model heads. Mix them in
before the module's base class. :class:`PositionIds` is the ``position_ids`` buffer of the encoders with a
learned absolute-position table (BERT, DistilBERT).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


def check_token_inputs(input_ids: Any, inputs_embeds: Any) -> None:
    """Refuse a forward given both or neither of ``input_ids`` and ``inputs_embeds``."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("give exactly one of input_ids or inputs_embeds")


class InputEmbeddings:
    """``get_input_embeddings`` / ``set_input_embeddings`` of the submodule at ``input_embeddings_path``."""

    input_embeddings_path: ClassVar[str] = "embed_tokens"

    def get_input_embeddings(self) -> nn.Module:
        return self.get_submodule(self.input_embeddings_path)

    def set_input_embeddings(self, value: nn.Module) -> None:
        owner, _, name = self.input_embeddings_path.rpartition(".")
        setattr(self.get_submodule(owner), name, value)


class OutputEmbeddings:
    """``get_output_embeddings`` / ``set_output_embeddings`` of a head whose vocabulary projection is
    ``lm_head``."""

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value


class PositionIds:
    """The ``position_ids`` buffer ``(1, max_positions)`` (0, 1, 2, ...) that indexes a learned absolute-position
    table. It is not saved (transformers does not save it either), so :meth:`_init_position_ids` makes it when
    the module is built and ``_init_buffers`` again after a build on the meta device. Mix in before
    ``nn.Module``."""

    def _init_position_ids(self, max_positions: int) -> None:
        self._max_positions = max_positions
        self._init_buffers("cpu")

    def _init_buffers(self, device: torch.device | str) -> None:
        positions = torch.arange(self._max_positions, device=device).expand((1, -1))
        self.register_buffer("position_ids", positions, persistent=False)

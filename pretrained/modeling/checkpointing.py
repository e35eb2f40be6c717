"""Gradient checkpointing of one layer call: the rule every layer loop (decoder, encoder, seq2seq, T5) follows."""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.utils.checkpoint import checkpoint


def call_layer(owner: nn.Module, layer: nn.Module, *args: Any) -> Any:
    """``layer(*args)``; while ``owner`` (the stack) trains with gradient checkpointing on (set by
    ``PreTrainedModel.gradient_checkpointing_enable``, with its ``_checkpoint_kwargs``), the call keeps no
    activations and recomputes them in backward."""
    if owner.gradient_checkpointing and owner.training:
        return checkpoint(layer, *args, **getattr(owner, "_checkpoint_kwargs", {"use_reentrant": False}))
    return layer(*args)

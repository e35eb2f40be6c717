"""The layer loop shared by encoder stacks (BERT's ``encoder``, DistilBERT's ``transformer``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class LayerStack(nn.Module):
    """``self.layer`` run in order, collecting hidden states / attention weights when asked.

    Each layer takes ``(hidden, mask, output_attentions)`` and returns ``(hidden, weights)``.
    With gradient checkpointing on (``PreTrainedModel.gradient_checkpointing_enable``) and in training,
    layers recompute their activations in backward.
    """

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layer = nn.ModuleList(layers)
        self.gradient_checkpointing = False

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool,
                output_hidden_states: bool):
        all_hidden = (hidden,) if output_hidden_states else None
        all_weights = () if output_attentions else None
        for layer in self.layer:
            if self.gradient_checkpointing and self.training:
                hidden, weights = checkpoint(layer, hidden, mask, output_attentions, **self._checkpoint_kwargs)
            else:
                hidden, weights = layer(hidden, mask, output_attentions)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_weights += (weights,)
        return hidden, all_hidden, all_weights

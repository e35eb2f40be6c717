"""The gated feed-forward block of the Llama family: ``down(act(gate(x)) * up(x))``."""

from __future__ import annotations

import torch
from torch import nn

from pretrained.modeling.activations import get_activation


class GatedMLP(nn.Module):
    """SwiGLU-style MLP with checkpoint names ``gate_proj``, ``up_proj`` and ``down_proj``.

    Args:
        hidden_size: Model width.
        intermediate_size: Width of the gated hidden layer.
        hidden_act: Name of the gate activation (``"silu"`` for Llama).
        bias: Whether the three projections have biases (``config.mlp_bias``).
    """

    def __init__(
        self, hidden_size: int, intermediate_size: int, hidden_act: str = "silu", bias: bool = False
    ):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.act_fn = get_activation(hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))

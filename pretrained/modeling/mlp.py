"""The gated feed-forward block of the Llama family: ``down(act(gate(x)) * up(x))``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from pretrained.modeling.fusion import FusedLinears

# Activation names used by decoder configs (``hidden_act``). Kept here so the MLP does not depend on
# a larger activation table; unknown names raise a clear error.
_GATE_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


def gate_activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return the activation function called ``name`` (as spelled in ``config.hidden_act``)."""
    try:
        return _GATE_ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unsupported hidden_act {name!r}; expected one of {sorted(_GATE_ACTIVATIONS)}"
        ) from None


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
        self.act_fn = gate_activation(hidden_act)
        self._gate_up = FusedLinears("gate_proj", "up_proj")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = self._gate_up(self, x)
        gate, up = fused if fused is not None else (self.gate_proj(x), self.up_proj(x))
        return self.down_proj(self.act_fn(gate) * up)

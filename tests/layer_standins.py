"""Stand-ins for layers that transform passes must leave alone (shared by the routing and fusion tests)."""

import torch
from torch import nn


class Int8Linear(nn.Linear):
    """A quantized-layer stand-in: int8 weight and per-row scales, its own matmul (no F.linear)."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__(layer.in_features, layer.out_features, bias=layer.bias is not None)
        scale = layer.weight.detach().abs().amax(1, keepdim=True) / 127
        self.register_buffer("qweight", (layer.weight.detach() / scale).round().to(torch.int8))
        self.register_buffer("scale", scale)
        self.bias = layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x @ (self.qweight.float() * self.scale).T
        return out if self.bias is None else out + self.bias

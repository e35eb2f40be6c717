"""``Conv1D``: the linear layer of GPT-2 checkpoints, stored transposed."""

from __future__ import annotations

import torch
from torch import nn


class Conv1D(nn.Module):
    """A linear layer stored as in the GPT-2 checkpoints: ``y = x @ weight + bias``, ``weight`` is
    ``(in_features, out_features)``, so those checkpoints load without transposing.

    Args:
        nf: Output features.
        nx: Input features.
    """

    def __init__(self, nf: int, nx: int) -> None:
        super().__init__()
        self.nf, self.nx = nf, nx
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Widths from the tensors, not nf / nx: a tensor-parallel rank runs this on its slice of the weight.
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], out.shape[-1])

    def extra_repr(self) -> str:
        return f"nf={self.nf}, nx={self.nx}"

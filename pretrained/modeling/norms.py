"""RMSNorm, the normalisation of the Llama family (and T5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square layer norm: ``weight * x / sqrt(mean(x**2) + eps)``.

    The statistics are taken in float32 whatever the input dtype, and the result is cast back before the
    weight is applied, as the reference implementation does (so bf16/fp16 checkpoints give the same numbers).

    Args:
        hidden_size: Size of the last dimension.
        eps: Added to the mean square for numerical stability.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = (hidden_states.shape[-1],)
        if hidden_states.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # One fused kernel instead of six small ones (this runs twice per layer per token).
            return F.rms_norm(hidden_states, shape, self.weight, self.variance_epsilon)
        x = F.rms_norm(hidden_states.float(), shape, None, self.variance_epsilon)
        return self.weight * x.to(hidden_states.dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"

"""Activation functions by the names configs use (``hidden_act``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn import functional as F


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    # The tanh approximation written out (GPT-2's "gelu_new"); same math as approximate="tanh".
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


ACT2FN: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": _quick_gelu,
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "leaky_relu": F.leaky_relu,
    "mish": F.mish,
}


def get_activation(name: str | Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation called ``name`` (callables pass through)."""
    if callable(name):
        return name
    try:
        return ACT2FN[name]
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; known: {', '.join(sorted(ACT2FN))}.") from None


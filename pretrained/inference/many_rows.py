"""``ManyRowsKernels``: a torch function mode that sends the many-row linear calls of an inference forward
(an image encoder's 197 tokens per image, a speech encoder's 1,500 frames per clip) to oneDNN's matmul.

oneDNN's fp32 matmul on the plain weight beats the MKL ``sgemm`` behind ``F.linear`` for these shapes
(a few hundred to thousands of rows against weights of 384-3,072 columns; numbers in the README's pipeline
section). Packing the weight first gained little more, so weights stay as they are and nothing is cached. The
results differ from ``F.linear``'s by float32 rounding (the sums are accumulated in another order).

As :class:`~pretrained.inference.routing.DecodeKernels` does for few-row steps, the mode looks at the
calls one by one and reroutes only plain fp32 CPU tensors outside autograd with at least ``MIN_ROWS``
rows; anything else (quantized layers, bf16, a ``DTensor``, training) runs as without it. Modes are per
thread and last only for the ``with`` block. Under ``DecodeKernels`` the inner mode sees a call first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pretrained.inference import kernels
from pretrained.inference.routing import plain_fp32_cpu

# Fewer rows than this stay with F.linear (the decode kernels' territory, and too little work to matter).
MIN_ROWS = 32
# Smaller weights than this stay with F.linear: oneDNN's call overhead is not paid back.
MIN_WEIGHT = 64 * 64


class ManyRowsKernels(TorchFunctionMode):
    """Reroute fp32 CPU linears of ``MIN_ROWS`` rows or more to oneDNN's matmul (see the module docstring)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func is F.linear and not torch.is_grad_enabled():
            out = self._linear(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    @classmethod
    def around(cls, context: Callable[[], Any]) -> Callable[[], Any]:
        """A context factory that enters ``context()`` and then this mode (a pipeline's inference context)."""

        def enter() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            stack.enter_context(context())
            stack.enter_context(cls())
            return stack

        return enter

    @staticmethod
    def _linear(x: Any, weight: Any, bias: Any = None) -> Any:
        if not plain_fp32_cpu(x, weight, bias):
            return None
        if x.dim() == 0 or x.numel() // max(x.shape[-1], 1) < MIN_ROWS or weight.numel() < MIN_WEIGHT:
            return None
        if weight.dim() != 2 or not kernels.onednn_available():
            return None
        return kernels.onednn_linear(x, weight, bias)

"""What a model loaded through a quantizer answers: its real memory footprint, dequantizing, and the casts
a quantized layer cannot follow. ``PreTrainedModel`` inherits it; the quantizer's ``after_load`` hook sets
the attributes (``pretrained.quantizers``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class QuantizedModelMixin(nn.Module):
    """The quantization side of ``PreTrainedModel`` (plain models answer as an ``nn.Module`` would)."""

    # Set on the instance when a quantizer loaded it.
    is_quantized: bool = False
    hf_quantizer: Any = None
    quantization_method: Any = None

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """Bytes of the weights (and buffers); a quantized model counts what its layers really hold:
        packed values, scales and zero points."""
        if self.hf_quantizer is not None:
            real = self.hf_quantizer.memory_footprint(self)
            if real is not None:
                return real if return_buffers else real - sum(b.numel() * b.element_size() for b in self.buffers())
        tensors = [*self.parameters(), *(self.buffers() if return_buffers else ())]
        return sum(t.numel() * t.element_size() for t in tensors)

    def to(self, *args: Any, **kwargs: Any) -> Any:
        """``nn.Module.to``; a bitsandbytes or GPTQ model refuses a dtype (load it in the dtype wanted)."""
        if str(self.quantization_method) in ("bitsandbytes", "gptq") and torch._C._nn._parse_to(*args, **kwargs)[1]:
            raise ValueError(f"You cannot cast a {self.quantization_method} model in a new `dtype`. Load the model "
                             "with from_pretrained(..., dtype=...) in the dtype you want instead.")
        return super().to(*args, **kwargs)

    def half(self) -> Any:
        if self.is_quantized:
            raise ValueError("`.half()` is not supported for a quantized model: its layers already have their dtype.")
        return super().half()

    def float(self) -> Any:
        if self.is_quantized:
            raise ValueError("`.float()` is not supported for a quantized model: its layers already have their dtype.")
        return super().float()

    def dequantize(self, dtype: torch.dtype | None = None) -> Any:
        """Turn the quantized layers back into float ones (keeping the quantization's error).

        Raises:
            ValueError: the model is not quantized.
        """
        if self.hf_quantizer is None:
            raise ValueError("You need to first quantize your model in order to dequantize it")
        return self.hf_quantizer.dequantize(self, dtype=dtype)

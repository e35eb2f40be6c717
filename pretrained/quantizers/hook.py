"""The loading pass's view of an ``HfQuantizer``: one ``WeightHook`` in the per-tensor chain.

Float weights of quantized layers are quantized one by one as they stream in, so at most one float
weight is in memory beside the quantized model. Checkpoints already quantized arrive as several tensors
per weight (``weight`` + ``SCB``, ``weight.absmax`` + ..., torchao's ``_weight_qdata`` + ...): the hook
collects them and builds each quantized parameter once the checkpoint is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from pretrained.loading.hooks import WeightHook
from pretrained.quantizers.base import HfQuantizer


class QuantizerHook(WeightHook):
    """Runs ``quantizer`` while a model loads (see :mod:`pretrained.loading.hooks`)."""

    def __init__(self, quantizer: HfQuantizer):
        self.quantizer = quantizer
        self.device_map: Any = None
        self.device_for: Callable[[str], torch.device] = lambda name: torch.device("cpu")
        self.dtype: torch.dtype | None = None
        self.checkpoint_files: list[str] = []
        self.model: nn.Module | None = None
        self.pending: dict[str, dict[str, torch.Tensor]] = {}  # parameter -> its stored parts so far
        self.quantized: set[str] = set()  # the parameters to quantize or read quantized (after before_load)
        self._converted = 0  # float bytes quantized since the heap was last trimmed

    # --- before and while the model is built --------------------------------------------------------
    def prepare(self, dtype: torch.dtype | None, options: Any) -> torch.dtype | None:
        self.quantizer.validate_environment(device_map=options.device_map, weights_only=options.weights_only,
                                            dtype=dtype)
        self.device_map = self.quantizer.update_device_map(options.device_map)
        self.dtype = self.quantizer.update_dtype(dtype)
        return self.dtype

    def adjust_max_memory(self, max_memory: dict) -> dict:
        return self.quantizer.adjust_max_memory(max_memory)

    def place(self, device_map: dict[str, torch.device], device_for: Callable[[str], torch.device]) -> None:
        """Learn where each weight goes (the loader's resolved device map)."""
        if self.device_map is None or isinstance(self.device_map, str):
            self.device_map = {k: str(v) for k, v in device_map.items()}
        self.device_for = device_for

    def set_checkpoint_files(self, files: list[str]) -> None:
        self.checkpoint_files = list(files)

    def before_load(self, model: nn.Module) -> None:
        self.model = model
        self.quantizer.preprocess_model(model, dtype=self.dtype, device_map=self.device_map,
                                        keep_in_fp32_modules=list(model._keep_in_fp32_modules),
                                        checkpoint_files=self.checkpoint_files)
        self.quantized = {name for name, _ in model.named_parameters(remove_duplicate=False)
                          if self.quantizer.param_needs_quantization(model, name)}

    # --- per tensor -----------------------------------------------------------------------------------
    def target_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.quantizer.pre_quantized and name in self.quantized and hasattr(self.quantizer, "packed_shape"):
            return self.quantizer.packed_shape(shape)
        return shape

    def claims_dtype(self, name: str, dtype: torch.dtype) -> bool:
        return self.quantizer.pre_quantized and name in self.quantized

    def owner_of(self, key: str) -> tuple[str, str] | None:
        if not self.quantizer.pre_quantized:
            return None
        # serialized_names: {"weight": ["weight", "SCB", "weight.absmax", ...]}: each stored suffix other
        # than the parameter's own name sits next to it, under the same module.
        owners = {suffix: param for param, suffixes in self.quantizer.serialized_names.items()
                  for suffix in suffixes if suffix != param}
        for suffix in sorted(owners, key=len, reverse=True):
            if key.endswith("." + suffix):
                return f"{key[: -len(suffix) - 1]}.{owners[suffix]}", suffix
        return None

    def take(self, name: str, part: str, tensor: torch.Tensor, model: nn.Module) -> None:
        leaf = name.rpartition(".")[2]
        self.pending.setdefault(name, {})[part.removeprefix(leaf + ".") if part.startswith(leaf + ".")
                                          else part] = tensor

    def __call__(self, name: str, tensor: torch.Tensor, model: nn.Module) -> torch.Tensor | None:
        if name not in self.quantized:
            return tensor
        if self.quantizer.pre_quantized:
            self.pending.setdefault(name, {})[name.rpartition(".")[2]] = tensor
        else:
            self.quantizer.quantize_param(model, name, tensor, self.device_for(name))
            self._converted += tensor.numel() * tensor.element_size()
            if self._converted >= _TRIM_EVERY:
                _trim_heap()
                self._converted = 0
        return None

    def after_load(self, model: nn.Module) -> None:
        for name, parts in self.pending.items():
            self.quantizer.load_serialized(model, name, parts, self.device_for(name))
        self.pending.clear()
        _trim_heap()
        self.quantizer.postprocess_model(model)


# Quantizing frees a float temporary per weight between long-lived quantized tensors; glibc keeps such
# holes in its heap rather than returning them, so a load would peak well above the quantized model.
_TRIM_EVERY = 32 * 2**20


def _trim_heap() -> None:
    """Return freed heap memory to the OS (glibc's ``malloc_trim``; nothing elsewhere)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)

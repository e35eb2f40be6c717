"""The per-tensor hook chain of the loading pass, and its extension points.

Every checkpoint tensor goes: rename → dtype cast → quantizer → tensor-parallel shard →
device placement. Rename happens on names (``rename_key``); the others are ``WeightHook``s.
Quantization methods and tensor-parallel plans plug in by registering a factory below:
the loader asks the registries, so neither is a second loader.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# Legacy parameter names seen in old checkpoints (TF-era BERT LayerNorm).
_LEGACY = [(re.compile(r"(^|\.)gamma$"), r"\1weight"), (re.compile(r"(^|\.)beta$"), r"\1bias")]


def rename_key(name: str) -> str:
    """Map a legacy checkpoint key to today's name (``LayerNorm.gamma`` → ``LayerNorm.weight``)."""
    if name.endswith(("gamma", "beta")):
        for pattern, repl in _LEGACY:
            name = pattern.sub(repl, name)
    return name


class WeightHook:
    """One step of the per-tensor chain.

    ``before_load`` may change the model (e.g. swap ``nn.Linear`` for a quantized layer);
    ``__call__`` gets the target name, the tensor and the model, and returns the tensor to pass on
    (possibly replaced or sliced); ``after_load`` runs once every tensor is in place.
    """

    def before_load(self, model: nn.Module) -> None:
        pass

    def read(self, name: str, lazy: Any) -> torch.Tensor | None:
        """Read the checkpoint tensor for ``name`` from ``lazy`` (a ``LazyTensor``) itself, e.g. only the slice
        this process keeps (tensor parallelism); ``None`` lets the loader read it whole."""
        return None

    def __call__(self, name: str, tensor: torch.Tensor, model: nn.Module) -> torch.Tensor:
        return tensor

    def after_load(self, model: nn.Module) -> None:
        pass

    def target_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape the checkpoint tensor must have for a model parameter of ``shape`` (for checks)."""
        return shape

    def claims_dtype(self, name: str, dtype: torch.dtype) -> bool:
        """Whether this hook turns a checkpoint tensor stored as ``dtype`` into the parameter ``name``
        (a quantizer reading int8 weights says yes); the loader refuses any other non-float mismatch."""
        return False

    def prepare(self, dtype: torch.dtype | None, options: Any) -> torch.dtype | None:
        """Before the model is built: check the load ``options`` (a ``LoadOptions``), return the dtype to
        build in. Runs once, for hooks known that early (the quantizer)."""
        return dtype

    def owner_of(self, key: str) -> tuple[str, str] | None:
        """For a checkpoint key no parameter of the model has: ``(parameter, part)`` when the key holds a
        part of that parameter as this hook stores it (a quantized weight's scales), else ``None``."""
        return None

    def take(self, name: str, part: str, tensor: torch.Tensor, model: nn.Module) -> None:
        """Receive ``tensor``, the stored ``part`` of parameter ``name`` (see :meth:`owner_of`)."""


class DtypeHook(WeightHook):
    """Cast floating-point tensors to the load dtype, except modules kept in fp32."""

    def __init__(self, dtype: torch.dtype | None, keep_fp32: tuple[str, ...] = ()):
        self.dtype = dtype
        self.keep_fp32 = keep_fp32

    def __call__(self, name: str, tensor: torch.Tensor, model: Any) -> torch.Tensor:
        if self.dtype is None or not tensor.is_floating_point():
            return tensor
        dtype = torch.float32 if self.keep_fp32 and _in_modules(name, self.keep_fp32) else self.dtype
        return tensor if tensor.dtype == dtype else tensor.to(dtype)


class PlacementHook(WeightHook):
    """Move each tensor to the device its module is mapped to."""

    def __init__(self, device_for: Callable[[str], torch.device]):
        self.device_for = device_for

    def __call__(self, name: str, tensor: torch.Tensor, model: Any) -> torch.Tensor:
        device = self.device_for(name)
        return tensor if tensor.device == device else tensor.to(device)


def _in_modules(name: str, modules: tuple[str, ...]) -> bool:
    parts = name.split(".")
    return any(m in parts for m in modules)


# --- extension points ------------------------------------------------------------------------------
# quant_method -> factory(quantization_config, model_config) -> WeightHook
QUANTIZERS: dict[str, Callable[[Any, Any], WeightHook]] = {}
# factory(model, tp_plan, device_mesh, tp_size=, distributed_config=) -> WeightHook or None (one rank);
# pretrained.distributed.tensor_parallel registers "default" when imported.
TENSOR_PARALLEL: dict[str, Callable[..., WeightHook]] = {}


def quant_method(quantization_config: Any) -> str | None:
    """The method a ``quantization_config`` (dict or config object) names; a dict with ``load_in_4bit`` /
    ``load_in_8bit`` and no ``quant_method`` is bitsandbytes, as in transformers."""
    if isinstance(quantization_config, dict):
        method = quantization_config.get("quant_method")
        if method is None and (quantization_config.get("load_in_4bit") or quantization_config.get("load_in_8bit")):
            method = "bitsandbytes"
    else:
        method = getattr(quantization_config, "quant_method", None)
    method = getattr(method, "value", method)
    return None if method is None else str(method)


def quantizer_hook(quantization_config: Any, model_config: Any) -> WeightHook | None:
    """The registered quantizer for a ``quantization_config`` (dict or config object), or ``None``."""
    if quantization_config is None:
        return None
    import pretrained.quantizers  # noqa: F401  (registers the built-in methods)

    method = quant_method(quantization_config)
    factory = QUANTIZERS.get(str(method))
    if factory is None:
        known = ", ".join(sorted(QUANTIZERS)) or "none yet"
        raise ValueError(f"Quantization method {method!r} is not supported by pretrained (available: {known}).")
    return factory(quantization_config, model_config)


def tensor_parallel_hook(model: Any, tp_plan: Any, device_mesh: Any = None, tp_size: int | None = None,
                         distributed_config: Any = None) -> WeightHook | None:
    """The tensor-parallel sharding hook for ``tp_plan`` / ``tp_size`` / ``distributed_config``, or ``None``
    when none is asked for (or they resolve to a single rank)."""
    if tp_plan is None and tp_size is None and distributed_config is None:
        return None
    if "default" not in TENSOR_PARALLEL:
        try:  # the distributed package registers itself; it needs torch.distributed
            importlib.import_module("pretrained.distributed.tensor_parallel")
        except ImportError as e:
            raise ValueError(f"Tensor parallelism (tp_plan) needs torch.distributed, which this torch build "
                             f"lacks ({e}).") from None
    return TENSOR_PARALLEL["default"](model, tp_plan, device_mesh, tp_size=tp_size,
                                      distributed_config=distributed_config)

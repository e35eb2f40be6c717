"""bitsandbytes: LLM.int8() (``Linear8bitLt``) and 4-bit NF4 / FP4 (``Linear4bit``) layers.

The layers and their math are bitsandbytes' own; this file swaps them in, fills them as weights stream
in (or from a checkpoint's stored tensors), saves them in transformers' layout and turns them back
into ``nn.Linear``.

One behaviour of bitsandbytes' CPU backend needs care: a 4-bit layer repacks its weights on its first
CPU forward (nibbles reordered, block scales turned to bf16), and its ``state_dict()`` afterwards
re-quantizes the scales, losing precision. So before that first forward each layer keeps its stored
scales (``_serialized_stats``), and saving rebuilds the exact stored form from them.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from pretrained.quantizers.base import HfQuantizer, require, should_convert_module

logger = logging.getLogger("pretrained")


def _bnb() -> Any:
    return require("bitsandbytes", "bitsandbytes quantization (BitsAndBytesConfig)")


class _BnbQuantizer(HfQuantizer):
    """What the 8-bit and 4-bit quantizers share: checks, layer swap, dequantizing."""

    bits = 0

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        _bnb()
        device_map = kwargs.get("device_map")
        if not self.quantization_config.llm_int8_enable_fp32_cpu_offload and isinstance(device_map, dict):
            values = {str(v) for v in device_map.values()}
            if values != {"cpu"} and ("cpu" in values or "disk" in values):
                raise ValueError(
                    f"bitsandbytes {self.bits}-bit: some modules are mapped to the CPU or the disk next to "
                    "accelerator ones. To keep those modules unquantized in fp32, set "
                    "llm_int8_enable_fp32_cpu_offload=True in the BitsAndBytesConfig and pass that device_map.")

    def adjust_max_memory(self, max_memory: dict[str, int | str]) -> dict[str, int | str]:
        # quantizing needs scratch room next to the weights
        return {key: value * 0.90 if isinstance(value, (int, float)) else value for key, value in max_memory.items()}

    def _process_model_before_weight_loading(self, model: nn.Module, device_map: Any = None,
                                             keep_in_fp32_modules: list[str] | None = None, **kwargs: Any) -> None:
        keep = list(keep_in_fp32_modules if keep_in_fp32_modules is not None else model._keep_in_fp32_modules)
        self.modules_to_not_convert = self.get_modules_to_not_convert(
            model, self.quantization_config.llm_int8_skip_modules, keep)
        if self.quantization_config.llm_int8_enable_fp32_cpu_offload and isinstance(device_map, dict):
            self.modules_to_not_convert += [k for k, v in device_map.items() if str(v) in ("cpu", "disk")]
        replaced = 0
        for name, module in list(model.named_modules()):
            if type(module) is not nn.Linear or not should_convert_module(name, self.modules_to_not_convert):
                continue
            with torch.device("meta"):
                new = self._new_layer(module)
            new.requires_grad_(False)
            model.set_submodule(name, new)
            replaced += 1
        if not replaced:
            logger.warning("bitsandbytes found no nn.Linear layer to quantize in %s.", type(model).__name__)

    def _new_layer(self, module: nn.Linear) -> nn.Module:
        raise NotImplementedError

    def update_device_map(self, device_map: Any) -> Any:
        if device_map is None:
            return {"": torch.cuda.current_device()} if torch.cuda.is_available() else {"": "cpu"}
        return device_map

    @property
    def quantized_element_size(self) -> float:
        return self.bits / 8

    @property
    def is_trainable(self) -> bool:
        return True

    def _dequantize(self, model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
        for name, module in list(model.named_modules()):
            weight = self._dequantized_weight(module)
            if weight is None:
                continue
            if dtype is not None:
                weight = weight.to(dtype)
            with torch.device("meta"):
                linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            linear.weight = nn.Parameter(weight, requires_grad=False)
            if module.bias is not None:
                linear.bias = module.bias
            model.set_submodule(name, linear)
        return model

    def _dequantized_weight(self, module: nn.Module) -> torch.Tensor | None:
        raise NotImplementedError

    def _process_model_after_weight_loading(self, model: nn.Module, **kwargs: Any) -> None:
        setattr(model, f"is_loaded_in_{self.bits}bit", True)  # transformers' flag, read by user code

    def memory_footprint(self, model: nn.Module) -> int:
        return _footprint(model)


class Bnb8BitHfQuantizer(_BnbQuantizer):
    """LLM.int8(): int8 weights with one absmax scale per output row (``SCB``), outliers in 16 bits."""

    bits = 8
    serialized_names = {"weight": ["weight", "SCB", "weight_format"]}

    def _new_layer(self, module: nn.Linear) -> nn.Module:
        config = self.quantization_config
        layer = _bnb().nn.Linear8bitLt(module.in_features, module.out_features, module.bias is not None,
                                       has_fp16_weights=config.llm_int8_has_fp16_weight,
                                       threshold=config.llm_int8_threshold)
        if self.pre_quantized:  # the stored weight is int8: the meta parameter says so for the loader's checks
            layer.weight.data = layer.weight.data.to(torch.int8)
        return layer

    def param_needs_quantization(self, model: nn.Module, param_name: str, **kwargs: Any) -> bool:
        module_name, _, leaf = param_name.rpartition(".")
        return leaf == "weight" and isinstance(model.get_submodule(module_name), _bnb().nn.Linear8bitLt)

    def quantize_param(self, model: nn.Module, param_name: str, tensor: torch.Tensor,
                       device: torch.device) -> None:
        module_name, _, leaf = param_name.rpartition(".")
        module = model.get_submodule(module_name)
        old = module._parameters[leaf]
        param = _bnb().nn.Int8Params(tensor.to("cpu"), requires_grad=False, has_fp16_weights=old.has_fp16_weights)
        module._parameters[leaf] = param.to(device)

    def load_serialized(self, model: nn.Module, param_name: str, parts: dict[str, torch.Tensor],
                        device: torch.device) -> None:
        module_name, _, leaf = param_name.rpartition(".")
        module = model.get_submodule(module_name)
        if "SCB" not in parts:
            raise ValueError(f"The 8-bit checkpoint lacks {module_name}.SCB (the row scales of {param_name}).")
        if leaf not in parts:
            raise ValueError(f"The 8-bit checkpoint has the scales of {param_name} but not the weight itself.")
        old = module._parameters[leaf]
        weight = parts[leaf]
        param = _bnb().nn.Int8Params(weight, requires_grad=False, has_fp16_weights=old.has_fp16_weights,
                                     SCB=parts["SCB"])
        module._parameters[leaf] = param.to(device)

    def serialized_parts(self, param_name: str) -> list[str]:
        return ["SCB", "weight_format"]

    def _dequantized_weight(self, module: nn.Module) -> torch.Tensor | None:
        bnb = _bnb()
        if not isinstance(module, bnb.nn.Linear8bitLt):
            return None
        scb = module.weight.SCB if module.weight.SCB is not None else module.state.SCB
        return bnb.functional.int8_vectorwise_dequant(module.weight.data, scb)


class Bnb4BitHfQuantizer(_BnbQuantizer):
    """4-bit NF4 / FP4: two weights per byte, one absmax per block of 64 (itself quantized with
    double quant), computing in ``bnb_4bit_compute_dtype``."""

    bits = 4
    serialized_names = {"weight": ["weight", "weight.nested_absmax", "weight.nested_quant_map", "weight.quant_map",
                                   "weight.absmax", "weight.quant_state.bitsandbytes__nf4",
                                   "weight.quant_state.bitsandbytes__fp4"]}

    def _new_layer(self, module: nn.Linear) -> nn.Module:
        config = self.quantization_config
        layer = _bnb().nn.Linear4bit(module.in_features, module.out_features, module.bias is not None,
                                     config.bnb_4bit_compute_dtype,
                                     compress_statistics=config.bnb_4bit_use_double_quant,
                                     quant_type=config.bnb_4bit_quant_type,
                                     quant_storage=config.bnb_4bit_quant_storage)
        if self.pre_quantized:
            layer.weight.data = layer.weight.data.to(config.bnb_4bit_quant_storage)
        return layer

    def packed_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The stored shape of a 4-bit weight of ``shape``: two values per byte of the storage dtype."""
        per_element = 2 * torch.empty((), dtype=self.quantization_config.bnb_4bit_quant_storage).element_size()
        numel = 1
        for size in shape:
            numel *= size
        return ((numel + per_element - 1) // per_element, 1)

    def param_needs_quantization(self, model: nn.Module, param_name: str, **kwargs: Any) -> bool:
        module_name, _, leaf = param_name.rpartition(".")
        return leaf == "weight" and isinstance(model.get_submodule(module_name), _bnb().nn.Linear4bit)

    def quantize_param(self, model: nn.Module, param_name: str, tensor: torch.Tensor,
                       device: torch.device) -> None:
        bnb = _bnb()
        module_name, _, leaf = param_name.rpartition(".")
        module = model.get_submodule(module_name)
        old = module._parameters[leaf]
        param = bnb.nn.Params4bit(tensor, requires_grad=False, blocksize=old.blocksize,
                                  compress_statistics=old.compress_statistics, quant_type=old.quant_type,
                                  quant_storage=old.quant_storage, module=module).to(device)
        module._parameters[leaf] = param
        _watch_first_forward(module)

    def serialized_parts(self, param_name: str) -> list[str]:
        return [name.removeprefix("weight.") for name in self.serialized_names["weight"] if name != "weight"]

    def load_serialized(self, model: nn.Module, param_name: str, parts: dict[str, torch.Tensor],
                        device: torch.device) -> None:
        bnb = _bnb()
        module_name, _, leaf = param_name.rpartition(".")
        module = model.get_submodule(module_name)
        if leaf not in parts:
            raise ValueError(f"The 4-bit checkpoint has the block scales of {param_name} but not the weight itself.")
        stats = {key: value for key, value in parts.items() if key != leaf}
        if "absmax" not in stats or not any(key.startswith("quant_state.") for key in stats):
            raise ValueError(f"The 4-bit checkpoint lacks the block scales of {param_name} "
                             f"(found {sorted(stats) or 'none'}; expected absmax, quant_map and quant_state.*).")
        param = bnb.nn.Params4bit.from_prequantized(data=parts[leaf], quantized_stats=stats, requires_grad=False,
                                                    device=device, module=module)
        module._parameters[leaf] = param
        _watch_first_forward(module)

    def _dequantized_weight(self, module: nn.Module) -> torch.Tensor | None:
        bnb = _bnb()
        if not isinstance(module, bnb.nn.Linear4bit):
            return None
        data, state = exact_4bit(module)
        return bnb.functional.dequantize_4bit(data, state)

    def get_state_dict_and_metadata(self, model: nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
        with exact_4bit_layers(model):
            return model.state_dict(), {}


# --- the CPU repack ------------------------------------------------------------------------------------
def _watch_first_forward(module: nn.Module) -> None:
    """Before the layer's first forward (which may repack it for the CPU), keep its stored scales."""
    if module.out_features % 32 or module.in_features % 2:
        # the repack works on blocks of 32 rows and fails on other shapes (a 3-label classifier):
        # such a layer runs bitsandbytes' generic CPU path instead
        module.support_avx512bf16_for_cpu = False
    if getattr(module, "_pretrained_stats_hook", None) is None:
        module._pretrained_stats_hook = module.register_forward_pre_hook(_keep_stats)


def _keep_stats(module: nn.Module, args: Any) -> None:
    state = getattr(module.weight, "quant_state", None)
    if state is not None and not getattr(state, "packing_format_for_cpu", False):
        # as_dict holds references: the repack makes new tensors, so these stay exact and cost only their
        # own bytes (the block scales, 1/16 to 1/64 of a byte per weight).
        module._serialized_stats = state.as_dict(packed=True)
    module._pretrained_stats_hook.remove()
    module._pretrained_stats_hook = None


def exact_4bit(module: nn.Module) -> tuple[torch.Tensor, Any]:
    """A 4-bit layer's packed weights and quant state as stored, undoing a CPU repack without loss."""
    from bitsandbytes.functional import QuantState
    from bitsandbytes.nn.modules import _convert_weight_packed_for_cpu_inverse

    weight = module.weight
    state = weight.quant_state
    if not getattr(state, "packing_format_for_cpu", False):
        return weight.data, state
    stats = getattr(module, "_serialized_stats", None)
    if stats is None:
        raise RuntimeError(f"The 4-bit layer {type(module).__name__} was repacked for the CPU before pretrained "
                           "could keep its stored scales; it cannot be saved exactly.")
    # The nibble reordering is exact; the scales come from the copy kept before the repack.
    data, _ = _convert_weight_packed_for_cpu_inverse(weight.data, copy.copy(state))
    return data, QuantState.from_dict(dict(stats), device=data.device)


class exact_4bit_layers:
    """Within the block, every repacked 4-bit layer holds its stored form (for ``state_dict()``);
    the repacked form comes back afterwards."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.saved: list[tuple[nn.Module, torch.Tensor, Any, Any]] = []

    def __enter__(self) -> exact_4bit_layers:
        bnb = _bnb()
        for module in self.model.modules():
            if isinstance(module, bnb.nn.Linear4bit) and getattr(module.weight.quant_state, "packing_format_for_cpu",
                                                                 False):
                data, state = exact_4bit(module)
                self.saved.append((module, module.weight.data, module.weight.quant_state,
                                   getattr(module, "quant_state", None)))
                module.weight.data, module.weight.quant_state, module.quant_state = data, state, state
        return self

    def __exit__(self, *exc: Any) -> None:
        for module, data, state, module_state in self.saved:
            module.weight.data, module.weight.quant_state, module.quant_state = data, state, module_state
        self.saved.clear()


def _footprint(model: nn.Module) -> int:
    """Bytes of every parameter and buffer plus the 4-bit layers' scales and 8-bit row scales."""
    bnb = _bnb()
    seen: set[int] = set()
    total = 0

    def add(tensor: Any) -> None:
        nonlocal total
        if isinstance(tensor, torch.Tensor) and id(tensor) not in seen and tensor.device.type != "meta":
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()

    for tensor in [*model.parameters(), *model.buffers()]:
        add(tensor)
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            state = module.weight.quant_state
            if state is not None:
                add(state.absmax)
                add(state.code)
                if getattr(state, "state2", None) is not None:
                    add(state.state2.absmax)
                    add(state.state2.code)
            for value in (getattr(module, "_serialized_stats", None) or {}).values():
                add(value)
        elif isinstance(module, bnb.nn.Linear8bitLt):
            add(module.weight.SCB if module.weight.SCB is not None else module.state.SCB)
    return total

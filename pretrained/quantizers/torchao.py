"""torchao: weights turned into torchao tensor subclasses by ``torchao.quantization.quantize_``.

Each linear weight is quantized as it streams in (one ``quantize_`` call per layer). Saved files follow
transformers: the subclass flattened by torchao into plain tensors (``<module>._weight_qdata``,
``_weight_scale``, ...) with the description in the safetensors metadata, rebuilt by torchao on load.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from pretrained.quantizers.base import HfQuantizer, require, should_convert_module

# The parts torchao's tensor subclasses are flattened into (``_<parameter>_<part>``).
_PARTS = ("qdata", "scale_and_zero", "per_tensor_scale", "scale", "zero_point", "act_pre_scale",
          "act_quant_scale", "act_quant_zero_point")


def _torchao() -> Any:
    return require("torchao", "torchao quantization (TorchAoConfig)")


def _bits(config: Any) -> str | None:
    """The weight width a torchao config's class name states (``Int4WeightOnlyConfig`` → ``"4"``)."""
    match = re.search(r"(\d)weight", type(config).__name__.lower())
    return match.group(1) if match else None


class TorchAoHfQuantizer(HfQuantizer):
    """Quantizes linear layers (and, when asked, the embeddings) with a torchao config."""

    def __init__(self, quantization_config: Any, **kwargs: Any):
        super().__init__(quantization_config, **kwargs)
        self.metadata: dict[str, str] = {}

    @property
    def quantized_element_size(self) -> float:
        return 0.5 if _bits(self.quantization_config.quant_type) == "4" else 1

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        _torchao()
        device_map = kwargs.get("device_map")
        if isinstance(device_map, dict) and self.pre_quantized and "disk" in {str(v) for v in device_map.values()}:
            raise ValueError("A pre-quantized torchao model cannot be offloaded to disk: remove 'disk' from the "
                             "device_map.")
        if self.quantization_config.untie_embedding_weights:
            raise NotImplementedError("TorchAoConfig(untie_embedding_weights=True) is not supported by pretrained yet; "
                                      "load with untie_embedding_weights=False.")
        if not self.pre_quantized:
            self._check_runs(kwargs.get("dtype"))

    def _check_runs(self, dtype: torch.dtype | None) -> None:
        """Quantize a small layer first: some torchao layouts need CUDA or extra packages, and their own
        errors do not say which setting to change."""
        from torchao.quantization import quantize_

        config = self.quantization_config.quant_type
        probe = nn.Sequential(nn.Linear(256, 64, bias=False, dtype=dtype if dtype is not None else torch.float32))
        try:
            quantize_(probe, config)
        except Exception as e:  # torchao raises ImportError, NotImplementedError, AssertionError, ...
            raise ValueError(
                f"torchao cannot apply {type(config).__name__} to a {probe[0].weight.dtype} layer on this machine "
                f"({type(e).__name__}: {e}). On the CPU use Int8WeightOnlyConfig() or "
                "Int8DynamicActivationInt8WeightConfig(); torchao's int4 layouts need CUDA or their own kernel "
                "package.") from None

    def set_checkpoint_files(self, files: list[str]) -> None:
        """Read the torchao description of each saved tensor from the safetensors headers."""
        from safetensors import safe_open

        self.metadata = {}
        for file in files:
            if file.endswith(".safetensors"):
                with safe_open(file, framework="pt") as f:
                    self.metadata.update(f.metadata() or {})

    def _process_model_before_weight_loading(self, model: nn.Module, keep_in_fp32_modules: list[str] | None = None,
                                             checkpoint_files: list[str] | None = None, **kwargs: Any) -> None:
        keep = list(keep_in_fp32_modules if keep_in_fp32_modules is not None else model._keep_in_fp32_modules)
        self.modules_to_not_convert = self.get_modules_to_not_convert(
            model, self.quantization_config.modules_to_not_convert, keep)
        if self.quantization_config.include_input_output_embeddings:
            embeddings = {id(model.get_input_embeddings()), id(model.get_output_embeddings())}
            names = {name for name, module in model.named_modules() if id(module) in embeddings}
            self.modules_to_not_convert = [name for name in self.modules_to_not_convert if name not in names]
        if checkpoint_files and not self.metadata:
            self.set_checkpoint_files(checkpoint_files)

    def param_needs_quantization(self, model: nn.Module, param_name: str, **kwargs: Any) -> bool:
        module_name, _, leaf = param_name.rpartition(".")
        # matched on the module's name, as bitsandbytes does: transformers matches the parameter's name
        # here, so a suffix such as "mlp.down_proj" never matches there
        if leaf != "weight" or not should_convert_module(module_name, self.modules_to_not_convert):
            return False
        kinds = (nn.Linear, nn.Embedding) if self.quantization_config.include_input_output_embeddings else (nn.Linear,)
        return isinstance(model.get_submodule(module_name), kinds)

    def quantize_param(self, model: nn.Module, param_name: str, tensor: torch.Tensor,
                       device: torch.device) -> None:
        from torchao.quantization import quantize_

        module_name, _, leaf = param_name.rpartition(".")
        module = model.get_submodule(module_name)
        module._parameters[leaf] = nn.Parameter(tensor.to(device), requires_grad=False)
        config = self.quantization_config.get_apply_tensor_subclass()
        # torchao's own filter decides, as in transformers: its weight configs take linear layers, so an
        # embedding included with include_input_output_embeddings stays float under them
        quantize_(module, config)

    @property
    def serialized_names(self) -> dict[str, list[str]]:
        if not self.pre_quantized:
            return {}
        return {"weight": ["weight", *(f"_weight_{part}" for part in _PARTS)]}

    def load_serialized(self, model: nn.Module, param_name: str, parts: dict[str, torch.Tensor],
                        device: torch.device) -> None:
        module_name, _, leaf = param_name.rpartition(".")
        module = model.get_submodule(module_name)
        if set(parts) == {leaf}:  # stored unquantized
            module._parameters[leaf] = nn.Parameter(parts[leaf].to(device), requires_grad=False)
            return
        from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

        if param_name not in self.metadata and not any(k.endswith("." + param_name) or param_name.endswith("." + k)
                                                       for k in self.metadata):
            raise ValueError(f"The torchao checkpoint has tensors for {param_name} but no description of them in "
                             "its safetensors metadata (was it saved by transformers or pretrained?).")
        stored = self._stored_name(param_name)
        prefix = stored.rpartition(".")[0]
        flat = {f"{prefix}.{part}": value for part, value in parts.items() if part != leaf}
        rebuilt, leftover = unflatten_tensor_state_dict(flat, self.metadata)
        if stored not in rebuilt or leftover:
            raise ValueError(f"torchao could not rebuild {param_name} from {sorted(parts)} "
                             f"(left over: {sorted(leftover)}).")
        module._parameters[leaf] = nn.Parameter(rebuilt[stored].to(device), requires_grad=False)

    def _stored_name(self, param_name: str) -> str:
        """The name the metadata gives ``param_name`` (the checkpoint may have had another base prefix)."""
        if param_name in self.metadata:
            return param_name
        for key in self.metadata:
            if key.endswith("." + param_name) or param_name.endswith("." + key):
                return key
        return param_name

    def get_state_dict_and_metadata(self, model: nn.Module) -> tuple[dict[str, torch.Tensor], dict]:
        from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

        return flatten_tensor_state_dict(model.state_dict())

    def memory_footprint(self, model: nn.Module) -> int:
        total = 0
        seen: set[int] = set()
        for tensor in [*model.parameters(), *model.buffers()]:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            total += _tensor_bytes(tensor)
        return total

    def _dequantize(self, model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
        for module in model.modules():
            weight = module._parameters.get("weight")
            if weight is not None and hasattr(weight, "dequantize") and type(weight.data) is not torch.Tensor:
                plain = weight.dequantize()
                module._parameters["weight"] = nn.Parameter(plain.to(dtype) if dtype else plain, requires_grad=False)
        return model

    @property
    def is_trainable(self) -> bool:
        # only the 8-bit configs have a backward
        return _bits(self.quantization_config.quant_type) == "8"

    @property
    def is_compileable(self) -> bool:
        return True


def _tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor holds: for a torchao subclass, its inner tensors (packed data, scales, zero points)."""
    data = tensor.data if isinstance(tensor, nn.Parameter) else tensor
    names = getattr(data, "tensor_data_names", None)
    if names is None:
        return tensor.numel() * tensor.element_size()
    inner = [*names, *getattr(data, "optional_tensor_data_names", ())]
    return sum(_tensor_bytes(t) for t in (getattr(data, n, None) for n in inner) if isinstance(t, torch.Tensor))


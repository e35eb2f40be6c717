"""GPTQ checkpoints on the CPU: ``nn.Linear`` layers swapped for :class:`GPTQLinear`, whose buffers
(``qweight``, ``qzeros``, ``scales``, ``g_idx``, ``bias``) carry the checkpoint's names, so the packed tensors
load as they are stored and save back unchanged.

transformers runs such checkpoints through optimum and gptqmodel (CUDA kernels, or gptqmodel's own CPU ones);
here the kernels are ours (:mod:`pretrained.inference.quant_kernels`) and no package is needed. Quantizing a
float model needs calibration data and GPTQ's solver, which ``pretrained`` does not have: that is refused,
naming gptqmodel. :class:`PackedInt4Quantizer` is also the base of the AWQ quantizer (:mod:`.awq`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from pretrained.quantizers import int4_formats as formats
from pretrained.quantizers.base import HfQuantizer, should_convert_module
from pretrained.quantizers.int4_linear import GPTQLinear

logger = logging.getLogger("pretrained")

_SAFETENSORS_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64}


def stored_names(name: str, prefix: str) -> set[str]:
    """The names module ``name`` may have in a checkpoint: as is, or with the base model's ``prefix`` added
    or removed (a checkpoint of the base model loaded under a head, or the reverse)."""
    return {name, f"{prefix}.{name}", name.removeprefix(prefix + ".")} if prefix else {name}


class PackedInt4Quantizer(HfQuantizer):
    """What the GPTQ and AWQ quantizers share: reading pre-quantized checkpoints into packed layers.

    Subclasses set ``layer_class``, ``calibration_package`` and implement :meth:`_new_layer`. Not trainable
    (the base's answer): the packed layers have no backward through their kernels."""

    requires_calibration = True
    layer_class: type[nn.Module] = nn.Module
    calibration_package = ""
    supported_bits: tuple[int, ...] = (4,)

    def __init__(self, quantization_config: Any, **kwargs: Any):
        if not kwargs.get("pre_quantized", True):
            method = getattr(quantization_config.quant_method, "value", quantization_config.quant_method)
            raise ValueError(
                f"{type(quantization_config).__name__}: pretrained loads {method.upper()} checkpoints that are "
                f"already quantized but cannot quantize float weights itself ({method.upper()} needs calibration "
                f"data and its own solver). Quantize the model with {self.calibration_package} (pip install "
                f"{self.calibration_package}), save it, then load that folder (its config.json carries the "
                "quantization_config).")
        super().__init__(quantization_config, **kwargs)
        self.stored_dtypes: dict[str, torch.dtype] = {}  # checkpoint key -> the float dtype it is stored in
        self.packed_modules: set[str] | None = None  # modules with a stored qweight (None: not known)
        self.stored_keys: set[str] = set()

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        bits = self.quantization_config.bits
        if bits not in self.supported_bits:
            raise ValueError(f"{type(self.quantization_config).__name__}(bits={bits}): pretrained reads "
                             f"{self.supported_bits}-bit checkpoints only.")
        device_map = kwargs.get("device_map")
        if isinstance(device_map, dict) and "disk" in {str(v) for v in device_map.values()}:
            raise ValueError("A GPTQ / AWQ model cannot be offloaded to disk: remove 'disk' from the device_map.")

    def update_device_map(self, device_map: Any) -> Any:
        # the packed kernels are the CPU ones; an accelerator map is honoured as given
        return {"": "cpu"} if device_map is None else device_map

    def set_checkpoint_files(self, files: list[str]) -> None:
        """Note the stored dtype of each float tensor (safetensors headers only, no data read): the load's
        dtype cast also reaches the layers' ``scales`` and ``bias``, which are put back as stored afterwards."""
        from safetensors import safe_open

        self.stored_dtypes, self.stored_keys, packed = {}, set(), set()
        for file in files:
            if not file.endswith(".safetensors"):
                continue
            with safe_open(file, framework="pt") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    self.stored_keys.add(key)
                    dtype = _SAFETENSORS_DTYPES.get(f.get_slice(key).get_dtype())
                    if dtype is not None:
                        self.stored_dtypes[key] = dtype
                    if key.endswith(".qweight"):
                        packed.add(key.removesuffix(".qweight"))
        # only when every file was read is the set of packed modules complete
        self.packed_modules = packed if files and all(f.endswith(".safetensors") for f in files) else None

    # --- the model on meta ----------------------------------------------------------------------------
    def _skip_list(self, model: nn.Module, keep_in_fp32_modules: list[str]) -> list[str]:
        return self.get_modules_to_not_convert(model, getattr(self.quantization_config, "modules_to_not_convert",
                                                              None), keep_in_fp32_modules, add_default_skips=True)

    def _wanted(self, name: str) -> bool:
        """Whether the linear layer ``name`` (not in the skip list) is a packed one in the checkpoint."""
        return True

    def _process_model_before_weight_loading(self, model: nn.Module, keep_in_fp32_modules: list[str] | None = None,
                                             checkpoint_files: list[str] | None = None, **kwargs: Any) -> None:
        if checkpoint_files and self.packed_modules is None:
            self.set_checkpoint_files(checkpoint_files)
        keep = list(keep_in_fp32_modules if keep_in_fp32_modules is not None else model._keep_in_fp32_modules)
        self.modules_to_not_convert = self._skip_list(model, keep)
        prefix = getattr(model, "base_model_prefix", "")
        if self.packed_modules is not None:
            self.modules_to_not_convert = []
        replaced = 0
        for name, module in list(model.named_modules()):
            if type(module) is not nn.Linear:
                continue
            if self.packed_modules is not None:
                # the checkpoint says which layers are packed: its skip rules (lm_head quantized or not,
                # per-module overrides of the quantizing tool) need not be guessed from the config
                if not stored_names(name, prefix) & self.packed_modules:
                    self.modules_to_not_convert.append(name)
                    continue
            elif not should_convert_module(name, self.modules_to_not_convert) or not self._wanted(name):
                continue
            with torch.device("meta"):
                layer = self._new_layer(module)
            model.set_submodule(name, layer)
            replaced += 1
        if not replaced:
            logger.warning("%s found no nn.Linear layer to read packed weights into in %s.", type(self).__name__,
                           type(model).__name__)

    def _new_layer(self, module: nn.Linear) -> nn.Module:
        raise NotImplementedError

    # --- after loading --------------------------------------------------------------------------------
    def _process_model_after_weight_loading(self, model: nn.Module, **kwargs: Any) -> None:
        # the load dtype cast the float buffers (fp16 scales -> fp32); put back the stored dtype, exactly
        prefix = getattr(model, "base_model_prefix", "")
        for name, module in model.named_modules():
            if not isinstance(module, self.layer_class):
                continue
            for leaf in ("scales", "bias"):
                buffer = module._buffers.get(leaf)
                if buffer is None:
                    continue
                stored = next((self.stored_dtypes[f"{key}.{leaf}"] for key in stored_names(name, prefix)
                               if f"{key}.{leaf}" in self.stored_dtypes), None)
                if stored is not None and buffer.dtype != stored:
                    module._buffers[leaf] = buffer.to(stored)
            self._fill_g_idx(module, name, prefix)
        model.config.quantization_config = self.quantization_config

    def _fill_g_idx(self, module: nn.Module, name: str, prefix: str) -> None:
        """Give a GPTQ layer whose checkpoint has no ``g_idx`` (some exporters leave it out without act-order)
        the contiguous groups it means; the loader filled the missing buffer with placeholder values."""

    def _dequantize(self, model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
        for name, module in list(model.named_modules()):
            if not isinstance(module, self.layer_class):
                continue
            weight = module.dequantized_weight()
            bias = module.bias
            target = dtype or (bias.dtype if bias is not None else module.scales.dtype)
            with torch.device("meta"):
                linear = nn.Linear(module.in_features, module.out_features, bias=bias is not None)
            linear.weight = nn.Parameter(weight.to(target), requires_grad=False)
            if bias is not None:
                linear.bias = nn.Parameter(bias.detach().to(target), requires_grad=False)
            model.set_submodule(name, linear)
        return model

    def memory_footprint(self, model: nn.Module) -> int:
        """Parameters and buffers (the packed words, zero points, scales, ``g_idx``), plus what the layers'
        kernel caches hold beside them (unpacked zero points; a repacked copy of the words for AWQ and
        act-order GPTQ), once built by a forward."""
        seen: set[int] = set()
        total = 0
        tensors = [*model.parameters(), *model.buffers()]
        for module in model.modules():
            cache = module.__dict__.get("_kernel_cache") if isinstance(module, self.layer_class) else None
            if cache:
                tensors += [t for key, t in cache.items() if key != "sources" and isinstance(t, torch.Tensor)]
        for tensor in tensors:
            if tensor.device.type == "meta":
                continue
            ptr = tensor.untyped_storage().data_ptr()
            if ptr in seen:
                continue
            seen.add(ptr)
            total += tensor.untyped_storage().nbytes()
        return total


class GptqHfQuantizer(PackedInt4Quantizer):
    """Reads GPTQ checkpoints (``GPTQConfig``: bits 2 / 4 / 8, any group size, ``desc_act``, sym or asym,
    checkpoint format ``gptq`` (v1) or ``gptq_v2``) into :class:`GPTQLinear` layers."""

    layer_class = GPTQLinear
    calibration_package = "gptqmodel"
    supported_bits = formats.SUPPORTED_BITS

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        config = self.quantization_config
        if config.bits not in formats.SUPPORTED_BITS:
            raise ValueError(f"GPTQConfig(bits={config.bits}): pretrained reads GPTQ checkpoints of "
                             f"{', '.join(map(str, formats.SUPPORTED_BITS))} bits (3-bit words straddle int32 "
                             "boundaries and have no reader here).")
        if config.format not in formats.GPTQ_FORMATS:
            raise ValueError(f"GPTQConfig(format={config.format!r}): pretrained reads the checkpoint formats "
                             f"{formats.GPTQ_FORMATS}; a {config.format} checkpoint is repacked for its kernel and "
                             "needs gptqmodel.")
        super().validate_environment(*args, **kwargs)

    def _skip_list(self, model: nn.Module, keep_in_fp32_modules: list[str]) -> list[str]:
        # as optimum: only the linears inside the transformer blocks are GPTQ layers, so the output head
        # (and any other linear outside the blocks) stays float
        return self.get_modules_to_not_convert(model, None, keep_in_fp32_modules)

    def _wanted(self, name: str) -> bool:
        config = self.quantization_config
        block = config.block_name_to_quantize
        blocks = [block] if isinstance(block, str) else list(block or ())
        if blocks and not any(name == b or name.startswith(b + ".") for b in blocks):
            return False
        inside = config.modules_in_block_to_quantize
        if inside:
            names = [n for group in inside for n in (group if isinstance(group, list) else [group])]
            return any(name.endswith("." + n) for n in names)
        return True

    def _fill_g_idx(self, module: nn.Module, name: str, prefix: str) -> None:
        stored = {f"{key}.{leaf}" for key in stored_names(name, prefix) for leaf in ("qweight", "g_idx")}
        if self.packed_modules is None or not stored & self.stored_keys:
            return  # not known what the checkpoint holds
        if any(key.endswith(".g_idx") for key in stored & self.stored_keys):
            return
        if self.quantization_config.desc_act:
            raise ValueError(f"The GPTQ checkpoint has no {name}.g_idx, but its quantization_config says "
                             "desc_act=True: the order of its input features is lost.")
        module.g_idx = formats.default_g_idx(module.in_features, module.group_size).to(module.qweight.device)

    def _new_layer(self, module: nn.Linear) -> nn.Module:
        config = self.quantization_config
        layer = GPTQLinear(module.in_features, module.out_features, module.bias is not None, config.bits,
                           config.group_size, config.desc_act, config.sym, config.format, dtype=torch.float16)
        return layer

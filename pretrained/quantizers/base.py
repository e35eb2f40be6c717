"""``HfQuantizer``: what one quantization method does while a model loads, with transformers' method names.

The loading pass drives it (see :mod:`pretrained.quantizers.hook`): ``validate_environment`` →
``update_dtype`` / ``update_device_map`` → the model built on meta → ``preprocess_model`` (layers swapped)
→ each weight quantized as it streams in (``quantize_param``) or taken as stored (``load_serialized``)
→ ``postprocess_model``. Backends subclass it, one file each.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import torch
from torch import nn

from pretrained.utils.quantization_config import QuantizationConfigMixin


def require(package: str, purpose: str, pip_name: str | None = None) -> Any:
    """Import ``package`` or raise an ``ImportError`` naming what to install for ``purpose``."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        raise ImportError(f"{purpose} requires the {pip_name or package} package: pip install "
                          f"{pip_name or package} ({e}).") from None


def get_keys_to_not_convert(model: nn.Module) -> list[str]:
    """The modules a quantizer leaves alone by default: tied weights, the output head and the module
    holding the last parameter (a task head)."""
    tied = set()
    pairs = model._tie_pairs() if hasattr(model, "_tie_pairs") else {}
    for target, source in pairs.items():
        tied.update((target, source))
    names = [name for name, _ in model.named_parameters(remove_duplicate=False)]
    last = {names[-1]} if names else set()
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_names = {name for name, module in model.named_modules() if head is not None and module is head}
    return sorted({key.removesuffix(".weight") for key in tied | last | head_names})


def should_convert_module(full_name: str, patterns: list[str] | None) -> bool:
    """Whether ``full_name`` escapes every skip pattern: a pattern matches from the start up to a module
    boundary, as a regex with the same boundary, or as a suffix."""
    if patterns is None:
        return True
    boundary = r"(?:(?<=\.)|(?=\.|$))"
    return not any(re.match(rf"(?:{key}){boundary}", full_name) or full_name.endswith(key) for key in patterns)


def mark_quantized(model: nn.Module) -> None:
    """Set ``config._is_quantized`` on the model and every sub-model with a config."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            config._is_quantized = True


class HfQuantizer:
    """Base of the quantizers: hooks into loading, saving, training and dequantizing.

    Attributes:
        quantization_config: The method's config.
        pre_quantized: Whether the checkpoint already holds quantized tensors (its ``config.json`` has a
            ``quantization_config``) rather than float weights to quantize while loading.
        requires_calibration: The method cannot quantize float weights itself (GPTQ, AWQ).
        modules_to_not_convert: Filled by ``preprocess_model``: the module names left unquantized.
        serialized_names: ``{parameter: [checkpoint suffixes]}``: the tensors one quantized parameter is
            saved as (``weight`` → ``weight``, ``SCB``, ...).
    """

    requires_calibration = False
    serialized_names: dict[str, list[str]] = {}

    def __init__(self, quantization_config: QuantizationConfigMixin, **kwargs: Any):
        self.quantization_config = quantization_config
        self.pre_quantized = kwargs.pop("pre_quantized", True)
        self.modules_to_not_convert: list[str] = []
        if not self.pre_quantized and self.requires_calibration:
            raise ValueError(
                f"The quantization method {quantization_config.quant_method} needs a checkpoint that is already "
                "quantized (its config.json carries the quantization_config); it cannot quantize float weights.")

    # --- before the model exists ----------------------------------------------------------------------
    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        """Refuse settings the method cannot honour (``device_map=``, ``weights_only=``, missing packages)."""

    def update_dtype(self, dtype: torch.dtype | None) -> torch.dtype | None:
        """The dtype to load the unquantized parts in."""
        return dtype

    def update_device_map(self, device_map: Any) -> Any:
        """The device map to load with."""
        return device_map

    def adjust_max_memory(self, max_memory: dict[str, int | str]) -> dict[str, int | str]:
        """The per-device memory budget for ``device_map="auto"`` (room kept for quantization buffers)."""
        return max_memory

    def update_attn_implementation(self, config: Any) -> Any:
        return config

    @property
    def quantized_element_size(self) -> float | None:
        """Bytes per quantized weight element (``None``: the parameter's own size)."""
        return None

    # --- the model on meta ----------------------------------------------------------------------------
    def preprocess_model(self, model: nn.Module, dtype: torch.dtype | None = None, **kwargs: Any) -> None:
        """Mark the (meta) model quantized and swap its layers; ``kwargs`` carry ``device_map`` and
        ``keep_in_fp32_modules``."""
        model.is_quantized = True
        model.quantization_method = self.quantization_config.quant_method
        self._process_model_before_weight_loading(model, dtype=dtype, **kwargs)

    def _process_model_before_weight_loading(self, model: nn.Module, **kwargs: Any) -> None:
        pass

    @staticmethod
    def get_modules_to_not_convert(model: nn.Module, skip_modules: list[str] | None = None,
                                   keep_in_fp32_modules: list[str] | None = None,
                                   add_default_skips: bool = False) -> list[str]:
        """The module names to leave unquantized: ``skip_modules`` (or, when ``None`` or with
        ``add_default_skips``, the defaults of :func:`get_keys_to_not_convert`) plus the modules kept in fp32."""
        names = get_keys_to_not_convert(model) if skip_modules is None or add_default_skips else []
        names += list(skip_modules or ()) + list(keep_in_fp32_modules or ())
        return sorted(set(names))

    def param_needs_quantization(self, model: nn.Module, param_name: str, **kwargs: Any) -> bool:
        """Whether the float tensor loaded into ``param_name`` is to be quantized."""
        return False

    # --- weights streaming in -------------------------------------------------------------------------
    def quantize_param(self, model: nn.Module, param_name: str, tensor: torch.Tensor,
                       device: torch.device) -> None:
        """Quantize the float ``tensor`` into the parameter ``param_name`` on ``device``."""
        raise NotImplementedError(f"{type(self).__name__} cannot quantize float weights.")

    def serialized_parts(self, param_name: str) -> list[str]:
        """The checkpoint suffixes (besides the parameter itself) one quantized parameter is stored with."""
        module, _, leaf = param_name.rpartition(".")
        return [name for name in self.serialized_names.get(leaf, ()) if name != leaf]

    def load_serialized(self, model: nn.Module, param_name: str, parts: dict[str, torch.Tensor],
                        device: torch.device) -> None:
        """Build the quantized parameter ``param_name`` from its stored tensors (``parts``: suffix → tensor,
        the parameter's own under its leaf name)."""
        raise NotImplementedError(f"{type(self).__name__} cannot read pre-quantized tensors.")

    # --- after loading --------------------------------------------------------------------------------
    def postprocess_model(self, model: nn.Module, **kwargs: Any) -> None:
        """Record the config on the model (``config.quantization_config``, ``hf_quantizer``)."""
        model.config.quantization_config = self.quantization_config
        model.hf_quantizer = self
        mark_quantized(model)
        self._process_model_after_weight_loading(model, **kwargs)

    def _process_model_after_weight_loading(self, model: nn.Module, **kwargs: Any) -> None:
        pass

    def remove_quantization_config(self, model: nn.Module) -> None:
        """Forget the quantization on ``model`` (after :meth:`dequantize`)."""
        for name in ("hf_quantizer", "quantization_method"):
            if name in model.__dict__:
                delattr(model, name)
        model.config.__dict__.pop("quantization_config", None)
        model.config.__dict__.pop("_is_quantized", None)
        model.is_quantized = False

    def dequantize(self, model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
        """Replace the quantized layers with float ones (with the quantization's loss) in ``dtype``
        (default: the dtype the model was loaded in)."""
        if dtype is None:
            dtype = getattr(model.config, "dtype", None)
            if isinstance(dtype, str):
                dtype = getattr(torch, dtype, None)
        model = self._dequantize(model, dtype=dtype)
        self.remove_quantization_config(model)
        return model

    def _dequantize(self, model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
        raise NotImplementedError(f"{self.quantization_config.quant_method} has no implementation of dequantize.")

    def get_state_dict_and_metadata(self, model: nn.Module) -> tuple[dict[str, torch.Tensor] | None, dict]:
        """The tensors to save and the safetensors metadata (``None``: the model's ``state_dict()``)."""
        return None, {}

    def memory_footprint(self, model: nn.Module) -> int | None:
        """Real bytes held by the quantized layers' storage and scales (``None``: count parameters)."""
        return None

    def is_serializable(self) -> bool:
        """Whether a quantized model can be saved (every method here writes its stored form)."""
        return True

    @property
    def is_trainable(self) -> bool:
        """Whether adapters on top of the quantized layers can be trained (not unless the layers have a
        backward: a method that has one says so)."""
        return False

    @property
    def is_qat_trainable(self) -> bool:
        """Whether the quantized model itself can be trained (quantization-aware training)."""
        return False

    @property
    def is_compileable(self) -> bool:
        return False


def has_adapters(model: nn.Module) -> bool:
    """Whether trainable adapters sit on the model as peft marks them: a ``PeftModel``, or a model whose
    ``_hf_peft_config_loaded`` is set (``add_adapter`` / ``load_adapter``, or an adapter of one's own
    that says so)."""
    if getattr(model, "_hf_peft_config_loaded", False):
        return True
    return any(cls.__name__.startswith("PeftModel") and cls.__module__.startswith("peft")
               for cls in type(model).__mro__)


def validate_quantization_for_training(model: nn.Module) -> None:
    """Refuse to train a quantized model the way transformers' Trainer does.

    Raises:
        ValueError: a compiled quantized model; a quantized model with no adapters (the quantized weights
            themselves cannot be trained) unless its method trains them (quantization-aware); a method
            whose layers have no backward.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if not getattr(model, "is_quantized", False):
        return
    if hasattr(model, "_orig_mod"):
        raise ValueError("You cannot fine-tune a quantized model compiled with torch.compile(): pass the model "
                         "before compiling it.")
    if not has_adapters(model) and not getattr(quantizer, "is_qat_trainable", False):
        raise ValueError("You cannot perform fine-tuning on purely quantized models: its quantized weights cannot "
                         "be trained. Attach trainable adapters (e.g. LoRA with peft) on top of the quantized model.")
    if quantizer is not None and not quantizer.is_trainable:
        method = quantizer.quantization_config.quant_method
        raise ValueError(f"The model is quantized with {getattr(method, 'value', method)}, which does not support "
                         "training.")

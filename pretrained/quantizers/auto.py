"""Choosing a quantizer: ``quant_method`` → config class and quantizer class, as transformers' tables.

``AUTO_QUANTIZATION_CONFIG_MAPPING`` and ``AUTO_QUANTIZER_MAPPING`` hold the methods ``pretrained`` runs;
``get_hf_quantizer`` reconciles a ``quantization_config`` argument with the one in ``config.json``
(the saved one wins, as in transformers). :func:`loading_hook` is what the loading pass calls
(registered in ``pretrained.loading.hooks.QUANTIZERS``).
"""

from __future__ import annotations

import warnings
from typing import Any

from pretrained.quantizers.awq import AwqQuantizer
from pretrained.quantizers.base import HfQuantizer
from pretrained.quantizers.bitsandbytes import Bnb4BitHfQuantizer, Bnb8BitHfQuantizer
from pretrained.quantizers.gptq import GptqHfQuantizer
from pretrained.quantizers.torchao import TorchAoHfQuantizer
from pretrained.utils.quantization_config import (
    AwqConfig,
    BitsAndBytesConfig,
    GPTQConfig,
    QuantizationConfigMixin,
    QuantizationMethod,
    TorchAoConfig,
)

AUTO_QUANTIZER_MAPPING: dict[str, type[HfQuantizer]] = {
    "bitsandbytes_4bit": Bnb4BitHfQuantizer,
    "bitsandbytes_8bit": Bnb8BitHfQuantizer,
    "torchao": TorchAoHfQuantizer,
    "gptq": GptqHfQuantizer,
    "awq": AwqQuantizer,
}

AUTO_QUANTIZATION_CONFIG_MAPPING: dict[str, type[QuantizationConfigMixin]] = {
    "bitsandbytes_4bit": BitsAndBytesConfig,
    "bitsandbytes_8bit": BitsAndBytesConfig,
    "torchao": TorchAoConfig,
    "gptq": GPTQConfig,
    "awq": AwqConfig,
}

# Config types whose loading-time fields (kernel backend, buffer sizes) an argument may change on a saved config.
LOADING_ATTRIBUTES_CONFIG_TYPES = (GPTQConfig, AwqConfig)


def _method_key(config: dict[str, Any]) -> str:
    """The table key of a dict config: ``bitsandbytes_4bit`` / ``_8bit`` from the flags, else ``quant_method``."""
    if config.get("load_in_8bit", False) or config.get("load_in_4bit", False):
        return "bitsandbytes_4bit" if config.get("load_in_4bit", False) else "bitsandbytes_8bit"
    method = config.get("quant_method")
    if method is None:
        raise ValueError("The quantization_config has no quant_method (and no load_in_4bit / load_in_8bit): "
                         "it does not say how the model was quantized.")
    return str(getattr(method, "value", method))


class AutoQuantizationConfig:
    """The config class for a ``quantization_config`` dict, picked by its ``quant_method``."""

    @classmethod
    def from_dict(cls, quantization_config_dict: dict[str, Any]) -> QuantizationConfigMixin:
        """The config object for a dict (a dict with ``load_in_4bit`` / ``load_in_8bit`` is bitsandbytes).

        Raises:
            ValueError: no method named, or one ``pretrained`` does not support.
        """
        key = _method_key(quantization_config_dict)
        if key not in AUTO_QUANTIZATION_CONFIG_MAPPING:
            raise ValueError(f"Unknown quantization type, got {key} - supported types are: "
                             f"{sorted(AUTO_QUANTIZATION_CONFIG_MAPPING)}")
        return AUTO_QUANTIZATION_CONFIG_MAPPING[key].from_dict(quantization_config_dict)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> QuantizationConfigMixin:
        """The ``quantization_config`` of a checkpoint's ``config.json``; ``kwargs`` update it."""
        from pretrained.configuration import PretrainedConfig

        data = PretrainedConfig.get_config_dict(pretrained_model_name_or_path)
        if data.get("quantization_config") is None:
            raise ValueError(f"Did not find a quantization_config in {pretrained_model_name_or_path}: the model "
                             "is not quantized.")
        config = cls.from_dict(data["quantization_config"])
        config.update(**kwargs)
        return config


class AutoHfQuantizer:
    """The quantizer for a config (object or dict), picked by its ``quant_method``."""

    @classmethod
    def from_config(cls, quantization_config: QuantizationConfigMixin | dict, **kwargs: Any) -> HfQuantizer:
        """Raises ``ValueError`` for a method ``pretrained`` cannot run, naming the ones it can."""
        if isinstance(quantization_config, dict):
            quantization_config = AutoQuantizationConfig.from_dict(quantization_config)
        method = quantization_config.quant_method
        key = str(getattr(method, "value", method))
        if key == QuantizationMethod.BITS_AND_BYTES.value:
            if not isinstance(quantization_config, BitsAndBytesConfig):
                raise TypeError("Found quant_method=bitsandbytes but quantization_config is not a BitsAndBytesConfig.")
            if not quantization_config.is_quantizable():
                raise ValueError("BitsAndBytesConfig asks for neither load_in_8bit nor load_in_4bit: set one of them.")
            key += "_8bit" if quantization_config.load_in_8bit else "_4bit"
        if key not in AUTO_QUANTIZER_MAPPING:
            raise ValueError(f"Unknown quantization type, got {key} - supported types are: "
                             f"{sorted(AUTO_QUANTIZER_MAPPING)}")
        return AUTO_QUANTIZER_MAPPING[key](quantization_config, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> HfQuantizer:
        return cls.from_config(AutoQuantizationConfig.from_pretrained(pretrained_model_name_or_path, **kwargs))

    @classmethod
    def merge_quantization_configs(cls, quantization_config: dict | QuantizationConfigMixin,
                                   quantization_config_from_args: QuantizationConfigMixin | None
                                   ) -> QuantizationConfigMixin:
        """The saved config, with the loading-time fields of the argument (GPTQ / AWQ); warns that the
        argument's other fields are ignored.

        Raises:
            ValueError: the argument is a config of another method than the saved one.
        """
        if isinstance(quantization_config, dict):
            quantization_config = AutoQuantizationConfig.from_dict(quantization_config)
        message = ""
        if quantization_config_from_args is not None:
            if isinstance(quantization_config_from_args, dict):
                quantization_config_from_args = AutoQuantizationConfig.from_dict(quantization_config_from_args)
            if type(quantization_config) is not type(quantization_config_from_args):
                raise ValueError(
                    f"The model is quantized with {type(quantization_config).__name__} but you are passing a "
                    f"{type(quantization_config_from_args).__name__} config; pass the same config class (or none).")
            message = ("You passed `quantization_config` to `from_pretrained` but the model you're loading already "
                       "has a `quantization_config` attribute. The `quantization_config` from the model will be used.")
            if isinstance(quantization_config, LOADING_ATTRIBUTES_CONFIG_TYPES):
                loading = quantization_config_from_args.get_loading_attributes()
                for name, value in loading.items():
                    setattr(quantization_config, name, value)
                if loading:
                    message += f" However, loading attributes (e.g. {sorted(loading)}) are taken from the argument."
        if message:
            warnings.warn(message, stacklevel=3)
        return quantization_config

    @staticmethod
    def supports_quant_method(quantization_config_dict: dict[str, Any]) -> bool:
        """Whether a saved ``quantization_config`` names a method this library knows."""
        return _method_key(quantization_config_dict) in AUTO_QUANTIZATION_CONFIG_MAPPING


def register_quantization_config(method: str) -> Any:
    """Class decorator: register a config class for ``method``."""
    return _registrar(AUTO_QUANTIZATION_CONFIG_MAPPING, method, QuantizationConfigMixin, "Config")


def register_quantizer(name: str) -> Any:
    """Class decorator: register a quantizer class for ``name`` (and its loading hook)."""
    hook = name.split("_")[0] if name.startswith("bitsandbytes") else name
    return _registrar(AUTO_QUANTIZER_MAPPING, name, HfQuantizer, "Quantizer", lambda: _register_hook(hook))


def _registrar(table: dict[str, type], key: str, base: type, what: str, then: Any = None) -> Any:
    """A class decorator putting a subclass of ``base`` into ``table`` under a new ``key``, then calling ``then``."""

    def register(cls: type) -> type:
        if key in table:
            raise ValueError(f"{what} '{key}' already registered")
        if not issubclass(cls, base):
            raise TypeError(f"{what} must extend {base.__name__}")
        table[key] = cls
        if then is not None:
            then()
        return cls

    return register


def get_hf_quantizer(config: Any, quantization_config: Any, device_map: Any = None, weights_only: bool = True,
                     user_agent: dict | None = None) -> tuple[HfQuantizer | None, Any, Any]:
    """``(quantizer or None, config, device_map)`` for a load: the saved ``config.quantization_config``
    (pre-quantized checkpoint) merged with the argument, or the argument alone; the quantizer has
    checked the environment and updated the device map. ``config.quantization_config`` is set."""
    quantizer = _choose(config, quantization_config)
    if quantizer is None:
        return None, config, device_map
    quantizer.validate_environment(device_map=device_map, weights_only=weights_only)
    device_map = quantizer.update_device_map(device_map)
    if user_agent is not None:
        method = quantizer.quantization_config.quant_method
        user_agent["quant"] = getattr(method, "value", method)
    return quantizer, config, device_map


def _choose(config: Any, argument: Any) -> HfQuantizer | None:
    """The quantizer for ``config`` (its saved ``quantization_config`` wins over ``argument``); sets
    ``config.quantization_config`` to the config object used."""
    saved = getattr(config, "quantization_config", None)
    if saved is not None and not isinstance(saved, (dict, QuantizationConfigMixin)):
        raise TypeError(f"config.quantization_config must be a dict or a quantization config, got "
                        f"{type(saved).__name__}.")
    pre_quantized = saved is not None
    if pre_quantized and isinstance(saved, dict) and not AutoHfQuantizer.supports_quant_method(saved):
        warnings.warn(f"Unknown quantization method in the saved quantization_config ({_method_key(saved)}); "
                      "the weights are loaded without quantization.", stacklevel=3)
        pre_quantized = False
    if not pre_quantized and argument is None:
        return None
    if pre_quantized:
        config.quantization_config = AutoHfQuantizer.merge_quantization_configs(saved, argument)
    else:
        config.quantization_config = (AutoQuantizationConfig.from_dict(argument) if isinstance(argument, dict)
                                      else argument)
    return AutoHfQuantizer.from_config(config.quantization_config, pre_quantized=pre_quantized)


def loading_hook(quantization_config: Any, model_config: Any) -> Any:
    """The ``QUANTIZERS`` factory: the quantizer for a load, wrapped as a hook of the loading pass (which
    runs ``validate_environment`` and the rest with the load's own options).

    ``quantization_config`` is the ``from_pretrained`` argument, or the saved one when no argument was given.
    """
    from pretrained.quantizers.hook import QuantizerHook

    saved = getattr(model_config, "quantization_config", None)
    return QuantizerHook(_choose(model_config, None if quantization_config is saved else quantization_config))


def _register_hook(method: str) -> None:
    from pretrained.loading.hooks import QUANTIZERS

    QUANTIZERS.setdefault(method, loading_hook)


for _method in ("bitsandbytes", "torchao", "gptq", "awq"):
    _register_hook(_method)

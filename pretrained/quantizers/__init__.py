"""Quantization methods, as transformers' ``transformers.quantizers``: the ``HfQuantizer`` base, the
Auto tables and one file per backend (``bitsandbytes``, ``torchao``, ``gptq``, ``awq``). Importing the
package registers the built-in methods with the loading pass (``pretrained.loading.hooks.QUANTIZERS``)."""

from pretrained.quantizers.auto import (
    AUTO_QUANTIZATION_CONFIG_MAPPING,
    AUTO_QUANTIZER_MAPPING,
    AutoHfQuantizer,
    AutoQuantizationConfig,
    get_hf_quantizer,
    register_quantization_config,
    register_quantizer,
)
from pretrained.quantizers.base import HfQuantizer

__all__ = ["AUTO_QUANTIZATION_CONFIG_MAPPING", "AUTO_QUANTIZER_MAPPING", "AutoHfQuantizer", "AutoQuantizationConfig",
           "HfQuantizer", "get_hf_quantizer", "register_quantization_config", "register_quantizer"]

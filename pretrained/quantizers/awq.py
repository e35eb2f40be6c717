"""AWQ checkpoints on the CPU: ``nn.Linear`` layers swapped for :class:`AWQLinear`, whose buffers
(``qweight``, ``qzeros``, ``scales``, ``bias``) carry the checkpoint's names and AutoAWQ's GEMM packing.

transformers runs them through gptqmodel's kernels; here the kernels are ours and no package is needed.
Only the GEMM layout (AutoAWQ's default ``version="gemm"``) is read: GEMV / GEMV-fast / llm-awq checkpoints
pack their words differently and are refused by name. The ``backend`` field (exllama, marlin, ...) names
a kernel family that repacks GEMM words at load time, so it does not change what is read, and it is
ignored. Quantizing float weights needs AWQ's calibration, which is refused, naming autoawq.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pretrained.quantizers.gptq import PackedInt4Quantizer
from pretrained.quantizers.int4_linear import AWQLinear
from pretrained.utils.quantization_config import AwqFormat


class AwqQuantizer(PackedInt4Quantizer):
    """Reads AWQ GEMM checkpoints (``AwqConfig``: 4 bits, any group size, with or without zero point) into
    :class:`AWQLinear` layers; the skip list is ``modules_to_not_convert`` plus the output head."""

    layer_class = AWQLinear
    calibration_package = "autoawq"

    def validate_environment(self, *args: Any, **kwargs: Any) -> None:
        version = str(getattr(self.quantization_config.format, "value", self.quantization_config.format))
        if version != AwqFormat.GEMM.value:
            raise ValueError(f"AwqConfig(version={version!r}): pretrained reads AWQ checkpoints packed in the "
                             f"'gemm' layout only; a {version} checkpoint packs its words differently "
                             "(load it with transformers and gptqmodel, or re-export it as gemm).")
        super().validate_environment(*args, **kwargs)

    def _new_layer(self, module: nn.Linear) -> nn.Module:
        config = self.quantization_config
        return AWQLinear(module.in_features, module.out_features, module.bias is not None, config.bits,
                         config.group_size, dtype=torch.float16)

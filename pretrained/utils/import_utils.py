"""``is_*_available()``: which optional packages and features this installation can use.

Answers are truthful for pretrained: a package counts only if it is installed, and a feature that
pretrained does not implement (TPU/XLA, flash-attention kernels, DeepSpeed, apex) answers False even
when its package is installed, so a program takes the branch that works here.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable

# Optional packages pretrained works with when present.
_PACKAGES = {
    "accelerate": "accelerate", "datasets": "datasets", "peft": "peft",
    "sentencepiece": "sentencepiece", "tokenizers": "tokenizers",
    "scipy": "scipy", "sklearn": "sklearn", "pandas": "pandas", "nltk": "nltk", "rich": "rich",
    "tensorboard": "tensorboard", "wandb": "wandb", "psutil": "psutil", "protobuf": "google.protobuf",
    "jinja": "jinja2", "torch": "torch",
    "bitsandbytes": "bitsandbytes", "torchao": "torchao",
}


@functools.cache
def _installed(module: str) -> bool:
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that fails to import, or a broken spec
        return False


def _check(name: str, doc: str, answer: Callable[[], bool]) -> Callable[..., bool]:
    def is_available(*args: object, **kwargs: object) -> bool:  # some take a min_version, as transformers'
        return answer()

    is_available.__name__ = is_available.__qualname__ = f"is_{name}_available"
    is_available.__doc__ = doc
    return is_available


def _available(package: str) -> Callable[..., bool]:
    return _check(package, f"Whether the optional package ``{_PACKAGES[package]}`` is installed.",
                  lambda: _installed(_PACKAGES[package]))


def _not_in_pretrained(feature: str) -> Callable[..., bool]:
    return _check(feature, f"Always False: pretrained does not implement {feature.replace('_', ' ')}.",
                  lambda: False)


is_accelerate_available = _available("accelerate")
is_bitsandbytes_available = _available("bitsandbytes")
is_torchao_available = _available("torchao")
is_datasets_available = _available("datasets")
is_peft_available = _available("peft")
is_sentencepiece_available = _available("sentencepiece")
is_tokenizers_available = _available("tokenizers")
is_scipy_available = _available("scipy")
is_sklearn_available = _available("sklearn")
is_pandas_available = _available("pandas")
is_nltk_available = _available("nltk")
is_rich_available = _available("rich")
is_tensorboard_available = _available("tensorboard")
is_wandb_available = _available("wandb")
is_psutil_available = _available("psutil")
is_protobuf_available = _available("protobuf")
is_jinja_available = _available("jinja")
is_torch_available = _available("torch")


def is_torch_cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def is_torch_mps_available(min_version: str | None = None) -> bool:
    """Whether torch can use Apple's MPS backend."""
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def is_torch_bf16_gpu_available() -> bool:
    """Whether the CUDA device computes in bfloat16."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def is_torch_tf32_available() -> bool:
    """Whether the CUDA device has TF32 matmuls (Ampere or newer)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


# Features pretrained does not implement: False even with their package installed (see the module doc).
is_torch_xla_available = _not_in_pretrained("torch_xla")
is_torch_npu_available = _not_in_pretrained("torch_npu")
is_torch_xpu_available = _not_in_pretrained("torch_xpu")
is_torch_hpu_available = _not_in_pretrained("torch_hpu")
is_torch_mlu_available = _not_in_pretrained("torch_mlu")
is_flash_attn_2_available = _not_in_pretrained("flash_attn_2")
is_flash_attn_3_available = _not_in_pretrained("flash_attn_3")
is_deepspeed_available = _not_in_pretrained("deepspeed")
is_apex_available = _not_in_pretrained("apex")
is_liger_kernel_available = _not_in_pretrained("liger_kernel")
is_vision_available = _not_in_pretrained("vision")
is_torchvision_available = _not_in_pretrained("torchvision")

# transformers keeps these three in transformers.integrations, not transformers.utils.
INTEGRATION_CHECKS = ("is_deepspeed_available", "is_tensorboard_available", "is_wandb_available")

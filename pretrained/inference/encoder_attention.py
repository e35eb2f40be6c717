"""Unmasked self-attention of many queries (an image encoder's 197 patches, a speech encoder's 1,500 frames)
in one C++ call, for :class:`~pretrained.inference.many_rows.ManyRowsKernels`.

PyTorch's CPU flash kernel runs these shapes (head size 64) at about 80% of the fp32 matrix products'
speed: it rescales its partial sums for every block of keys and multiplies through small general
matrix calls. Here each (batch, head) item is one thread's: its keys are transposed once into a packed
block, then for 24 queries at a time the scores are computed by 8 x 48 register tiles over the whole key
length, the softmax is taken exactly in two passes over that row block (max, then exponentials and their
sum), and the values are summed by register tiles of up to 24 accumulators, scaled by the inverse sum on
the way out. Source in :mod:`~pretrained.inference.encoder_attention_source`, built once per machine by
:func:`pretrained.utils.native.load_library`.

Served: fp32 CPU ``(batch, heads, length, head_dim)`` queries, keys and values of one length
(self-attention) with the last dimension contiguous, no mask, no dropout, not causal, as many key as query
heads, a head size that is a multiple of 16 up to 128, ``MIN_LENGTH`` to ``MAX_LENGTH`` positions, and at
least two items per thread (items are not split between threads). The result is laid out ``(batch, length, heads, head_dim)``
in memory (as the flash kernel's), so merging the heads afterwards is a view. It differs from SDPA's by
float32 rounding (another order of summation).
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from pretrained.inference.encoder_attention_source import ENCODER_ATTENTION_SOURCE
from pretrained.utils.native import load_library

_FLAGS = ("-O3", "-mavx512f", "-mavx512dq", "-mfma", "-ffp-contract=off")
_built: dict[str, Any] = {}
# Shorter sequences stay with SDPA (the packing and tiles' padding are not paid back).
MIN_LENGTH = 128
# Longer ones too: a thread holds all of an item's keys transposed and 24 rows of scores over them.
MAX_LENGTH = 8192
# False: ManyRowsKernels leaves attention to SDPA (for measuring)
ENABLED = True


def load() -> Any:
    """The built library (ctypes), or ``None`` without AVX-512 or a C++ compiler."""
    if "lib" not in _built:
        lib = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            signature = (ctypes.c_int64, [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 4 + [ctypes.c_float, ctypes.c_int64])
            lib = load_library("encoder_attention", ENCODER_ATTENTION_SOURCE, _FLAGS, {"encoder_attention": signature},
                               inductor_fallback=True)  # fmt: skip
        _built["lib"] = lib
    return _built["lib"]


def _plain(t: Any) -> bool:
    return type(t) is torch.Tensor and t.dtype is torch.float32 and t.is_cpu and t.dim() == 4 and t.stride(3) == 1


def encoder_attention(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                      is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> Any:  # fmt: skip
    """``F.scaled_dot_product_attention`` with SDPA's arguments where the kernel serves the call (see the
    module docstring), else ``None``."""
    if attn_mask is not None or dropout_p or is_causal or torch.is_grad_enabled():
        return None
    if not (_plain(query) and _plain(key) and _plain(value)) or not query.shape == key.shape == value.shape:
        return None
    batch, heads, length, d = query.shape
    threads = torch.get_num_threads()
    if not MIN_LENGTH <= length <= MAX_LENGTH or d % 16 or d > 128 or batch * heads < 2 * threads:
        return None
    lib = load()
    if lib is None:
        return None
    out = torch.empty(batch, length, heads, d).transpose(1, 2)
    strides = torch.tensor([*query.stride()[:3], *key.stride()[:3], *value.stride()[:3], *out.stride()[:3]],
                           dtype=torch.int64)  # fmt: skip
    lib.encoder_attention(query.data_ptr(), key.data_ptr(), value.data_ptr(), out.data_ptr(), strides.data_ptr(),
                          batch, heads, length, d, d**-0.5 if scale is None else scale, threads)  # fmt: skip
    return out

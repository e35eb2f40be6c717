"""``Int8DynamicKernels``: a torch function mode that runs the linears of torchao's
``Int8DynamicActivationInt8WeightConfig`` on the CPU's integer dot-product instructions (AVX-512 VNNI).

torchao's layer, on the CPU, computes ``y = (q(x) @ w_q.T) * s_x * s_w + b`` in a dozen eager tensor
operations (per-row absolute maximum, scale, reciprocal, multiply, round, clamp, offset to uint8, the
integer product, the offset's correction, three multiplies by scales and the bias), which on an encoder
costs more than the fp32 product it replaces. This route computes the same numbers in three passes:

1. one C++ pass per row of ``x``: ``s_x = max|x| / 127.5`` (at least float32's eps; rounded to bf16 first
   when ``x`` is bf16, as torchao computes it in the input's dtype), ``q = clamp(round(x * (1 / s_x)),
   -128, 127) + 128`` as uint8;
2. ``torch._int_mm`` of the uint8 rows with the int8 weight (oneDNN's ``vpdpbusd`` kernel; exact int32 sums);
3. one C++ pass over the int32 sums: subtract ``128 * sum_k w_q[n, k]`` (the uint8 offset), multiply by
   ``s_x`` and ``s_w``, add the bias, write fp32 or bf16 (for bf16, rounded where torchao rounds).

In fp32 the results equal torchao's bit for bit (tests check it); in bf16 they are rounded where torchao
rounds. The weight's int8 rows, fp32 scales and offsets are kept per weight object in a weak table (rebuilt
when the weight's data changes); the uint8 rows and int32 sums go to per-thread scratch buffers (fresh
tensors of a few MB would fault in new pages on every call).

With the linears ~4x faster than fp32, an encoder's attention becomes a fifth of its time. The mode also
sends self-attention calls (no dropout, not causal, a boolean padding mask ``(batch, 1, 1, keys)`` or none,
head size a multiple of 16) to :func:`self_attention`, a C++ kernel that keeps one head's keys and values in
fp32 scratch and works on four query rows at a time: on MiniLM's shapes (12 heads of 32, 20-90 tokens,
1 thread) it takes 0.9-1.0x SDPA's time in fp32 and 0.65-0.95x in bf16, and matches it to float rounding
(its exp is a polynomial with relative error ~2e-7).

Use it directly around a model's forward: ``with torch.no_grad(), Int8DynamicKernels(): model(**inputs)``.

The mode takes an ``F.linear`` call when grad is off, the input is an fp32 or bf16 CPU tensor, and the
weight is a torchao ``Int8Tensor`` made by that config with per-row activation and weight scales, symmetric
activations and no activation pre-scale (the config's defaults); anything else (other layers, autograd,
per-tensor or asymmetric settings, a CPU without AVX-512 VNNI or a C++ compiler) runs as without it. Like
:class:`~pretrained.inference.many_rows.ManyRowsKernels`, modes are per thread and last for the ``with``
block; the feature-extraction pipeline enters it when its model has such weights.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

from pretrained.inference.int8_dynamic_sources import KERNEL_SOURCE
from pretrained.inference.quant_kernels import cpu_has_vnni
from pretrained.utils.native import load_library

_EPS = torch.finfo(torch.float32).eps  # torchao's floor for the activation scale
_PLAIN = (torch.Tensor, torch.nn.Parameter)
_SDPA_ARGS = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")
_built: dict[str, Any] = {}
# every product and sum rounded separately, as the flags of inductor's toolchain (which built them before) had it
_FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma", "-ffp-contract=off")
_local = threading.local()  # per-thread scratch buffers
# weight object -> (its data pointer, (int8 (out, in), fp32 scales (out,), int32 offsets (out,)) or None)
_prepared: WeakIdKeyDictionary = WeakIdKeyDictionary()  # by identity: tensors do not compare with ==


def load_kernels() -> dict[str, Any] | None:
    """Build the C++ passes once per machine (seconds; then loaded from the kernel cache in milliseconds) and
    return their ctypes functions, or ``None`` without AVX-512 VNNI or a working C++ toolchain."""
    if "kernels" not in _built:
        _built["kernels"] = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability() and cpu_has_vnni():
            p, i64 = ctypes.c_void_p, ctypes.c_int64
            quantize = [p, p, p, i64, i64, ctypes.c_float, ctypes.c_int]
            attend = [p] * 3 + [i64] * 9 + [p, p] + [i64] * 4 + [ctypes.c_float, ctypes.c_int]
            signatures = {"int8_quantize_rows_f32": quantize, "int8_quantize_rows_bf16": quantize,
                          "int8_scale_rows": [p] * 6 + [i64, i64, ctypes.c_int, ctypes.c_int],
                          "int8_attend_f32": attend, "int8_attend_bf16": attend}  # fmt: skip
            lib = load_library("int8_dynamic", KERNEL_SOURCE, _FLAGS,
                               {symbol: (None, args) for symbol, args in signatures.items()},
                               inductor_fallback=True)  # fmt: skip
            if lib is not None and _int_mm_takes_uint8():  # else torchao's own path remains
                _built["kernels"] = {symbol: getattr(lib, symbol) for symbol in signatures}
    return _built["kernels"]


def _int_mm_takes_uint8() -> bool:
    """Whether this torch multiplies uint8 by int8 on the CPU (``torch._int_mm``: since torch 2.12)."""
    try:
        probe = torch._int_mm(torch.full((2, 64), 255, dtype=torch.uint8), torch.ones(64, 8, dtype=torch.int8))
    except (RuntimeError, TypeError):
        return False
    return bool((probe == 255 * 64).all())


def _scratch(name: str, numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A per-thread buffer of at least ``numel`` elements, reused across calls: a fresh tensor of a few MB
    is new memory from the OS each time, and faulting its pages in costs as much as the pass that fills it."""
    buffers = _local.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.numel() < numel:
        buffer = buffers[name] = torch.empty(numel, dtype=dtype)
    return buffer[:numel]


def quantize_rows(x: torch.Tensor, reuse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (fp32 or bf16, ``(rows, in)``) rounded per row as torchao's int8 dynamic activations are:
    the int8 values plus 128 as uint8, and the fp32 scale of each row. ``reuse``: the values go into this
    thread's scratch buffer (valid until the next call). Needs :func:`load_kernels`."""
    kernels = _built["kernels"]
    x = x.contiguous()
    rows, k = x.shape
    q = _scratch("q", rows * k, torch.uint8).view(rows, k) if reuse else torch.empty((rows, k), dtype=torch.uint8)
    scales = torch.empty(rows, dtype=torch.float32)
    name = "int8_quantize_rows_bf16" if x.dtype == torch.bfloat16 else "int8_quantize_rows_f32"
    kernels[name](x.data_ptr(), q.data_ptr(), scales.data_ptr(), rows, k, _EPS, torch.get_num_threads())
    return q, scales


def int8_dynamic_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                        bias: torch.Tensor | None = None, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` with ``x`` rounded to int8 per row and int8 ``weight`` ``(out, in)`` with fp32
    ``weight_scale`` ``(out,)``, as torchao's int8 dynamic layer computes it; ``x`` fp32 or bf16 on the CPU,
    output in ``x``'s dtype. ``offsets`` (int32 ``128 * weight.sum(1)``) saves a pass over the weight.
    Needs :func:`load_kernels`."""
    n, k = weight.shape
    lead = x.shape[:-1]
    q, x_scales = quantize_rows(x.reshape(-1, k), reuse=True)
    if offsets is None:
        offsets = weight.sum(1, dtype=torch.int32) * 128
    sums = torch._int_mm(q, weight.t(), out=_scratch("sums", q.shape[0] * n, torch.int32).view(q.shape[0], n))
    out = torch.empty((q.shape[0], n), dtype=x.dtype)
    if bias is not None:
        bias = bias.float().contiguous()
    _built["kernels"]["int8_scale_rows"](
        sums.data_ptr(), offsets.data_ptr(), x_scales.data_ptr(), weight_scale.data_ptr(),
        None if bias is None else bias.data_ptr(), out.data_ptr(), q.shape[0], n, int(x.dtype == torch.bfloat16),
        torch.get_num_threads())  # fmt: skip
    return out.reshape(*lead, n)


def _torchao_int8_per_row(weight: Any) -> bool:
    """Whether ``weight`` is a torchao ``Int8Tensor`` with per-row int8 values and scales, symmetric (zero
    points all zero) and without an activation pre-scale: what both routes below reproduce."""
    if type(weight).__name__ != "Int8Tensor" or not type(weight).__module__.startswith("torchao."):
        return False
    if getattr(weight, "act_pre_scale", None) is not None or getattr(weight, "reduce_range", False):
        return False
    qdata, scale = weight.qdata, weight.scale
    zero = getattr(weight, "zero_point", None)
    return (qdata.dim() == 2 and qdata.dtype == torch.int8 and qdata.device.type == "cpu"
            and list(weight.block_size) == [1, qdata.shape[1]] and scale.numel() == qdata.shape[0]
            and (zero is None or not bool(zero.any())))  # fmt: skip


def _torchao_int8_dynamic(weight: Any) -> bool:
    """Whether ``weight`` is a torchao ``Int8Tensor`` of the int8-dynamic config with the settings this
    route reproduces (symmetric per-row activations, per-row weight scales, no pre-scale)."""
    kwargs = getattr(weight, "act_quant_kwargs", None)
    if kwargs is None or not _torchao_int8_per_row(weight) or getattr(weight, "act_quant_scale", None) is not None:
        return False
    if type(kwargs.granularity).__name__ != "PerRow" or getattr(kwargs.mapping_type, "name", "") != "SYMMETRIC":
        return False
    return not getattr(kwargs, "reduce_range", False)


def torchao_int8_weight_only(weight: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The int8 values ``(out, in)`` and fp32 scales ``(out,)`` (views of the weight's own tensors) of a torchao
    ``Int8Tensor`` made by ``Int8WeightOnlyConfig`` per row, whose layer computes ``(x @ q.T) * scale``: the
    int8 weight-only kernel of :mod:`~pretrained.inference.quant_kernels` computes the same (``None`` for any
    other weight, or when the tensors are not contiguous fp32 scales and int8 values on the CPU)."""
    if getattr(weight, "act_quant_kwargs", True) is not None or not _torchao_int8_per_row(weight):
        return None
    qdata, scale = weight.qdata, weight.scale
    if not qdata.is_contiguous() or not scale.is_contiguous() or scale.dtype != torch.float32:
        return None
    return qdata, scale.view(-1)


def _prepare(weight: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The int8 rows, fp32 scales and int32 offsets of a torchao weight this route serves (``None`` for
    others), kept per weight object and rebuilt when its data changes."""
    qdata = getattr(weight, "qdata", None)
    if not isinstance(qdata, torch.Tensor):
        return None
    entry = _prepared.get(weight)
    if entry is None or entry[0] != qdata.data_ptr():
        if not _torchao_int8_dynamic(weight):
            entry = (qdata.data_ptr(), None)
        else:
            q = qdata.contiguous()
            scale = weight.scale.reshape(-1).float().contiguous()
            entry = (qdata.data_ptr(), (q, scale, q.sum(1, dtype=torch.int32) * 128))
        _prepared[weight] = entry
    return entry[1]


def self_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   mask: torch.Tensor | None = None, scale: float | None = None) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` for an encoder's self-attention: ``(batch, heads, seq, head_dim)``
    fp32 or bf16 CPU inputs of one shape (head_dim a multiple of 16), ``mask`` ``None`` or boolean
    ``(batch, 1, 1, seq)`` (``True`` = attend) with a key for every batch. Returns a ``(batch, heads, seq,
    head_dim)`` view of a ``(batch, seq, heads, head_dim)`` tensor (merging the heads back is free). Needs
    :func:`load_kernels`; :func:`attention_fits` tells whether the inputs fit."""
    b, h, s, d = query.shape
    out = torch.empty((b, s, h, d), dtype=query.dtype)
    keys = None if mask is None else mask.reshape(b, s).to(torch.uint8).contiguous()
    name = "int8_attend_bf16" if query.dtype == torch.bfloat16 else "int8_attend_f32"
    strides = [stride for t in (query, key, value) for stride in t.stride()[:3]]
    _built["kernels"][name](query.data_ptr(), key.data_ptr(), value.data_ptr(), *strides,
                            None if keys is None else keys.data_ptr(), out.data_ptr(), b, h, s, d,
                            d**-0.5 if scale is None else scale, torch.get_num_threads())  # fmt: skip
    return out.transpose(1, 2)


def attention_fits(query: Any, key: Any, value: Any, attn_mask: Any = None, dropout_p: float = 0.0,
                   is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> bool:
    """Whether an ``F.scaled_dot_product_attention`` call is one :func:`self_attention` computes."""
    tensors = (query, key, value)
    if any(type(t) is not torch.Tensor for t in tensors) or dropout_p or is_causal:
        return False
    if query.dim() != 4 or query.dtype not in (torch.float32, torch.bfloat16) or query.device.type != "cpu":
        return False
    if any(t.shape != query.shape or t.dtype != query.dtype or t.device != query.device or t.stride(-1) != 1
           for t in (key, value)) or query.stride(-1) != 1:  # fmt: skip
        return False
    b, _, s, d = query.shape
    if d % 16 or s == 0 or s > 4096:
        return False
    if attn_mask is None:
        return True
    return (type(attn_mask) is torch.Tensor and attn_mask.dtype == torch.bool and attn_mask.shape == (b, 1, 1, s)
            and bool(attn_mask.reshape(b, s).any(1).all()))  # fmt: skip


class Int8DynamicKernels(TorchFunctionMode):
    """Run torchao int8-dynamic linears through the VNNI route, and an encoder's self-attention through
    :func:`self_attention` (see the module docstring)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if not torch.is_grad_enabled():
            if func is F.linear:
                out = self._linear(*args, **kwargs)
                if out is not None:
                    return out
            elif (func is F.scaled_dot_product_attention and load_kernels() is not None
                  and attention_fits(*args, **kwargs)):
                call = dict(zip(_SDPA_ARGS, args), **kwargs)
                return self_attention(call["query"], call["key"], call["value"], call.get("attn_mask"),
                                      call.get("scale"))
        return func(*args, **kwargs)

    @classmethod
    def around(cls, context: Callable[[], Any]) -> Callable[[], Any]:
        """A context factory that enters ``context()`` and then this mode (a pipeline's inference context)."""

        def enter() -> contextlib.ExitStack:
            stack = contextlib.ExitStack()
            stack.enter_context(context())
            stack.enter_context(cls())
            return stack

        return enter

    @staticmethod
    def _linear(x: Any, weight: Any, bias: Any = None) -> torch.Tensor | None:
        if type(x) not in _PLAIN or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16):
            return None
        if bias is not None and (type(bias) not in _PLAIN or bias.device.type != "cpu"):
            return None
        if x.dim() == 0 or x.numel() == 0 or type(weight).__name__ != "Int8Tensor" or load_kernels() is None:
            return None
        prepared = _prepare(weight)
        if prepared is None or x.shape[-1] != prepared[0].shape[1]:
            return None
        return int8_dynamic_linear(x, *prepared[:2], bias, prepared[2])


def has_int8_dynamic_weights(model: torch.nn.Module) -> bool:
    """Whether any parameter of ``model`` is a weight this route serves."""
    return any(_torchao_int8_dynamic(p) for p in model.parameters())

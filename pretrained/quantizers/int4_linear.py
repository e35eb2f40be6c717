"""Linear layers holding packed integer weights: GPTQ and AWQ checkpoints (int4, group-wise) and int8
weight-only (one scale per output), run on the CPU by the kernels of :mod:`pretrained.inference.quant_kernels`.

The buffers are named and shaped exactly as in the checkpoints (``qweight``, ``qzeros``, ``scales``,
``g_idx``, ``bias``), so a model whose ``nn.Linear`` layers are swapped for these loads such a checkpoint as
it is and saves it back unchanged. The kernels want one layout (GPTQ's words, contiguous groups, zero points
as bytes): a layer derives what it needs from its buffers on its first forward and keeps it in a cache that
is rebuilt when a buffer is replaced or loaded (``load_state_dict``, ``.to()``, assignment). For GPTQ without act-order that is only the
unpacked zero points (1 byte per group and output); AWQ layers and act-order GPTQ layers keep a repacked
copy of their words too (a second ``in * out / 2`` bytes).

``kernel`` (an attribute, default ``"auto"``) picks the route of :mod:`~pretrained.inference.quant_kernels`;
``"vnni"`` trades exactness (activations rounded to int8) for compute on CPUs with AVX-512 VNNI.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pretrained.inference import packed_memory, quant_kernels
from pretrained.quantizers import int4_formats as formats


def _check_linear_shape(cls: str, in_features: int, out_features: int, bits: int, group_size: int,
                        pack_out: bool) -> None:  # fmt: skip
    per = 32 // bits
    if group_size != -1 and (group_size <= 0 or in_features % group_size):
        raise ValueError(f"{cls}: in_features ({in_features}) must be divisible by group_size ({group_size})")
    if in_features % 8 or (not pack_out and in_features % per):
        raise ValueError(f"{cls}: in_features ({in_features}) must be divisible by {max(8, per)}")
    if out_features % per:
        raise ValueError(f"{cls}: out_features ({out_features}) must be divisible by {per} for bits={bits}")


def _check_buffer(layer: nn.Module, name: str, shape: tuple[int, ...], dtypes: tuple[torch.dtype, ...]) -> None:
    t = getattr(layer, name)
    if t is None:
        raise ValueError(f"{type(layer).__name__}: buffer {name!r} is missing")
    if tuple(t.shape) != shape:
        raise ValueError(f"{type(layer).__name__}: buffer {name!r} has shape {tuple(t.shape)}, expected {shape} "
                         f"for in_features={layer.in_features}, out_features={layer.out_features}")  # fmt: skip
    if t.dtype not in dtypes:
        raise ValueError(f"{type(layer).__name__}: buffer {name!r} has dtype {t.dtype}, expected one of {dtypes}")


_FLOATS = (torch.float16, torch.bfloat16, torch.float32)


class _PackedLinear(nn.Module):
    """What GPTQ, AWQ and int8 layers share: the kernel cache, shape checks on load, ``dequantize``."""

    _sources: tuple[str, ...] = ()
    kernel: str = "auto"

    def _cache(self) -> dict[str, Any]:
        """The kernel tensors, rebuilt (after :meth:`check_buffers`) when a source buffer was replaced."""
        cache = self.__dict__.get("_kernel_cache")
        if cache is not None and torch.compiler.is_compiling():
            # Traced, each identity check below becomes a guard run in Python before every compiled call,
            # and each buffer it reads an input of the graph: on the ~100M int4 Llama 420 such guards and
            # 252 inputs, 7% of a compiled decode step's CPU time (7.15 -> 6.66 ms on one thread). The cache
            # is dropped where buffers change instead (_drop_cache); the step's guard on it then retraces.
            return cache
        buffers = self._buffers
        if cache is not None:
            for name, source in zip(self._sources, cache["sources"]):
                if buffers[name] is not source:
                    break
            else:
                return cache
        self.check_buffers()
        with torch.no_grad():
            cache = {"sources": tuple(buffers[n] for n in self._sources), **self._build_cache()}
        self.__dict__["_kernel_cache"] = cache
        return cache

    def _eager_kernel(self, x: torch.Tensor, cache: dict[str, Any]) -> str | None:
        """The C++ kernel this call goes straight to (eager, fp32, few rows: ``"cpp"``, or ``"vnni"`` when
        asked for), skipping the per-call checks of the general entry points (the weights were checked
        when the cache was built); ``None``: through the general entry point."""
        if (torch.compiler.is_compiling() or not cache["fast"] or not x.is_cpu or x.dtype != torch.float32
                or x.numel() > quant_kernels.SMALL_ROWS * x.shape[-1] or torch.is_grad_enabled()):  # fmt: skip
            return None
        if self.kernel == "auto":
            return "cpp" if quant_kernels.kernels_ready() else None
        if self.kernel == "vnni":
            return "vnni" if cache.get("vnni") and quant_kernels.vnni_ready() else None
        return None

    def _dequantized_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` times the dequantized weight: layouts the kernels do not take, and traces that find no
        kernel cache (building it checks buffer values, which does not trace; the next eager call builds
        it, and the trace's guard on it being absent then retraces onto the kernels)."""
        bias = None if self.bias is None else self.bias.float()
        return torch.nn.functional.linear(x.float(), self.dequantized_weight(), bias).to(x.dtype)

    def _int4_forward(self, x: torch.Tensor, cache: dict[str, Any]) -> torch.Tensor:
        """``x`` times the int4 weight of ``cache`` (GPTQ's word layout; input already permuted)."""
        kernel = self._eager_kernel(x, cache)
        args = (cache["qweight"], cache["zeros"], cache["scales"], cache["group_size"], cache["bias"])
        if kernel is not None:
            return (quant_kernels.int4_rows_cpp if kernel == "cpp" else quant_kernels.int4_rows_vnni)(x, *args)
        return quant_kernels.int4_linear(x, *args, route=self.kernel)

    def _drop_cache(self, always: bool = False) -> None:
        """Forget the kernel tensors when a source buffer was replaced (or ``always``: loaded in place)."""
        cache = self.__dict__.get("_kernel_cache")
        if cache is not None and (always or any(self._buffers.get(n) is not s
                                                for n, s in zip(self._sources, cache["sources"]))):  # fmt: skip
            del self.__dict__["_kernel_cache"]

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self._sources:
            self._drop_cache()

    def _apply(self, fn: Any, recurse: bool = True) -> nn.Module:
        out = super()._apply(fn, recurse)
        self._drop_cache()  # .to(), .cpu(), ...: new buffer objects
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # fmt: skip
        self._drop_cache(always=True)  # copied in place: the derived zero points and copies would be stale
        for name, buf in self._buffers.items():
            key = prefix + name
            if buf is not None and key in state_dict and tuple(state_dict[key].shape) != tuple(buf.shape):
                raise ValueError(f"{type(self).__name__}: {key!r} has shape {tuple(state_dict[key].shape)}, "
                                 f"expected {tuple(buf.shape)}")  # fmt: skip
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)  # fmt: skip

    def dequantized_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def dequantize(self, dtype: torch.dtype = torch.float32) -> nn.Linear:
        """An ``nn.Linear`` with the dequantized weight (and the bias) in ``dtype``."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, dtype=dtype,
                           device=self._buffers[self._sources[0]].device)  # fmt: skip
        with torch.no_grad():
            linear.weight.copy_(self.dequantized_weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class GPTQLinear(_PackedLinear):
    """A linear layer holding a GPTQ checkpoint's packed weights (buffers ``qweight``, ``qzeros``, ``scales``,
    ``g_idx``, ``bias``; see :mod:`pretrained.quantizers.int4_formats` for the layout).

    Args:
        in_features, out_features, bias: As ``nn.Linear``.
        bits: 2, 4 or 8 (the fast kernels serve 4; the others dequantize on every call).
        group_size: Input features per scale; ``-1`` for one group.
        desc_act: The checkpoint was quantized in act-order (``g_idx`` is a permutation's groups).
        sym: Symmetric quantization (recorded; the zero points are read from ``qzeros`` either way).
        format: ``"gptq"`` (v1, zeros stored minus one) or ``"gptq_v2"``.
        dtype: Of ``scales`` and ``bias`` (checkpoints: fp16).
    """

    _sources = ("qweight", "qzeros", "scales", "g_idx", "bias")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 4, group_size: int = 128,
                 desc_act: bool = False, sym: bool = True, format: str = "gptq", dtype: torch.dtype = torch.float16,
                 device: Any = None) -> None:  # fmt: skip
        super().__init__()
        formats.check_bits(bits)
        if format not in formats.GPTQ_FORMATS:
            raise ValueError(f"GPTQLinear: format must be one of {formats.GPTQ_FORMATS}, got {format!r}")
        _check_linear_shape("GPTQLinear", in_features, out_features, bits, group_size, pack_out=False)
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.group_size, self.desc_act, self.sym, self.format = bits, group_size, desc_act, sym, format
        per, groups = 32 // bits, formats.num_groups(in_features, group_size)
        kw = {"device": device}
        self.register_buffer("qweight", torch.zeros(in_features // per, out_features, dtype=torch.int32, **kw))
        self.register_buffer("qzeros", torch.zeros(groups, out_features // per, dtype=torch.int32, **kw))
        self.register_buffer("scales", torch.zeros(groups, out_features, dtype=dtype, **kw))
        self.register_buffer("g_idx", formats.default_g_idx(in_features, group_size).to(device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, **kw) if bias else None)

    def check_buffers(self) -> None:
        """Raise ``ValueError`` naming the buffer whose shape or dtype does not fit the layer."""
        per, groups = 32 // self.bits, formats.num_groups(self.in_features, self.group_size)
        _check_buffer(self, "qweight", (self.in_features // per, self.out_features), (torch.int32,))
        _check_buffer(self, "qzeros", (groups, self.out_features // per), (torch.int32,))
        _check_buffer(self, "scales", (groups, self.out_features), _FLOATS)
        _check_buffer(self, "g_idx", (self.in_features,), (torch.int32, torch.int64))
        if self.bias is not None:
            _check_buffer(self, "bias", (self.out_features,), _FLOATS)
        if int(self.g_idx.min()) < 0 or int(self.g_idx.max()) >= groups:
            raise ValueError(f"GPTQLinear: buffer 'g_idx' must hold groups in [0, {groups - 1}]")

    def _ints(self) -> tuple[torch.Tensor, torch.Tensor]:
        return formats.unpack_gptq_ints(self.qweight, self.qzeros, self.bits, self.format)

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight ``(out, in)``: ``(q - zero) * scale``."""
        return formats.unpack_gptq(self.qweight, self.qzeros, self.scales, self.g_idx, self.bits,
                                   format=self.format)  # fmt: skip

    def _build_cache(self) -> dict[str, Any]:
        bias = None if self.bias is None else self.bias.float()
        size = self.in_features if self.group_size == -1 else self.group_size
        if self.bits != 4 or size % 8:
            return {"bias": bias, "fast": False}  # no kernel layout: dequantize per call
        intweight, zeros = self._ints()
        g_idx = self.g_idx.to(torch.int64)
        perm, qweight = None, self.qweight
        if not torch.equal(g_idx, formats.default_g_idx(self.in_features, self.group_size).to(g_idx)):
            # act-order: sort the input features by group, so groups are contiguous again
            perm = torch.argsort(g_idx, stable=True)
            counts = torch.bincount(g_idx, minlength=zeros.shape[0])
            if not torch.all(counts == size):
                return {"bias": bias, "fast": False}
            qweight = formats.pack_int32(intweight[:, perm], 4).t().contiguous()
        if perm is None and _place_packed(qweight):
            qweight = packed_memory.move_buffer(self, "qweight")  # the kernel reads the buffer itself
        else:
            qweight = _placed(qweight)
        scales = self.scales if self.scales.dtype in (torch.float16, torch.float32) else self.scales.float()
        return _int4_cache(qweight, zeros, scales, size, bias, perm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling() and "_kernel_cache" not in self.__dict__:
            return self._dequantized_forward(x)
        cache = self._cache()
        if "qweight" not in cache:
            return self._dequantized_forward(x)
        if cache["perm"] is not None:
            x = x.index_select(-1, cache["perm"])
        return self._int4_forward(x, cache)

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 4, group_size: int = 128, desc_act: bool = False,
                    sym: bool = True, desc_act_perm: torch.Tensor | None = None, format: str = "gptq",
                    dtype: torch.dtype = torch.float16) -> GPTQLinear:  # fmt: skip
        """Quantize an ``nn.Linear`` by round-to-nearest (:func:`~pretrained.quantizers.int4_formats.quantize_rtn`).

        With ``desc_act`` and no ``desc_act_perm``, input features are ordered by decreasing weight-column
        norm (a stand-in for GPTQ's activation statistics, which RTN does not have)."""
        weight = linear.weight.detach().float().cpu()
        if desc_act and desc_act_perm is None:
            desc_act_perm = torch.argsort(weight.norm(dim=0), descending=True, stable=True)
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, bits, group_size, desc_act,
                    sym, format, dtype)  # fmt: skip
        intweight, zeros, scales, g_idx = formats.quantize_rtn(weight, bits, group_size, sym,
                                                               desc_act_perm if desc_act else None, dtype)  # fmt: skip
        packed = formats.pack_gptq(intweight, zeros, scales, g_idx, bits, format)
        for name, tensor in packed.items():
            setattr(layer, name, tensor)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().to("cpu", dtype)
        return layer.to(linear.weight.device)

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, bits={self.bits}, group_size={self.group_size}, desc_act={self.desc_act}, "
                f"sym={self.sym}")  # fmt: skip


class AWQLinear(_PackedLinear):
    """A linear layer holding an AWQ (GEMM) checkpoint's packed weights (buffers ``qweight``, ``qzeros``,
    ``scales``, ``bias``; 4-bit, packed along the outputs in AWQ's order).

    The kernels read GPTQ's word layout, so the layer keeps a repacked copy of its words (built on the first
    forward; ``in * out / 2`` bytes)."""

    _sources = ("qweight", "qzeros", "scales", "bias")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 4, group_size: int = 128,
                 dtype: torch.dtype = torch.float16, device: Any = None) -> None:  # fmt: skip
        super().__init__()
        if bits != 4:
            raise ValueError(f"AWQLinear: only bits=4 is supported, got bits={bits}")
        _check_linear_shape("AWQLinear", in_features, out_features, bits, group_size, pack_out=True)
        self.in_features, self.out_features, self.bits, self.group_size = in_features, out_features, bits, group_size
        groups = formats.num_groups(in_features, group_size)
        kw = {"device": device}
        self.register_buffer("qweight", torch.zeros(in_features, out_features // 8, dtype=torch.int32, **kw))
        self.register_buffer("qzeros", torch.zeros(groups, out_features // 8, dtype=torch.int32, **kw))
        self.register_buffer("scales", torch.zeros(groups, out_features, dtype=dtype, **kw))
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, **kw) if bias else None)

    def check_buffers(self) -> None:
        """Raise ``ValueError`` naming the buffer whose shape or dtype does not fit the layer."""
        groups = formats.num_groups(self.in_features, self.group_size)
        _check_buffer(self, "qweight", (self.in_features, self.out_features // 8), (torch.int32,))
        _check_buffer(self, "qzeros", (groups, self.out_features // 8), (torch.int32,))
        _check_buffer(self, "scales", (groups, self.out_features), _FLOATS)
        if self.bias is not None:
            _check_buffer(self, "bias", (self.out_features,), _FLOATS)

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight ``(out, in)``: ``(q - zero) * scale``."""
        return formats.unpack_awq(self.qweight, self.qzeros, self.scales, self.bits, self.group_size)

    def _build_cache(self) -> dict[str, Any]:
        intweight, zeros = formats.unpack_awq_ints(self.qweight, self.qzeros, self.bits)
        scales = self.scales if self.scales.dtype in (torch.float16, torch.float32) else self.scales.float()
        return _int4_cache(_placed(formats.pack_int32(intweight, 4).t().contiguous()), zeros, scales,
                           self.in_features if self.group_size == -1 else self.group_size,
                           None if self.bias is None else self.bias.float())  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling() and "_kernel_cache" not in self.__dict__:
            return self._dequantized_forward(x)
        return self._int4_forward(x, self._cache())

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 4, group_size: int = 128, zero_point: bool = True,
                    dtype: torch.dtype = torch.float16) -> AWQLinear:  # fmt: skip
        """Quantize an ``nn.Linear`` by round-to-nearest (asymmetric with ``zero_point``, AWQ's default)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, bits, group_size, dtype)
        intweight, zeros, scales, _ = formats.quantize_rtn(linear.weight.detach().float().cpu(), bits, group_size,
                                                           sym=not zero_point, scale_dtype=dtype)  # fmt: skip
        for name, tensor in formats.pack_awq(intweight, zeros, scales, bits).items():
            setattr(layer, name, tensor)
        if linear.bias is not None:
            layer.bias = linear.bias.detach().to("cpu", dtype)
        return layer.to(linear.weight.device)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, group_size={self.group_size}"


class Int8WeightOnlyLinear(_PackedLinear):
    """A linear layer with int8 weights and one fp32 scale per output (buffers ``weight`` int8 ``(out, in)``,
    ``weight_scale`` ``(out,)``, ``bias``): ``y = x @ (weight * weight_scale[:, None]).T + bias``, computed in
    fp32. Its bytes per step are a quarter of fp32's, which is what decoding is bound by."""

    _sources = ("weight", "weight_scale", "bias")

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: torch.dtype = torch.float32,
                 device: Any = None) -> None:  # fmt: skip
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("weight_scale", torch.ones(out_features, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype, device=device) if bias else None)

    def check_buffers(self) -> None:
        """Raise ``ValueError`` naming the buffer whose shape or dtype does not fit the layer."""
        _check_buffer(self, "weight", (self.out_features, self.in_features), (torch.int8,))
        _check_buffer(self, "weight_scale", (self.out_features,), (torch.float32,))
        if self.bias is not None:
            _check_buffer(self, "bias", (self.out_features,), _FLOATS)

    def dequantized_weight(self) -> torch.Tensor:
        """The fp32 weight ``(out, in)``."""
        return self.weight.float() * self.weight_scale.unsqueeze(1)

    def fusion_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
        """``(weight, weight_scale, bias)`` when the int8 kernel takes them as they are (CPU, int8 contiguous,
        fp32 scales, a float bias), so that a decoder may pack this layer with its siblings and compute them in
        one call (:func:`pretrained.inference.compiled.int8_group_table`); else ``None``."""
        weight, scale, bias = self.weight, self.weight_scale, self.bias
        if weight is None or scale is None or not quant_kernels.int8_weights_fit(weight, scale, None):
            return None
        if bias is not None and (bias.device.type != "cpu" or not bias.is_floating_point()):
            return None
        return weight, scale, bias

    def _build_cache(self) -> dict[str, Any]:
        # (buffers already placed, e.g. rows of a fused group, stay where they are)
        if _place_packed(self.weight) and not packed_memory.holds(self.weight):
            # the buffers themselves move (no second copy), next to the layers built before this one
            packed_memory.move_buffer(self, "weight")
            packed_memory.move_buffer(self, "weight_scale")
        weight, scale = self.weight.contiguous(), self.weight_scale.contiguous()
        bias = None if self.bias is None else _placed(self.bias.float().contiguous())
        return {"weight": weight, "scale": scale, "bias": bias, "sums": weight.sum(1, dtype=torch.int32),
                "fast": quant_kernels.int8_weights_fit(weight, scale, bias), "vnni": weight.shape[1] % 64 == 0}  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cache = self._cache()
        kernel = self._eager_kernel(x, cache)
        if kernel == "cpp":
            return quant_kernels.int8_rows_cpp(x, cache["weight"], cache["scale"], cache["bias"])
        if kernel == "vnni":
            return quant_kernels.int8_rows_vnni(x, cache["weight"], cache["sums"], cache["scale"], cache["bias"])
        return quant_kernels.int8_linear(x, cache["weight"], cache["scale"], cache["bias"], route=self.kernel,
                                         weight_sums=cache["sums"])  # fmt: skip

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        """Quantize an ``nn.Linear`` symmetrically per output: ``scale = max|w| / 127``, round to nearest."""
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1) / 127
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None,
                    dtype=linear.weight.dtype if linear.weight.is_floating_point() else torch.float32,
                    device=weight.device)  # fmt: skip
        layer.weight = torch.round(weight / scale.unsqueeze(1)).clamp(-127, 127).to(torch.int8)
        layer.weight_scale = scale
        if linear.bias is not None:
            layer.bias = linear.bias.detach().clone()
        return layer


def _place_packed(tensor: torch.Tensor) -> bool:
    """Whether a layer's kernel tensors go to :mod:`~pretrained.inference.packed_memory` (CPU, eager)."""
    return packed_memory.ENABLED and tensor.device.type == "cpu" and not torch.compiler.is_compiling()


def _placed(tensor: torch.Tensor) -> torch.Tensor:
    return packed_memory.place(tensor) if _place_packed(tensor) else tensor


def _int4_cache(qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                bias: torch.Tensor | None, perm: torch.Tensor | None = None) -> dict[str, Any]:
    """The kernel tensors of an int4 layer (``qweight`` already in GPTQ's word layout, placed by the caller)."""
    zeros, scales = _placed(zeros.to(torch.uint8).contiguous()), _placed(scales.contiguous())
    bias = None if bias is None else _placed(bias.contiguous())
    return {"qweight": qweight, "zeros": zeros, "scales": scales, "group_size": group_size, "bias": bias,
            "perm": perm, "fast": quant_kernels.int4_weights_fit(qweight, zeros, scales, group_size, bias),
            "vnni": True}


def replace_linears(model: nn.Module, make: Any, skip: tuple[str, ...] = ("lm_head",)) -> nn.Module:
    """Swap every ``nn.Linear`` of ``model`` whose qualified name does not end with one in ``skip`` for
    ``make(linear)`` (e.g. ``GPTQLinear.from_linear``), in place; returns ``model``."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.Linear and not any(full == s or full.endswith("." + s) for s in skip):
                setattr(module, child_name, make(child))
    return model

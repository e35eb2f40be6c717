"""The packed integer weight formats of GPTQ and AWQ checkpoints, as pure tensor functions.

Both formats store, per linear layer, integers of ``bits`` bits packed into int32 words, one scale per
group of ``group_size`` input features and output feature, and one integer zero point per group and
output feature; the float weight is ``(q - zero) * scale``. They differ in how the words are laid out.

GPTQ (as written by gptqmodel / AutoGPTQ, read by transformers):
    - ``qweight``: int32 ``(in_features * bits / 32, out_features)``; word ``[i, n]`` holds input features
      ``i * 32/bits + j`` (j = 0, 1, ...) of output ``n``, feature ``j`` in bits ``j*bits ..``, lowest first.
    - ``qzeros``: int32 ``(groups, out_features * bits / 32)``, packed the same way along the outputs.
      Checkpoint format ``"gptq"`` (v1, what transformers / gptqmodel write by default) stores
      ``zero - 1``: gptqmodel converts by subtracting ``0x11111111`` (4-bit) from each *whole* int32 word,
      so a zero of 0 borrows from its neighbour and adding the constant back restores it exactly. We do
      the same, so v1 words round-trip bit for bit. Format ``"gptq_v2"`` stores the zeros as they are.
    - ``scales``: ``(groups, out_features)``, usually fp16.
    - ``g_idx``: int32 ``(in_features,)``, the group of each input feature: ``k // group_size``, or, with
      ``desc_act`` (act-order), groups assigned in the order features were quantized, so any permutation.
    - ``group_size = -1`` means one group over all input features.

AWQ (AutoAWQ's GEMM layout, read by transformers):
    - ``qweight``: int32 ``(in_features, out_features * bits / 32)``: packed along the *outputs*, and
      within a word the 8 outputs ``8c .. 8c+7`` sit in the order ``0, 2, 4, 6, 1, 3, 5, 7`` (nibble ``i``
      holds output ``8c + AWQ_ORDER[i]``).
    - ``qzeros``: int32 ``(groups, out_features * bits / 32)``, same packing, no offset.
    - ``scales``: ``(groups, out_features)``; groups are always contiguous (no ``g_idx``).

Integer weights handed to and returned by these functions are ``(out_features, in_features)`` (the
orientation of ``nn.Linear.weight``); zeros and scales are ``(groups, out_features)``.
"""

from __future__ import annotations

import torch

SUPPORTED_BITS = (2, 4, 8)
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # nibble i of an AWQ word holds output 8c + AWQ_ORDER[i]
GPTQ_FORMATS = ("gptq", "gptq_v2")


def check_bits(bits: int) -> int:
    """Raise ``ValueError`` unless ``bits`` packs evenly into int32 words; returns values per word."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"bits={bits} is not supported for packed int32 weights (use one of {SUPPORTED_BITS})")
    return 32 // bits


def _v1_offset(bits: int) -> int:
    """The int32 word with 1 in every field: what format v1 subtracts from each packed zeros word."""
    word = 0
    for j in range(32 // bits):
        word |= 1 << (j * bits)
    return word - (1 << 32) if word >= 1 << 31 else word


def pack_int32(values: torch.Tensor, bits: int, order: tuple[int, ...] | None = None) -> torch.Tensor:
    """Pack integers (``0 <= v < 2**bits``) along the last dim into int32 words, field j of word c
    holding value ``per * c + order[j]``."""
    per = check_bits(bits)
    if values.shape[-1] % per:
        raise ValueError(f"cannot pack {values.shape[-1]} values into int32 words of {per}")
    v = values.to(torch.int64).reshape(*values.shape[:-1], values.shape[-1] // per, per)
    if order is not None:
        v = v[..., list(order)]
    shifts = torch.arange(0, 32, bits, dtype=torch.int64)
    words = (v << shifts).sum(-1)  # fields never overlap, so a sum is an or
    # int64 → int32 keeping the bit pattern (words >= 2**31 become negative)
    return torch.where(words >= 1 << 31, words - (1 << 32), words).to(torch.int32)


def unpack_int32(words: torch.Tensor, bits: int, order: tuple[int, ...] | None = None) -> torch.Tensor:
    """Inverse of :func:`pack_int32`: int32 ``(..., c)`` → int32 ``(..., c * 32/bits)`` in ``[0, 2**bits)``."""
    per = check_bits(bits)
    shifts = torch.arange(0, 32, bits, dtype=torch.int32)
    fields = (words.to(torch.int32).unsqueeze(-1) >> shifts) & ((1 << bits) - 1)  # (..., c, per), field order
    if order is not None:
        inverse = [0] * per
        for field, position in enumerate(order):
            inverse[position] = field
        fields = fields[..., inverse]
    return fields.reshape(*words.shape[:-1], words.shape[-1] * per)


def _check_int_range(name: str, values: torch.Tensor, bits: int) -> None:
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= 1 << bits):
        raise ValueError(f"{name} must hold integers in [0, {(1 << bits) - 1}] for bits={bits}, "
                         f"got [{int(values.min())}, {int(values.max())}]")  # fmt: skip


def default_g_idx(in_features: int, group_size: int) -> torch.Tensor:
    """``g_idx`` without act-order: feature ``k`` in group ``k // group_size`` (``-1``: one group)."""
    size = in_features if group_size == -1 else group_size
    return torch.arange(in_features, dtype=torch.int32) // size


def num_groups(in_features: int, group_size: int) -> int:
    """Number of scale rows for ``in_features`` inputs (``group_size = -1``: one)."""
    return 1 if group_size == -1 else -(-in_features // group_size)


def pack_gptq(
    intweight: torch.Tensor,
    zeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    bits: int = 4,
    format: str = "gptq",
) -> dict[str, torch.Tensor]:
    """Pack integer weights into GPTQ checkpoint tensors.

    Args:
        intweight: Integers in ``[0, 2**bits)``, ``(out_features, in_features)``.
        zeros: Integer zero points, ``(groups, out_features)`` (the real zeros: the v1 offset is applied here).
        scales: ``(groups, out_features)``, stored as given (checkpoints use fp16).
        g_idx: Group of each input feature, ``(in_features,)``.
        bits: 2, 4 or 8.
        format: ``"gptq"`` (v1: zeros stored minus one, the default of transformers and gptqmodel) or
            ``"gptq_v2"`` (zeros as they are).

    Returns:
        ``{"qweight", "qzeros", "scales", "g_idx"}`` with the checkpoint's shapes and dtypes (int32 words,
        int32 ``g_idx``).
    """
    if format not in GPTQ_FORMATS:
        raise ValueError(f"format must be one of {GPTQ_FORMATS}, got {format!r}")
    per = check_bits(bits)
    out_features, in_features = intweight.shape
    if in_features % per or out_features % per:
        raise ValueError(f"GPTQ packing needs in_features ({in_features}) and out_features ({out_features}) "
                         f"divisible by {per} for bits={bits}")  # fmt: skip
    if zeros.shape != scales.shape or zeros.shape[-1] != out_features:
        raise ValueError(f"zeros {tuple(zeros.shape)} and scales {tuple(scales.shape)} must both be "
                         f"(groups, {out_features})")  # fmt: skip
    if tuple(g_idx.shape) != (in_features,):
        raise ValueError(f"g_idx must have shape ({in_features},), got {tuple(g_idx.shape)}")
    _check_int_range("intweight", intweight, bits)
    _check_int_range("zeros", zeros, bits)
    qweight = pack_int32(intweight, bits).t().contiguous()  # pack along in_features
    qzeros = pack_int32(zeros, bits)
    if format == "gptq":
        # whole-word int32 subtraction, wrapping like gptqmodel's in-place ``qzeros -= 0x11111111``
        qzeros = ((qzeros.to(torch.int64) - _v1_offset(bits) + (1 << 31)) % (1 << 32) - (1 << 31)).to(torch.int32)
    return {"qweight": qweight, "qzeros": qzeros, "scales": scales.clone(), "g_idx": g_idx.to(torch.int32)}


def unpack_gptq_ints(
    qweight: torch.Tensor, qzeros: torch.Tensor, bits: int = 4, format: str = "gptq"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The integers of GPTQ tensors: weights ``(out, in)`` and zero points ``(groups, out)``, int32."""
    if format not in GPTQ_FORMATS:
        raise ValueError(f"format must be one of {GPTQ_FORMATS}, got {format!r}")
    check_bits(bits)
    intweight = unpack_int32(qweight.t(), bits)
    words = qzeros.to(torch.int64)
    if format == "gptq":
        words = (words + _v1_offset(bits) + (1 << 31)) % (1 << 32) - (1 << 31)
    return intweight, unpack_int32(words.to(torch.int32), bits)


def unpack_gptq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    g_idx: torch.Tensor,
    bits: int = 4,
    sym: bool = True,
    format: str = "gptq",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Dequantize GPTQ tensors to a float weight ``(out_features, in_features)``: ``(q - zero) * scale``
    computed in ``dtype`` (fp32 by default, exact for 4-bit integers and fp16 scales).

    ``sym`` is accepted for symmetry with the checkpoint config: symmetric checkpoints store their zero
    point (``2**(bits-1)``) like asymmetric ones, so both read the same way."""
    intweight, zeros = unpack_gptq_ints(qweight, qzeros, bits, format)
    g = g_idx.to(torch.int64)
    return (intweight.to(dtype) - zeros[g].t().to(dtype)) * scales[g].t().to(dtype)


def pack_awq(intweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, bits: int = 4) -> dict[str, torch.Tensor]:
    """Pack integer weights ``(out, in)`` and zeros ``(groups, out)`` into AWQ (GEMM) checkpoint tensors
    ``{"qweight", "qzeros", "scales"}``: packed along the outputs in AWQ's order (4-bit only)."""
    if bits != 4:
        raise ValueError(f"AWQ packing is defined for bits=4, got bits={bits}")
    out_features, in_features = intweight.shape
    if out_features % 8:
        raise ValueError(f"AWQ packing needs out_features ({out_features}) divisible by 8")
    if zeros.shape != scales.shape or zeros.shape[-1] != out_features:
        raise ValueError(f"zeros {tuple(zeros.shape)} and scales {tuple(scales.shape)} must both be "
                         f"(groups, {out_features})")  # fmt: skip
    _check_int_range("intweight", intweight, bits)
    _check_int_range("zeros", zeros, bits)
    return {
        "qweight": pack_int32(intweight.t(), bits, AWQ_ORDER).contiguous(),
        "qzeros": pack_int32(zeros, bits, AWQ_ORDER),
        "scales": scales.clone(),
    }


def unpack_awq_ints(qweight: torch.Tensor, qzeros: torch.Tensor, bits: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The integers of AWQ tensors: weights ``(out, in)`` and zero points ``(groups, out)``, int32."""
    if bits != 4:
        raise ValueError(f"AWQ packing is defined for bits=4, got bits={bits}")
    return unpack_int32(qweight, bits, AWQ_ORDER).t(), unpack_int32(qzeros, bits, AWQ_ORDER)


def unpack_awq(
    qweight: torch.Tensor,
    qzeros: torch.Tensor,
    scales: torch.Tensor,
    bits: int = 4,
    group_size: int = 128,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Dequantize AWQ tensors to a float weight ``(out_features, in_features)`` in ``dtype``."""
    intweight, zeros = unpack_awq_ints(qweight, qzeros, bits)
    g = default_g_idx(intweight.shape[1], group_size).to(torch.int64)
    return (intweight.to(dtype) - zeros[g].t().to(dtype)) * scales[g].t().to(dtype)


def act_order_g_idx(perm: torch.Tensor, group_size: int) -> torch.Tensor:
    """``g_idx`` of act-order quantization: the features are quantized in the order ``perm`` and
    grouped in that order, so feature ``perm[i]`` is in group ``i // group_size``."""
    in_features = perm.numel()
    size = in_features if group_size == -1 else group_size
    g_idx = torch.empty(in_features, dtype=torch.int32)
    g_idx[perm.to(torch.int64)] = torch.arange(in_features, dtype=torch.int32) // size
    return g_idx


def quantize_rtn(
    weight: torch.Tensor,
    bits: int = 4,
    group_size: int = 128,
    sym: bool = True,
    desc_act_perm: torch.Tensor | None = None,
    scale_dtype: torch.dtype = torch.float16,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest group quantization of a float weight ``(out, in)`` (GPTQ's quantizer grid,
    without its error feedback), to build GPTQ / AWQ checkpoints.

    Symmetric: ``scale = 2 * max|w| / (2**bits - 1)``, zero ``2**(bits-1)``. Asymmetric: the range
    ``[min(w, 0), max(w, 0)]`` over ``2**bits - 1`` steps, zero ``round(-min / scale)``. Scales are rounded
    to ``scale_dtype`` first, and the integers are computed with the rounded scale.

    Args:
        desc_act_perm: Order of the input features for act-order grouping (GPTQ's ``desc_act``); groups
            then follow this order (see :func:`act_order_g_idx`). ``None``: contiguous groups.

    Returns:
        ``(intweight (out, in) int32, zeros (groups, out) int32, scales (groups, out) scale_dtype,
        g_idx (in,) int32)``.
    """
    check_bits(bits)
    out_features, in_features = weight.shape
    if group_size != -1 and (group_size <= 0 or in_features % group_size):
        raise ValueError(f"in_features ({in_features}) must be divisible by group_size ({group_size})")
    size = in_features if group_size == -1 else group_size
    if desc_act_perm is None:
        perm = torch.arange(in_features)
    else:
        perm = desc_act_perm.to(torch.int64)
        if sorted(perm.tolist()) != list(range(in_features)):
            raise ValueError(f"desc_act_perm must be a permutation of range({in_features})")
    g_idx = act_order_g_idx(perm, group_size)
    w = weight.detach().to(torch.float32)[:, perm].reshape(out_features, in_features // size, size)
    maxq = (1 << bits) - 1
    lo = w.amin(-1).clamp(max=0)
    hi = w.amax(-1).clamp(min=0)
    if sym:
        hi = torch.maximum(lo.abs(), hi)
        lo = -hi
    empty = (lo == 0) & (hi == 0)  # an all-zero group: any scale works, pick GPTQ's
    lo, hi = torch.where(empty, -1.0, lo), torch.where(empty, 1.0, hi)
    scales = ((hi - lo) / maxq).to(scale_dtype)  # (out, groups)
    s = scales.to(torch.float32)
    zeros = torch.full_like(s, float((maxq + 1) // 2)) if sym else torch.round(-lo / s)
    zeros = zeros.clamp(0, maxq)
    q = torch.clamp(torch.round(w / s.unsqueeze(-1)) + zeros.unsqueeze(-1), 0, maxq)
    intweight = torch.empty(out_features, in_features, dtype=torch.int32)
    intweight[:, perm] = q.reshape(out_features, in_features).to(torch.int32)
    return intweight, zeros.t().contiguous().to(torch.int32), scales.t().contiguous(), g_idx

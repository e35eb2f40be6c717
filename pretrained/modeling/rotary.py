"""Rotary position embeddings (RoPE) and their context-extension variants.

Supported ``rope_type`` values: ``default``, ``linear``, ``dynamic`` (NTK-aware, recomputed when a
sequence outgrows ``max_position_embeddings``), ``llama3`` and ``yarn``. Configs may spell the settings
the old way (``rope_theta`` + ``rope_scaling={"type": ...}``) or the new way
(``rope_parameters={"rope_type": ..., "rope_theta": ...}``); :func:`standardize_rope_parameters`
turns either into the new spelling.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")


def standardize_rope_parameters(
    rope_parameters: dict[str, Any] | None = None,
    rope_scaling: dict[str, Any] | None = None,
    rope_theta: float | None = None,
    partial_rotary_factor: float | None = None,
    max_position_embeddings: int | None = None,
    default_theta: float = 10_000.0,
) -> dict[str, Any]:
    """Merge the old and new config spellings of RoPE settings into one ``rope_parameters`` dict.

    ``rope_scaling`` wins over ``rope_parameters`` when both are given (it is what older checkpoints
    carry); ``type`` is renamed ``rope_type``; ``rope_theta`` and ``partial_rotary_factor`` move inside;
    ``original_max_position_embeddings`` defaults to ``max_position_embeddings`` for the types that need it.

    Raises:
        ValueError: for an unknown ``rope_type`` or a missing required field.
    """
    params = dict(rope_scaling or rope_parameters or {})
    if "type" in params:
        params.setdefault("rope_type", params.pop("type"))
    params.setdefault("rope_type", "default")
    params.setdefault("rope_theta", rope_theta if rope_theta is not None else default_theta)
    if partial_rotary_factor is not None:
        params.setdefault("partial_rotary_factor", partial_rotary_factor)
    rope_type = params["rope_type"]
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"unsupported rope_type {rope_type!r}; expected one of {ROPE_TYPES}")
    if rope_type in ("llama3", "yarn") and max_position_embeddings is not None:
        params.setdefault("original_max_position_embeddings", max_position_embeddings)
    required = {
        "linear": ("factor",),
        "dynamic": ("factor",),
        "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
        "yarn": ("original_max_position_embeddings",),
    }.get(rope_type, ())
    missing = [k for k in required if params.get(k) is None]
    if missing:
        raise ValueError(f"rope_type {rope_type!r} needs {missing} in rope_parameters (got {params})")
    return params


def _base_inv_freq(theta: float, dim: int) -> torch.Tensor:
    # Exponents built in int64 then cast, like the reference, so the float32 values agree bit for bit.
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def compute_inv_freq(
    params: dict[str, Any], head_dim: int, max_position_embeddings: int, seq_len: int | None = None
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies and the cos/sin scale (``attention_scaling``) for one RoPE setting.

    Args:
        params: Standardized ``rope_parameters``.
        head_dim: Per-head size of queries and keys.
        max_position_embeddings: ``config.max_position_embeddings``.
        seq_len: Current sequence length (only ``dynamic`` uses it).
    """
    rope_type = params["rope_type"]
    theta = float(params["rope_theta"])
    dim = int(head_dim * params.get("partial_rotary_factor", 1.0))
    if rope_type == "default":
        return _base_inv_freq(theta, dim), 1.0
    if rope_type == "linear":
        return _base_inv_freq(theta, dim) / params["factor"], 1.0
    if rope_type == "dynamic":
        factor = params["factor"]
        seq_len = max(seq_len or max_position_embeddings, max_position_embeddings)
        theta = theta * ((factor * seq_len / max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
        return _base_inv_freq(theta, dim), 1.0
    if rope_type == "llama3":
        return _llama3_inv_freq(params, theta, dim), 1.0
    return _yarn_inv_freq(params, theta, dim, max_position_embeddings)


def _llama3_inv_freq(params: dict[str, Any], theta: float, dim: int) -> torch.Tensor:
    inv_freq = _base_inv_freq(theta, dim)
    factor, low, high = params["factor"], params["low_freq_factor"], params["high_freq_factor"]
    old_len = params["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    # Long wavelengths are divided by `factor`, short ones kept, the band between interpolated smoothly.
    scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
    return torch.where(medium, smoothed, scaled)


def _yarn_inv_freq(
    params: dict[str, Any], theta: float, dim: int, max_position_embeddings: int
) -> tuple[torch.Tensor, float]:
    original = params["original_max_position_embeddings"]
    factor = params.get("factor") or max_position_embeddings / original

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        m, m_all = params.get("mscale"), params.get("mscale_all_dim")
        attention_factor = float(mscale(factor, m) / mscale(factor, m_all)) if m and m_all else mscale(factor)
    beta_fast = params.get("beta_fast") or 32
    beta_slow = params.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if params.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero in the ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation = 1 - ramp  # 1 where the original frequency is kept
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, attention_factor


class RotaryEmbedding(nn.Module):
    """Produces the ``cos`` / ``sin`` tables for given position ids.

    Args:
        rope_parameters: Standardized RoPE settings (see :func:`standardize_rope_parameters`).
        head_dim: Per-head size of queries and keys.
        max_position_embeddings: ``config.max_position_embeddings``.
    """

    def __init__(self, rope_parameters: dict[str, Any], head_dim: int, max_position_embeddings: int) -> None:
        super().__init__()
        self.rope_parameters = rope_parameters
        self.rope_type = rope_parameters["rope_type"]
        self.head_dim = head_dim
        self.max_position_embeddings = max_position_embeddings
        self.max_seq_len_cached = max_position_embeddings
        inv_freq, self.attention_scaling = compute_inv_freq(
            rope_parameters, head_dim, max_position_embeddings
        )
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("original_inv_freq", inv_freq.clone(), persistent=False)
        self._doubled: tuple[torch.Tensor, torch.Tensor] | None = None

    def _init_buffers(self, device: Any = None) -> None:
        """Recompute the (non-persistent) frequency buffers, e.g. after building on the meta device."""
        if device is None:
            device = self.inv_freq.device if self.inv_freq.device.type != "meta" else "cpu"
        inv_freq, self.attention_scaling = compute_inv_freq(
            self.rope_parameters, self.head_dim, self.max_position_embeddings
        )
        self.inv_freq = inv_freq.to(device)
        self.original_inv_freq = inv_freq.clone().to(device)
        self.max_seq_len_cached = self.max_position_embeddings

    def _dynamic_update(self, position_ids: torch.Tensor) -> None:
        # NTK-aware scaling depends on the longest sequence seen, which costs one host sync per call.
        seq_len = int(position_ids.max()) + 1
        if seq_len > self.max_seq_len_cached:
            inv_freq, _ = compute_inv_freq(
                self.rope_parameters, self.head_dim, self.max_position_embeddings, seq_len
            )
            self.inv_freq = inv_freq.to(self.inv_freq.device)
            self.max_seq_len_cached = seq_len
        elif seq_len < self.max_position_embeddings < self.max_seq_len_cached:
            self.inv_freq = self.original_inv_freq
            self.max_seq_len_cached = self.max_position_embeddings

    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(cos, sin)``, each ``(batch, seq, head_dim)``, for ``position_ids`` ``(batch, seq)``."""
        if self.rope_type == "dynamic":
            self._dynamic_update(position_ids)
        inv_freq = self.inv_freq.float()
        if self._doubled is None or self._doubled[0] is not inv_freq:
            # cat(f, f) of the frequencies once, instead of cat(x*f, x*f) every call: same products.
            self._doubled = (inv_freq, torch.cat((inv_freq, inv_freq)))
        emb = position_ids[..., None].float() * self._doubled[1]  # (batch, seq, dim)
        cos, sin = emb.cos(), emb.sin()
        if self.attention_scaling != 1.0:
            cos, sin = cos * self.attention_scaling, sin * self.attention_scaling
        return cos.to(dtype), sin.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Swap the two halves of the last dimension, negating the new first half."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate queries and keys ``(batch, heads, seq, head_dim)`` by ``cos``/``sin`` ``(batch, seq, rot_dim)``.

    When ``rot_dim < head_dim`` (partial rotary), only the first ``rot_dim`` channels are rotated.
    """
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rot = cos.shape[-1]
    if rot == q.shape[-1]:
        return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
    q_rot, q_pass = q[..., :rot], q[..., rot:]
    k_rot, k_pass = k[..., :rot], k[..., rot:]
    q_rot = q_rot * cos + rotate_half(q_rot) * sin
    k_rot = k_rot * cos + rotate_half(k_rot) * sin
    return torch.cat((q_rot, q_pass), dim=-1), torch.cat((k_rot, k_pass), dim=-1)


def rotary_tables(cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepare ``(cos, sin)`` once per forward for :func:`apply_rotary_tables` (all layers reuse them).

    Adds the head axis and folds the sign of :func:`rotate_half` into ``sin``, so that rotating is
    ``x * cos + x.roll(half) * sin``: fewer kernels per layer, same numbers.
    """
    key = (sin.shape[-1], sin.dtype, sin.device)
    sign = _SIGNS.get(key)
    if sign is None:
        sign = torch.ones(sin.shape[-1], dtype=sin.dtype, device=sin.device)
        sign[: sin.shape[-1] // 2] = -1
        _SIGNS[key] = sign
    return cos.unsqueeze(1), (sin * sign).unsqueeze(1)


_SIGNS: dict[tuple, torch.Tensor] = {}  # the [-1.., +1..] vectors, one per size / dtype / device


def apply_rotary_tables(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ``(batch, heads, seq, head_dim)`` queries and keys with tables from :func:`rotary_tables`."""
    rot = cos.shape[-1]
    if rot != q.shape[-1]:  # partial rotary: rotate the leading channels only
        q_rot, k_rot = apply_rotary_tables(q[..., :rot], k[..., :rot], cos, signed_sin)
        return torch.cat((q_rot, q[..., rot:]), dim=-1), torch.cat((k_rot, k[..., rot:]), dim=-1)
    half = rot // 2
    return q * cos + q.roll(half, -1) * signed_sin, k * cos + k.roll(half, -1) * signed_sin

"""Fused fp32 operations for the eager decode steps of the Llama family on the CPU.

A decode step of a small model at batch 1 is a few dozen small tensors per layer, so besides reading the
weights it pays PyTorch's per-operation cost many times over: ``rms_norm`` is a composite of seven kernels
on the CPU, rotating queries and keys is a roll, two products and a sum each, writing the cache a few
views and copies, SDPA for one query has the setup of a general kernel. Here each of those is one C++
call (source in :mod:`~pretrained.inference.decode_ops_source`, built once per machine by
:func:`pretrained.utils.native.load_library` and called through ctypes):

- ``rms_norm_rows``: :class:`~pretrained.modeling.norms.RMSNorm`, optionally after the residual add that
  precedes it (a :class:`~pretrained.modeling.decoder.PreNormDecoderLayer`'s second norm);
- ``silu_mul_rows``: the middle of :class:`~pretrained.modeling.mlp.GatedMLP` (``silu(gate) * up``);
- ``decode_attention``: :class:`~pretrained.models.llama.LlamaAttention` after its projections for steps
  of one new token per row: rotary embedding of queries and keys, the new key and value written into a
  :class:`~pretrained.modeling.cache.DynamicLayer`'s buffers in place, and attention over the cache with
  grouped key/value heads and the boolean padding mask;
- ``cached_attention``: an encoder-decoder layer's cross-attention
  (:class:`~pretrained.modeling.seq2seq.Seq2SeqAttention` as a ``DecoderLayer``'s ``encoder_attn``: BART,
  mBART, Marian, Whisper) in the steps after the first, one query per row against the keys / values its
  cache holds (the same attention loop as ``decode_attention``). PyTorch's flash kernel streams those keys at
  about half the memory bandwidth for one query; a batch of 8 Whisper clips reads 37 MB of them per layer
  and step.

:func:`decode_forwards` prepares a replacement ``forward`` per module that
``pretrained.generation.runner.RoutedLinears`` swaps in for the length of each eager step (as it does for
the linear layers). Two of them go further, since in a real step the ~100 MB of weights streamed per token
evict the interpreter's working set and every Python operation left costs several times its usual price:

- a pre-norm Llama block (RMSNorms, ``LlamaAttention`` without per-head norms, a SiLU ``GatedMLP``) whose
  linears are all plain fp32 ``nn.Linear`` or fast int8 weight-only layers runs as one ``block_step`` call,
  which calls the fp32 small-rows kernel (:mod:`~pretrained.inference.kernels`) or the int8 kernel
  (:mod:`~pretrained.inference.quant_kernels`, a packed q/k/v or gate/up group as one call) by address;
- a ``LlamaModel`` whose blocks all do computes its embedding, rotary tables and mask once and runs the
  blocks' ``block_step`` one after another, then the final norm (for 1-8 rows, no sliding window).

Each checks its call (no autograd, fp32 CPU tensors of the shapes it serves, the default SDPA attention,
dynamic cache layers already filled by the prompt, the weights it was prepared with: the same objects and,
for fp32 parameters, the same memory; an int8 layer's kernel cache, which it drops when a source buffer
changes) and otherwise runs the module's own ``forward``; compiled steps never see them. The products are
the ones PyTorch rounds (the build keeps every multiply and add separately rounded), sums are taken in
another order. Without AVX-512 or a C++ compiler nothing is swapped.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
import torch.nn.functional as F

from pretrained.inference.decode_ops_source import DECODE_OPS_SOURCE
from pretrained.utils.native import load_library

_FLAGS = ("-O3", "-mavx512f", "-mavx512dq", "-mfma", "-ffp-contract=off")
_built: dict[str, Any] = {}  # "lib": the loaded library (ctypes) or None
# False: blocks keep one call per fused operation and linear instead of one block_step call (for measuring)
BLOCKS = True


def load_decode_ops() -> Any:
    """The built library (ctypes), or ``None`` without AVX-512 or a C++ compiler."""
    if "lib" not in _built:
        lib = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            # argument types, one letter each: pointer, int64, float
            types = {"p": ctypes.c_void_p, "i": ctypes.c_int64, "f": ctypes.c_float}
            letters = {
                "block_scratch": "pi",
                "block_step": "ppppppippiiiipiii",
                "rms_norm_rows": "pipipppiif",
                "silu_mul_rows": "pipipii",
                "decode_attention": "pipipippippiiiiipipiiiifi",
                "cached_attention": "pippiiiipipiiiifi",
            }
            signatures = {name: (ctypes.c_int64 if name == "block_scratch" else None, [types[c] for c in args])
                          for name, args in letters.items()}  # fmt: skip
            lib = load_library("decode_ops", DECODE_OPS_SOURCE, _FLAGS, signatures)
        _built["lib"] = lib
    return _built["lib"]


def row_stride(t: torch.Tensor) -> int | None:
    """Elements between consecutive rows of ``t`` read as ``(rows, t.shape[-1])``, for contiguous tensors
    and ``(batch, 1, width)`` column slices of a wider product (a packed q/k/v or gate/up group); ``None``
    for other layouts."""
    if t.is_contiguous():
        return t.shape[-1]
    if t.dim() == 3 and t.shape[1] == 1 and t.stride(2) == 1:
        return t.stride(0)
    return None


def _plain(t: Any) -> bool:
    return type(t) is torch.Tensor and t.dtype is torch.float32 and t.is_cpu


def _plain_weight(t: Any) -> bool:
    return (
        type(t) in (torch.Tensor, torch.nn.Parameter)
        and t.dtype is torch.float32
        and t.is_cpu
        and t.is_contiguous()
    )


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor | None, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``F.rms_norm(x, weight, eps)`` through the kernel (fp32 CPU tensors; the library built), or of
    ``residual + x`` when ``residual`` is given: returns ``(normalised, residual + x or None)``."""
    lib = _built["lib"]
    n = x.shape[-1]
    if row_stride(x) is None:
        x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.float32)
    total = None
    if residual is not None:
        if row_stride(residual) is None:
            residual = residual.contiguous()
        total = torch.empty(x.shape, dtype=torch.float32)
        lib.rms_norm_rows(residual.data_ptr(), row_stride(residual), x.data_ptr(), row_stride(x), total.data_ptr(),
                          None if weight is None else weight.data_ptr(), out.data_ptr(), x.numel() // n, n, eps)  # fmt: skip
    else:
        lib.rms_norm_rows(x.data_ptr(), row_stride(x), None, 0, None, None if weight is None else weight.data_ptr(),
                          out.data_ptr(), x.numel() // n, n, eps)  # fmt: skip
    return out, total


def _norm_forward(module: Any) -> Any:
    own, weight, n = type(module).forward, module.weight, module.weight.shape[0]

    def forward(x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() or not _plain(x) or module.weight is not weight or not x.dim()
                or x.shape[-1] != n or x.numel() > 32 * n):  # fmt: skip
            return own(module, x)
        return rms_norm(x, weight, module.variance_epsilon)[0]

    return forward


def _mlp_forward(module: Any) -> Any:
    own = type(module).forward
    gate_proj, up_proj, down_proj = module.gate_proj, module.up_proj, module.down_proj
    lib = _built["lib"]

    def forward(x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or module.act_fn is not F.silu or not _plain(x):
            return own(module, x)
        gate, up = gate_proj(x), up_proj(x)
        n = gate.shape[-1]
        if (not _plain(gate) or not _plain(up) or gate.shape != up.shape or gate.numel() > 32 * n
                or row_stride(gate) is None or row_stride(up) is None):  # fmt: skip
            return down_proj(F.silu(gate) * up)
        out = torch.empty(gate.shape, dtype=torch.float32)
        lib.silu_mul_rows(gate.data_ptr(), row_stride(gate), up.data_ptr(), row_stride(up), out.data_ptr(),
                          gate.numel() // n, n)  # fmt: skip
        return down_proj(out)

    return forward


def _layer_forward(module: Any) -> Any:
    """A pre-norm block whose second norm also does the residual add before it."""
    own = type(module).forward
    norm_1, attention, norm_2, mlp = module._sublayers()
    weight, n = norm_2.weight, norm_2.weight.shape[0]

    def forward(
        hidden_states: torch.Tensor,
        mask: Any,
        position_embeddings: Any = None,
        cache: Any = None,
        cache_position: Any = None,
        output_attentions: bool = False,
    ) -> Any:
        if (torch.is_grad_enabled() or not _plain(hidden_states) or norm_2.weight is not weight
                or hidden_states.shape[-1] != n or hidden_states.numel() > 32 * n):  # fmt: skip
            return own(
                module, hidden_states, mask, position_embeddings, cache, cache_position, output_attentions
            )
        attn, weights = attention(norm_1(hidden_states), mask, position_embeddings, cache, cache_position,
                                  output_attentions)  # fmt: skip
        if not _plain(attn) or attn.shape != hidden_states.shape:
            hidden_states = hidden_states + attn
            return hidden_states + mlp(norm_2(hidden_states)), weights
        normed, hidden_states = rms_norm(attn, weight, norm_2.variance_epsilon, residual=hidden_states)
        return hidden_states + mlp(normed), weights

    return forward


def _attention_forward(module: Any) -> Any:
    from pretrained.modeling.cache import Cache, DynamicLayer

    own = type(module).forward
    lib = _built["lib"]
    config, index, d = module.config, module.layer_idx, module.head_dim
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    sdpa, registry = _sdpa(), _registry()
    cache_update = Cache.update

    def forward(
        hidden_states: torch.Tensor,
        mask: Any,
        position_embeddings: Any = None,
        cache: Any = None,
        cache_position: Any = None,
        output_attentions: bool = False,
    ) -> Any:
        layer = None
        if (not torch.is_grad_enabled() and not output_attentions and not module.training and cache is not None
                and type(cache).update is cache_update and index < len(cache.layers) and _plain(hidden_states)
                and hidden_states.dim() == 3 and hidden_states.shape[1] == 1
                and config._attn_implementation in (None, "sdpa") and registry.get("sdpa") is sdpa):  # fmt: skip
            layer = cache.layers[index]
        if (type(layer) is not DynamicLayer or layer._keys is None
                or not _cache_fits(layer, hidden_states.shape[0], kv_heads, d)):  # fmt: skip
            return own(
                module, hidden_states, mask, position_embeddings, cache, cache_position, output_attentions
            )
        batch = hidden_states.shape[0]
        cos, sin = position_embeddings
        kv_len = layer.length + 1
        if not (_table_fits(cos, batch, d) and _table_fits(sin, batch, d) and sin.shape == cos.shape
                and _mask_fits(mask, batch, kv_len)):  # fmt: skip
            return own(
                module, hidden_states, mask, position_embeddings, cache, cache_position, output_attentions
            )
        q, k, v = module.q_proj(hidden_states), module.k_proj(hidden_states), module.v_proj(hidden_states)
        if module.q_norm is not None:
            shape = (batch, 1, -1, d)
            q, k = module.q_norm(q.view(shape)).flatten(2), module.k_norm(k.view(shape)).flatten(2)
        strides = (row_stride(q), row_stride(k), row_stride(v))
        if (None in strides or not (_plain(q) and _plain(k) and _plain(v)) or q.shape[-1] != heads * d
                or k.shape[-1] != kv_heads * d or v.shape[-1] != kv_heads * d):  # fmt: skip
            return _unfused(module, q, k, v, mask, position_embeddings, cache, cache_position)
        keys, values = layer.reserve(1)
        out = torch.empty((batch, 1, heads * d), dtype=torch.float32)
        scale = d**-0.5 if module.scaling is None else module.scaling
        lib.decode_attention(
            q.data_ptr(), strides[0], k.data_ptr(), strides[1], v.data_ptr(), strides[2],
            cos.data_ptr(), sin.data_ptr(), 0 if cos.shape[0] == 1 else d,
            keys.data_ptr(), values.data_ptr(), keys.stride(0), keys.stride(1), keys.stride(2),
            layer.length, kv_len, None if mask is None else mask.data_ptr(),
            0 if mask is None or mask.shape[0] == 1 else mask.stride(0), out.data_ptr(),
            batch, heads, kv_heads, d, scale, torch.get_num_threads(),
        )  # fmt: skip
        layer.length = kv_len
        return module.o_proj(out), None

    return forward


def _cross_attention_forward(module: Any) -> Any:
    """An encoder-decoder layer's cross-attention (:class:`~pretrained.modeling.seq2seq.Seq2SeqAttention`) in
    decode steps: one query per row against the keys / values its cache already holds, in one call (PyTorch's
    flash kernel streams them at about half the memory bandwidth). Everything else runs the module's own
    ``forward``: self-attention, the first step (which projects the encoder output), longer queries."""
    from pretrained.modeling.cache import DynamicLayer, EncoderDecoderCache

    own = type(module).forward
    lib = _built["lib"]
    config, index, heads = module.config, module.layer_idx, module.num_heads
    sdpa, registry = _sdpa(), _registry()

    def forward(
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        key_value_states: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> Any:
        layer = None
        if (key_value_states is not None and type(cache) is EncoderDecoderCache and cache.is_updated.get(index)
                and not torch.is_grad_enabled() and not output_attentions and not module.training
                and _plain(hidden_states) and hidden_states.dim() == 3 and hidden_states.shape[1] == 1
                and config._attn_implementation in (None, "sdpa") and registry.get("sdpa") is sdpa):  # fmt: skip
            layers = cache.cross_attention_cache.layers
            layer = layers[index] if index < len(layers) else None
        keys = values = None
        if type(layer) is DynamicLayer and layer._keys is not None:
            keys, values = layer.keys, layer.values
        batch = hidden_states.shape[0]
        if keys is None or not _cached_fits(keys, values, batch, heads) or not _mask_fits(mask, batch, keys.shape[2]):
            return own(module, hidden_states, mask, cache, cache_position, key_value_states, output_attentions)
        q = module.q_proj(hidden_states)
        if not _plain(q) or q.shape != hidden_states.shape[:2] + (heads * keys.shape[3],) or row_stride(q) is None:
            return own(module, hidden_states, mask, cache, cache_position, key_value_states, output_attentions)
        out = torch.empty(q.shape, dtype=torch.float32)
        length, d = keys.shape[2], keys.shape[3]
        lib.cached_attention(
            q.data_ptr(), row_stride(q), keys.data_ptr(), values.data_ptr(), keys.stride(0), keys.stride(1),
            keys.stride(2), length, None if mask is None else mask.data_ptr(),
            0 if mask is None or mask.shape[0] == 1 else mask.stride(0), out.data_ptr(),
            batch, heads, keys.shape[1], d, module.scaling, torch.get_num_threads(),
        )  # fmt: skip
        return module.out_proj(out), None

    return forward


def _cached_fits(keys: torch.Tensor, values: torch.Tensor, batch: int, heads: int) -> bool:
    """fp32 CPU ``(batch, kv_heads, len, dim)`` keys and values laid out alike, rows of ``dim`` contiguous,
    with as many heads as the queries (or a divisor of them) and at least one slot."""
    return (_plain(keys) and _plain(values) and keys.dim() == 4 and _kv_fits(keys, values, batch)
            and keys.shape[2] > 0 and heads % keys.shape[1] == 0)  # fmt: skip


def _mask_fits(mask: Any, batch: int, kv_len: int) -> bool:
    """No mask, or a boolean ``(batch or 1, 1, 1, kv_len)`` one with contiguous keys (a padding mask)."""
    return mask is None or (type(mask) is torch.Tensor and mask.dtype is torch.bool and mask.is_cpu
                            and mask.dim() == 4 and mask.shape[0] in (1, batch) and mask.shape[1:] == (1, 1, kv_len)
                            and (kv_len == 1 or mask.stride(3) == 1))  # fmt: skip


def _unfused(
    module: Any,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: Any,
    position_embeddings: Any,
    cache: Any,
    cache_position: Any,
) -> Any:
    """The rest of the attention layer's own path from projections the kernel does not take."""
    from pretrained.modeling.attention import merge_heads, sdpa_attention
    from pretrained.modeling.rotary import apply_rotary_tables

    shape = (q.shape[0], q.shape[1], -1, module.head_dim)
    q, k = apply_rotary_tables(q.reshape(shape).transpose(1, 2), k.reshape(shape).transpose(1, 2),
                               *position_embeddings)  # fmt: skip
    v = v.reshape(shape).transpose(1, 2)
    k, v = cache.update(k, v, module.layer_idx, {"cache_position": cache_position})
    out, _ = sdpa_attention(q, k, v, mask, scale=module.scaling, is_causal=True)
    return module.o_proj(merge_heads(out)), None


class _Linear(ctypes.Structure):
    _fields_ = [("fn", ctypes.c_void_p), ("kind", ctypes.c_int64), ("w", ctypes.c_void_p),
                ("scale", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("n", ctypes.c_int64), ("k", ctypes.c_int64)]  # fmt: skip


class _Block(ctypes.Structure):
    _fields_ = [("norm_1", ctypes.c_void_p), ("norm_2", ctypes.c_void_p), ("eps_1", ctypes.c_double),
                ("eps_2", ctypes.c_double), ("scale", ctypes.c_double), ("hidden", ctypes.c_int64),
                ("heads", ctypes.c_int64), ("kv_heads", ctypes.c_int64), ("head_dim", ctypes.c_int64),
                ("inter", ctypes.c_int64), ("qkv_calls", ctypes.c_int64), ("gate_up_calls", ctypes.c_int64),
                ("qkv", _Linear * 3), ("o", _Linear), ("gate_up", _Linear * 2), ("down", _Linear)]  # fmt: skip


def _linear_specs(modules: list[Any], table: dict) -> tuple[list[_Linear], list[tuple]] | None:
    """The kernel calls computing ``modules`` (sibling projections of one input, in column order): one call
    when they are the members of one packed int8 group in that order, else one per module; and the
    ``(mapping, key, object)`` identities that must hold for them to stay valid. ``None`` when a module is
    neither a plain fp32 ``nn.Linear`` (with the small-rows kernel built) nor a fast int8 layer."""
    from pretrained.inference import kernels, quant_kernels
    from pretrained.inference.compiled import is_int8_layer

    specs, checks, groups = [], [], []
    for module in modules:
        if (
            type(module) is torch.nn.Linear
            and _plain_weight(module.weight)
            and kernels.load_small_rows_kernel()
        ):
            weight, bias = module.weight, module.bias
            if module.weight.dim() != 2 or (bias is not None and not _plain_weight(bias)):
                return None
            fn = ctypes.cast(kernels.load_small_rows_kernel(), ctypes.c_void_p).value
            specs.append(_Linear(fn, 0, weight.data_ptr(), None, None if bias is None else bias.data_ptr(),
                                 *weight.shape))  # fmt: skip
            checks += [(module._parameters, "weight", weight), (module._parameters, "bias", bias)]
            groups.append(None)
        elif (
            is_int8_layer(module)
            and "forward" not in vars(module)
            and quant_kernels.load_kernels() is not None
        ):
            with torch.no_grad():
                cache = module._cache()
            if not cache.get("fast") or module.kernel != "auto":
                return None
            fn = ctypes.cast(quant_kernels.load_kernels()["int8"], ctypes.c_void_p).value
            weight, scale, bias = cache["weight"], cache["scale"], cache["bias"]
            group = table.get(weight)
            groups.append(group)
            if group is not None:
                weight, scale, bias = group.weight, group.scale, group.bias
            specs.append(_Linear(fn, 1, weight.data_ptr(), scale.data_ptr(), None if bias is None else bias.data_ptr(),
                                 *weight.shape))  # fmt: skip
            # (kernel: a class default that an instance may override; a source buffer assigned anew or moved
            # drops the layer's kernel cache, see Int8WeightOnlyLinear.__setattr__ / _apply)
            checks += [
                (module.__dict__, "_kernel_cache", cache),
                (module.__dict__, "kernel", vars(module).get("kernel")),
            ]
        else:
            return None
    first = groups[0]
    if first is not None and all(g is not None and g.index == first.index for g in groups):
        starts = [g.start for g in groups]
        if starts == sorted(starts) and starts[0] == 0 and groups[-1].end == first.weight.shape[0]:
            return [specs[0]], checks
    if any(g is not None for g in groups):
        for spec, module in zip(specs, modules):  # each member on its own (unpacked) weights
            if spec.kind == 1:
                with torch.no_grad():
                    cache = module._cache()
                spec.w, spec.scale = cache["weight"].data_ptr(), cache["scale"].data_ptr()
                spec.bias = None if cache["bias"] is None else cache["bias"].data_ptr()
                spec.n = cache["weight"].shape[0]
    return specs, checks


def _block_forward(module: Any, table: dict, fallback: Any) -> Any:
    """A whole Llama block per call (``block_step``) for steps of 1-8 rows, else ``fallback``."""
    from pretrained.modeling.cache import Cache, DynamicLayer
    from pretrained.modeling.mlp import GatedMLP
    from pretrained.modeling.norms import RMSNorm

    norm_1, attention, norm_2, mlp = module._sublayers()
    if not (type(norm_1) is RMSNorm and type(norm_2) is RMSNorm and _plain_weight(norm_1.weight)
            and _declares(type(attention), "llama_attention") and attention.q_norm is None and type(mlp) is GatedMLP
            and mlp.act_fn is F.silu and attention.head_dim % 2 == 0):  # fmt: skip
        return fallback
    if any(m._forward_hooks or m._forward_pre_hooks for m in module.modules()):
        return fallback
    qkv = _linear_specs([attention.q_proj, attention.k_proj, attention.v_proj], table)
    o = _linear_specs([attention.o_proj], table)
    gate_up = _linear_specs([mlp.gate_proj, mlp.up_proj], table)
    down = _linear_specs([mlp.down_proj], table)
    if None in (qkv, o, gate_up, down):
        return fallback
    config, d = attention.config, attention.head_dim
    heads, kv_heads, hidden = config.num_attention_heads, config.num_key_value_heads, norm_1.weight.shape[0]
    inter = mlp.down_proj.in_features
    shapes = [(heads * d, hidden), (kv_heads * d, hidden), (kv_heads * d, hidden)]
    if len(qkv[0]) == 1:
        shapes = [(heads * d + 2 * kv_heads * d, hidden)]
    shapes += [(hidden, heads * d)] + (
        [(2 * inter, hidden)] if len(gate_up[0]) == 1 else [(inter, hidden)] * 2
    )
    shapes += [(hidden, inter)]
    if [(s.n, s.k) for s in qkv[0] + o[0] + gate_up[0] + down[0]] != shapes:
        return fallback
    block = _Block(norm_1.weight.data_ptr(), norm_2.weight.data_ptr(), norm_1.variance_epsilon,
                   norm_2.variance_epsilon, d**-0.5 if attention.scaling is None else attention.scaling,
                   hidden, heads, kv_heads, d, inter, len(qkv[0]), len(gate_up[0]))  # fmt: skip
    for i, spec in enumerate(qkv[0]):
        block.qkv[i] = spec
    block.o = o[0][0]
    for i, spec in enumerate(gate_up[0]):
        block.gate_up[i] = spec
    block.down = down[0][0]
    checks = qkv[1] + o[1] + gate_up[1] + down[1]
    checks += [(norm_1._parameters, "weight", norm_1.weight), (norm_2._parameters, "weight", norm_2.weight)]
    # parameters keep their objects when re-pointed (``.data = ...``): their memory is checked too
    held = [t for _, name, t in checks if name in ("weight", "bias") and isinstance(t, torch.nn.Parameter)]
    pointers = [t.data_ptr() for t in held]
    lib, address = _built["lib"], ctypes.addressof(block)
    scratch_rows = lib.block_scratch(address, 1)
    index, cache_update, sdpa = attention.layer_idx, Cache.update, _sdpa()
    registry = _registry()
    epsilons = (norm_1.variance_epsilon, norm_2.variance_epsilon)

    def valid(cache: Any, batch: int) -> Any:
        """This block's cache layer when its weights and cache are the ones the call was prepared for."""
        if (attention.training or (norm_1.variance_epsilon, norm_2.variance_epsilon) != epsilons
                or not all(m.get(k) is o for m, k, o in checks) or [t.data_ptr() for t in held] != pointers
                or index >= len(cache.layers)):  # fmt: skip
            return None
        layer = cache.layers[index]
        if (
            type(layer) is not DynamicLayer
            or layer._keys is None
            or not _cache_fits(layer, batch, kv_heads, d)
        ):
            return None
        return layer

    def run(
        layer: Any, x: torch.Tensor, y: torch.Tensor, scratch: torch.Tensor, tables: tuple, mask: Any
    ) -> None:
        """The block on ``x`` into ``y`` (``(batch, 1, hidden)`` contiguous fp32), for a ``valid`` layer."""
        cos, sin, table_row = tables
        keys, values = layer.reserve(1)
        lib.block_step(
            address, x.data_ptr(), y.data_ptr(), scratch.data_ptr(), cos, sin, table_row, keys.data_ptr(),
            values.data_ptr(), keys.stride(0), keys.stride(1), keys.stride(2), layer.length,
            None if mask is None else mask.data_ptr(), 0 if mask is None or mask.shape[0] == 1 else mask.stride(0),
            x.shape[0], torch.get_num_threads(),
        )  # fmt: skip
        layer.length += 1

    def forward(hidden_states: torch.Tensor, mask: Any, position_embeddings: Any = None, cache: Any = None,
                cache_position: Any = None, output_attentions: bool = False) -> Any:  # fmt: skip
        layer = None
        if (not torch.is_grad_enabled() and not output_attentions and cache is not None
                and type(cache).update is cache_update and _plain(hidden_states) and hidden_states.dim() == 3
                and hidden_states.shape[1] == 1 and hidden_states.shape[2] == hidden and hidden_states.shape[0] <= 8
                and hidden_states.is_contiguous() and config._attn_implementation in (None, "sdpa")
                and registry.get("sdpa") is sdpa):  # fmt: skip
            layer = valid(cache, hidden_states.shape[0])
        batch = hidden_states.shape[0]
        tables = layer is not None and _tables(position_embeddings, batch, d)
        if not tables or not _mask_fits(mask, batch, layer.length + 1):
            return fallback(
                hidden_states, mask, position_embeddings, cache, cache_position, output_attentions
            )
        out = torch.empty(hidden_states.shape, dtype=torch.float32)
        run(layer, hidden_states, out, torch.empty(scratch_rows * batch, dtype=torch.float32), tables, mask)
        return out, None

    forward.block = block  # (the struct the kernel reads must live as long as the forward)
    forward.valid, forward.run, forward.scratch_rows = valid, run, scratch_rows
    return forward


def _tables(position_embeddings: Any, batch: int, d: int) -> tuple | None:
    """``(cos pointer, signed sin pointer, row stride)`` of rotary tables the kernels take, else ``None``."""
    if not isinstance(position_embeddings, tuple) or len(position_embeddings) != 2:
        return None
    cos, sin = position_embeddings
    if not (_table_fits(cos, batch, d) and _table_fits(sin, batch, d) and cos.shape == sin.shape):
        return None
    return cos.data_ptr(), sin.data_ptr(), 0 if cos.shape[0] == 1 else d


def _sdpa() -> Any:
    from pretrained.modeling.attention import sdpa_attention

    return sdpa_attention


def _registry() -> dict:
    from pretrained.modeling.attention import ATTENTION_FUNCTIONS

    return ATTENTION_FUNCTIONS


def _kv_fits(keys: torch.Tensor, values: torch.Tensor, batch: int) -> bool:
    """fp32 CPU ``(batch, heads, len, dim)`` keys and values laid out alike, rows of ``dim`` contiguous."""
    return (keys.dtype is torch.float32 and values.dtype is torch.float32 and keys.is_cpu and values.is_cpu
            and keys.shape == values.shape and keys.stride() == values.stride() and keys.shape[0] == batch
            and keys.stride(3) == 1)  # fmt: skip


def _cache_fits(layer: Any, batch: int, kv_heads: int, d: int) -> bool:
    """A Llama cache layer's buffers as the kernels write and read them: ``_kv_fits``, ``kv_heads`` heads of ``d``."""
    keys = layer._keys
    return _kv_fits(keys, layer._values, batch) and keys.shape[1] == kv_heads and keys.shape[3] == d


def _table_fits(table: Any, batch: int, d: int) -> bool:
    # rotary_tables(): (batch or 1, 1, 1, head_dim), the whole head rotated
    return (_plain(table) and table.dim() == 4 and table.shape[0] in (1, batch) and table.shape[1:] == (1, 1, d)
            and table.is_contiguous())  # fmt: skip


def _stack_forward(model: Any, blocks: list[Any]) -> Any:
    """A Llama decoder stack's step of one new token per row (1-8 rows): embedding, rotary tables and mask
    once, then every block's ``block_step`` and the final norm, without a Python call per block; any other
    call (or a block whose weights or cache changed) runs the stack's own ``forward``."""
    from pretrained.modeling.cache import Cache
    from pretrained.modeling.decoder import build_masks
    from pretrained.modeling.outputs import BaseModelOutputWithPast, output_flag
    from pretrained.modeling.rotary import rotary_tables

    own, config, norm = type(model).forward, model.config, model.norm
    hidden, d, windows = config.hidden_size, config.head_dim, model.windows
    norm_weight, cache_update, scratch_rows = norm.weight, Cache.update, blocks[0].scratch_rows
    sdpa, registry = _sdpa(), _registry()
    quiet = {"cache_position", "return_dict", "output_attentions", "output_hidden_states"}

    def forward(input_ids: Any = None, attention_mask: Any = None, position_ids: Any = None,
                past_key_values: Any = None, inputs_embeds: Any = None, use_cache: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        cache = past_key_values if past_key_values is not None else kwargs.get("cache")
        if (torch.is_grad_enabled() or model.training or inputs_embeds is not None or type(input_ids) is not torch.Tensor
                or input_ids.dim() != 2 or input_ids.shape[1] != 1 or not 0 < input_ids.shape[0] <= 8
                or cache is None or not isinstance(cache, Cache) or type(cache).update is not cache_update
                or use_cache is False or not config.use_cache and use_cache is None or not kwargs.keys() <= quiet
                or output_flag(config, "output_attentions", kwargs.get("output_attentions"))
                or output_flag(config, "output_hidden_states", kwargs.get("output_hidden_states"))
                or any(w is not None for w in windows) or config._attn_implementation not in (None, "sdpa")
                or registry.get("sdpa") is not sdpa or norm.weight is not norm_weight):  # fmt: skip
            return own(model, input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
                       **kwargs)  # fmt: skip
        batch = input_ids.shape[0]
        layers = [block.valid(cache, batch) for block in blocks]
        length = layers[0].length if layers[0] is not None else -1
        if any(layer is None or layer.length != length for layer in layers):
            return own(model, input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
                       **kwargs)  # fmt: skip
        cache_position = kwargs.get("cache_position")
        if cache_position is None:
            cache_position = torch.arange(length, length + 1)
        elif cache_position.shape != (1,) or int(cache_position[0]) != length:
            return own(model, input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
                       **kwargs)  # fmt: skip
        x = model.embed_tokens(input_ids)
        positions = cache_position.unsqueeze(0) if position_ids is None else position_ids
        tables = rotary_tables(*model.rotary_emb(positions, x.dtype))
        mask = build_masks(attention_mask, cache, cache_position, windows)[None]
        pointers = (
            _plain(x) and x.shape == (batch, 1, hidden) and x.is_contiguous() and _tables(tables, batch, d)
        )
        if not pointers or not _mask_fits(mask, batch, length + 1):
            return own(model, input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache,
                       **kwargs)  # fmt: skip
        y = torch.empty_like(x)
        scratch = torch.empty(scratch_rows * batch, dtype=torch.float32)
        for block, layer in zip(blocks, layers):
            block.run(layer, x, y, scratch, pointers, mask)
            x, y = y, x
        out = BaseModelOutputWithPast(last_hidden_state=norm(x), past_key_values=cache)
        return out if output_flag(config, "return_dict", kwargs.get("return_dict")) else out.to_tuple()

    return forward


def _declares(kind: type, name: str) -> bool:
    """Whether class ``kind`` itself (not a base) says its eager decode steps are the ``name`` ones computed
    here (``decode_ops_kind``, set on the model families' classes: this layer does not import them)."""
    return vars(kind).get("decode_ops_kind") == name


def decode_forwards(model: Any, int8_table: dict | None = None) -> list[tuple[Any, Any]]:
    """``(module, forward)`` pairs for the modules of ``model`` the kernels serve (fp32 CPU weights): RMSNorm,
    gated MLPs, Llama-family attention, pre-norm blocks with an RMSNorm second norm and encoder-decoder
    cross-attention. Empty without the built library. Modules whose ``forward`` is patched on the instance
    are left alone. ``int8_table``: the model's packed int8 groups
    (:func:`~pretrained.inference.compiled.int8_group_table`, as the caller's int8 layers use them): blocks
    compute a packed q / k / v or gate / up group as one kernel call; without it, one call per layer."""
    if load_decode_ops() is None:
        return []
    # Layers of other libraries (bitsandbytes rounds activations to int8 in fp16, adapters...) can turn the
    # fused ops' last-bit differences into other tokens: such models decode op by op, as transformers does.
    if any(not type(m).__module__.startswith(("pretrained.", "torch.nn.")) for m in model.modules()):
        return []
    from pretrained.modeling.decoder import PreNormDecoderLayer
    from pretrained.modeling.mlp import GatedMLP
    from pretrained.modeling.norms import RMSNorm
    from pretrained.modeling.seq2seq import DecoderLayer, Seq2SeqAttention

    found, table = [], int8_table or {}
    for module in model.modules():
        if "forward" in vars(module):
            continue
        kind = type(module)
        if kind is RMSNorm and _plain_weight(module.weight):
            found.append((module, _norm_forward(module)))
        elif kind is GatedMLP:
            found.append((module, _mlp_forward(module)))
        elif _declares(kind, "llama_attention") and module.head_dim % 2 == 0:
            found.append((module, _attention_forward(module)))
        elif isinstance(module, DecoderLayer):
            cross = getattr(module, "encoder_attn", None)
            if type(cross) is Seq2SeqAttention and "forward" not in vars(cross):
                found.append((cross, _cross_attention_forward(cross)))
        elif isinstance(module, PreNormDecoderLayer) and kind.forward is PreNormDecoderLayer.forward:
            norm = module._sublayers()[2]
            if type(norm) is RMSNorm and _plain_weight(norm.weight):
                forward = _layer_forward(module)
                if BLOCKS:
                    forward = _block_forward(module, table, forward)
                found.append((module, forward))
    for module in model.modules():
        if _declares(type(module), "llama_stack") and "forward" not in vars(module):
            blocks = [dict(found).get(layer) for layer in module.layers]
            if blocks and all(hasattr(b, "run") for b in blocks) and type(module.norm) is RMSNorm:
                found.append((module, _stack_forward(module, blocks)))
    return found

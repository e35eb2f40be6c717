"""The model side of ``generate``'s loop: the cache, the prefill and one step per token.

Everything that does not change from one token to the next is built once: the attention-mask buffer
(a view of it is passed each step; no mask at all when the batch has no padding), the next positions,
the cache slots. Steps run the model eagerly, or through a compiled decoder
(:class:`pretrained.inference.compiled.CompiledDecoder`) which owns its graphs and weights placement.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F

from pretrained.generation.configuration_utils import GenerationConfig
from pretrained.inference import decode_ops, kernels, quant_kernels
from pretrained.inference.compiled import CompiledDecoder, int8_group_table, is_int8_layer
from pretrained.inference.int8_dynamic import torchao_int8_weight_only
from pretrained.inference.routing import DecodeKernels, plain_fp32_cpu
from pretrained.loading.device_map import spans_devices
from pretrained.modeling.cache import Cache, DynamicCache, EncoderDecoderCache, StaticCache


class Runner:
    """Drives the model: prefill once, then one token per row per step, with everything preallocated."""

    def __init__(
        self,
        model: Any,
        config: GenerationConfig,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor,
        has_padding: bool,
        max_length: int,
        cache: Cache,
        model_kwargs: dict[str, Any],
        seq2seq: bool = False,
    ) -> None:
        # An encoder-decoder's steps feed the decoder (decoder_input_ids / decoder_attention_mask); the
        # encoder's output and mask stay in model_kwargs for every step (the cross-attention keys and values
        # come from the cache after the first one).
        self.model, self.cache, self.model_kwargs, self.seq2seq = model, cache, model_kwargs, seq2seq
        batch, self.length = input_ids.shape
        length, device = self.length, input_ids.device
        self.static = isinstance(getattr(cache, "self_attention_cache", cache), StaticCache)
        # Bool mask for the whole run: prompt padding, then ones for every token still to come.
        self.mask = None
        if has_padding:
            self.mask = torch.ones(batch, max_length, dtype=torch.bool, device=device)
            self.mask[:, :length] = attention_mask.bool()
        positions = model_kwargs.pop("position_ids", None)
        if positions is None:
            positions = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        self.prefill_positions = positions
        self.next_position = positions[:, -1:] + 1
        self.cache_positions = torch.arange(max_length, device=device)
        self.decoder: CompiledDecoder | None = None  # set for compiled decode steps
        self.kernels: RoutedLinears | None = None  # set for eager steps that gain from other kernels
        self.guarded = False  # a compiled step of this run has run with all guards checked
        self.replayed = False  # outputs are overwritten by the next step (CUDA graphs)
        self.want_attn = bool(config.output_attentions)
        self.want_hidden = bool(config.output_hidden_states)

    def _inputs(self, input_ids: torch.Tensor, positions: torch.Tensor, start: int, end: int) -> dict[str, Any]:
        extra = {}
        if self.want_attn:
            extra["output_attentions"] = True
        if self.want_hidden:
            extra["output_hidden_states"] = True
        # A static cache sees the whole buffer (fixed shapes for compiled steps; the causal part of the mask
        # hides the slots not written yet).
        mask = None if self.mask is None else self.mask if self.static else self.mask[:, :end]
        if self.seq2seq:
            if getattr(self.model, "_decoder_positions_from_mask", False):
                # Whisper: decoder positions count the real tokens (left-padded prompts), as transformers'
                # prepare_inputs_for_generation gives them
                extra["decoder_position_ids"] = positions
            return dict(
                decoder_input_ids=input_ids,
                decoder_attention_mask=mask,
                past_key_values=self.cache,
                use_cache=True,
                cache_position=self.cache_positions[start:end],
                return_dict=True,
                **self.model_kwargs,
                **extra,
            )
        return dict(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=self.cache,
            use_cache=True,
            cache_position=self.cache_positions[start:end],
            logits_to_keep=1,
            return_dict=True,
            **self.model_kwargs,
            **extra,
        )

    def prefill(self, input_ids: torch.Tensor, repeat: int = 1) -> Any:
        """Run the prompt; with ``repeat > 1`` it runs once per row and the cache is then repeated
        (beam search: all beams of a row start from the same prompt)."""
        positions = self.prefill_positions
        # A static cache is preallocated for every row, so it is filled row by row instead.
        repeat = 1 if self.static else repeat
        # New tokens continue the last segment, as in transformers; other extra inputs describe the prompt.
        token_types = self.model_kwargs.get("token_type_ids")
        step_kwargs = {} if token_types is None else {"token_type_ids": token_types[:, -1:]}
        if self.seq2seq:
            step_kwargs = {k: self.model_kwargs[k] for k in ("encoder_outputs", "attention_mask")
                           if k in self.model_kwargs}
        if repeat > 1:
            rows = input_ids.shape[0]
            input_ids, positions = input_ids[::repeat], positions[::repeat]
            full_mask, self.mask = self.mask, None if self.mask is None else self.mask[::repeat]
            self.model_kwargs = {k: _first_of_each(v, rows, repeat) for k, v in self.model_kwargs.items()}
        out = self.model(**self._inputs(input_ids, positions, 0, self.length))
        if repeat > 1:
            self.mask = full_mask
            self.cache.batch_repeat_interleave(repeat)
            out.logits = out.logits.repeat_interleave(repeat, dim=0)
        self.model_kwargs = step_kwargs
        return out

    def last_logits(self, out: Any, device: torch.device) -> torch.Tensor:
        """The last position's logits of a step in fp32 on ``device`` (with a device_map the head may sit
        elsewhere). When the next step overwrites this one's outputs (a replayed CUDA graph), they are
        copies, and so are the attentions / hidden states kept in ``out``."""
        logits = out.logits[:, -1, :].to(device=device, dtype=torch.float32)
        if not self.replayed:
            return logits
        for name in ("attentions", "hidden_states"):
            value = getattr(out, name, None)
            if value is not None:
                setattr(out, name, tuple(t.clone() for t in value))
        return logits.clone()

    def step(self, tokens: torch.Tensor) -> Any:
        """Feed one new token per row ``(batch, 1)``; the cache advances by one slot either way."""
        start = self.length
        inputs = self._inputs(tokens, self.next_position, start, start + 1)
        if self.decoder is not None:
            # Every step of a run has the inputs of the first (shapes, dtypes, cache, model): that one
            # checked all of dynamo's guards; the rest only tell apart the graphs compiled so far.
            out = self.decoder(self.model, self.cache, skip_guards=self.guarded, **inputs)
            self.guarded = True
        else:
            with self.kernels if self.kernels is not None else contextlib.nullcontext():
                out = self.model(**inputs)
        self.next_position = self.next_position + 1
        self.length += 1
        return out


# False: int8 weight-only layers keep one kernel call each (for measuring what grouping gains)
INT8_GROUPS = True
# False: norms, gated MLPs and attention keep their own PyTorch ops in eager steps (for measuring what the fused
# operations of pretrained.inference.decode_ops gain)
FUSED_OPS = True


class RoutedLinears:
    """For the length of a ``with`` block (one eager step), the model's ``nn.Linear`` layers with weights of
    ``kernels.MIN_KERNEL_WEIGHT`` elements or more send their few-row calls to the kernel
    :class:`~pretrained.inference.routing.DecodeKernels` picks (same choice, same results): the small-rows
    kernel for 1-8 rows, oneDNN for 4-32 rows against the largest weights it does not take.

    Only those layers' ``forward`` is swapped, where entering ``DecodeKernels`` as a torch function mode would
    look at every torch call of the step in Python (~460 per step of a 6 + 6-layer T5 at 4 beams) to find the
    dozen linears it reroutes. Layers whose ``forward`` is already patched on the instance are left alone. Other
    threads calling the same model during the step get the same kernels (identical maths, another order of
    summation).

    int8 weight-only layers (``Int8WeightOnlyLinear``) get a prepared call of the int8 kernel too, and their
    sibling projections (q / k / v, gate / up) are packed and computed as one call per group
    (:func:`~pretrained.inference.compiled.int8_group_table`: the first member called computes the group,
    the others return their columns of that product; bit-identical to per-layer calls)."""

    def __init__(self, model: Any) -> None:
        self.modules = [
            m for m in model.modules()
            # exactly nn.Linear with a plain weight: a quantized subclass or weight computes otherwise
            if type(m) is torch.nn.Linear and type(m.weight) in (torch.Tensor, torch.nn.Parameter)
            and "forward" not in vars(m) and m.weight.numel() >= min(kernels.MIN_KERNEL_WEIGHT, kernels.MIN_WEIGHT)
        ]  # fmt: skip
        self.router = DecodeKernels()  # (builds the kernel on a machine's first use)
        if not kernels.kernel_ready():  # oneDNN alone: only its weights
            self.modules = [m for m in self.modules if m.weight.numel() >= kernels.MIN_WEIGHT]
        self.forwards = [self._routed(m) for m in self.modules]
        int8 = [m for m in model.modules() if "forward" not in vars(m) and is_int8_layer(m)]
        table = {}  # the packed int8 groups, shared by the int8 layers' calls and the fused blocks
        if int8 and quant_kernels.load_kernels() is not None:
            table = int8_group_table(model) if INT8_GROUPS else {}
            cells: dict[int, list] = {}  # group index -> [(input, product, members served) or None]
            counts: dict[int, int] = {}
            for group in table.values():
                counts[group.index] = counts.get(group.index, 0) + 1
            for module in int8:
                forward = self._int8_routed(module, table, cells, counts)
                if forward is not None:
                    self.modules.append(module)
                    self.forwards.append(forward)
        # torchao's int8 weight-only layers compute (x @ q.T) * scale through a float copy of the weight: the
        # same product on the int8 kernel, reading a quarter of the bytes
        torchao = [m for m in model.modules() if type(m) is torch.nn.Linear and "forward" not in vars(m)
                   and torchao_int8_weight_only(m.weight) is not None]  # fmt: skip
        if torchao and quant_kernels.load_kernels() is not None:
            for module in torchao:
                forward = self._torchao_routed(module)
                if forward is not None:
                    self.modules.append(module)
                    self.forwards.append(forward)
        if FUSED_OPS:
            for module, forward in decode_ops.decode_forwards(model, table):
                self.modules.append(module)
                self.forwards.append(forward)

    def _routed(self, module: torch.nn.Linear) -> Any:
        choose = self.router._linear  # None where the call is not one the kernels serve
        weight, bias = module.weight, module.bias
        # The kernel's call for this layer, prepared once: a step's linears cost a few microseconds of Python
        # each, which is what the kernel saves on the smaller weights. It holds while the layer keeps these
        # tensors and their memory (checked per call); anything else takes the general route.
        n, k = weight.shape
        direct = (kernels.kernel_ready() and weight.numel() >= kernels.MIN_KERNEL_WEIGHT and plain_fp32_cpu(weight, bias)
                  and weight.is_contiguous() and (bias is None or (bias.shape == (n,) and bias.is_contiguous())))  # fmt: skip
        pointers = (weight.data_ptr(), None if bias is None else bias.data_ptr())
        kernel = kernels.load_small_rows_kernel()
        float32, most, threads = torch.float32, kernels.KERNEL_MAX_ROWS * k, torch.get_num_threads

        def forward(x: torch.Tensor) -> torch.Tensor:
            if torch.is_grad_enabled():
                return F.linear(x, module.weight, module.bias)
            if (direct and type(x) is torch.Tensor and x.dtype is float32 and x.is_cpu and x.dim() and x.shape[-1] == k
                    and 0 < x.numel() <= most and module.weight is weight and module.bias is bias
                    and (weight.data_ptr(), None if bias is None else bias.data_ptr()) == pointers):  # fmt: skip
                x = x.contiguous()
                out = torch.empty((*x.shape[:-1], n), dtype=float32)
                kernel(x.data_ptr(), pointers[0], pointers[1], out.data_ptr(), x.numel() // k, n, k, threads())
                return out
            out = choose(x, module.weight, module.bias)
            return F.linear(x, module.weight, module.bias) if out is None else out

        return forward

    @staticmethod
    def _int8_routed(module: Any, table: dict, cells: dict[int, list], counts: dict[int, int]) -> Any:
        """The prepared forward of an int8 weight-only layer: the kernel's operator called directly with the
        layer's kernel tensors (a group's whole product, or this member's columns of it) while the layer keeps
        them; anything else (autograd, another route, other inputs, replaced buffers) takes its own forward."""
        with torch.no_grad():
            cache = module._cache()
        if not cache.get("fast"):
            return None
        weight, scale, bias = cache["weight"], cache["scale"], cache["bias"]
        sources, buffers = cache["sources"], module._buffers  # (weight, weight_scale, bias)
        pointers = (weight.data_ptr(), scale.data_ptr())
        k = weight.shape[1]
        most = quant_kernels.SMALL_ROWS * k
        op = quant_kernels.int8_op()
        own = type(module).forward
        group = table.get(weight)
        if group is not None:
            cell = cells.setdefault(group.index, [None])
            members, start, end = counts[group.index], group.start, group.end
            packed = (group.weight, group.scale, group.bias)
        float32 = torch.float32

        def forward(x: torch.Tensor) -> torch.Tensor:
            if (torch.is_grad_enabled() or module.kernel != "auto" or type(x) is not torch.Tensor or x.dtype is not float32
                    or not x.is_cpu or not x.dim() or x.shape[-1] != k or not 0 < x.numel() <= most
                    or module.__dict__.get("_kernel_cache") is not cache
                    or buffers["weight"] is not sources[0] or buffers["weight_scale"] is not sources[1]
                    or buffers["bias"] is not sources[2]
                    or (weight.data_ptr(), scale.data_ptr()) != pointers):  # fmt: skip
                return own(module, x)
            if group is None:
                return op(x, weight, scale, bias)
            last = cell[0]
            if last is not None and last[0] is x:  # a sibling computed the group from this input
                cell[0] = None if last[2] + 1 >= members else (x, last[1], last[2] + 1)
                return last[1][..., start:end]
            whole = op(x, *packed)
            cell[0] = (x, whole, 1)
            return whole[..., start:end]

        return forward

    @staticmethod
    def _torchao_routed(module: torch.nn.Linear) -> Any:
        """The prepared forward of a torchao int8 weight-only layer: the int8 kernel on the weight's own values
        and scales while the layer keeps that weight and bias (anything else: the layer's own forward)."""
        weight, bias = module.weight, module.bias
        qdata, scale = torchao_int8_weight_only(weight)
        if not quant_kernels.int8_weights_fit(qdata, scale, bias):
            return None
        k, op, float32 = qdata.shape[1], quant_kernels.int8_op(), torch.float32
        most, pointers = quant_kernels.SMALL_ROWS * k, (qdata.data_ptr(), scale.data_ptr())

        def forward(x: torch.Tensor) -> torch.Tensor:
            if (torch.is_grad_enabled() or type(x) is not torch.Tensor or x.dtype is not float32 or not x.is_cpu
                    or not x.dim() or x.shape[-1] != k or not 0 < x.numel() <= most or module.weight is not weight
                    or module.bias is not bias or (weight.qdata.data_ptr(), weight.scale.data_ptr()) != pointers):  # fmt: skip
                return F.linear(x, module.weight, module.bias)
            return op(x, qdata, scale, bias)

        return forward

    def __bool__(self) -> bool:
        return bool(self.modules)

    def __enter__(self) -> RoutedLinears:
        # Straight into the instances' __dict__: nn.Module.__setattr__ looks the name up among parameters,
        # buffers and submodules first, ~5 us a layer on every step (a plain function is none of them).
        for module, forward in zip(self.modules, self.forwards):
            module.__dict__["forward"] = forward
        return self

    def __exit__(self, *exc: Any) -> None:
        for module in self.modules:
            vars(module).pop("forward", None)


def _first_of_each(value: Any, rows: int, repeat: int) -> Any:
    """The first of every ``repeat`` rows of a batched input (a tensor or a tuple of them: an encoder's
    output); anything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == rows:
        return value[::repeat]
    if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(_first_of_each(v, rows, repeat) for v in value)
    return value


def make_seq2seq_cache(model: Any, config: Any, max_length: int, user_cache: Any, min_static_len: int = 0
                       ) -> EncoderDecoderCache:
    """An encoder-decoder's cache: the user's (empty) one, or a dynamic or static self-attention cache (of
    ``max_length`` slots or more, see :func:`make_cache`; allocated at its first update) with a dynamic
    cross-attention cache."""
    if user_cache is not None:
        if isinstance(user_cache, (tuple, list)):
            return EncoderDecoderCache.from_legacy_cache(user_cache)
        if user_cache.get_seq_length() != 0:
            raise ValueError("generate() needs an empty cache: continuing from a filled cache is not supported")
        return user_cache if isinstance(user_cache, EncoderDecoderCache) else EncoderDecoderCache(user_cache)
    if config.cache_implementation in (None, "dynamic", "sliding_window", "hybrid", "offloaded"):
        return EncoderDecoderCache(DynamicCache(), DynamicCache())
    model_config = model.config
    layers = next((getattr(model_config, name) for name in ("decoder_layers", "num_decoder_layers")
                   if getattr(model_config, name, None) is not None), model_config.num_hidden_layers)
    size = max(config.max_cache_len or 0, max_length, min_static_len)
    return EncoderDecoderCache(StaticCache(SimpleNamespace(num_hidden_layers=layers), max_cache_len=size),
                               DynamicCache())


def make_cache(
    model: Any, config: Any, batch: int, max_length: int, user_cache: Any, min_static_len: int = 0
) -> Cache:
    """The cache of a ``generate`` run: the user's (empty) one, a dynamic one, or a static one of at least
    ``max_length`` (and ``min_static_len``: a compiled step keeps its graph when the length stays)."""
    if user_cache is not None:
        if isinstance(user_cache, (tuple, list)):
            return DynamicCache.from_legacy_cache(user_cache)
        if user_cache.get_seq_length() != 0:
            raise ValueError(
                "generate() needs an empty cache: continuing from a filled cache is not supported"
            )
        return user_cache
    if config.cache_implementation in (None, "dynamic", "sliding_window", "hybrid", "offloaded"):
        return DynamicCache(config=model.config)
    size = max(config.max_cache_len or 0, max_length, min_static_len)
    if spans_devices(model) or getattr(model, "tp_size", None):
        # Layers on several devices, or a tensor-parallel rank's share of the heads: each layer's buffers
        # are allocated by its first update, where its keys are (with their dtype and head count).
        return StaticCache(model.config, max_cache_len=size)
    return StaticCache(
        model.config, max_cache_len=size, max_batch_size=batch, device=model.device, dtype=model.dtype
    )

"""``CompiledDecoder``: a model's decode step compiled with ``torch.compile``, and all it owns.

``generate(..., cache_implementation="static", compile_config=...)`` asks for one with
:func:`compiled_decoder`; a program can do the same to drive its own loop. What a decoder holds lives in
the decoder, never on the model: the compiled function, the options it was compiled with, the largest
static cache length used so far (so later runs reuse the graph instead of recompiling per length), and,
on the CPU, the choice of kernels (:class:`~pretrained.inference.routing.DecodeKernels`, entered inside
the compiled function, so only that graph is affected). Decoders are kept per model in a weak table until
:func:`release` (or until the model is freed).

On the CPU, compiling also moves the model's weights into transparent huge pages
(:func:`pretrained.inference.hugepages.move_weights`: parameters keep their objects, names and values;
only their memory moves) because a batch-1 step streams every weight once per token.

Fused projections (CPU, decoder-only models): sibling ``nn.Linear`` layers that read the same input
(``q_proj`` / ``k_proj`` / ``v_proj``, ``gate_proj`` / ``up_proj``) are packed side by side in one
huge-page buffer (:func:`pretrained.inference.hugepages.pack`): their parameters stay the same
``nn.Parameter`` objects under the same names (state dict, saving and training work as before) and
become views of it. The decoder keeps the table of groups and hands it to
:class:`~pretrained.inference.routing.DecodeKernels` inside the traced step, where in one-row steps
compiled by inductor each group becomes one reduction, one pass over its weights (see there). Layers that
are not plain fp32 ``nn.Linear`` (quantized, sharded, other dtypes) are not packed and run as before. The
table is re-checked on every :meth:`CompiledDecoder.prepare` (weights loaded or replaced since are packed
again) and dropped with the decoder (:func:`release`); the packed memory lives on as the parameters'
storage, as long as they view it.

int8 weight-only layers (``Int8WeightOnlyLinear``: anything with ``fusion_tensors()``) are grouped the same
way, in compiled and eager steps alike (:func:`int8_group_table`): their int8 rows and their scales are
packed one member after another (:func:`pretrained.inference.packed_memory.pack`; the buffers keep their
objects and become views), and the first member called computes the whole group with one call of the int8
kernel, its siblings taking their columns (in compiled steps through
:class:`~pretrained.inference.routing.DecodeKernels`, eagerly through ``generation.runner.RoutedLinears``).
A 12-layer Llama's step then makes 48 int8 kernel calls instead of 84. The kernel computes every output
from its own weight row alone, so the grouped results are bit-identical to the per-layer ones.
"""

from __future__ import annotations

import contextlib
import threading
import types
import weakref
from typing import Any

import torch
from torch import nn

from pretrained.inference import hugepages, packed_memory
from pretrained.inference.routing import DecodeKernels, Group, refresh_int8_ops

# Sibling projections that read the same input in every decoder-only family here.
FUSED = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
# Attention over another sequence: its query reads the decoder's states, its keys and values the
# encoder's, so packing them would make every query read all three weights.
_CROSS = ("encoder_attn", "crossattention", "EncDecAttention")

_DECODERS: weakref.WeakKeyDictionary[nn.Module, CompiledDecoder] = weakref.WeakKeyDictionary()
# model -> (members' (id, data_ptr) when packed, {member weight: Group}) of its int8 groups
_INT8_TABLES: weakref.WeakKeyDictionary[nn.Module, tuple[list, dict]] = weakref.WeakKeyDictionary()
INT8_INDEX = 1 << 20  # int8 groups are numbered from here (fp32 groups from 0; one table may hold both)
_ARGS = ("model", "inputs", "kernels", "reductions", "groups")  # _decode_forward's parameters, in order


def _decode_forward(model: nn.Module, inputs: dict[str, Any], kernels: bool, reductions: bool,
                    groups: dict[torch.Tensor, Group]) -> Any:
    # The mode is entered inside the traced function, so it shapes this graph only.
    mode = DecodeKernels(compiled=True, reductions=reductions, groups=groups) if kernels else None
    with mode if mode is not None else contextlib.nullcontext():
        return model(**inputs)


def _plain_linear(layer: Any) -> bool:
    """A layer whose product is ``F.linear`` on plain fp32 CPU tensors (not quantized or sharded)."""
    if type(layer) is not nn.Linear:  # a quantized layer may not even have a ``weight``
        return False
    tensors = [layer.weight] if layer.bias is None else [layer.weight, layer.bias]
    return all(
        type(t) is nn.Parameter and t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()
        for t in tensors
    )


def is_int8_layer(layer: Any) -> bool:
    """A layer whose int8 weight, scales and bias the int8 kernel takes as they are (see ``fusion_tensors``)."""
    fusion = getattr(layer, "fusion_tensors", None)
    return callable(fusion) and fusion() is not None


def fusable_groups(model: nn.Module, kind: str = "fp32") -> list[list[nn.Module]]:
    """The sibling projections of ``model`` that :class:`CompiledDecoder` packs (see the module docstring):
    at least two of a ``FUSED`` set, of one input width, all with or all without bias; none in an
    encoder-decoder or in cross-attention. ``kind``: ``"fp32"``, plain fp32 CPU ``nn.Linear`` layers;
    ``"int8"``, int8 weight-only layers (``fusion_tensors()`` not ``None``)."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return []
    takes = _plain_linear if kind == "fp32" else is_int8_layer
    groups = []
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in _CROSS:
            continue
        for names in FUSED:
            layers = [getattr(module, n, None) for n in names]
            layers = [layer for layer in layers if isinstance(layer, nn.Module) and takes(layer)]
            if len(layers) < 2 or len({layer.in_features for layer in layers}) > 1:
                continue
            if len({layer.bias is None for layer in layers}) > 1 or len({id(x.weight) for x in layers}) < len(layers):
                continue
            groups.append(layers)
    return groups


def _int8_units(model: nn.Module) -> list[list[nn.Module]]:
    """The int8 layers of ``model`` as its steps call them, in module order: each packed group (see
    :func:`fusable_groups`) where its first member stands and, with packed memory on, every other int8
    layer where it stands."""
    grouped = {id(layer): layers for layers in fusable_groups(model, "int8") for layer in layers}
    units, seen = [], {id(x.weight) for layers in grouped.values() for x in layers}
    for module in model.modules():
        layers = grouped.get(id(module))
        if layers is not None:
            units += [layers] if module is layers[0] else []
        elif packed_memory.ENABLED and is_int8_layer(module) and id(module.weight) not in seen:
            seen.add(id(module.weight))  # (a weight two layers share is packed once)
            units.append([module])
    return units


def _int8_members(units: list[list[nn.Module]]) -> list[tuple[int, int]]:
    tensors = [t for layers in units for x in layers for t in x.fusion_tensors()]
    return [(id(t), t.data_ptr()) for t in tensors if t is not None]


def int8_group_table(model: nn.Module) -> dict[torch.Tensor, Group]:
    """Pack the int8 weight-only sibling projections of ``model`` (see the module docstring) and return
    ``{member's int8 weight buffer: Group}`` (``Group.scale``: the packed scales; ``Group.bias``: the
    members' biases in fp32, packed, or ``None``). Packed once; called again, it packs only when a layer's
    buffers were replaced or moved since (the table is kept per model, weakly).

    The int8 weights of every int8 layer (groups and single layers) are packed into one run of memory in
    the order a step calls them, their scales into another (:func:`packed_memory.pack_run`): the kernel's
    prefetches past one call's weights then fetch the next call's, not another layer's or freed slots."""
    units = _int8_units(model)
    memo = _INT8_TABLES.get(model)
    if memo is not None and memo[0] == _int8_members(units):
        return memo[1]
    table: dict[torch.Tensor, Group] = {}
    weights = packed_memory.pack_run([[x.weight for x in layers] for layers in units]) if units else []
    scales = packed_memory.pack_run([[x.weight_scale for x in layers] for layers in units]) if units else []
    index = INT8_INDEX
    for layers, weight, scale in zip(units, weights, scales):
        if len(layers) == 1:
            continue  # (a single layer: its kernel calls read its own buffers, now views of the run)
        bias = None
        if layers[0].bias is not None:
            with torch.inference_mode(False):
                bias = packed_memory.place(torch.cat([layer.bias.detach().float() for layer in layers]))
        start = 0
        for layer in layers:
            table[layer.weight] = Group(weight, bias, start, start + layer.out_features, index, scale)
            start += layer.out_features
        index += 1
    _INT8_TABLES[model] = (_int8_members(units), table)
    return table


def compile_options(compile_config: Any, device: torch.device) -> dict[str, Any]:
    """``torch.compile`` options for a decode step from a ``compile_config`` (dict or config object)."""
    options = compile_config or {}
    if not isinstance(options, dict):
        names = ("fullgraph", "dynamic", "backend", "mode", "options")
        options = {k: getattr(options, k) for k in names if getattr(options, k, None) is not None}
    options = {"fullgraph": False, "dynamic": False, **options}
    if device.type == "cuda" and "mode" not in options and "options" not in options:
        # Replay the step as one CUDA graph: a small model's step is all kernel launches.
        options["mode"] = "reduce-overhead"
    if device.type == "cpu" and "mode" not in options and options.get("backend", "inductor") == "inductor":
        # Inductor's C++ wrapper launches the step's kernels without the Python wrapper's overhead.
        options["options"] = {"cpp_wrapper": True, **(options.get("options") or {})}
    return options


class CompiledDecoder:
    """A compiled forward for decode steps of one model.

    Args:
        model: The causal LM (its weights may move into huge pages on the CPU, see the module docstring).
        compile_config: ``torch.compile`` options (a dict or an object with ``fullgraph``, ``backend``, ...).
        fuse: Pack sibling projections and compute each group as one product (CPU; see the module
            docstring). ``False`` keeps every layer's own product (for comparisons).
    """

    def __init__(self, model: nn.Module, compile_config: Any = None, fuse: bool = True) -> None:
        if getattr(model, "tp_size", None):
            raise NotImplementedError(
                "A compiled decode step of a tensor-parallel model is not supported (its layers meet the other "
                "ranks in collectives the graph would have to capture); generate with the dynamic cache, or "
                "pass disable_compile=True with the static cache."
            )
        device = next(model.parameters()).device
        self.options = compile_options(compile_config, device)
        self.static_len = 0
        self.kernels = device.type == "cpu"
        self.reductions = self.kernels and self.options.get("backend", "inductor") == "inductor"
        # {member weight: Group}: the packed projections (one dict object for the decoder's life, so the
        # compiled graph's guards on it hold while the packing stays).
        self.groups: dict[torch.Tensor, Group] = {}
        self._packed: list[tuple[int, int]] = []  # (id, data_ptr) of every member when last packed
        self.fuse = fuse
        if self.kernels:
            DecodeKernels.prepare(compiled=True, reductions=self.reductions)
        self._fn = torch.compile(_decode_forward, **self.options)
        # thread -> (weak model, the compiled step's code as a plain function): set by a guarded step, run
        # by that thread's steps that skip guards (see __call__); dropped by prepare and by every guarded
        # step. Per thread: runs of other shapes in other threads must not swap each other's graphs.
        self._direct: dict[int, tuple[weakref.ref, Any]] = {}
        self.prepare(model)

    def prepare(self, model: nn.Module) -> int:
        """Pack fusable projections (see the module docstring) and move other weights into huge pages (CPU)
        where they were loaded or replaced since the last call; returns the bytes copied."""
        self._direct.clear()  # (weights may be re-packed or replaced: the next step checks all guards)
        if not self.kernels:
            return 0
        # fp32 groups: only one-row steps compiled by inductor compute a group as one product (see routing);
        # int8 groups: every compiled step (their kernel is an opaque op).
        packed = self._pack(model) if self.fuse else 0
        moved = hugepages.move_weights(model)
        if moved and self.fuse:
            packed += self._pack(model)  # (packs again only if that moved a member: its group would be stale)
        return packed + moved

    def _pack(self, model: nn.Module) -> int:
        groups = fusable_groups(model) if self.reductions else []
        int8 = int8_group_table(model)
        refresh_int8_ops()  # (the int8 kernel's operators may have been built since the decoder was made)
        members = [(id(t), t.data_ptr()) for layers in groups for x in layers for t in (x.weight, x.bias) if t is not None]
        members += [(id(w), w.data_ptr()) for w in int8]
        if members == self._packed:
            return 0  # the same layers, still in the buffers packed last time
        table: dict[torch.Tensor, Group] = dict(int8)
        moved = 0
        for index, layers in enumerate(groups):
            weight = hugepages.pack([layer.weight for layer in layers])
            bias = None if layers[0].bias is None else hugepages.pack([layer.bias for layer in layers])
            start = 0
            for layer in layers:
                table[layer.weight] = Group(weight, bias, start, start + layer.out_features, index)
                start += layer.out_features
            moved += weight.numel() * weight.element_size()
        self.groups.clear()
        self.groups.update(table)
        self._packed = [(id(t), t.data_ptr()) for layers in groups for x in layers for t in (x.weight, x.bias)
                        if t is not None]  # fmt: skip
        self._packed += [(id(w), w.data_ptr()) for w in int8]
        return moved

    def __call__(self, model: nn.Module, cache: Any, skip_guards: bool = False, **inputs: Any) -> Any:
        """Run one step (keyword inputs as for ``model.forward``, with ``cache_position``), then count the
        written slots in ``cache``, as an eager forward does (the graph cannot change a host-side count).

        ``skip_guards``: the caller vouches that the inputs match the last step called without it (shapes,
        dtypes, cache, model, grad mode), with no :meth:`prepare` since. On the CPU such a step runs the
        code dynamo made for that step directly, without looking it up (see :meth:`_direct_step`);
        otherwise only the guards that tell compiled graphs apart are evaluated.
        """
        args = (model, inputs, self.kernels, self.reductions, self.groups)
        thread = threading.get_ident()
        direct = self._direct.get(thread) if skip_guards else None
        if direct is not None and direct[0]() is model and not torch.compiler.is_compiling():
            out = direct[1](*args)
        else:
            stance = torch.compiler.set_stance(skip_guard_eval_unsafe=True) if skip_guards else contextlib.nullcontext()
            with stance:
                out = self._fn(*args)
            if not skip_guards:
                found = self._direct_step(args)
                if found is None:
                    self._direct.pop(thread, None)
                else:
                    self._direct[thread] = found
        cache.advance(inputs["cache_position"].shape[0])
        return out

    def _direct_step(self, args: tuple) -> tuple[weakref.ref, Any] | None:
        """The code dynamo ran for this step, as a plain function of ``_decode_forward``'s arguments, or
        ``None`` where that is not known to be one whole graph.

        Looking the step up costs more than half a millisecond per call on the CPU even when guard
        evaluation is skipped: the guards kept to tell graphs apart still walk the attribute chains to
        every buffer (int8 weights and scales, cache tensors) and the groups table. Dynamo puts the entry
        it ran first in its list; run again with inputs like these (the caller's promise), it would pick
        the same one. Its code reads the parameters, buffers and inputs afresh (a weight replaced in place
        of another of its shape takes effect), calls the compiled graph and applies its side effects, as
        a looked-up call does. Only CPU steps, without the user's own compiled region around them, under
        the default stance, and only a step traced whole (one graph, no resume function: after a graph
        break the rest would run eagerly here).
        """
        if not self.kernels or torch.compiler.is_compiling() or torch._dynamo.config.disable:
            return None
        from torch._dynamo import eval_frame

        if getattr(getattr(eval_frame, "_stance", None), "stance", None) != "default":
            return None
        try:
            entries = eval_frame._debug_get_cache_entry_list(_decode_forward.__code__)
        except Exception:  # (a private helper: without it, steps are looked up as before)
            return None
        if not entries:
            return None
        entry = entries[0]
        names = entry.code.co_names
        if sum(n.startswith("__compiled_fn") for n in names) != 1 or any(n.startswith("__resume_at") for n in names):
            return None
        if not entry.guard_manager.check(dict(zip(_ARGS, args))):
            return None  # (not the entry that just ran: let dynamo look every step up)
        step = types.FunctionType(entry.code, _decode_forward.__globals__, "_decode_step")
        return weakref.ref(args[0]), step


def compiled_decoder(model: nn.Module, compile_config: Any = None, fuse: bool | None = None) -> CompiledDecoder:
    """The :class:`CompiledDecoder` of ``model`` for these options: made once, then reused (also by
    ``generate``). ``fuse``: see :class:`CompiledDecoder`; ``None`` keeps the current decoder's choice
    (``True`` for a new one)."""
    options = compile_options(compile_config, next(model.parameters()).device)
    decoder = _DECODERS.get(model)
    if decoder is None or decoder.options != options or (fuse is not None and fuse != decoder.fuse):
        decoder = CompiledDecoder(model, compile_config, fuse=True if fuse is None else fuse)
        _DECODERS[model] = decoder
    else:
        decoder.prepare(model)
    return decoder


def release(model: nn.Module) -> None:
    """Forget ``model``'s compiled decoder (its graphs are freed with it; the weights stay where they are)."""
    _DECODERS.pop(model, None)

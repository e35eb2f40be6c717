"""Tensor-parallel strategies, under transformers 5.24's names.

A strategy says two things about a module named in a plan: how each of its parameters is cut across the
tensor-parallel ranks (a ``DTensor`` placement, or ``None`` for a full copy on every rank), and how its
forward runs on the shards. The forward runs on plain local tensors, with the collectives of
:mod:`pretrained.distributed.collectives` where ranks meet, so autograd, ``generate()`` and any kernel see
ordinary tensors; the parameters stay ``DTensor``s outside the forward, which is what optimizers, gradient
clipping, ``state_dict`` and distributed checkpoints read.

Linear layers are ``nn.Linear`` (weight ``(out, in)``) or GPT-2's ``Conv1D`` (weight ``(in, out)``): a
strategy finds the output and input dimensions from the module's type.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.tensor import DTensor, Placement, Shard
from torch.distributed.tensor.placement_types import _StridedShard

from pretrained.distributed.collectives import (
    copy_to,
    gather_last,
    reduce_from,
    shard_range,
    shard_sizes,
    split_last,
)
from pretrained.modeling.linear import Conv1D


def _dims(module: nn.Module, style: str) -> tuple[int, int, int, int]:
    """``(weight output dim, weight input dim, output width, input width)`` of a linear layer."""
    if isinstance(module, Conv1D):
        return 1, 0, module.nf, module.nx
    if isinstance(module, nn.Linear):
        return 0, 1, module.out_features, module.in_features
    raise TypeError(f"The tensor-parallel strategy {style!r} shards linear layers (nn.Linear or Conv1D), "
                    f"not {type(module).__name__}.")


@contextlib.contextmanager
def local_parameters(module: nn.Module, replace: dict[str, Callable[[torch.Tensor], Any]] | None = None
                     ) -> Iterator[None]:
    """Inside the block, ``module``'s ``DTensor`` parameters are their local shards (differentiable views, so
    gradients reach the ``DTensor``s) and those named in ``replace`` are what its functions return."""
    saved = dict(module._parameters)
    for name, param in saved.items():
        if param is None:
            continue
        if replace and name in replace:
            module._parameters[name] = replace[name](param)
        elif isinstance(param, DTensor):
            module._parameters[name] = param.to_local()
    try:
        yield
    finally:
        module._parameters.update(saved)


class ParallelStyle:
    """A strategy: parameter placements and a forward on shards (the base class shards and changes nothing)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def placement(self, module: nn.Module, leaf: str) -> Placement | None:
        """How parameter ``leaf`` of ``module`` is cut (``None``: every rank holds all of it)."""
        return None

    def check(self, module: nn.Module, module_name: str, world: int) -> None:
        """Refuse a module this strategy cannot shard over ``world`` ranks."""

    def installs_forward(self) -> bool:
        return type(self).run is not ParallelStyle.run

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        return forward(*args, **kwargs)

    def install(self, module: nn.Module, mesh: Any) -> None:
        """Make ``module``'s forward run on its shards (once per module)."""
        if self.installs_forward() and getattr(module, "_tp_style", None) is None:
            module.forward = functools.partial(_tp_forward, self, module, module.forward, mesh)
            module._tp_style = self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _tp_forward(style: ParallelStyle, module: nn.Module, forward: Callable, mesh: Any, *args: Any,
                **kwargs: Any) -> Any:
    return style.run(module, forward, mesh, args, kwargs)


class Colwise(ParallelStyle):
    """Output features split: weight and bias cut along the output dimension, the input replicated; the output
    is this rank's slice of the features, or all of them (``gather``) for a head whose logits leave the model."""

    def __init__(self, name: str, gather: bool = False) -> None:
        super().__init__(name)
        self.gather = gather

    def placement(self, module: nn.Module, leaf: str) -> Placement | None:
        out_dim = _dims(module, self.name)[0]
        return Shard(out_dim if leaf == "weight" else 0)

    def check(self, module: nn.Module, module_name: str, world: int) -> None:
        _dims(module, self.name)

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        group = mesh.get_group()
        x = copy_to(args[0], group)
        with local_parameters(module):
            out = forward(x, *args[1:], **kwargs)
        if self.gather:
            out = gather_last(out, group, shard_sizes(_dims(module, self.name)[2], mesh.size()))
        return out


class PackedColwise(Colwise):
    """Colwise for a layer whose output packs ``split_factor`` projections side by side (gate|up, q|k|v):
    each rank takes its slice of every part, so its output packs the parts' local slices the same way."""

    def __init__(self, name: str, split_factor: int) -> None:
        super().__init__(name)
        self.split_factor = split_factor

    def placement(self, module: nn.Module, leaf: str) -> Placement | None:
        out_dim = _dims(module, self.name)[0]
        return _StridedShard(out_dim if leaf == "weight" else 0, split_factor=self.split_factor)

    def check(self, module: nn.Module, module_name: str, world: int) -> None:
        width = _dims(module, self.name)[2]
        if width % (self.split_factor * world):
            raise ValueError(f"Tensor parallelism: {module_name} packs {self.split_factor} projections in "
                             f"{width} output features, which do not split evenly over {world} ranks.")


class Rowwise(ParallelStyle):
    """Input features split: weight cut along the input dimension, bias whole; each rank's partial product is
    summed over the ranks, then the bias added once. The input is this rank's feature slice (the output of a
    colwise layer) or, with ``split_input``, a replicated tensor this layer slices itself."""

    def __init__(self, name: str, split_input: bool = False, split_factor: int = 1) -> None:
        super().__init__(name)
        self.split_input = split_input
        self.split_factor = split_factor

    def placement(self, module: nn.Module, leaf: str) -> Placement | None:
        if leaf != "weight":
            return None
        in_dim = _dims(module, self.name)[1]
        return _StridedShard(in_dim, split_factor=self.split_factor) if self.split_factor > 1 else Shard(in_dim)

    def check(self, module: nn.Module, module_name: str, world: int) -> None:
        width = _dims(module, self.name)[3]
        if self.split_factor > 1 and width % (self.split_factor * world):
            raise ValueError(f"Tensor parallelism: {module_name} packs {self.split_factor} parts in {width} "
                             f"input features, which do not split evenly over {world} ranks.")

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        group = mesh.get_group()
        x = args[0]
        if self.split_input:
            x = split_last(x, group, shard_sizes(_dims(module, self.name)[3], mesh.size()))
        bias = module._parameters.get("bias")
        # The bias is added after the sum, once; Conv1D's addmm needs a tensor in its place.
        hidden = {} if bias is None else {"bias": (lambda b: None) if isinstance(module, nn.Linear)
                                          else (lambda b: torch.zeros_like(b.detach()))}
        with local_parameters(module, hidden):
            out = forward(x, *args[1:], **kwargs)
        out = reduce_from(out, group)
        return out if bias is None else out + bias


def _require_embedding(style: ParallelStyle, module: nn.Module, module_name: str) -> None:
    if not isinstance(module, nn.Embedding):
        raise TypeError(f"The tensor-parallel strategy {style.name!r} shards nn.Embedding, not "
                        f"{type(module).__name__} ({module_name}).")


class VocabParallelEmbedding(ParallelStyle):
    """Embedding rows (the vocabulary) split: each rank looks up the ids in its range, zeros for the others,
    and the ranks' lookups are summed."""

    def placement(self, module: nn.Module, leaf: str) -> Placement | None:
        return Shard(0)

    def check(self, module: nn.Module, module_name: str, world: int) -> None:
        _require_embedding(self, module, module_name)
        if module.num_embeddings < world:
            raise ValueError(f"Tensor parallelism: {module_name} has {module.num_embeddings} rows, fewer than "
                             f"the {world} ranks it would be split over.")

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        ids = args[0]
        start, stop = shard_range(module.num_embeddings, mesh.size(), mesh.get_local_rank())
        outside = (ids < start) | (ids >= stop)
        local_ids = (ids - start).masked_fill(outside, 0)
        weight = module.weight
        weight = weight.to_local() if isinstance(weight, DTensor) else weight
        pad = module.padding_idx
        pad = pad - start if pad is not None and start <= pad < stop else None
        out = F.embedding(local_ids, weight, pad, module.max_norm, module.norm_type, module.scale_grad_by_freq,
                          module.sparse)
        return reduce_from(out.masked_fill(outside.unsqueeze(-1), 0), mesh.get_group())


class HiddenParallelEmbedding(ParallelStyle):
    """Embedding columns (the hidden size) split: each rank looks up its slice of every vector; the slices
    are joined."""

    def placement(self, module: nn.Module, leaf: str) -> Placement | None:
        return Shard(1)

    def check(self, module: nn.Module, module_name: str, world: int) -> None:
        _require_embedding(self, module, module_name)

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        with local_parameters(module):
            out = forward(*args, **kwargs)
        return gather_last(out, mesh.get_group(), shard_sizes(module.embedding_dim, mesh.size()))


class ReplicatedWithGradAllReduce(ParallelStyle):
    """Whole parameters on every rank used on sharded activations (Qwen3's per-head ``q_norm`` / ``k_norm``
    see only this rank's heads): the forward is unchanged, the parameters' gradients are summed over ranks."""

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        group = mesh.get_group()
        summed = {name: (lambda p: copy_to(p, group)) for name, p in module._parameters.items() if p is not None}
        with local_parameters(module, summed):
            return forward(*args, **kwargs)


class AllReduceOutput(ParallelStyle):
    """The module's output is a partial sum on each rank: sum it over the ranks."""

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        out = forward(*args, **kwargs)
        return None if out is None else reduce_from(out, mesh.get_group())


class LocalParams(ParallelStyle):
    """Run the module's own forward on its parameters' local shards (each sharded by its own plan entry)."""

    def run(self, module: nn.Module, forward: Callable, mesh: Any, args: tuple, kwargs: dict) -> Any:
        with local_parameters(module):
            return forward(*args, **kwargs)


PARALLEL_STYLES: dict[str, ParallelStyle] = {
    style.name: style
    for style in (
        Colwise("colwise"),
        Colwise("colwise_gather_output", gather=True),
        Colwise("colwise_rep", gather=True),
        Rowwise("rowwise"),
        Rowwise("rowwise_split_input", split_input=True),
        Rowwise("rowwise_rep", split_input=True),
        PackedColwise("packed_colwise", split_factor=2),
        Rowwise("packed_rowwise", split_factor=2),
        # Not a transformers name (it declares no GPT-2 plan): GPT-2's fused q|k|v projection.
        PackedColwise("packed_qkv_colwise", split_factor=3),
        VocabParallelEmbedding("embedding_rowwise"),
        HiddenParallelEmbedding("embedding_colwise"),
        ReplicatedWithGradAllReduce("replicated_with_grad_allreduce"),
        AllReduceOutput("all_reduce"),
        LocalParams("local_params"),
        ParallelStyle("replicate"),
    )
}
# transformers' strategies for layouts no architecture here has (sequence-sharded activations between
# layers, DeepSeek's MLA, mixtures of experts).
NOT_SUPPORTED = frozenset({"sequence_parallel", "mla_kv_a_proj", "moe_tp_experts", "moe_identity_expert",
                           "ep_router", "ep_dispatch_experts", "grouped_gemm"})


def get_style(name: str) -> ParallelStyle:
    """The strategy called ``name``.

    Raises:
        ValueError: a transformers strategy not supported here, or an unknown name, listing the known ones.
    """
    style = PARALLEL_STYLES.get(name)
    if style is not None:
        return style
    known = ", ".join(sorted(PARALLEL_STYLES))
    if name in NOT_SUPPORTED:
        raise ValueError(f"The tensor-parallel strategy {name!r} is not supported by pretrained (no model here "
                         f"needs it); supported strategies: {known}.")
    raise ValueError(f"Unknown tensor-parallel strategy {name!r}; supported strategies: {known}.")

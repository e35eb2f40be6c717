"""Tensor parallelism while loading: the plan, the mesh, and a hook that reads each rank's shards.

``from_pretrained(path, tp_plan="auto")`` under torchrun (or with ``tp_size=``, ``device_mesh=`` or
``distributed_config=DistributedConfig(...)``) resolves a plan — the model's own (``model.tp_plan``: the
config's ``base_model_tp_plan`` under the base model's prefix plus the head class's ``_tp_plan``) or a dict
that overrides rules of it — and a one-dimensional tensor-parallel mesh. :class:`TensorParallelHook` then
reads from each checkpoint tensor only this rank's slice (safetensors slices lazily, so no rank ever holds
a whole sharded weight), wraps it as a ``DTensor`` parameter, and makes every planned module's forward run
on its shards (:mod:`pretrained.distributed.styles`). Tied weights share one ``DTensor`` (their strategies
must cut them the same way).

Why ``DTensor`` parameters: optimizers update them shard by shard with no change, ``state_dict`` and
``torch.distributed.checkpoint`` know each shard's place in the full tensor (so a checkpoint saved on
``tp=2`` loads on another layout), and ``full_tensor()`` gathers them for ``save_pretrained``. The forward
itself runs on their local shards as plain tensors, with explicit collectives: exact gradients, no
``DTensor`` dispatch per operation, and kernels that need plain tensors keep working.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor, Placement
from torch.distributed.tensor.placement_types import _StridedShard

from pretrained.distributed.collectives import shard_range
from pretrained.distributed.mesh import (
    DistributedConfig,
    DistributedEnv,
    build_device_mesh,
    init_distributed,
    is_initialized,
    local_device,
    tp_submesh,
)
from pretrained.distributed.styles import get_style
from pretrained.loading import hooks as weight_hooks
from pretrained.loading.checkpoint import LazyTensor
from pretrained.loading.load import set_tensor

# Attention projections whose colwise split cuts heads: their head counts must divide by the tp size.
_ATTENTION = re.compile(r"(^|\.)(self_attn|attn|attention)\.")


def wildcard(name: str) -> str:
    """``model.layers.3.mlp`` → ``model.layers.*.mlp``: layer numbers become ``*`` as in plan rules."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", name)


def resolve_mesh(tp_plan: Any = None, tp_size: int | None = None, device_mesh: Any = None,
                 distributed_config: DistributedConfig | dict | None = None
                 ) -> tuple[DistributedConfig, Any] | None:
    """``(DistributedConfig, one-dimensional tp mesh)`` for ``from_pretrained``'s arguments, or ``None`` when they
    ask for no sharding (``tp_size`` resolves to 1 and no mesh is given). Starts the process group from
    torchrun's environment when needed and builds the mesh when none is given.

    Raises:
        ValueError: both ``distributed_config`` and ``tp_plan`` / ``tp_size``; a size the mesh or the world
            does not have; no process group and no torchrun environment.
        NotImplementedError: data, pipeline or expert parallel sizes above 1 (applied after loading here).
    """
    if distributed_config is not None and (tp_plan is not None or tp_size is not None):
        raise ValueError("Pass either distributed_config or tp_plan / tp_size to from_pretrained, not both: "
                         "set the tensor-parallel options on the DistributedConfig.")
    if isinstance(distributed_config, dict):
        distributed_config = DistributedConfig.from_dict(distributed_config)
    if distributed_config is None:
        if tp_size is None and tp_plan is not None:  # the mesh's or the running group's size
            tp_size = (tp_submesh(device_mesh).size() if device_mesh is not None
                       else dist.get_world_size() if is_initialized() else None)
        distributed_config = DistributedConfig(tp_plan=tp_plan, tp_size=tp_size)
    config = distributed_config
    for name in ("fsdp_size", "dp_replicate_size", "pp_size", "ep_size"):
        if getattr(config, name) > 1:
            raise NotImplementedError(
                f"DistributedConfig({name}={getattr(config, name)}): from_pretrained here shards for tensor "
                "parallelism only; apply data parallelism after loading (pretrained.distributed.fsdp)."
            )
    if device_mesh is not None:
        mesh = tp_submesh(device_mesh)
        if config.tp_size != mesh.size() and not (config.tp_size == 1 and config.tp_plan is None):
            raise ValueError(f"tp_size={config.tp_size} but the device mesh's tp dimension has {mesh.size()} "
                             "ranks.")
        if mesh.size() == 1 or config.tp_plan is None and config.tp_size == 1:
            return None
        return config, mesh
    if config.tp_plan is None and config.tp_size == 1:
        return None
    if not is_initialized() and not DistributedEnv.from_environ().launched:
        # transformers would load on one device; a plan given outside torchrun is more likely a mistake.
        raise ValueError(
            f"Tensor parallelism (tp_plan={config.tp_plan!r}, tp_size={config.tp_size}) needs torch.distributed: "
            "launch with torchrun (python -m torch.distributed.run --nproc-per-node N script.py), call "
            "torch.distributed.init_process_group() first, or pass device_mesh=."
        )
    if config.tp_size == 1:
        return None
    init_distributed()
    if dist.get_world_size() != config.tp_size:
        raise ValueError(f"Tensor parallelism with tp_size={config.tp_size} needs {config.tp_size} processes, but "
                         f"the world has {dist.get_world_size()}; pass device_mesh= to use part of the world.")
    key = (config.tp_size, dist.get_world_size())
    if key not in _MESHES:  # one mesh (and its process groups) per process, reused by later loads
        _MESHES[key] = build_device_mesh(dp=1, cp=1, tp=config.tp_size)["tp"]
    return config, _MESHES[key]


_MESHES: dict[tuple[int, int], Any] = {}


def resolve_plan(model: nn.Module, request: Any) -> dict[str, str]:
    """The plan to apply: the model's (``"auto"`` / ``None``) or it overridden by a dict (``{}``: nothing).

    Raises:
        ValueError: a model that declares no plan (its family does not support tensor parallelism), dict keys
            that name nothing in the model, or an unknown strategy.
    """
    declared = dict(model.tp_plan)
    owner = type(model).__name__
    if not declared:
        raise ValueError(
            f"Tensor parallelism: {owner} declares no tensor-parallel plan ({type(model.config).__name__} has no "
            "base_model_tp_plan, as in transformers), so it cannot be sharded; load it without tp_plan."
        )
    if request is None or request == "auto":
        plan = declared
    elif isinstance(request, dict):
        modules = {wildcard(n) for n, _ in model.named_modules()}
        params = {wildcard(n) for n, _ in model.named_parameters()} - modules
        if on_params := sorted(set(request) & params):
            raise ValueError(f"Tensor parallelism: tp_plan rules name modules (the strategy cuts their "
                             f"parameters), not parameters: {on_params}.")
        unknown = sorted(set(request) - modules - set(declared))
        if unknown:
            raise ValueError(f"Tensor parallelism: tp_plan keys {unknown} match nothing in {owner}.")
        plan = {**declared, **request} if request else {}
    else:
        raise ValueError(f"tp_plan must be 'auto' or a dict of module names to strategies, got {request!r}.")
    for style in set(plan.values()):
        get_style(style)
    return plan


def expand_plan(model: nn.Module, plan: dict[str, str]) -> dict[str, str]:
    """``{module name: strategy}`` for every module a rule names (``*`` matching any layer number)."""
    return {name: plan[wildcard(name)] for name, _ in model.named_modules() if name and wildcard(name) in plan}


def check_heads(model: nn.Module, modules: dict[str, str], world: int) -> None:
    """Refuse a plan that splits attention heads unevenly.

    Raises:
        ValueError: naming ``num_attention_heads`` and ``num_key_value_heads`` and the tp size.
    """
    splits_heads = any(_ATTENTION.search(name) and "colwise" in style and "gather" not in style
                       for name, style in modules.items())
    if not splits_heads:
        return
    config = model.config
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    if heads is None:
        return
    if heads % world or kv_heads % world:
        raise ValueError(
            f"Tensor parallelism over {world} ranks splits the attention heads: num_attention_heads ({heads}) and "
            f"num_key_value_heads ({kv_heads}) must both be multiples of {world}."
        )


def _contiguous_stride(shape: tuple[int, ...]) -> tuple[int, ...]:
    stride, step = [], 1
    for size in reversed(shape):
        stride.append(step)
        step *= size
    return tuple(reversed(stride))


class TensorParallelHook(weight_hooks.WeightHook):
    """The loader's tensor-parallel step: reads each sharded tensor's local slice, wraps it as a ``DTensor``,
    and gives the planned modules their sharded forwards.

    Args:
        model: The model, built on the meta device.
        plan: The rules to apply (see :func:`resolve_plan`).
        mesh: A one-dimensional tensor-parallel ``DeviceMesh``.
        distributed_config: Kept as ``model.config.distributed_config`` (never written to ``config.json``).
    """

    def __init__(self, model: nn.Module, plan: dict[str, str], mesh: Any,
                 distributed_config: DistributedConfig | None = None) -> None:
        self.plan = plan
        self.distributed_config = distributed_config or DistributedConfig(tp_size=mesh.size(), tp_plan=plan)
        self.mesh = mesh
        self.world = mesh.size()
        self.rank = mesh.get_local_rank()
        self.device = local_device(mesh.device_type)
        self.modules = expand_plan(model, plan)
        check_heads(model, self.modules, self.world)
        self.placements: dict[str, Placement] = {}
        for module_name, style_name in self.modules.items():
            module = model.get_submodule(module_name)
            style = get_style(style_name)
            style.check(module, module_name, self.world)
            for leaf, param in module.named_parameters(recurse=False):
                placement = style.placement(module, leaf)
                if placement is not None and param is not None:
                    self.placements[f"{module_name}.{leaf}"] = placement
        self._check_ties(model)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.loaded: set[str] = set()

    def _check_ties(self, model: nn.Module) -> None:
        for target, source in model._tie_pairs().items():
            if self.placements.get(target) != self.placements.get(source):
                raise ValueError(
                    f"Tensor parallelism: {target} is tied to {source}, but the plan cuts them differently "
                    f"({self.placements.get(target)} vs {self.placements.get(source)}); give both modules "
                    "strategies that shard the same dimension (e.g. embedding_rowwise and colwise_gather_output)."
                )

    def before_load(self, model: nn.Module) -> None:
        for module_name, style_name in self.modules.items():
            get_style(style_name).install(model.get_submodule(module_name), self.mesh)

    def read(self, name: str, lazy: LazyTensor) -> torch.Tensor | None:
        placement = self.placements.get(name)
        if placement is None:
            return None
        shape = lazy.shape
        self.shapes[name] = shape
        return self._local_slice(lazy, placement, shape)

    def _local_slice(self, lazy: LazyTensor, placement: Placement, shape: tuple[int, ...]) -> torch.Tensor:
        dim = placement.dim % len(shape)
        if isinstance(placement, _StridedShard):
            # Each of the packed parts is cut on its own; this rank's pieces stay in the parts' order.
            part = shape[dim] // placement.split_factor
            start, stop = shard_range(part, self.world, self.rank)
            return torch.cat([lazy.load_slice(dim, i * part + start, i * part + stop)
                              for i in range(placement.split_factor)], dim=dim)
        start, stop = shard_range(shape[dim], self.world, self.rank)
        return lazy.load_slice(dim, start, stop)

    def __call__(self, name: str, tensor: torch.Tensor, model: nn.Module) -> torch.Tensor:
        self.loaded.add(name)
        tensor = tensor.to(self.device)
        placement = self.placements.get(name)
        if placement is None:
            return tensor
        shape = self.shapes[name]
        if tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size():
            tensor = tensor.clone()  # a view into a whole tensor (state_dict=, .bin files) would keep it alive
        return DTensor.from_local(tensor.contiguous(), self.mesh, [placement], run_check=False, shape=shape,
                                  stride=_contiguous_stride(shape))

    def after_load(self, model: nn.Module) -> None:
        # Weights the checkpoint lacked were initialised whole and differently on each rank: take rank 0's,
        # and cut the sharded ones.
        group = self.mesh.get_group()
        for name, param in list(model.named_parameters()):
            placement = self.placements.get(name)
            if isinstance(param, DTensor) or (placement is None and name in self.loaded):
                continue
            full = param.detach().to(self.device).contiguous()
            dist.broadcast(full, group=group, group_src=0)
            if placement is not None:
                full = self._sharded(full, placement)
            set_tensor(model, name, full)
        model.tie_weights()
        model._applied_tp_plan = dict(self.plan)
        model._tp_size = self.world
        model._device_mesh = self.mesh
        model.config.distributed_config = self.distributed_config

    def _sharded(self, full: torch.Tensor, placement: Placement) -> DTensor:
        lazy = LazyTensor("<initialised>", "<state_dict>", tensor=full)
        local = self._local_slice(lazy, placement, tuple(full.shape))
        return DTensor.from_local(local.contiguous(), self.mesh, [placement], run_check=False,
                                  shape=full.shape, stride=_contiguous_stride(tuple(full.shape)))


def tensor_parallel_hook(model: nn.Module, tp_plan: Any, device_mesh: Any = None, tp_size: int | None = None,
                         distributed_config: Any = None) -> TensorParallelHook | None:
    """The loader's factory (registered in ``pretrained.loading.hooks.TENSOR_PARALLEL``): the hook for these
    ``from_pretrained`` arguments, or ``None`` when they resolve to one rank."""
    resolved = resolve_mesh(tp_plan, tp_size, device_mesh, distributed_config)
    if resolved is None:
        return None
    config, mesh = resolved
    return TensorParallelHook(model, resolve_plan(model, config.tp_plan), mesh, config)


def gather_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor] | None = None
                      ) -> dict[str, torch.Tensor]:
    """Every tensor of ``state_dict`` (default: the model's) whole, on the CPU; a collective, so every rank
    calls it. Tied weights (one ``DTensor`` under two names) come back as one tensor."""
    state = model.state_dict(keep_vars=True) if state_dict is None else state_dict
    gathered: dict[int, torch.Tensor] = {}
    out = {}
    for key, tensor in state.items():
        if isinstance(tensor, DTensor):
            if id(tensor) not in gathered:
                gathered[id(tensor)] = tensor.detach().full_tensor().cpu()
            out[key] = gathered[id(tensor)]
        elif isinstance(tensor, torch.Tensor):
            out[key] = tensor.detach()
        else:
            out[key] = tensor
    return out


weight_hooks.TENSOR_PARALLEL["default"] = tensor_parallel_hook

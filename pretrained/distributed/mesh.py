"""The process group and the device mesh: torchrun's environment, named mesh dimensions, ``DistributedConfig``.

``torchrun`` (``python -m torch.distributed.run``) starts one process per device and tells each its place
through environment variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ...).
:func:`init_distributed` starts the process group from them (gloo on the CPU, NCCL on CUDA) and binds the
process to its local device, :func:`close_distributed` destroys and frees it before the interpreter exits;
:func:`build_device_mesh` lays the ranks out as a ``DeviceMesh`` whose dimensions are named ``dp`` (data),
``cp`` (context / sequence) and ``tp`` (tensor), ``tp`` innermost so a tensor-parallel group sits on
neighbouring devices (one node) and ``dp`` outermost.

Torch is imported inside the functions, so :class:`DistributedConfig` stays cheap to import.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pretrained.utils.io import atomic_write_text

if TYPE_CHECKING:
    import torch
    from torch.distributed.device_mesh import DeviceMesh

# The collective backend of each device type.
BACKENDS = {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl"}
# Mesh dimensions, outermost first.
MESH_DIMS = ("dp", "cp", "tp")


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process sits, as torchrun's environment variables say.

    Attributes:
        rank, world_size: This process's global rank and the number of processes (``RANK``, ``WORLD_SIZE``).
        local_rank, local_world_size: Its rank and the process count on this node (``LOCAL_RANK``,
            ``LOCAL_WORLD_SIZE``), which pick the local device.
        master_addr, master_port: The rendezvous address of rank 0 (``MASTER_ADDR``, ``MASTER_PORT``).
        launched: Whether the variables were there at all (``RANK`` and ``WORLD_SIZE`` set).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str | None = None
    master_port: int | None = None
    launched: bool = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistributedEnv:
        """Read the variables (``os.environ`` by default).

        Raises:
            ValueError: a variable that is not an integer, or a rank outside the world, naming it.
        """
        env = os.environ if environ is None else environ

        def number(name: str, default: int | None) -> int | None:
            value = env.get(name)
            if value is None or value == "":
                return default
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"The environment variable {name}={value!r} is not an integer.") from None

        launched = "RANK" in env and "WORLD_SIZE" in env
        world = number("WORLD_SIZE", 1)
        rank = number("RANK", 0)
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of the world.")
        local_rank = number("LOCAL_RANK", rank)
        return cls(rank=rank, world_size=world, local_rank=local_rank,
                   local_world_size=number("LOCAL_WORLD_SIZE", world), master_addr=env.get("MASTER_ADDR"),
                   master_port=number("MASTER_PORT", None), launched=launched)


def default_device_type() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def is_initialized() -> bool:
    """Whether the default process group has been started."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """This process's global rank (0 without a process group)."""
    import torch.distributed as dist

    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of processes (1 without a process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if is_initialized() else 1


def barrier() -> None:
    """Wait for every rank (nothing without a process group)."""
    import torch.distributed as dist

    if is_initialized():
        dist.barrier()


def local_device(device_type: str | None = None) -> torch.device:
    """The device this process uses: ``cuda:LOCAL_RANK`` (made current) on GPUs, the CPU otherwise."""
    import torch

    device_type = device_type or default_device_type()
    if device_type == "cpu":
        return torch.device("cpu")
    index = DistributedEnv.from_environ().local_rank
    if device_type == "cuda":
        torch.cuda.set_device(index)
    return torch.device(device_type, index)


def init_distributed(device_type: str | None = None, backend: str | None = None,
                     timeout: timedelta | None = None) -> torch.device:
    """Start the default process group from torchrun's environment unless it is running; returns this
    process's device (see :func:`local_device`).

    Args:
        device_type: ``"cpu"`` or ``"cuda"`` (default: CUDA when visible).
        backend: The collective backend (default: gloo for the CPU, NCCL for CUDA).
        timeout: How long a collective may wait (default: torch's).

    Raises:
        RuntimeError: not launched by torchrun (no ``RANK`` / ``WORLD_SIZE``) and no process group running.
    """
    import torch.distributed as dist

    device_type = device_type or default_device_type()
    device = local_device(device_type)
    if is_initialized():
        return device
    env = DistributedEnv.from_environ()
    if not env.launched:
        raise RuntimeError(
            "torch.distributed is not initialised and RANK / WORLD_SIZE are not set: launch the program with "
            "torchrun (python -m torch.distributed.run --nproc-per-node N script.py) or call "
            "torch.distributed.init_process_group() first."
        )
    backend = backend or BACKENDS.get(device_type)
    if backend is None:
        raise ValueError(f"No collective backend known for device type {device_type!r}; pass backend=.")
    kwargs: dict[str, Any] = {"backend": backend, "rank": env.rank, "world_size": env.world_size}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if backend == "nccl":
        kwargs["device_id"] = device  # lets NCCL create sub-groups by splitting, and barrier() know its device
    import_group_defaults()
    dist.init_process_group(**kwargs)
    # The group started here is closed here, while Python still runs (see close_distributed).
    atexit.register(close_distributed)
    return device


def import_group_defaults() -> None:
    """Import what binds ``group.WORLD`` at import time, before the default process group exists.

    ``torch.distributed.nn.functional`` (imported by ``torch._dynamo``, so by the first ``torch.compile``
    or DTensor custom op) takes ``group.WORLD`` as the default argument of ten functions. Imported while a
    group runs, it keeps that group alive after ``destroy_process_group``: its gloo worker threads then
    live into interpreter shutdown, where one that drops a finished collective (whose tensors need the
    GIL to let go of their Python objects) is ended by Python inside a C++ destructor and the process
    aborts ("terminate called without an active exception"). Imported first, those defaults are None.
    """
    import torch.distributed.nn.functional  # noqa: F401


def close_distributed() -> None:
    """Destroy the process groups and free them now, with their backends' threads.

    ``destroy_process_group`` only forgets the groups; a group's backend (gloo's worker threads, NCCL's
    communicators) goes with the last reference to it. Torch keeps references after it, dropped here (also
    when the program destroyed the groups itself): the default arguments ``torch.distributed.nn.functional``
    took when imported while a group ran (see :func:`import_group_defaults`), the groups each
    ``DeviceMesh`` caches by name (DTensor's sharding caches keep meshes alive), and objects already
    unreachable (a sharded model's reference cycles). A group still alive at interpreter shutdown can abort
    the process as its worker threads finish. Groups held by live objects of the program (a DDP or FSDP
    model it still references) stay until those go.
    """
    import gc
    import sys

    import torch.distributed as dist

    if not dist.is_available():
        return
    if dist.is_initialized():
        dist.destroy_process_group()
    functional = sys.modules.get("torch.distributed.nn.functional")
    for function in vars(functional).values() if functional is not None else ():
        defaults = getattr(function, "__defaults__", None)
        if callable(function) and defaults and any(isinstance(d, dist.ProcessGroup) for d in defaults):
            # None is the default group, as it was when the module was imported
            function.__defaults__ = tuple(None if isinstance(d, dist.ProcessGroup) else d for d in defaults)
    gc.collect()
    from torch.distributed.device_mesh import DeviceMesh

    for obj in gc.get_objects():
        registry = getattr(obj, "_pg_registry", None) if isinstance(obj, DeviceMesh) else None
        if isinstance(registry, dict):
            registry.clear()  # the names stay; they resolve to nothing once the groups are destroyed


def build_device_mesh(*, dp: int | None = None, cp: int = 1, tp: int = 1, device_type: str | None = None
                      ) -> DeviceMesh:
    """A ``DeviceMesh`` over every rank with the dimensions ``("dp", "cp", "tp")`` (size-1 ones included, so
    ``mesh["tp"]`` always works). Starts the process group first when needed (:func:`init_distributed`).

    Args:
        dp: Data-parallel size (default: what the world leaves after ``cp * tp``).
        cp: Context-parallel size.
        tp: Tensor-parallel size.
        device_type: ``"cpu"`` or ``"cuda"`` (default: CUDA when visible).

    Raises:
        ValueError: sizes below 1, or a product that is not the world size (naming all of them).
    """
    from torch.distributed.device_mesh import init_device_mesh

    device_type = device_type or default_device_type()
    init_distributed(device_type)
    world = get_world_size()
    for name, size in (("cp", cp), ("tp", tp), ("dp", dp if dp is not None else 1)):
        if size < 1:
            raise ValueError(f"The mesh size {name}={size} must be at least 1.")
    if dp is None:
        if world % (cp * tp):
            raise ValueError(f"The world of {world} processes does not split into cp={cp} x tp={tp} groups.")
        dp = world // (cp * tp)
    if dp * cp * tp != world:
        raise ValueError(f"The mesh dp={dp} x cp={cp} x tp={tp} = {dp * cp * tp} processes, but the world "
                         f"has {world}.")
    return init_device_mesh(device_type, (dp, cp, tp), mesh_dim_names=MESH_DIMS)


def tp_submesh(mesh: DeviceMesh) -> DeviceMesh:
    """The one-dimensional tensor-parallel part of ``mesh`` (the mesh itself when it has one dimension).

    Raises:
        ValueError: a mesh of several dimensions without one named ``tp``.
    """
    if mesh.ndim == 1:
        return mesh
    names = mesh.mesh_dim_names or ()
    if "tp" not in names:
        raise ValueError(f"The device mesh has dimensions {names}: tensor parallelism needs one named 'tp'.")
    return mesh["tp"]


@dataclass
class DistributedConfig:
    """How a model is spread over processes: transformers 5's ``DistributedConfig`` (same fields, defaults
    and size resolution), passed as ``from_pretrained(..., distributed_config=...)``.

    Attributes:
        tp_size: Tensor-parallel ranks. ``None`` with a ``tp_plan``: ``WORLD_SIZE`` divided by the other
            sizes; ``None`` without: 1.
        tp_plan: ``"auto"`` (the model's plan), a dict overriding rules of it (``{}``: shard nothing), or
            ``None`` (the model's plan when ``tp_size > 1``).
        enable_sequence_parallel, enable_expert_parallel: As in transformers (sequence parallelism is not wired
            there either; expert parallelism has no model here to apply to).
        fsdp_size, dp_replicate_size, fsdp_plan, fsdp_cpu_offload, fsdp_mixed_precision: Data parallelism
            (FSDP2 / HSDP); default 1 rank each.
        pp_size: Pipeline stages (default 1).
        ep_size, ep_plan, ep_implementation: Expert parallelism (default 1 rank).
    """

    tp_size: int | None = None
    tp_plan: dict[str, str] | Literal["auto"] | None = None
    enable_sequence_parallel: bool = False
    enable_expert_parallel: bool = False
    fsdp_size: int | None = None
    dp_replicate_size: int | None = None
    fsdp_plan: dict[str, str] | None = None
    fsdp_cpu_offload: bool = False
    fsdp_mixed_precision: bool = False
    pp_size: int | None = None
    ep_size: int | None = None
    ep_plan: dict[str, str] | None = None
    ep_implementation: str = "auto"

    def __post_init__(self) -> None:
        for name in ("tp_size", "fsdp_size", "dp_replicate_size", "pp_size", "ep_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"DistributedConfig.{name} must be an integer of at least 1, got {value!r}.")
        if self.tp_plan is not None and self.tp_plan != "auto" and not isinstance(self.tp_plan, dict):
            raise ValueError(f"DistributedConfig.tp_plan must be 'auto', a dict or None, got {self.tp_plan!r}.")
        for name in ("fsdp_plan", "ep_plan"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), dict):
                raise ValueError(f"DistributedConfig.{name} must be a dict or None.")
        self.fsdp_size = self.fsdp_size or 1
        self.dp_replicate_size = self.dp_replicate_size or 1
        self.pp_size = self.pp_size or 1
        if self.tp_size is None:
            if self.tp_plan is None:
                self.tp_size = 1
            else:
                world = DistributedEnv.from_environ().world_size
                others = self.dp_replicate_size * self.fsdp_size * self.pp_size
                if world % others:
                    raise ValueError(f"WORLD_SIZE ({world}) is not a multiple of dp_replicate_size * fsdp_size * "
                                     f"pp_size ({others}), so tp_size cannot be derived from it.")
                self.tp_size = world // others
        if self.ep_size is None:
            self.ep_size = self.tp_size if self.enable_expert_parallel else 1
        self.enable_expert_parallel = self.ep_size > 1

    @property
    def dp_size(self) -> int:
        """Ranks that each see a different batch: ``dp_replicate_size * fsdp_size``."""
        return self.dp_replicate_size * self.fsdp_size

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> DistributedConfig:
        """A config from a dict (keys that are not fields are ignored, as transformers does)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in {**config_dict, **kwargs}.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        atomic_write_text(json_file_path, self.to_json_string())

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

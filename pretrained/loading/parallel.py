"""What a model answers about tensor parallelism: its plan (data on the config and the head class), the
mesh and size it was sharded over, and saving a sharded model. ``PreTrainedModel`` inherits it; the
sharding itself is ``pretrained.distributed``, applied through the loading hook chain."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from torch import nn

from pretrained.loading.save import save_model


class TensorParallelMixin(nn.Module):
    """The tensor-parallel side of ``PreTrainedModel``; needs ``config``, ``base_model`` and
    ``base_model_prefix`` from it."""

    _tp_plan: ClassVar[dict[str, str]] = {}  # the head's tensor-parallel rules (the base's are on the config)
    _tp_size: int | None = None  # set when loaded with tensor parallelism
    _device_mesh: Any = None

    @property
    def tp_plan(self) -> dict[str, str]:
        """The tensor-parallel plan, ``{module name (``*`` for layer numbers): strategy}``: the one applied
        when loaded with ``tp_plan=``, else the model's own, as transformers builds it (the config's
        ``base_model_tp_plan`` under the base model's prefix, the input embeddings split by vocabulary, and
        the head class's ``_tp_plan``). Empty for a family that cannot be sharded."""
        applied = self.__dict__.get("_applied_tp_plan")
        if applied is not None:
            return dict(applied)
        base = self.base_model
        rules = getattr(self.config, "base_model_tp_plan", None) or {}
        prefix = "" if base is self else f"{self.base_model_prefix}."
        plan = {}
        if rules and isinstance(getattr(base, "embed_tokens", None), nn.Embedding):
            plan[f"{prefix}embed_tokens"] = "embedding_rowwise"
        plan.update({f"{prefix}{name}": style for name, style in rules.items()})
        if rules:
            plan.update(type(self)._tp_plan)
        return plan

    @property
    def supports_tp_plan(self) -> bool:
        """Whether the model declares a tensor-parallel plan (its family can be sharded)."""
        return bool(getattr(self.config, "base_model_tp_plan", None) or type(self)._tp_plan)

    @property
    def tp_size(self) -> int | None:
        """The number of tensor-parallel ranks the weights are split over (``None``: not split)."""
        return self._tp_size

    @property
    def device_mesh(self) -> Any:
        """The tensor-parallel ``DeviceMesh`` the weights are split over (``None``: not split)."""
        return self._device_mesh


def save_any_model(model: Any, save_directory: str | os.PathLike, *, is_main_process: bool = True,
                   state_dict: Any = None, **options: Any) -> None:
    """``save_model``, for a sharded model too: every rank joins the gather, rank 0 writes ordinary full
    tensors, the others wait."""
    if model._device_mesh is None:
        save_model(model, save_directory, is_main_process=is_main_process, state_dict=state_dict, **options)
        return
    from pretrained.distributed.mesh import barrier, get_rank
    from pretrained.distributed.tensor_parallel import gather_state_dict

    state_dict = gather_state_dict(model, state_dict)
    try:
        save_model(model, save_directory, is_main_process=is_main_process and get_rank() == 0,
                   state_dict=state_dict, **options)
    finally:
        barrier()

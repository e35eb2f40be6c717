"""Build a model's modules in a chosen dtype, and for loading with parameters on the meta device.

Nothing process-wide changes while a model is built, so other threads (and other loads) are not
affected: the settings live in a context variable of the building thread, read by

- a parameter-registration hook (torch's global hook list, installed once, inert outside a build)
  that turns each parameter into a meta tensor and/or casts it to the target dtype as it is registered;
- a ``TorchFunctionMode`` (torch keeps these per thread) that skips writing values into meta tensors,
  so the layers' own ``reset_parameters`` cost nothing (torch's meta random kernels would otherwise
  import ``torch._dynamo`` on first use);
- ``PreTrainedModel.post_init``, which asks :func:`initialising_weights` whether to run ``_init_weights``.

Buffers are not touched: whatever ``__init__`` computes (rotary frequencies, position ids) stays real.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class _Build:
    dtype: torch.dtype | None  # floating-point parameters are cast to it (None: as built)
    on_meta: bool  # parameters go to the meta device and are not initialised


_BUILD: ContextVar[_Build | None] = ContextVar("pretrained_build", default=None)
_hook_lock = threading.Lock()
_hook_installed = False

# In-place initialisers (``nn.init`` functions and the tensor methods they call) whose only effect is
# on a tensor's values, which a meta tensor does not have.
_VALUE_WRITES = frozenset({
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
    "fill_", "zero_", "copy_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_",
    "log_normal_", "erfinv_", "mul_", "add_", "sub_", "div_", "clamp_", "masked_fill_", "index_fill_",
    "fill_diagonal_",
})  # fmt: skip


def initialising_weights() -> bool:
    """Whether a model built now should initialise its weights (false while loading a checkpoint)."""
    build = _BUILD.get()
    return build is None or not build.on_meta


@contextlib.contextmanager
def building(dtype: torch.dtype | None = None, *, on_meta: bool = False) -> Iterator[None]:
    """Build modules in this thread with floating-point parameters in ``dtype`` and, when ``on_meta``,
    on the meta device without initialising them (their values will come from a checkpoint)."""
    _install_hook()
    if dtype is not None and not dtype.is_floating_point:
        dtype = None
    token = _BUILD.set(_Build(dtype, on_meta))
    try:
        with _SkipValueWritesOnMeta() if on_meta else contextlib.nullcontext():
            yield
    finally:
        _BUILD.reset(token)


def _on_register(module: nn.Module, name: str, param: nn.Parameter | None) -> nn.Parameter | None:
    build = _BUILD.get()
    if build is None or param is None:
        return None
    dtype = build.dtype if build.dtype is not None and param.is_floating_point() else param.dtype
    device = torch.device("meta") if build.on_meta else param.device
    if param.device == device and param.dtype == dtype:
        return None
    # On meta this allocates nothing; the real tensor built by the layer is dropped right away.
    return nn.Parameter(param.detach().to(device=device, dtype=dtype), requires_grad=param.requires_grad)


def _install_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            nn.modules.module.register_module_parameter_registration_hook(_on_register)
            _hook_installed = True


class _SkipValueWritesOnMeta(TorchFunctionMode):
    """Return at once from value-only writes into meta tensors (in-place initialisers, ``out=``)."""

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None
                           ) -> Any:
        kwargs = kwargs or {}
        out = kwargs.get("out")
        if isinstance(out, torch.Tensor) and out.is_meta:
            return out
        if getattr(func, "__name__", None) in _VALUE_WRITES:
            # nn.init functions pass their tensor by keyword, tensor methods as the first argument.
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)

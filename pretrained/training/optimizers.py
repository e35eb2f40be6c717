"""The optimizer named by `TrainingArguments.optim`, with weight decay kept off biases and norms."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from .arguments import TrainingArguments

# Parameter names never decayed: biases and normalisation weights, by name...
_NO_DECAY_NAME = re.compile(r"bias|layernorm|layer_norm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)|ln_", re.I)
# ...and by the module holding them.
_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or type(module).__name__.endswith(("LayerNorm", "RMSNorm", "Norm"))


def get_decay_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that get weight decay: all but biases, norm weights and embeddings' norms."""
    names = []
    for module_name, module in model.named_modules():
        if _is_norm(module):
            continue
        for param_name, _ in module.named_parameters(recurse=False):
            full = f"{module_name}.{param_name}" if module_name else param_name
            if not _NO_DECAY_NAME.search(full):
                names.append(full)
    return names


def _parse_optim_args(text: str | None) -> dict[str, Any]:
    # "key=value,key=value" as in transformers; values are int, float, bool or str
    out: dict[str, Any] = {}
    if not text:
        return out
    for item in text.replace(" ", "").split(","):
        if "=" not in item:
            raise ValueError(f"`optim_args` items must look like key=value, got {item!r}")
        key, value = item.split("=", 1)
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = {"true": True, "false": False}.get(value.lower(), value)
    return out


def get_optimizer_cls_and_kwargs(
    args: TrainingArguments,
) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The optimizer class and its keyword arguments (besides the parameters) for `args.optim`."""
    kwargs: dict[str, Any] = {"lr": args.learning_rate}
    adam = {"betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon}
    extra = _parse_optim_args(args.optim_args)
    name = args.optim
    if name == "adamw_torch":
        cls, kwargs = torch.optim.AdamW, {**kwargs, **adam}
    elif name == "adamw_torch_fused":
        cls, kwargs = torch.optim.AdamW, {**kwargs, **adam, "fused": True}
    elif name == "adamw_torch_foreach":
        cls, kwargs = torch.optim.AdamW, {**kwargs, **adam, "foreach": True}
    elif name == "sgd":
        cls = torch.optim.SGD
    elif name == "adagrad":
        cls = torch.optim.Adagrad
    elif name == "rmsprop":
        cls = torch.optim.RMSprop
    elif name == "adafactor":
        if not hasattr(torch.optim, "Adafactor"):
            raise ValueError('optim="adafactor" needs torch >= 2.5 (torch.optim.Adafactor)')
        cls = torch.optim.Adafactor
    else:
        raise ValueError(f"unsupported optimizer {name!r}")
    return cls, {**kwargs, **extra}


def create_optimizer(model: nn.Module, args: TrainingArguments) -> torch.optim.Optimizer:
    """Two parameter groups: decayed weights, and biases/norms with `weight_decay=0`."""
    decay = set(get_decay_parameter_names(model))
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters (all have requires_grad=False)")
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    cls, kwargs = get_optimizer_cls_and_kwargs(args)
    if kwargs.get("fused") and any(p.device.type not in ("cpu", "cuda", "mps", "xpu") for _, p in trainable):
        kwargs.pop("fused")  # fused kernels exist only for these devices
    # both groups are kept, even empty, so optimizer.pt has the layout transformers writes
    return cls(groups, **kwargs)

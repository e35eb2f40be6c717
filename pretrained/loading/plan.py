"""Resolve and plan a load: the config, the weight files, and where each weight goes through which hooks."""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrained.configuration import CONFIG_NAME, PretrainedConfig
from pretrained.loading import hooks as weight_hooks
from pretrained.loading.checkpoint import Checkpoint, LazyTensor, find_checkpoint, iter_checkpoint
from pretrained.loading.device_map import device_lookup, normalize_device_map
from pretrained.loading.dtypes import pick_dtype
from pretrained.loading.options import LoadOptions


@dataclass
class Source:
    """What a load reads: the config to build from, the weight files, and the dtype to load in."""

    config: PretrainedConfig
    checkpoint: Checkpoint | None  # None: the tensors come from ``options.state_dict``
    dtype: torch.dtype | None  # None: each tensor keeps its stored dtype
    options: LoadOptions
    quantizer: weight_hooks.WeightHook | None = None  # the quantization hook, chosen before the model is built
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # keywords for the model class's constructor

    def tensors(self) -> Iterator[LazyTensor]:
        """Every tensor to load, lazily."""
        return read_weights(self.checkpoint, self.options)


def constructor_arguments(model_class: type) -> frozenset[str]:
    """The keyword arguments ``model_class(config, ...)`` takes besides the config (``add_pooling_layer``...)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = list(inspect.signature(model_class.__init__).parameters.values())[2:]  # after self, config
    return frozenset(p.name for p in parameters if p.kind in kinds)


def resolve_source(config_class: type[PretrainedConfig], path: str | os.PathLike, options: LoadOptions,
                   overrides: dict[str, Any], owner: str, model_arguments: frozenset[str] = frozenset()) -> Source:
    """The config (see :func:`resolve_config`), the weight files and the dtype (recorded in the config);
    overrides that are not config attributes but are named in ``model_arguments`` (the model class's own
    constructor arguments, e.g. ``add_pooling_layer``) go to the constructor, as in transformers."""
    config, model_kwargs = resolve_config(config_class, path, options, overrides, owner, model_arguments)
    checkpoint = find_weights(path, options)
    dtype = pick_dtype(options.dtype, config.dtype, read_weights(checkpoint, options))
    # The argument, else config.json's; the quantizer itself reconciles the two when both are there.
    quantization = options.quantization_config or getattr(config, "quantization_config", None)
    quantizer = weight_hooks.quantizer_hook(quantization, config)
    if quantizer is not None:
        if checkpoint is not None and hasattr(quantizer, "set_checkpoint_files"):
            quantizer.set_checkpoint_files(checkpoint.files)  # some methods read the files' metadata
        dtype = quantizer.prepare(dtype, options)
    if dtype is not None:
        config.dtype = str(dtype).removeprefix("torch.")
    return Source(config, checkpoint, dtype, options, quantizer, model_kwargs)


def resolve_config(
    config_class: type[PretrainedConfig],
    path: str | os.PathLike,
    options: LoadOptions,
    overrides: dict[str, Any],
    owner: str,
    model_arguments: frozenset[str] = frozenset(),
) -> tuple[PretrainedConfig, dict[str, Any]]:
    """The config to build from: ``options.config`` (copied) or the checkpoint's, with ``overrides`` applied;
    and the overrides that are not config attributes but name one of ``model_arguments``.

    Raises:
        TypeError: an override that is neither a loading option, an attribute of the config nor a model
            constructor argument.
    """
    config = options.config
    if not isinstance(config, PretrainedConfig):
        source = path if config is None else config
        config, unused = config_class.from_pretrained(source, return_unused_kwargs=True, **options.hub(),
                                                      **overrides)
    else:
        config = copy.deepcopy(config)
        unused = {k: v for k, v in overrides.items() if not hasattr(config, k)}
        config.update({k: v for k, v in overrides.items() if k not in unused})
    model_kwargs = {k: v for k, v in unused.items() if k in model_arguments}
    unknown = sorted(k for k in unused if k not in model_kwargs)
    if unknown:
        raise TypeError(f"{owner}.from_pretrained got unexpected keyword argument(s) {unknown}: they are neither "
                        f"loading options, attributes of {type(config).__name__} nor arguments of {owner}.")
    config.check_sizes(_config_source(path, options.config))
    config.name_or_path = str(path)
    if options.attn_implementation is not None:
        config._attn_implementation = options.attn_implementation
    return config, model_kwargs


def _config_source(path: str | os.PathLike, config: Any) -> str:
    """How to name where a config's values came from, in errors."""
    if isinstance(config, PretrainedConfig):  # the Auto classes read config.json first
        if not config.name_or_path:
            return "the config given to from_pretrained"
        config = config.name_or_path
    source = Path(path if config is None else config)
    if source.is_file():
        return str(source)
    return str(source / CONFIG_NAME) if source.is_dir() else f"{CONFIG_NAME} of {source}"


def check_fits(model: nn.Module, device_for: Callable[[str], torch.device]) -> None:
    """Refuse, before anything is allocated, a model whose weights exceed the memory of the devices they
    are placed on: sizes that large come from a damaged ``config.json``, and the allocator's own error
    names neither the config nor the tensor.

    Raises:
        ValueError: naming the device, the bytes needed and the largest tensor with its shape.
    """
    need: dict[torch.device, int] = {}
    largest: dict[torch.device, tuple[int, str, tuple[int, ...]]] = {}
    for name, param in model.named_parameters():
        size = param.numel() * param.element_size()
        device = device_for(name)
        need[device] = need.get(device, 0) + size
        largest[device] = max(largest.get(device, (0, "", ())), (size, name, tuple(param.shape)))
    for device, size in need.items():
        capacity = _capacity(device)
        if capacity is not None and size > capacity:
            _, name, shape = largest[device]
            source = getattr(model.config, "name_or_path", "") or "the config"
            raise ValueError(
                f"{type(model).__name__} built from {source} needs {size / 2**30:.1f} GiB for its weights on "
                f"{device}, which has {capacity / 2**30:.1f} GiB (largest: {name} of shape {list(shape)}); "
                "check the size fields of its config.json (vocab_size, hidden_size, ...)."
            )


def _capacity(device: torch.device) -> int | None:
    """Total memory of a device in bytes (``None`` when not known)."""
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    return None


def find_weights(path: str | os.PathLike, options: LoadOptions) -> Checkpoint | None:
    """The checkpoint's weight files (``None`` when ``options.state_dict`` provides the tensors)."""
    if options.state_dict is not None:
        return None
    return find_checkpoint(path, variant=options.variant, use_safetensors=options.use_safetensors,
                           **options.hub())


def read_weights(checkpoint: Checkpoint | None, options: LoadOptions) -> Iterator[LazyTensor]:
    """Every tensor to load, lazily: from ``options.state_dict`` or the checkpoint's files."""
    if options.state_dict is not None:
        return (LazyTensor(k, "<state_dict>", tensor=v) for k, v in options.state_dict.items())
    return iter_checkpoint(checkpoint, weights_only=options.weights_only)


@dataclass
class Placement:
    """Where each weight of a model goes, and the hooks every tensor passes through on its way."""

    dtype: torch.dtype | None
    device_map: dict[str, torch.device]
    device_for: Callable[[str], torch.device]
    hooks: list[weight_hooks.WeightHook]
    record_map: bool  # keep the map as ``model.hf_device_map``


def plan_placement(model: nn.Module, options: LoadOptions, dtype: torch.dtype | None,
                   quantizer: weight_hooks.WeightHook | None = None) -> Placement:
    """Map the (meta) model's weights to devices and build the hook chain; runs each hook's ``before_load``.

    The chain: dtype cast → quantizer → tensor-parallel shard → placement, the middle two only when asked for.
    ``quantizer`` is the one :func:`resolve_source` chose (looked up here when not given).
    """
    parallel = weight_hooks.tensor_parallel_hook(model, options.tp_plan, options.device_mesh,
                                                 tp_size=options.tp_size,
                                                 distributed_config=options.distributed_config)
    device_map = options.device_map
    if getattr(parallel, "device", None) is not None:  # each rank loads onto its own device
        if device_map is not None:
            raise ValueError("tp_plan and device_map are mutually exclusive: under tensor parallelism each "
                             "process loads its shards onto its own device.")
        device_map = parallel.device
    max_memory = options.max_memory
    if quantizer is not None and max_memory and hasattr(quantizer, "adjust_max_memory"):
        max_memory = quantizer.adjust_max_memory(max_memory)
    mapping = normalize_device_map(device_map, model, dtype=dtype, max_memory=max_memory,
                                   no_split=model._no_split_modules)
    device_for = device_lookup(mapping)
    quantization = options.quantization_config or getattr(model.config, "quantization_config", None)
    # As transformers: `_keep_in_fp32_modules` holds for float16 loads, `..._strict` for bfloat16 too.
    keep = tuple(model._keep_in_fp32_modules) if dtype == torch.float16 else ()
    if dtype in (torch.float16, torch.bfloat16):
        keep += tuple(getattr(model, "_keep_in_fp32_modules_strict", None) or ())
    if quantizer is None:
        quantizer = weight_hooks.quantizer_hook(quantization, model.config)
    if quantizer is not None and parallel is not None:
        raise ValueError("Quantization and tensor parallelism (tp_plan) cannot be combined when loading.")
    if quantizer is not None and hasattr(quantizer, "place"):
        quantizer.place(mapping, device_for)
    chain = [weight_hooks.DtypeHook(dtype, keep), quantizer, parallel, weight_hooks.PlacementHook(device_for)]
    chain = [hook for hook in chain if hook is not None]
    if quantizer is None and parallel is None:  # both shrink what each device holds
        check_fits(model, device_for)
    for hook in chain:
        hook.before_load(model)
    record = options.device_map is not None or len(set(mapping.values())) > 1
    return Placement(dtype, mapping, device_for, chain, record)

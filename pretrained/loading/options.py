"""Every keyword argument of ``from_pretrained``, declared once.

:class:`LoadOptions` lists each loading option with its default. ``PreTrainedModel.from_pretrained``
builds one from its arguments; the Auto classes, ``PretrainedConfig.from_dict`` and ``pipeline()`` use
it to tell loading options apart from config overrides. Torch-free, so configs stay cheap to import.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

# A field's ``kind``: "source" options say where the files are (the arguments of ``hub.cached_file``);
# "compat" ones are accepted because transformers accepts them, and change nothing here.
_SOURCE = {"kind": "source"}
_COMPAT = {"kind": "compat"}

# Legacy names still accepted for an option.
ALIASES = {"torch_dtype": "dtype"}


@dataclass
class LoadOptions:
    """The options of one ``from_pretrained`` call, with their defaults.

    Attributes:
        config: A config object, or a path to load one from (default: the checkpoint's ``config.json``).
        cache_dir, local_files_only, token, revision, subfolder: Where the files are: the Hugging Face
            cache to search, never download, the token for private repos, the branch / tag / commit,
            a folder inside the checkpoint.
        use_safetensors: ``True`` only safetensors, ``False`` only ``pytorch_model.bin``, ``None`` prefer
            safetensors.
        weights_only: Read ``.bin`` files with ``torch.load(weights_only=True)``, refusing pickled code;
            set ``False`` only for files you trust.
        variant: Load ``model.<variant>.safetensors``.
        state_dict: Tensors to load instead of the checkpoint's files.
        ignore_mismatched_sizes: Initialise weights whose checkpoint shape differs instead of raising.
        dtype: ``"auto"`` (as in transformers 5) uses the config's ``dtype``, else the checkpoint's; a
            ``torch.dtype`` or its name casts floating-point weights; ``None`` keeps each weight's stored
            dtype. ``torch_dtype`` is accepted as its legacy name.
        device_map: A device, ``{module prefix: device}``, or ``"auto"`` (accelerators, then the CPU,
            within ``max_memory``).
        max_memory: ``{device: bytes or "10GiB"}`` for ``device_map="auto"``.
        quantization_config: Quantize while loading with a registered method.
        tp_plan, device_mesh, tp_size, distributed_config: Shard for tensor parallelism while loading:
            ``tp_plan="auto"`` (the model's plan) or a dict overriding its rules, over ``device_mesh`` (its
            ``tp`` dimension) or a mesh of ``tp_size`` ranks built from torchrun's environment; or
            transformers 5's ``distributed_config=DistributedConfig(tp_size=..., tp_plan=...)``.
        attn_implementation: ``"sdpa"`` (default) or ``"eager"``: sets ``config._attn_implementation``.
        output_loading_info: Also return ``{"missing_keys", "unexpected_keys", "mismatched_keys",
            "error_msgs"}``.
        force_download ... _commit_hash: Accepted as transformers accepts them, without effect;
            ``force_download`` and ``trust_remote_code`` warn, ``from_tf`` / ``from_flax`` are refused.
    """

    config: Any = None
    # where the files are
    cache_dir: str | os.PathLike | None = field(default=None, metadata=_SOURCE)
    local_files_only: bool = field(default=False, metadata=_SOURCE)
    token: str | bool | None = field(default=None, metadata=_SOURCE)
    revision: str | None = field(default=None, metadata=_SOURCE)
    subfolder: str = field(default="", metadata=_SOURCE)
    # which weights, and how to read them
    use_safetensors: bool | None = None
    weights_only: bool = True
    variant: str | None = None
    state_dict: dict[str, Any] | None = None
    ignore_mismatched_sizes: bool = False
    # what the model becomes
    dtype: Any = "auto"
    device_map: Any = None
    max_memory: dict | None = None
    quantization_config: Any = None
    tp_plan: Any = None
    device_mesh: Any = None
    tp_size: int | None = None
    distributed_config: Any = None
    attn_implementation: str | None = None
    output_loading_info: bool = False
    # accepted for compatibility with transformers, without effect
    force_download: bool = field(default=False, metadata=_COMPAT)  # warns
    trust_remote_code: bool | None = field(default=None, metadata=_COMPAT)  # warns when true
    from_tf: bool = field(default=False, metadata=_COMPAT)  # refused when true
    from_flax: bool = field(default=False, metadata=_COMPAT)  # refused when true
    low_cpu_mem_usage: bool | None = field(default=None, metadata=_COMPAT)
    offload_folder: str | os.PathLike | None = field(default=None, metadata=_COMPAT)
    offload_state_dict: bool | None = field(default=None, metadata=_COMPAT)
    offload_buffers: bool | None = field(default=None, metadata=_COMPAT)
    key_mapping: dict[str, str] | None = field(default=None, metadata=_COMPAT)
    proxies: dict[str, str] | None = field(default=None, metadata=_COMPAT)
    resume_download: bool | None = field(default=None, metadata=_COMPAT)
    _from_auto: bool = field(default=False, metadata=_COMPAT)
    _from_pipeline: str | None = field(default=None, metadata=_COMPAT)
    _commit_hash: str | None = field(default=None, metadata=_COMPAT)

    @classmethod
    @functools.cache
    def names(cls, *kinds: str) -> frozenset[str]:
        """The option names (of the given kinds: ``"source"``, ``"compat"``; all when none given)."""
        return frozenset(f.name for f in fields(cls) if not kinds or f.metadata.get("kind") in kinds)

    @classmethod
    def split(cls, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(loading options, everything else)`` of ``kwargs``; legacy names count as options."""
        known = cls.names() | ALIASES.keys()
        options = {k: v for k, v in kwargs.items() if k in known}
        return options, {k: v for k, v in kwargs.items() if k not in known}

    @classmethod
    def from_call(cls, arguments: dict[str, Any], kwargs: dict[str, Any]
                  ) -> tuple[LoadOptions, dict[str, Any]]:
        """``(options, config overrides)`` of a ``from_pretrained`` call, from its named arguments (its
        ``locals()``: those that are option names are taken) and its ``**kwargs``."""
        named = {k: v for k, v in arguments.items() if k in cls.names()}
        extra, overrides = cls.split(kwargs)
        return cls.from_kwargs(**named, **extra), overrides

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> LoadOptions:
        """Options from keyword arguments: maps legacy names, warns about ignored options.

        Raises:
            ValueError: ``from_tf`` / ``from_flax`` asked for (only PyTorch weights can be read).
            TypeError: a keyword that is not a loading option.
        """
        if "torch_dtype" in kwargs:
            torch_dtype = kwargs.pop("torch_dtype")
            if kwargs.get("dtype", "auto") == "auto":
                kwargs["dtype"] = torch_dtype
        unknown = sorted(set(kwargs) - cls.names())
        if unknown:
            raise TypeError(f"Unknown loading option(s) {unknown}.")
        options = cls(**kwargs)
        for flag in ("from_tf", "from_flax"):
            if getattr(options, flag):
                raise ValueError(f"{flag}=True is not supported: pretrained reads PyTorch weights "
                                 "(safetensors or pytorch_model.bin) only; convert the checkpoint first.")
        if options.force_download:
            warnings.warn("force_download is ignored: pretrained reads the local cache or downloads once.",
                          stacklevel=4)
        if options.trust_remote_code:
            warnings.warn("trust_remote_code is ignored: pretrained never runs code shipped with a "
                          "checkpoint.", stacklevel=4)
        return options

    def hub(self) -> dict[str, Any]:
        """The arguments that locate files, for ``hub.cached_file`` and ``from_pretrained`` of configs."""
        return {name: getattr(self, name) for name in self.names("source")}

    @classmethod
    def pick(cls, kwargs: dict[str, Any], *kinds: str) -> dict[str, Any]:
        """The entries of ``kwargs`` that are options of the given kinds."""
        names = cls.names(*kinds)
        return {k: v for k, v in kwargs.items() if k in names}

"""``PreTrainedModel``: the base class every model family builds on.

It owns the loading pass (``from_pretrained``: resolve → config → discover → meta init →
stream through hooks → finish) and ``save_pretrained``; the mechanics live in
``pretrained.loading`` so this file reads as the recipe.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.loading import hooks as H
from pretrained.loading.checkpoint import Checkpoint, LazyTensor, find_checkpoint, iter_checkpoint
from pretrained.loading.device_map import device_lookup, dispatch, normalize_device_map
from pretrained.loading.load import LoadingInfo, filter_keys, set_tensor, stream_weights
from pretrained.loading.save import dedupe_shared, save_state_dict
from pretrained.models.auto import _HUB_KWARGS, _MODEL_KWARGS

_skip_init = False  # set while from_pretrained builds a model whose weights come from a checkpoint


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
                   "sparse_")


def init_standard_(module: nn.Module, std: float) -> None:
    """The usual initialisation: Linear/Embedding ~ N(0, std) (bias and padding row zero), norms 1/0."""
    if isinstance(module, nn.Linear):
        module.weight.normal_(0.0, std)
        if module.bias is not None:
            module.bias.zero_()
    elif isinstance(module, nn.Embedding):
        module.weight.normal_(0.0, std)
        if module.padding_idx is not None:
            module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            module.weight.fill_(1.0)
        if module.bias is not None:
            module.bias.zero_()


def _keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Skip all weight initialisation while a model whose weights come from a checkpoint is built.

    Besides saving time, this matters on the meta device: torch's reference ``normal_`` imports
    ``torch._dynamo`` on first use, which costs about 2 s.
    """
    global _skip_init
    previous, _skip_init = _skip_init, True
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS if hasattr(nn.init, name)}
    for name in saved:
        setattr(nn.init, name, _keep)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)
        _skip_init = previous


def resolve_dtype(dtype: Any) -> torch.dtype | str | None:
    """``"float16"`` / ``torch.float16`` / ``"auto"`` / ``None`` → ``torch.dtype`` or ``"auto"`` / ``None``."""
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype, a name such as 'bfloat16', or 'auto'; got {dtype!r}.")
    return value


class PreTrainedModel(nn.Module):
    """Base class of all models: config handling, loading, saving, weight tying, initialisation.

    Subclasses set ``config_class`` and ``base_model_prefix``, build their modules in ``__init__``
    (ending with ``self.post_init()``), and implement ``_init_weights(module)``. Modules with
    non-persistent buffers implement ``_init_buffers(device)`` so the loader can fill them after
    building on the meta device.
    """

    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    main_input_name: ClassVar[str] = "input_ids"
    supports_gradient_checkpointing: ClassVar[bool] = False
    _no_split_modules: ClassVar[list[str]] = []
    _tied_weights_keys: ClassVar[dict[str, str]] = {}  # tied when config.tie_word_embeddings
    _aliased_weights_keys: ClassVar[dict[str, str]] = {}  # always one tensor under two names
    _keep_in_fp32_modules: ClassVar[list[str]] = []
    _keys_to_ignore_on_load_missing: ClassVar[list[str]] = []
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = []

    def __init__(self, config: PretrainedConfig, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        if not isinstance(config, PretrainedConfig):
            raise TypeError(f"{type(self).__name__} expects a PretrainedConfig, got {type(config).__name__}.")
        self.config = config
        self.name_or_path = config.name_or_path
        self.generation_config = self._default_generation_config()
        self.gradient_checkpointing = False

    # --- initialisation -------------------------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise one module's own parameters (subclasses override)."""

    def post_init(self) -> None:
        """Initialise the weights (skipped when they will come from a checkpoint) and tie them."""
        if not _skip_init:
            self.init_weights()
        else:
            self.tie_weights()

    def init_weights(self) -> None:
        """Initialise every module with ``_init_weights`` and tie the weights."""
        with torch.no_grad():
            self.apply(self._init_weights)
        self.tie_weights()

    # --- embeddings and tying -----------------------------------------------------------------------
    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    def get_input_embeddings(self) -> nn.Module:
        base = self.base_model
        if base is not self:
            return base.get_input_embeddings()
        raise NotImplementedError(f"{type(self).__name__} does not define get_input_embeddings().")

    def set_input_embeddings(self, value: nn.Module) -> None:
        base = self.base_model
        if base is self:
            raise NotImplementedError(f"{type(self).__name__} does not define set_input_embeddings().")
        base.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return None

    def _tie_pairs(self) -> dict[str, str]:
        tie = getattr(self.config, "tie_word_embeddings", True)
        return {**(self._tied_weights_keys if tie else {}), **self._aliased_weights_keys}

    def tie_weights(self) -> None:
        """Make each tied target (e.g. ``lm_head.weight``) the same Parameter as its source."""
        for target, source in self._tie_pairs().items():
            src = self.get_parameter(source)
            module_name, _, leaf = target.rpartition(".")
            setattr(self.get_submodule(module_name), leaf, src)

    def resize_token_embeddings(self, new_num_tokens: int, pad_to_multiple_of: int | None = None) -> nn.Embedding:
        """Grow or shrink the input (and tied output) embeddings to ``new_num_tokens`` rows."""
        if pad_to_multiple_of:
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        old = self.get_input_embeddings()
        new = nn.Embedding(new_num_tokens, old.embedding_dim, old.padding_idx,
                           device=old.weight.device, dtype=old.weight.dtype)
        self._init_weights(new)
        n = min(new_num_tokens, old.num_embeddings)
        with torch.no_grad():
            new.weight[:n] = old.weight[:n]
        self.set_input_embeddings(new)
        out = self.get_output_embeddings()
        if out is not None and not (self._tied_weights_keys and getattr(self.config, 'tie_word_embeddings', True)):
            resized = nn.Linear(out.in_features, new_num_tokens, bias=out.bias is not None,
                                device=out.weight.device, dtype=out.weight.dtype)
            self._init_weights(resized)
            with torch.no_grad():
                resized.weight[:n] = out.weight[:n]
                if out.bias is not None:
                    resized.bias[:n] = out.bias[:n]
            self.set_output_embeddings(resized)
        self.config.vocab_size = new_num_tokens
        self.tie_weights()
        return new

    def set_output_embeddings(self, value: nn.Module) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define set_output_embeddings().")

    # --- properties -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.get_default_dtype()

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        seen: set[int] = set()
        total = 0
        skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)} if exclude_embeddings else set()
        for p in self.parameters():
            if id(p) in seen or id(p) in skip or (only_trainable and not p.requires_grad):
                continue
            seen.add(id(p))
            total += p.numel()
        return total

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        total = sum(p.numel() * p.element_size() for p in self.parameters())
        if return_buffers:
            total += sum(b.numel() * b.element_size() for b in self.buffers())
        return total

    def _outputs(self, output: Any, return_dict: bool | None) -> Any:
        """``output`` as is, or as a tuple when ``return_dict`` (or ``config.return_dict``) is false."""
        use_dict = self.config.return_dict if return_dict is None else return_dict
        return output if use_dict else output.to_tuple()

    def _head_output(
        self, output_cls: type, loss: Any, encoded: Any, return_dict: bool | None, **fields: Any
    ) -> Any:
        """A task head's output: its own ``fields`` and ``loss`` plus the base model's hidden states and
        attentions (``encoded``), as a dict-like output or a tuple (see :meth:`_outputs`)."""
        out = output_cls(loss=loss, **fields, hidden_states=encoded.hidden_states, attentions=encoded.attentions)
        return self._outputs(out, return_dict)

    # --- gradient checkpointing ---------------------------------------------------------------------
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute each layer's activations in backward instead of storing them."""
        if not self.supports_gradient_checkpointing:
            raise ValueError(f"{type(self).__name__} does not support gradient checkpointing.")
        kwargs = {"use_reentrant": False, **(gradient_checkpointing_kwargs or {})}
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = True
                module._checkpoint_kwargs = kwargs

    def gradient_checkpointing_disable(self) -> None:
        for module in self.modules():
            if hasattr(module, "gradient_checkpointing"):
                module.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(getattr(m, "gradient_checkpointing", False) for m in self.modules())

    # --- generation: overridden by pretrained.generation.GenerationMixin -----------------------------
    @classmethod
    def can_generate(cls) -> bool:
        return "prepare_inputs_for_generation" in {n for c in cls.__mro__ for n in vars(c)}

    def _default_generation_config(self) -> Any:
        """The generation settings a new model starts with (``None``: this model does not generate)."""
        return None

    def _load_generation_config(self, path: Any, hub: dict[str, Any]) -> None:
        """Read ``generation_config.json`` next to the weights (only models that generate have one)."""

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} cannot generate text; use a ...ForCausalLM / LMHead model.")

    # --- construction -----------------------------------------------------------------------------------
    @classmethod
    def _from_config(cls, config: PretrainedConfig, **kwargs: Any) -> PreTrainedModel:
        dtype = resolve_dtype(kwargs.pop("dtype", kwargs.pop("torch_dtype", None)))
        for key in ("attn_implementation",):
            kwargs.pop(key, None)
        model = cls(config, **kwargs)
        if isinstance(dtype, torch.dtype):
            model.to(dtype)
        return model

    from_config = _from_config

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: PretrainedConfig | str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None,
        ignore_mismatched_sizes: bool = False,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
        revision: str | None = None,
        use_safetensors: bool | None = None,
        weights_only: bool = True,
        dtype: Any = "auto",
        device_map: Any = None,
        max_memory: dict | None = None,
        output_loading_info: bool = False,
        variant: str | None = None,
        subfolder: str = "",
        state_dict: dict[str, torch.Tensor] | None = None,
        quantization_config: Any = None,
        tp_plan: Any = None,
        device_mesh: Any = None,
        **kwargs: Any,
    ) -> PreTrainedModel | tuple[PreTrainedModel, dict[str, list]]:
        """Load a model from a folder written by transformers or pretrained, or a cached repo id.

        Args:
            pretrained_model_name_or_path: Local folder or repo id in the Hugging Face cache.
            config: A config object, or a path to load one from (defaults to the checkpoint's).
            dtype: ``"auto"`` (default, as in transformers 5) uses the config's ``dtype`` or else the
                checkpoint's; a ``torch.dtype`` or its name casts floating-point weights; ``None`` keeps
                ``torch.get_default_dtype()``. ``torch_dtype`` is accepted as the legacy name.
            device_map: A device, ``{module prefix: device}``, or ``"auto"`` (accelerators, then CPU,
                within ``max_memory``).
            output_loading_info: Also return ``{"missing_keys", "unexpected_keys", "mismatched_keys",
                "error_msgs"}``.
            ignore_mismatched_sizes: Initialise weights whose checkpoint shape differs instead of raising.
            use_safetensors: ``True`` only safetensors, ``False`` only ``pytorch_model.bin``, ``None`` prefer
                safetensors.
            weights_only: Read ``.bin`` files with ``torch.load(weights_only=True)`` (refusing pickled code).
                Set ``False`` only for files you trust.
            variant: Load ``model.<variant>.safetensors``.
            quantization_config: Quantize while loading with a registered method.
            tp_plan: Shard for tensor parallelism while loading (when available).
            kwargs: Config attributes overriding the loaded config (e.g. ``num_labels=3``).
        """
        if "torch_dtype" in kwargs:
            torch_dtype = kwargs.pop("torch_dtype")
            dtype = torch_dtype if dtype == "auto" else dtype
        if force_download:
            warnings.warn("force_download is ignored: pretrained reads the local cache or downloads once.",
                          stacklevel=2)
        if kwargs.pop("trust_remote_code", False):
            warnings.warn("trust_remote_code is ignored: pretrained never runs code shipped with a checkpoint.",
                          stacklevel=2)
        for key in ("low_cpu_mem_usage", "attn_implementation", "offload_folder",
                    "key_mapping", "_from_auto", "_commit_hash"):
            kwargs.pop(key, None)
        hub = {"cache_dir": cache_dir, "revision": revision, "local_files_only": local_files_only,
               "token": token, "subfolder": subfolder}
        path = pretrained_model_name_or_path

        # 1-2. config
        if not isinstance(config, PretrainedConfig):
            source = path if config is None else config
            config, unused = cls.config_class.from_pretrained(source, return_unused_kwargs=True, **hub, **kwargs)
        else:
            import copy

            config = copy.deepcopy(config)
            unused = {}
            for key, value in kwargs.items():
                if hasattr(config, key):
                    setattr(config, key, value)
                else:
                    unused[key] = value
        bad = [k for k in unused if k not in _HUB_KWARGS and k not in _MODEL_KWARGS]
        if bad:
            raise TypeError(f"{cls.__name__}.from_pretrained got unexpected keyword argument(s) {bad}: "
                            f"they are neither loading options nor attributes of {type(config).__name__}.")

        config.name_or_path = str(path)
        # 3. discover
        checkpoint = None if state_dict is not None else find_checkpoint(
            path, variant=variant, use_safetensors=use_safetensors, **hub)
        target_dtype = _pick_dtype(resolve_dtype(dtype), config, checkpoint, state_dict)
        if target_dtype is not None:
            config.dtype = str(target_dtype).removeprefix("torch.")
        quantization_config = quantization_config or getattr(config, "quantization_config", None)

        # 4. instantiate with parameters on the meta device: no memory, no random init
        with _no_init(), _params_on_meta(), _default_dtype(target_dtype):
            model = cls(config, *model_args)

        # 5. stream the tensors through the hook chain
        mapping = normalize_device_map(device_map, model, dtype=target_dtype, max_memory=max_memory,
                                       no_split=model._no_split_modules)
        device_for = device_lookup(mapping)
        chain: list[H.WeightHook] = [H.DtypeHook(target_dtype, tuple(model._keep_in_fp32_modules))]
        for extra in (H.quantizer_hook(quantization_config, config), H.tensor_parallel_hook(model, tp_plan, device_mesh)):
            if extra is not None:
                chain.append(extra)
        chain.append(H.PlacementHook(device_for))
        for hook in chain:
            hook.before_load(model)
        if state_dict is not None:
            tensors = (LazyTensor(k, "<state_dict>", tensor=v) for k, v in state_dict.items())
        else:
            tensors = iter_checkpoint(checkpoint, weights_only=weights_only)
        info = stream_weights(model, tensors, chain, ignore_mismatched_sizes=ignore_mismatched_sizes)

        # 6. finish: tie, initialise what was missing, fill buffers, report
        model._finish_loading(info, device_for, target_dtype)
        for hook in chain:
            hook.after_load(model)
        if len(set(mapping.values())) > 1 or device_map is not None:
            model.hf_device_map = {k: str(v) for k, v in mapping.items()}
        dispatch(model, mapping)
        model.eval()
        model._load_generation_config(path, hub)
        _report(cls, info, path)
        return (model, info.as_dict()) if output_loading_info else model

    def _finish_loading(self, info: LoadingInfo, device_for: Any, dtype: torch.dtype | None) -> None:
        tied = self._tie_pairs()
        missing = set(info.missing_keys)
        for target, source in tied.items():
            if source in missing and target not in missing:  # only the tied copy was saved
                set_tensor(self, source, self.get_parameter(target))
                missing.discard(source)
            missing.discard(target)
        self.tie_weights()
        mismatched = {name for name, _, _ in info.mismatched_keys}
        self._initialise_missing(sorted(missing | mismatched), device_for, dtype)
        self._fill_buffers(device_for)
        info.missing_keys = filter_keys(sorted(missing), self._keys_to_ignore_on_load_missing)
        info.unexpected_keys = filter_keys(info.unexpected_keys, self._keys_to_ignore_on_load_unexpected)

    def _initialise_missing(self, names: list[str], device_for: Any, dtype: torch.dtype | None) -> None:
        """Give missing weights memory and run ``_init_weights`` on their modules, sparing loaded ones."""
        by_module: dict[str, list[str]] = {}
        for name in names:
            module_name, _, leaf = name.rpartition(".")
            by_module.setdefault(module_name, []).append(leaf)
        for module_name, leaves in by_module.items():
            module = self.get_submodule(module_name)
            own = {**module._parameters, **module._buffers}
            spared = {}
            for leaf, tensor in own.items():
                if tensor is None:
                    continue
                full = f"{module_name}.{leaf}" if module_name else leaf
                want = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
                fresh = torch.empty(tensor.shape, dtype=want, device=device_for(full))
                if leaf not in leaves:
                    spared[leaf] = tensor  # loaded: put aside while _init_weights runs on a scratch copy
                set_tensor(module, leaf, fresh)
            with torch.no_grad():
                self._init_weights(module)
            for leaf, tensor in spared.items():
                set_tensor(module, leaf, tensor)
        if names:
            self.tie_weights()

    def _fill_buffers(self, device_for: Any) -> None:
        """Compute buffers left on the meta device; move the others to their module's device."""
        for module_name, module in self.named_modules():
            for leaf, tensor in module._buffers.items():
                full = f"{module_name}.{leaf}" if module_name else leaf
                if tensor is not None and not tensor.is_meta and tensor.device != device_for(full):
                    module._buffers[leaf] = tensor.to(device_for(full))
            meta = [b for b, t in module._buffers.items() if t is not None and t.is_meta]
            if not meta:
                continue
            init = getattr(module, "_init_buffers", None)
            if init is None:
                raise RuntimeError(f"{type(module).__name__} at {module_name!r} has buffers {meta} that the "
                                   f"checkpoint does not hold and no _init_buffers(device) to compute them.")
            init(device_for(f"{module_name}.{meta[0]}" if module_name else meta[0]))

    # --- saving -------------------------------------------------------------------------------------------
    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        is_main_process: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
        push_to_hub: bool = False,
        max_shard_size: int | str = "50GB",
        safe_serialization: bool = True,
        variant: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` (+ ``generation_config.json``) and the weights, sharded and atomically.

        Tied weights are stored once; shards of an earlier save that the new one does not use are
        removed after the new files are in place.
        """
        if push_to_hub:
            raise NotImplementedError("push_to_hub is not supported yet; upload the folder with huggingface_hub.")
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_directory {directory} is a file, not a folder.")
        if not is_main_process:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        self.config.dtype = str(self.dtype).removeprefix("torch.")
        if state_dict is None:
            state_dict = self.state_dict()
        state_dict = dedupe_shared(state_dict, prefer_drop=set(self._tie_pairs()))
        save_state_dict(state_dict, directory, max_shard_size=max_shard_size,
                        safe_serialization=safe_serialization, variant=variant)
        self.config.save_pretrained(directory)
        if self.generation_config is not None and hasattr(self.generation_config, "save_pretrained"):
            self.generation_config.save_pretrained(directory)


@contextlib.contextmanager
def _params_on_meta() -> Iterator[None]:
    """Put every parameter registered while active on the meta device; buffers stay real.

    Parameters are first allocated (uninitialised, untouched, so no resident memory) and
    replaced by meta tensors at registration. Buffers keep their computed values, so model
    code needs nothing special (``torch.arange`` on meta would also import sympy, ~0.6 s).
    """
    register = nn.Module.register_parameter

    def register_on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and not param.is_meta:
            meta = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
            module._parameters[name] = meta

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None or not dtype.is_floating_point:
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _pick_dtype(dtype: Any, config: PretrainedConfig, checkpoint: Checkpoint | None,
                state_dict: dict[str, torch.Tensor] | None) -> torch.dtype | None:
    if dtype != "auto":
        return dtype
    if config.dtype not in (None, "auto"):
        return resolve_dtype(config.dtype)
    # No dtype in the config: use the first floating-point tensor of the checkpoint.
    if state_dict is not None:
        tensors = (LazyTensor(k, "", tensor=v) for k, v in state_dict.items())
    else:
        tensors = iter_checkpoint(checkpoint)
    for lazy in tensors:
        if lazy._tensor is not None:
            if lazy._tensor.is_floating_point():
                return lazy._tensor.dtype
        else:
            dt = _SAFE_DTYPES.get(lazy._handle.get_slice(lazy.name).get_dtype())
            if dt is not None and dt.is_floating_point:
                return dt
    return None


_SAFE_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                "I64": torch.int64, "I32": torch.int32, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def _report(cls: type, info: LoadingInfo, path: Any) -> None:
    import logging

    log = logging.getLogger("pretrained")
    if info.unexpected_keys:
        log.warning("Some weights of the checkpoint at %s were not used when initializing %s: %s",
                    path, cls.__name__, info.unexpected_keys)
    if info.missing_keys:
        log.warning("Some weights of %s were not initialized from the checkpoint at %s and are newly "
                    "initialized: %s. You should probably TRAIN this model on a down-stream task.",
                    cls.__name__, path, info.missing_keys)
    if info.mismatched_keys:
        shapes = ", ".join(f"{k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in info.mismatched_keys)
        log.warning("Some weights of %s were newly initialized because the shapes did not match: %s",
                    cls.__name__, shapes)

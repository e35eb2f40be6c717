"""``PreTrainedModel``: the base class every model family builds on.

It holds what a model is (config, embeddings, tying, initialisation, attention implementation) and the
outline of ``from_pretrained`` (resolve → plan → materialise → finish); the mechanics live in ``loading``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.loading.build import building, initialising_weights
from pretrained.loading.dtypes import resolve_dtype
from pretrained.loading.finish import finish_loading, report_loading
from pretrained.loading.load import stream_weights
from pretrained.loading.options import LoadOptions
from pretrained.loading.parallel import TensorParallelMixin, save_any_model
from pretrained.loading.plan import constructor_arguments, plan_placement, resolve_source
from pretrained.loading.quantized import QuantizedModelMixin
from pretrained.modeling.attention import ATTENTION_FUNCTIONS
from pretrained.modeling.outputs import output_flag

__all__ = ["PreTrainedModel", "init_standard_", "resolve_dtype"]  # resolve_dtype: where it used to be


def init_standard_(module: nn.Module, std: float) -> None:
    """The usual initialisation: Linear/Embedding ~ N(0, std) (bias and padding row zero), norms 1/0."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        module.weight.normal_(0.0, std)
    if isinstance(module, nn.Embedding) and module.padding_idx is not None:
        module.weight[module.padding_idx].zero_()
    if isinstance(module, nn.LayerNorm) and module.weight is not None:
        module.weight.fill_(1.0)
    if isinstance(module, (nn.Linear, nn.LayerNorm)) and module.bias is not None:
        module.bias.zero_()


def _checked_attention(name: str | None) -> str:
    """A registered attention implementation's name (``None`` means the default, ``"sdpa"``)."""
    name = "sdpa" if name is None else name
    if name not in ATTENTION_FUNCTIONS:
        raise ValueError(f"attn_implementation {name!r} is not available; choose one of "
                         f"{sorted(ATTENTION_FUNCTIONS)}.")
    return name


class PreTrainedModel(QuantizedModelMixin, TensorParallelMixin):
    """Base class of all models: config handling, loading, saving, weight tying, initialisation (the
    quantization and tensor-parallel answers come from ``loading``'s mixins).

    Subclasses set ``config_class`` and ``base_model_prefix``, build their modules in ``__init__``
    (ending with ``self.post_init()``) and implement ``_init_weights(module)``; modules whose buffers
    the loader may leave on the meta device implement ``_init_buffers(device)``.
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
        config._attn_implementation = _checked_attention(config._attn_implementation)
        self.config = config
        self.name_or_path = config.name_or_path
        self.generation_config = self._default_generation_config()
        self.gradient_checkpointing = False

    # --- initialisation -------------------------------------------------------------------------------
    def _init_weights(self, module: nn.Module) -> None:
        """Initialise one module's own parameters (subclasses override)."""

    def post_init(self) -> None:
        """Initialise the weights (skipped while ``from_pretrained`` builds the model) and tie them."""
        if initialising_weights():
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
        if self.base_model is self:
            raise NotImplementedError(f"{type(self).__name__} does not define get_input_embeddings().")
        return self.base_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        if self.base_model is self:
            raise NotImplementedError(f"{type(self).__name__} does not define set_input_embeddings().")
        self.base_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module | None:
        return None

    def _tie_pairs(self) -> dict[str, str]:
        tie = getattr(self.config, "tie_word_embeddings", True)
        return {**(self._tied_weights_keys if tie else {}), **self._aliased_weights_keys}

    def tie_weights(self) -> None:
        """Make each tied target (e.g. ``lm_head.weight``) the same Parameter as its source."""
        for target, source in self._tie_pairs().items():
            module_name, _, leaf = target.rpartition(".")
            setattr(self.get_submodule(module_name), leaf, self.get_parameter(source))

    def resize_token_embeddings(self, new_num_tokens: int, pad_to_multiple_of: int | None = None) -> nn.Embedding:
        """Grow or shrink the input (and tied output) embeddings to ``new_num_tokens`` rows."""
        if pad_to_multiple_of:
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        old = self.get_input_embeddings()
        new = self._resized(old, nn.Embedding(new_num_tokens, old.embedding_dim, old.padding_idx,
                                              device=old.weight.device, dtype=old.weight.dtype))
        self.set_input_embeddings(new)
        out = self.get_output_embeddings()
        if out is not None and not (self._tied_weights_keys and getattr(self.config, 'tie_word_embeddings', True)):
            self.set_output_embeddings(self._resized(out, nn.Linear(
                out.in_features, new_num_tokens, bias=out.bias is not None, device=out.weight.device,
                dtype=out.weight.dtype)))
        self.config.vocab_size = new_num_tokens
        self.tie_weights()
        return new

    def _resized(self, old: nn.Module, new: nn.Module) -> nn.Module:
        """``new`` initialised, then given ``old``'s rows (token ids) that it has room for."""
        with torch.no_grad():
            self._init_weights(new)
            for name, param in new.named_parameters():
                rows = min(len(param), len(old.get_parameter(name)))
                param[:rows] = old.get_parameter(name)[:rows]
        return new

    def set_output_embeddings(self, value: nn.Module) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define set_output_embeddings().")

    # --- properties -------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next((p.dtype for p in self.parameters() if p.is_floating_point()), torch.get_default_dtype())

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        skip = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)} if exclude_embeddings else set()
        # parameters() yields a tied parameter once
        return sum(p.numel() for p in self.parameters()
                   if id(p) not in skip and (p.requires_grad or not only_trainable))

    def _outputs(self, output: Any, return_dict: bool | None) -> Any:
        """``output`` as is, or as a tuple when ``return_dict`` (or ``config.return_dict``) is false."""
        return output if output_flag(self.config, "return_dict", return_dict) else output.to_tuple()

    def _head_output(self, output_cls: type, loss: Any, encoded: Any, return_dict: bool | None,
                     **fields: Any) -> Any:
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

    # --- attention -----------------------------------------------------------------------------------
    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Switch this live model (and every submodel) to another attention function, a name in
        ``pretrained.modeling.attention.ATTENTION_FUNCTIONS``, through the configs they read it from.

        Raises:
            ValueError: ``attn_implementation`` is not a registered name.
        """
        name = _checked_attention(attn_implementation)
        for module in self.modules():
            if isinstance(module, PreTrainedModel):
                module.config._attn_implementation = name

    # --- construction -----------------------------------------------------------------------------------
    @classmethod
    def _from_config(cls, config: PretrainedConfig, **kwargs: Any) -> PreTrainedModel:
        """A randomly initialised model for ``config``; accepts ``dtype`` and ``attn_implementation``."""
        dtype = resolve_dtype(kwargs.pop("dtype", kwargs.pop("torch_dtype", None)))
        if "attn_implementation" in kwargs:
            config._attn_implementation = kwargs.pop("attn_implementation")
        with building(dtype if isinstance(dtype, torch.dtype) else None):
            return cls(config, **kwargs)

    from_config = _from_config

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args: Any,
        config: PretrainedConfig | str | os.PathLike | None = None,
        cache_dir: str | os.PathLike | None = None, ignore_mismatched_sizes: bool = False,
        force_download: bool = False, local_files_only: bool = False, token: str | bool | None = None,
        revision: str | None = None, use_safetensors: bool | None = None, weights_only: bool = True,
        dtype: Any = "auto", device_map: Any = None, max_memory: dict | None = None,
        output_loading_info: bool = False, variant: str | None = None, subfolder: str = "",
        state_dict: dict[str, torch.Tensor] | None = None, quantization_config: Any = None,
        tp_plan: Any = None, device_mesh: Any = None, **kwargs: Any,
    ) -> PreTrainedModel | tuple[PreTrainedModel, dict[str, list]]:
        """Load a model from a folder written by transformers or pretrained, or a cached repo id.

        Every keyword argument is a loading option (described in ``pretrained.loading.options.LoadOptions``;
        ``attn_implementation``, ``torch_dtype`` and others come through ``kwargs``) or else a config
        attribute overriding the loaded config (e.g. ``num_labels=3``).

        Args:
            pretrained_model_name_or_path: Local folder or repo id in the Hugging Face cache.
            model_args: Passed on to the model class.

        Returns:
            The model in ``eval()`` mode; with ``output_loading_info=True`` also a dict of ``missing_keys``,
            ``unexpected_keys``, ``mismatched_keys`` and ``error_msgs``.
        """
        options, overrides = LoadOptions.from_call(locals(), kwargs)
        path = pretrained_model_name_or_path
        # 1. resolve: the config (with the overrides), the weight files, the dtype to load in
        source = resolve_source(cls.config_class, path, options, overrides, cls.__name__, constructor_arguments(cls))
        # 2. plan: the model built on meta, uninitialised; each weight's device and hook chain
        with building(source.dtype, on_meta=True):
            model = cls(source.config, *model_args, **source.model_kwargs)
        placement = plan_placement(model, options, source.dtype, source.quantizer)
        # 3. materialise: stream every tensor through the hooks into the model
        info = stream_weights(model, source.tensors(), placement.hooks,
                              ignore_mismatched_sizes=options.ignore_mismatched_sizes)
        # 4. finish: tie, initialise what was missing, fill buffers, dispatch, eval(), report
        finish_loading(model, info, placement)
        model._load_generation_config(path, options.hub())
        report_loading(cls.__name__, info, path)
        return (model, info.as_dict()) if output_loading_info else model

    # --- saving -------------------------------------------------------------------------------------------
    def save_pretrained(
        self, save_directory: str | os.PathLike, is_main_process: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None, push_to_hub: bool = False,
        max_shard_size: int | str = "50GB", safe_serialization: bool = True, variant: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Write ``config.json`` (+ ``generation_config.json``) and the weights, sharded and atomically:
        tied weights once; shards of an earlier save that this one does not use are removed after it."""
        if push_to_hub:
            raise NotImplementedError("push_to_hub is not supported yet; upload the folder with huggingface_hub.")
        save_any_model(self, save_directory, is_main_process=is_main_process, state_dict=state_dict,
                       max_shard_size=max_shard_size, safe_serialization=safe_serialization, variant=variant)

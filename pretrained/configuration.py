"""Model configurations: ``config.json`` read and written like transformers does.

Torch-free on purpose: ``AutoConfig`` must stay cheap to import. ``dtype`` is kept
as its string name ("float32") and turned into a ``torch.dtype`` by the loader.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from pretrained.loading.options import LoadOptions
from pretrained.utils.io import atomic_write_text, jsonable, output_folder, read_json_object
from pretrained.utils.versions import TRANSFORMERS_API_VERSION

CONFIG_NAME = "config.json"
FORMAT_VERSION = TRANSFORMERS_API_VERSION  # the transformers_version written into saved files
# Set at run time, never written to config.json (as in transformers).
_NOT_SAVED = frozenset({"_attn_implementation_internal", "_is_quantized", "distributed_config"})
# Generation settings that old config.json files carry. A config that does not declare one as its own
# field drops it, as transformers 5 does (they belong in generation_config.json), so it is neither
# used nor written back.
_GENERATION_FLAGS = frozenset({
    "max_length", "min_length", "do_sample", "use_cache", "early_stopping", "num_beams", "temperature", "top_k",
    "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores",
    "return_dict_in_generate", "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens", "epsilon_cutoff",
    "eta_cutoff", "encoder_repetition_penalty", "num_assistant_tokens", "num_assistant_tokens_schedule",
    "assistant_confidence_threshold", "assistant_lookbehind", "target_lookbehind", "num_beam_groups",
    "diversity_penalty",
})  # fmt: skip
# The size fields models build tensors from, under every family's own name, with the least value
# each may take: layer counts may be 0 (an empty stack is legal), the rest size a dimension.
SIZE_FIELDS: dict[str, int] = {
    "vocab_size": 1, "hidden_size": 1, "intermediate_size": 1, "num_attention_heads": 1,
    "num_key_value_heads": 1, "head_dim": 1, "max_position_embeddings": 1, "type_vocab_size": 0,
    "num_hidden_layers": 0, "n_layer": 0, "n_layers": 0, "n_embd": 1, "n_head": 1, "n_heads": 1,
    "n_inner": 1, "n_positions": 1, "n_ctx": 1, "dim": 1, "hidden_dim": 1,
}  # fmt: skip
# Above this, a size is a typo: no tensor dimension of a real model comes near it, and torch's
# index kernels use 32-bit offsets for embeddings past it.
MAX_SIZE = 2**31 - 1


def dtype_name(dtype: Any) -> str | None:
    """``torch.float16`` / ``"torch.float16"`` / ``"float16"`` → ``"float16"``; ``None``/"auto" kept."""
    if dtype is None:
        return None
    name = str(dtype)
    return name.removeprefix("torch.")


def _stored_as(attr: str, doc: str, convert: Callable[[Any], Any] = lambda value: value) -> property:
    """A property kept in the attribute ``attr`` (``None`` until set), converted by ``convert`` when set."""
    return property(lambda self: getattr(self, attr, None),
                    lambda self, value: setattr(self, attr, convert(value)), doc=doc)


class PretrainedConfig:
    """Base class of every model configuration.

    Subclasses set ``model_type`` and, in ``__init__``, their own fields before calling
    ``super().__init__(**kwargs)``. Keys this class does not know are kept as attributes and
    written back by ``save_pretrained``.
    """

    model_type: ClassVar[str] = ""
    attribute_map: ClassVar[dict[str, str]] = {}
    # Fields stored under a sub-key (none for text models); kept for API familiarity.
    sub_configs: ClassVar[dict[str, Any]] = {}
    # The base model's tensor-parallel rules ({module name with * for layer numbers: strategy}), as
    # transformers declares them per family; None: the family cannot be sharded (pretrained.distributed).
    base_model_tp_plan: ClassVar[dict[str, str] | None] = None

    def __init__(
        self,
        *,
        # what forward returns
        output_hidden_states: bool = False, output_attentions: bool = False, return_dict: bool = True,
        # the weights and the architecture
        dtype: Any = None, architectures: list[str] | None = None,
        chunk_size_feed_forward: int = 0, is_encoder_decoder: bool = False,
        # classification heads
        id2label: dict | None = None, label2id: dict | None = None, num_labels: int | None = None,
        problem_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        self._attn_implementation_internal = kwargs.pop("attn_implementation", None)
        self.return_dict = return_dict
        self.output_hidden_states = output_hidden_states
        self.output_attentions = output_attentions
        self.dtype = dtype_name(kwargs.pop("torch_dtype", None) if dtype is None else dtype)
        self.architectures = architectures
        self.chunk_size_feed_forward = chunk_size_feed_forward
        self.is_encoder_decoder = is_encoder_decoder
        if problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ValueError(
                f"problem_type must be 'regression', 'single_label_classification' or "
                f"'multi_label_classification', got {problem_type!r}."
            )
        self.problem_type = problem_type
        if id2label is not None:
            self.id2label = {int(k): v for k, v in id2label.items()}
            if num_labels is not None and num_labels != len(self.id2label):
                self.num_labels = num_labels  # an explicit count wins, as in transformers
        else:
            self.num_labels = 2 if num_labels is None else num_labels
        if label2id is not None:
            self.label2id = {k: int(v) for k, v in label2id.items()}
        elif not hasattr(self, "label2id") or len(self.label2id) != len(self.id2label):
            self.label2id = {v: k for k, v in self.id2label.items()}
        self._name_or_path = str(kwargs.pop("name_or_path", kwargs.pop("_name_or_path", "")))
        for key in ("transformers_version", "model_type", *_NOT_SAVED, *_GENERATION_FLAGS):
            kwargs.pop(key, None)
        for key, value in kwargs.items():
            try:
                setattr(self, key, value)
            except AttributeError as e:  # a read-only property of a subclass
                raise AttributeError(f"Can't set {key} with value {value} for {self}") from e

    # --- aliases -------------------------------------------------------------------------------------
    def _store_arguments(self, arguments: dict[str, Any]) -> None:
        """Store a subclass ``__init__``'s own arguments as attributes of the same names: call it first
        thing with ``locals()`` (``self``, ``kwargs`` and ``__class__`` are skipped)."""
        for name, value in arguments.items():
            if name not in ("self", "kwargs", "__class__"):
                setattr(self, name, value)

    def __setattr__(self, key: str, value: Any) -> None:
        key = type(self).attribute_map.get(key, key)
        super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        # Only called for missing attributes: resolve aliases such as ``hidden_size`` -> ``n_embd``.
        target = type(self).attribute_map.get(key)
        if target is not None:
            return getattr(self, target)
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if getattr(self, "id2label", None) is None or len(self.id2label) != n:
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    torch_dtype = _stored_as("dtype", "Legacy name of ``dtype``.", dtype_name)
    name_or_path = _stored_as("_name_or_path", "The folder or repo id the config was loaded from.", str)
    _attn_implementation = _stored_as(
        "_attn_implementation_internal",
        "The attention function models built from this config call (a name in "
        "``pretrained.modeling.attention.ATTENTION_FUNCTIONS``; ``None`` until a model sets its default). "
        "Set by ``attn_implementation=``, never written to ``config.json``.")

    @property
    def use_return_dict(self) -> bool:
        return self.return_dict

    # --- (de)serialisation ---------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> PretrainedConfig:
        """Build a config from a dict; ``kwargs`` override its values.

        ``return_unused_kwargs=True`` returns ``(config, unused)`` where ``unused`` holds the
        kwargs that are not config attributes.
        """
        return_unused = kwargs.pop("return_unused_kwargs", False)
        for key in LoadOptions.names("source", "compat"):  # where the file came from: not config values
            kwargs.pop(key, None)
        config = cls(**config_dict)
        unused = {}
        for key, value in kwargs.items():
            key = "_attn_implementation" if key == "attn_implementation" else key
            if key in ("torch_dtype", "dtype"):
                config.dtype = dtype_name(value)
            elif hasattr(config, key):
                setattr(config, key, value)
            else:
                unused[key] = value
        return (config, unused) if return_unused else config

    @classmethod
    def get_config_dict(cls, path_or_repo_id: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
        """Read ``config.json`` of a folder or cached repo id into a dict."""
        from pretrained.hub import cached_file

        hub = LoadOptions.pick(kwargs, "source")
        path = Path(path_or_repo_id)
        if path.is_file():  # a config file given directly, as transformers allows
            file = str(path)
        else:
            file = cached_file(path_or_repo_id, kwargs.get("config_file_name", CONFIG_NAME), **hub)
        return read_json_object(file)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, **kwargs: Any) -> PretrainedConfig:
        """Load ``config.json`` from a folder, a JSON file or a repo id in the local HF cache.

        Keyword arguments that are config attributes override the file's values.
        """
        data = cls.get_config_dict(path_or_repo_id, **kwargs)
        if cls.model_type and data.get("model_type") not in (None, cls.model_type):
            import warnings

            warnings.warn(
                f"Loading a {data.get('model_type')!r} config into {cls.__name__} "
                f"(model_type {cls.model_type!r}); this may give wrong results.",
                stacklevel=2,
            )
        data["_name_or_path"] = str(path_or_repo_id)
        return cls.from_dict(data, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """All attributes as a JSON-ready dict (aliases resolved, ``transformers_version`` set)."""
        # Readers check this field; we write the transformers release whose file format we follow.
        out = {"transformers_version": FORMAT_VERSION}
        for key, value in self.__dict__.items():
            if key.startswith("__") or key in _NOT_SAVED:
                continue
            if key == "quantization_config" and value is not None and not isinstance(value, dict):
                value = value.to_dict()  # a quantization config object, saved as its dict
            out[key] = copy.deepcopy(value.to_dict() if isinstance(value, PretrainedConfig) else value)
        out["model_type"] = type(self).model_type or out.get("model_type", "")
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        """Only what differs from a bare ``PretrainedConfig``; model fields are always kept."""
        base = PretrainedConfig().to_dict()
        out = {}
        for key, value in self.to_dict().items():
            if key in ("transformers_version", "model_type") or key not in base or base[key] != value:
                out[key] = value
        out.pop("_name_or_path", None)
        return out

    def to_json_string(self, use_diff: bool = True) -> str:
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(jsonable(data), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, path: str | os.PathLike, use_diff: bool = True) -> None:
        atomic_write_text(path, self.to_json_string(use_diff))

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """Write ``config.json`` (non-default values only) into ``save_directory``."""
        self.to_json_file(output_folder(save_directory, push_to_hub) / CONFIG_NAME)

    def check_sizes(self, source: str | os.PathLike | None = None) -> None:
        """Check the size fields models build tensors from (``hidden_size``, ``num_hidden_layers``,
        ``vocab_size``, ... under each family's own names) before anything is allocated.

        Args:
            source: Where the values came from (a ``config.json`` path), named in the error.

        Raises:
            ValueError: a size that is not an integer, is negative (or 0 where a dimension needs one),
                or is beyond any real model's size; the message names the field, its value and ``source``.
        """
        where = f" in {source}" if source else ""
        for name, least in SIZE_FIELDS.items():
            value = self.__dict__.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}{where} must be an integer, got {value!r} ({type(value).__name__}).")
            if not least <= value <= MAX_SIZE:
                low = "non-negative" if least == 0 else "positive"
                raise ValueError(f"{name}{where} must be a {low} integer of at most {MAX_SIZE}, got {value}.")

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self, key, value)

    def get_text_config(self, *args: Any, **kwargs: Any) -> PretrainedConfig:
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PretrainedConfig) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string(use_diff=False)}"

    def __deepcopy__(self, memo: dict) -> PretrainedConfig:
        new = type(self).__new__(type(self))
        for key, value in self.__dict__.items():
            object.__setattr__(new, key, copy.deepcopy(value, memo))
        return new


PreTrainedConfig = PretrainedConfig

"""``GenerationConfig``: the settings of ``generate``, read from and written to ``generation_config.json``.

As in transformers, unset fields are ``None`` and take their value, at ``generate`` time, from the
model's own ``generation_config`` and then from :meth:`GenerationConfig.default_values`. Torch-free.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

from pretrained.utils.io import atomic_write_text, read_json_object
from pretrained.utils.versions import TRANSFORMERS_API_VERSION

GENERATION_CONFIG_NAME = "generation_config.json"
FORMAT_VERSION = TRANSFORMERS_API_VERSION  # the transformers_version written into saved files

# Every field and its value when unset. The second table is applied at generate time.
_FIELDS: tuple[str, ...] = (
    # length
    "max_length", "max_new_tokens", "min_length", "min_new_tokens", "early_stopping", "max_time", "stop_strings",
    # strategy
    "do_sample", "num_beams", "use_cache", "cache_implementation", "cache_config", "max_cache_len",
    # logits
    "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
    "repetition_penalty", "encoder_repetition_penalty", "length_penalty", "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids", "renormalize_logits", "forced_bos_token_id", "forced_eos_token_id",
    "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    "sequence_bias", "guidance_scale",
    # outputs
    "num_return_sequences", "output_attentions", "output_hidden_states", "output_scores", "output_logits",
    "return_dict_in_generate",
    # special tokens
    "pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id",
    # performance
    "compile_config", "disable_compile",
)  # fmt: skip

_DEFAULTS: dict[str, Any] = {
    "max_length": 20, "min_length": 0, "do_sample": False, "use_cache": True, "early_stopping": False,
    "num_beams": 1, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "typical_p": 1.0,
    "repetition_penalty": 1.0, "length_penalty": 1.0, "no_repeat_ngram_size": 0, "num_return_sequences": 1,
    "output_scores": False, "output_logits": False, "return_dict_in_generate": False,
    "remove_invalid_values": False, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
}  # fmt: skip

_CACHE_IMPLEMENTATIONS = ("dynamic", "static", "sliding_window", "hybrid", "offloaded", "offloaded_static")
_METADATA = ("transformers_version", "_from_model_config", "_commit_hash", "_original_object_hash")


class GenerationConfig:
    """Settings that control ``generate``.

    Any field may be given as a keyword argument; unknown keywords are kept as attributes (and saved),
    as transformers does. Contradictory settings raise ``ValueError``; settings that are merely ignored
    in the chosen mode (``temperature`` without ``do_sample``) warn.

    Main fields:
        max_new_tokens / max_length / min_new_tokens / min_length: Length limits.
        do_sample, num_beams: Strategy: greedy, sampling, beam search (or beam sampling).
        temperature, top_k, top_p, min_p, typical_p, epsilon_cutoff, eta_cutoff: Sampling filters.
        repetition_penalty, no_repeat_ngram_size, bad_words_ids, sequence_bias: Token penalties.
        length_penalty, early_stopping, num_return_sequences: Beam search.
        eos_token_id, pad_token_id, bos_token_id, forced_bos_token_id, forced_eos_token_id: Special tokens.
        stop_strings, max_time: Extra stopping rules.
        return_dict_in_generate, output_scores, output_logits: What ``generate`` returns.
        cache_implementation: ``"dynamic"`` (default) or ``"static"``; ``max_cache_len`` for the latter.
        compile_config / disable_compile: ``torch.compile`` of the decode step with a static cache.
    """

    def __init__(self, **kwargs: Any) -> None:
        for name in _FIELDS:
            setattr(self, name, kwargs.pop(name, None))
        self._from_model_config = kwargs.pop("_from_model_config", False)
        self.transformers_version = kwargs.pop("transformers_version", None)
        kwargs.pop("_commit_hash", None)
        for key, value in kwargs.items():
            setattr(self, key, value)
        self.validate()

    # --- values --------------------------------------------------------------------------------------
    @staticmethod
    def default_values() -> dict[str, Any]:
        """The values ``generate`` uses for fields left unset everywhere."""
        return dict(_DEFAULTS)

    # transformers' spelling of the same thing
    _get_default_generation_params = default_values

    def update(self, defaults_only: bool = False, **kwargs: Any) -> dict[str, Any]:
        """Set the given fields; return the keywords that are not fields.

        With ``defaults_only=True`` only fields that are still ``None`` are set.
        """
        unused = {}
        for key, value in kwargs.items():
            if key in _METADATA:
                continue
            if hasattr(self, key):
                if not defaults_only or getattr(self, key) is None:
                    setattr(self, key, value)
            else:
                unused[key] = value
        return unused

    def get_generation_mode(self) -> str:
        """``"greedy_search"``, ``"sample"``, ``"beam_search"`` or ``"beam_sample"``."""
        beams = self.num_beams or 1
        if beams == 1:
            return "sample" if self.do_sample else "greedy_search"
        return "beam_sample" if self.do_sample else "beam_search"

    def validate(self, strict: bool = False) -> None:
        """Raise ``ValueError`` on contradictory settings; warn (or raise if ``strict``) on ignored ones."""
        if self.early_stopping not in (None, True, False, "never"):
            raise ValueError(f"`early_stopping` must be True, False or 'never', got {self.early_stopping!r}")
        for name in ("max_new_tokens", "num_beams", "num_return_sequences"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        for name in ("max_length", "min_length", "min_new_tokens", "no_repeat_ngram_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"`{name}` must be a non-negative integer, got {value!r}")
        if self.temperature is not None and self.do_sample and self.temperature <= 0:
            raise ValueError(
                f"`temperature` must be > 0 when sampling, got {self.temperature}; use do_sample=False for greedy."
            )
        if self.top_p is not None and not 0 <= self.top_p <= 1:
            raise ValueError(f"`top_p` must be in [0, 1], got {self.top_p}")
        if self.min_p is not None and not 0 <= self.min_p <= 1:
            raise ValueError(f"`min_p` must be in [0, 1], got {self.min_p}")
        if self.typical_p is not None and not 0 < self.typical_p <= 1:
            raise ValueError(f"`typical_p` must be in (0, 1], got {self.typical_p}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 0):
            raise ValueError(f"`top_k` must be a non-negative integer, got {self.top_k!r}")
        if self.repetition_penalty is not None and self.repetition_penalty <= 0:
            raise ValueError(f"`repetition_penalty` must be > 0, got {self.repetition_penalty}")
        if self.cache_implementation is not None and self.cache_implementation not in _CACHE_IMPLEMENTATIONS:
            raise ValueError(
                f"unknown `cache_implementation` {self.cache_implementation!r}; choose one of {_CACHE_IMPLEMENTATIONS}"
            )
        if self.max_length is not None and self.min_length is not None and self.min_length > self.max_length:
            raise ValueError(
                f"`min_length` ({self.min_length}) is larger than `max_length` ({self.max_length})"
            )
        if (
            self.max_new_tokens is not None
            and self.min_new_tokens is not None
            and self.min_new_tokens > self.max_new_tokens
        ):
            raise ValueError(
                f"`min_new_tokens` ({self.min_new_tokens}) is larger than `max_new_tokens` ({self.max_new_tokens})"
            )
        beams = self.num_beams or 1
        if self.num_return_sequences is not None and self.num_return_sequences > 1:
            if beams == 1 and not self.do_sample:
                raise ValueError(
                    "greedy decoding (do_sample=False, num_beams=1) cannot return several sequences: "
                    f"num_return_sequences={self.num_return_sequences}; use sampling or beam search"
                )
            if beams > 1 and self.num_return_sequences > beams:
                raise ValueError(
                    f"`num_return_sequences` ({self.num_return_sequences}) cannot exceed `num_beams` ({beams})"
                )
        if self.suppress_tokens is not None:
            for name in ("forced_bos_token_id", "forced_eos_token_id"):
                forced = getattr(self, name)
                forced = {forced} if isinstance(forced, int) else set(forced or ())
                if forced and forced <= set(self.suppress_tokens):
                    raise ValueError(
                        f"every token of `{name}` is also in `suppress_tokens`: nothing could be generated"
                    )
        ignored = []
        if not self.do_sample:
            for name, neutral in (("temperature", 1.0), ("top_p", 1.0), ("typical_p", 1.0), ("top_k", 50)):
                value = getattr(self, name)
                if value is not None and value != neutral:
                    ignored.append(f"`{name}`={value} is only used with do_sample=True")
            if self.min_p is not None:
                ignored.append(f"`min_p`={self.min_p} is only used with do_sample=True")
        if beams == 1:
            if self.early_stopping not in (None, False):
                ignored.append(f"`early_stopping`={self.early_stopping} is only used with num_beams > 1")
            if self.length_penalty not in (None, 1.0):
                ignored.append(f"`length_penalty`={self.length_penalty} is only used with num_beams > 1")
        if ignored:
            message = "generation flags that will be ignored: " + "; ".join(ignored)
            if strict:
                raise ValueError(message)
            warnings.warn(message, UserWarning, stacklevel=3)

    # --- (de)serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every attribute, plus ``transformers_version``."""
        out = {k: copy.deepcopy(v) for k, v in self.__dict__.items() if not k.startswith("_")}
        out["transformers_version"] = FORMAT_VERSION
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        """Only the attributes that are set (not ``None``)."""
        out = {k: v for k, v in self.to_dict().items() if v is not None}
        if self._from_model_config:
            out["_from_model_config"] = True
        return out

    def to_json_string(self, use_diff: bool = True, ignore_metadata: bool = False) -> str:
        data = self.to_diff_dict() if use_diff else self.to_dict()
        if ignore_metadata:
            for key in _METADATA:
                data.pop(key, None)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True) -> None:
        atomic_write_text(json_file_path, self.to_json_string(use_diff=use_diff))

    def save_pretrained(
        self, save_directory: str | os.PathLike, config_file_name: str | None = None, **kwargs: Any
    ) -> None:
        """Write ``generation_config.json`` (set values only) into ``save_directory``, atomically."""
        if kwargs.get("push_to_hub"):
            raise NotImplementedError("push_to_hub is not supported; upload the folder with huggingface_hub")
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_directory {directory} is a file, expected a folder")
        directory.mkdir(parents=True, exist_ok=True)
        self.validate(strict=False)
        self.to_json_file(directory / (config_file_name or GENERATION_CONFIG_NAME))

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> GenerationConfig:
        """Build a config from a dict; ``kwargs`` override it (``return_unused_kwargs`` as in transformers)."""
        return_unused = kwargs.pop("return_unused_kwargs", False)
        config = cls(**{**config_dict, **{k: v for k, v in kwargs.items() if k in _FIELDS}})
        unused = {k: v for k, v in kwargs.items() if k not in _FIELDS}
        return (config, unused) if return_unused else config

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name: str | os.PathLike, config_file_name: str | None = None, **kwargs: Any
    ) -> GenerationConfig:
        """Load ``generation_config.json`` from a folder, a JSON file, or a repo id in the local HF cache."""
        name = config_file_name or GENERATION_CONFIG_NAME
        path = Path(pretrained_model_name)
        if path.is_file():
            file = str(path)
        else:
            from pretrained.hub import cached_file

            hub = {k: kwargs.pop(k) for k in ("subfolder", "cache_dir", "revision", "local_files_only", "token")
                   if k in kwargs}  # fmt: skip
            file = cached_file(pretrained_model_name, name, **hub)
        data = read_json_object(file)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a checkpoint's unused flags are its author's business
            return cls.from_dict(data, **kwargs)

    @classmethod
    def from_model_config(cls, model_config: Any) -> GenerationConfig:
        """Take the generation-related values (special tokens, ...) of a model config."""
        values = {}
        source = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        for name in _FIELDS:
            if source.get(name) is not None:
                values[name] = source[name]
        # Model configs carry transformers' old defaults for these; they are not choices of the checkpoint.
        for name, value in _DEFAULTS.items():
            if values.get(name) == value:
                values.pop(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = cls(**values)
        config._from_model_config = True
        return config

    def copy(self) -> GenerationConfig:
        return copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GenerationConfig):
            return False
        return self.to_json_string(use_diff=False, ignore_metadata=True) == other.to_json_string(
            use_diff=False, ignore_metadata=True
        )

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string(ignore_metadata=True)}"

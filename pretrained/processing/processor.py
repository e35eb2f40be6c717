"""``ProcessorMixin``: one object holding a model's input processors (image processor + tokenizer), and
``CLIPProcessor`` and ``WhisperProcessor``.

A processor call sends ``text`` to the tokenizer and ``images`` to the image processor and merges their
outputs; ``save_pretrained`` writes the tokenizer's files and ``processor_config.json`` (the image
processor's settings under ``"image_processor"``), as transformers 5 does.
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from pretrained.processing.feature_extraction import PROCESSOR_NAME, BatchFeature
from pretrained.utils.io import atomic_write_text, output_folder

# Keyword arguments that belong to the tokenizer when a processor is called.
_TEXT_KWARGS = frozenset({
    "add_special_tokens", "padding", "truncation", "max_length", "stride", "is_split_into_words",
    "pad_to_multiple_of", "return_token_type_ids", "return_attention_mask", "return_overflowing_tokens",
    "return_special_tokens_mask", "return_offsets_mapping", "return_length", "verbose", "padding_side",
    "text_pair", "text_target", "text_pair_target",
})


class ProcessorMixin:
    """A model's processors under their ``attributes`` names (``image_processor``, ``tokenizer``).

    Args:
        *args / **kwargs: The processors, by position in ``attributes`` order or by name.
    """

    attributes: ClassVar[list[str]] = ["image_processor", "tokenizer"]
    # from_pretrained keywords passed on to the tokenizer (Whisper's language / task)
    _tokenizer_kwargs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self.attributes):
            raise TypeError(f"{type(self).__name__} takes at most {len(self.attributes)} processors "
                            f"({', '.join(self.attributes)}), got {len(args)} positional arguments.")
        values = dict(zip(self.attributes, args))
        for name in self.attributes:
            if name in kwargs:
                if name in values:
                    raise TypeError(f"Got two values for {name!r}.")
                values[name] = kwargs.pop(name)
        missing = [name for name in self.attributes if values.get(name) is None]
        if missing:
            raise ValueError(f"{type(self).__name__} needs {', '.join(missing)}.")
        for name, value in values.items():
            setattr(self, name, value)
        self.chat_template = kwargs.pop("chat_template", None)

    def __call__(self, images: Any = None, text: Any = None, videos: Any = None, audio: Any = None,
                 **kwargs: Any) -> BatchFeature:
        """Tokenize ``text`` and process ``images``; ``return_tensors`` applies to both, tokenizer
        arguments (``padding``, ``truncation``, ...) to the text, the image processor's settings to images."""
        if videos is not None or audio is not None:
            raise ValueError(f"{type(self).__name__} takes text and images only.")
        if text is None and images is None:
            raise ValueError("You have to specify either text or images. Both cannot be none.")
        return_tensors = kwargs.pop("return_tensors", None)
        for group in ("text_kwargs", "images_kwargs", "common_kwargs"):
            kwargs.update(kwargs.pop(group, None) or {})
        text_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _TEXT_KWARGS}
        data: dict[str, Any] = {}
        if text is not None:
            data.update(self.tokenizer(text, return_tensors=return_tensors, **text_kwargs))
        if images is not None:
            data.update(self.image_processor(images, return_tensors=return_tensors, **kwargs))
        elif kwargs:
            raise ValueError(f"Unexpected argument(s) {sorted(kwargs)} for {type(self).__name__} without images.")
        return BatchFeature(data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        names: list[str] = []
        for name in self.attributes:
            names += [n for n in getattr(getattr(self, name), "model_input_names", []) if n not in names]
        return names

    def batch_decode(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args: Any, **kwargs: Any) -> str:
        return self.tokenizer.decode(*args, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"processor_class": type(self).__name__}
        if "image_processor" in self.attributes:
            out["image_processor"] = self.image_processor.to_dict()
        if "feature_extractor" in self.attributes:
            out["feature_extractor"] = self.feature_extractor.to_dict()
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def __repr__(self) -> str:
        parts = "\n".join(f"- {name}: {getattr(self, name)!r}" for name in self.attributes)
        return f"{type(self).__name__}:\n{parts}\n\n{self.to_json_string()}"

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False,
                        **kwargs: Any) -> list[str]:
        """Write every part into ``save_directory``: the tokenizer's files and ``processor_config.json``."""
        directory = output_folder(save_directory, push_to_hub)
        written: list[str] = []
        if "tokenizer" in self.attributes:
            written += [str(p) for p in self.tokenizer.save_pretrained(directory) or []]
        path = directory / PROCESSOR_NAME
        atomic_write_text(path, self.to_json_string())
        return [*written, str(path)]

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        """Load every part from one folder or cached repo id."""
        from pretrained.processing.auto import AutoFeatureExtractor, AutoImageProcessor
        from pretrained.tokenization.auto import AutoTokenizer

        parts: dict[str, Any] = {}
        hub = {k: v for k, v in kwargs.items()
               if k in ("cache_dir", "revision", "local_files_only", "token", "subfolder")}
        if "image_processor" in cls.attributes:
            parts["image_processor"] = AutoImageProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs)
        if "feature_extractor" in cls.attributes:
            parts["feature_extractor"] = AutoFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **hub)
        if "tokenizer" in cls.attributes:
            token_kwargs = {k: kwargs[k] for k in cls._tokenizer_kwargs if k in kwargs}
            parts["tokenizer"] = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **hub, **token_kwargs)
        return cls(**parts)


class CLIPProcessor(ProcessorMixin):
    """CLIP's processor: a ``CLIPImageProcessor`` and a ``CLIPTokenizer``."""


class WhisperProcessor(ProcessorMixin):
    """Whisper's processor: a ``WhisperFeatureExtractor`` for ``audio`` and a ``WhisperTokenizer`` for
    ``text``; with both, the text's ids become the ``labels`` of the features."""

    attributes: ClassVar[list[str]] = ["feature_extractor", "tokenizer"]
    _tokenizer_kwargs = ("language", "task", "predict_timestamps")

    def __init__(self, feature_extractor: Any = None, tokenizer: Any = None, **kwargs: Any) -> None:
        super().__init__(feature_extractor=feature_extractor, tokenizer=tokenizer, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``processor(audio, sampling_rate=...)`` gives the log-mel features, ``processor(text=...)`` the
        token ids, both at once the features with ``labels``."""
        audio = kwargs.pop("audio", None)
        sampling_rate = kwargs.pop("sampling_rate", None)
        text = kwargs.pop("text", None)
        if args:
            audio, args = args[0], args[1:]
        if audio is None and text is None:
            raise ValueError("give audio (an array, or a batch of them) or text to process")
        features = None
        if audio is not None:
            features = self.feature_extractor(audio, *args, sampling_rate=sampling_rate, **kwargs)
        if text is None:
            return features
        encodings = self.tokenizer(text, **kwargs)
        if features is None:
            return encodings
        features["labels"] = encodings["input_ids"]
        return features

    def get_decoder_prompt_ids(self, task: str | None = None, language: str | None = None,
                               no_timestamps: bool = True) -> list[tuple[int, int]]:
        """The tokenizer's ``forced_decoder_ids`` for ``task`` / ``language``."""
        return self.tokenizer.get_decoder_prompt_ids(task=task, language=language, no_timestamps=no_timestamps)

    def get_prompt_ids(self, text: str, return_tensors: str | None = "np") -> Any:
        """``prompt_ids`` for ``generate`` from ``text``."""
        return self.tokenizer.get_prompt_ids(text, return_tensors=return_tensors)

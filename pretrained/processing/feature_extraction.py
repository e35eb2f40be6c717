"""Feature extractors: ``BatchFeature`` (every processor's output), ``FeatureExtractionMixin`` (settings read
from and written to ``preprocessor_config.json``) and ``SequenceFeatureExtractor`` (padding and truncation
of variable-length inputs such as audio).
"""

from __future__ import annotations

import copy
import json
import os
from collections import UserDict
from typing import Any, ClassVar

import numpy as np

from pretrained.processing.image_utils import is_torch_tensor
from pretrained.utils.io import atomic_write_text, output_folder, read_json_object

IMAGE_PROCESSOR_NAME = FEATURE_EXTRACTOR_NAME = "preprocessor_config.json"
PROCESSOR_NAME = "processor_config.json"
_HUB_KEYS = ("cache_dir", "revision", "local_files_only", "token", "subfolder")
_IGNORED_HUB_KEYS = ("force_download", "proxies", "resume_download", "trust_remote_code", "_from_auto",
                     "_from_pipeline", "use_fast")


class BatchFeature(UserDict):
    """A processor's output: a dict (``out["pixel_values"]``) that also reads as attributes
    (``out.pixel_values``), optionally converted to tensors.

    Args:
        data: The outputs by name.
        tensor_type: ``"pt"`` (torch), ``"np"`` (numpy) or ``None`` (as given: lists of arrays).
        skip_tensor_conversion: Keys left as they are when converting.
    """

    def __init__(self, data: dict[str, Any] | None = None, tensor_type: str | None = None,
                 skip_tensor_conversion: list[str] | set[str] | None = None) -> None:
        super().__init__(data)
        self.skip_tensor_conversion = skip_tensor_conversion
        self.convert_to_tensors(tensor_type)

    def __getattr__(self, item: str) -> Any:
        if item == "data":  # not yet set while unpickling
            raise AttributeError(item)
        try:
            return self.data[item]
        except KeyError:
            raise AttributeError(f"BatchFeature has no key {item!r}; keys: {sorted(self.data)}") from None

    def __getstate__(self) -> dict[str, Any]:
        return {"data": self.data, "skip_tensor_conversion": self.skip_tensor_conversion}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.data = state["data"]
        self.skip_tensor_conversion = state.get("skip_tensor_conversion")

    def convert_to_tensors(self, tensor_type: str | None = None,
                           skip_tensor_conversion: list[str] | set[str] | None = None) -> BatchFeature:
        """Convert array-like values to ``tensor_type`` (``"pt"`` / ``"np"``); ``None`` changes nothing.

        Raises:
            ValueError: an unknown tensor type, or values that cannot form one array (different shapes).
        """
        if tensor_type is None:
            return self
        kind = getattr(tensor_type, "value", tensor_type)
        if kind not in ("pt", "np"):
            raise ValueError(f"Unsupported return_tensors {tensor_type!r}: use 'pt' (torch) or 'np' (numpy).")
        skip = skip_tensor_conversion if skip_tensor_conversion is not None else self.skip_tensor_conversion
        for key, value in list(self.data.items()):
            if (skip and key in skip) or not _array_like(value):
                continue
            try:
                self.data[key] = _as_tensor(value, kind)
            except (ValueError, TypeError, RuntimeError) as e:
                raise ValueError(f"Unable to convert output {key!r} to {kind} tensors: {e}. The items may have "
                                 "different sizes (images: resize / crop them to one size; sequences: pad them), "
                                 "or pass return_tensors=None.") from None
        return self

    def to(self, *args: Any, **kwargs: Any) -> BatchFeature:
        """Move tensors to a device and/or cast floating tensors to a dtype (integer tensors keep theirs)."""
        import torch

        device = kwargs.get("device")
        if device is None and args and not isinstance(args[0], torch.dtype):
            if not isinstance(args[0], (str, int, torch.device)):
                raise ValueError(f"Attempting to cast a BatchFeature to type {args[0]}. This is not supported.")
            device = args[0]

        def move(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and torch.is_floating_point(value):
                return value.to(*args, **kwargs)
            if isinstance(value, torch.Tensor) and device is not None:
                return value.to(device=device, non_blocking=kwargs.get("non_blocking", False))
            if isinstance(value, (list, tuple)):
                return type(value)(move(v) for v in value)
            return value

        self.data = {k: move(v) for k, v in self.data.items()}
        return self


def _array_like(value: Any) -> bool:
    if isinstance(value, np.ndarray) or is_torch_tensor(value):
        return True
    if isinstance(value, (list, tuple)) and value:
        return _array_like(value[0]) or isinstance(value[0], (int, float))
    return False


def _as_tensor(value: Any, kind: str) -> Any:
    if kind == "np":
        if is_torch_tensor(value):
            return value.detach().cpu().numpy()
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray)) and len(
                {len(v) for v in value}) > 1:
            ragged = np.empty(len(value), dtype=object)  # sequences of different lengths, as transformers keeps them
            ragged[:] = [np.asarray(v) for v in value]
            return ragged
        return np.asarray(value)
    import torch

    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return torch.stack(list(value))
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], np.ndarray):
        value = np.stack(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return torch.tensor(value)


def read_processor_file(path_or_id: str | os.PathLike, filename: str, section: str,
                        hub: dict[str, Any]) -> dict[str, Any]:
    """The settings of one processor part: ``filename`` in a folder / cached repo (or the file itself), or
    the ``section`` of a ``processor_config.json`` that holds every part's settings."""
    from pretrained.hub import cached_file

    path = str(path_or_id)
    if os.path.isfile(path):
        return read_json_object(path)
    combined = cached_file(path, PROCESSOR_NAME, raise_if_missing=False, **hub)
    if combined is not None:
        data = read_json_object(combined)
        if isinstance(data.get(section), dict):
            return data[section]
    file = cached_file(path, filename, raise_if_missing=False, **hub)
    if file is None:
        raise OSError(f"Can't load the {section.replace('_', ' ')} of {path!r}: it has no {filename} (nor a "
                      f"{PROCESSOR_NAME} with an {section!r} section).")
    return read_json_object(file)


class ProcessorSettings:
    """What image processors and feature extractors share: settings kept as attributes, read from and
    written to ``preprocessor_config.json`` (or their section of ``processor_config.json``).

    Subclasses name their section (``_section``) and the key holding their class name (``_type_key``);
    ``_COMPUTED`` attributes (tables derived from the settings) are never written.
    """

    _section: ClassVar[str] = ""
    _type_key: ClassVar[str] = ""
    _COMPUTED: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:
        for key in ("processor_class", "feature_extractor_type", "image_processor_type"):
            kwargs.pop(key, None)
        for key, value in kwargs.items():
            setattr(self, key, value)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, cache_dir: Any = None,
                        force_download: bool = False, local_files_only: bool = False, token: Any = None,
                        revision: str | None = None, **kwargs: Any) -> Any:
        """Load the settings from a folder, a cached repo id or a ``preprocessor_config.json`` file.

        Keyword arguments that are settings override the file's; ``return_unused_kwargs=True`` also
        returns the others.

        Raises:
            OSError: no ``preprocessor_config.json`` (nor a ``processor_config.json`` with this part's
                section) is there, or it is not a JSON object.
        """
        hub = {"cache_dir": cache_dir, "local_files_only": local_files_only, "token": token,
               "revision": revision, "subfolder": kwargs.pop("subfolder", "")}
        data, kwargs = cls._settings_dict(pretrained_model_name_or_path, **hub, **kwargs)
        return cls.from_dict(data, **kwargs)

    @classmethod
    def _settings_dict(cls, pretrained_model_name_or_path: str | os.PathLike, filename: str = FEATURE_EXTRACTOR_NAME,
                       **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        hub = {k: kwargs.pop(k) for k in _HUB_KEYS if k in kwargs}
        hub = {k: v for k, v in hub.items() if v not in (None, "")}
        for key in _IGNORED_HUB_KEYS:
            kwargs.pop(key, None)
        return read_processor_file(pretrained_model_name_or_path, filename, cls._section, hub), kwargs

    @classmethod
    def from_dict(cls, settings: dict[str, Any], **kwargs: Any) -> Any:
        """Build from settings; ``kwargs`` that are settings, or attributes of the result, override them."""
        data = dict(settings)
        return_unused = kwargs.pop("return_unused_kwargs", False)
        valid = cls._setting_names()
        data.update({k: kwargs.pop(k) for k in list(kwargs) if k in valid})
        made = cls(**data)
        for key in list(kwargs):
            if hasattr(made, key):  # an attribute that is not a constructor setting
                setattr(made, key, kwargs.pop(key))
        return (made, kwargs) if return_unused else made

    @classmethod
    def _setting_names(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> Any:
        return cls(**read_json_object(json_file))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict, with the class name under ``_type_key``."""
        out = copy.deepcopy({k: v for k, v in self.__dict__.items()
                             if not k.startswith("_") and k not in self._COMPUTED})
        out[self._type_key] = type(self).__name__
        return out

    def to_json_string(self) -> str:
        data = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.to_dict().items()}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        atomic_write_text(json_file_path, self.to_json_string())

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> list[str]:
        """Write ``preprocessor_config.json`` into ``save_directory`` (atomically, with the user's umask)."""
        path = output_folder(save_directory, push_to_hub) / FEATURE_EXTRACTOR_NAME
        self.to_json_file(path)
        return [str(path)]

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


class FeatureExtractionMixin(ProcessorSettings):
    """A feature extractor's settings (``preprocessor_config.json``, ``feature_extractor_type``); computed
    tables (``mel_filters``, ``window``) are not written."""

    _section = "feature_extractor"
    _type_key = "feature_extractor_type"
    _COMPUTED = ("mel_filters", "window")

    @classmethod
    def get_feature_extractor_dict(cls, pretrained_model_name_or_path: str | os.PathLike,
                                   **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(settings read from the checkpoint, the remaining kwargs)``."""
        return cls._settings_dict(pretrained_model_name_or_path, **kwargs)


_STRATEGIES = {True: "longest", False: "do_not_pad", "longest": "longest", "max_length": "max_length",
               "do_not_pad": "do_not_pad"}


class SequenceFeatureExtractor(FeatureExtractionMixin):
    """A feature extractor for sequences (audio samples, frames): padding and truncation of a batch.

    Args:
        feature_size: Values per step (1 for raw audio).
        sampling_rate: Samples per second the model expects.
        padding_value: What padded steps hold.
        padding_side: ``"right"`` (default) or ``"left"``.
        return_attention_mask: Whether ``pad`` returns an ``attention_mask`` by default.
    """

    model_input_names: ClassVar[list[str]] = ["input_values"]

    def __init__(self, feature_size: int, sampling_rate: int, padding_value: float, **kwargs: Any) -> None:
        self.feature_size = feature_size
        self.sampling_rate = sampling_rate
        self.padding_value = padding_value
        self.padding_side = kwargs.pop("padding_side", "right")
        self.return_attention_mask = kwargs.pop("return_attention_mask", True)
        super().__init__(**kwargs)

    def pad(self, processed_features: Any, padding: bool | str = True, max_length: int | None = None,
            truncation: bool = False, pad_to_multiple_of: int | None = None,
            return_attention_mask: bool | None = None, return_tensors: str | None = None) -> BatchFeature:
        """Pad (and with ``truncation`` cut) every sequence of a batch to one length.

        Args:
            processed_features: ``{name: [sequence, ...]}`` (a ``BatchFeature`` or dict), or a list of
                per-example dicts; the first of ``model_input_names`` must be there.
            padding: ``True`` / ``"longest"``, ``"max_length"`` (to ``max_length``), ``False`` /
                ``"do_not_pad"``.
            max_length: The length for ``"max_length"`` and for truncation.
            truncation: Cut sequences longer than ``max_length``.
            pad_to_multiple_of: Round the target length up to a multiple of this.
            return_attention_mask: Add ``attention_mask`` (1 for real steps); default: the extractor's setting.
            return_tensors: ``"pt"`` / ``"np"``; by default the type of the inputs.

        Raises:
            ValueError: a missing input name, an unknown padding strategy, or a needed ``max_length``
                / ``padding_value`` that is not set.
        """
        if isinstance(processed_features, (list, tuple)) and processed_features and isinstance(
                processed_features[0], (dict, BatchFeature)):
            processed_features = {k: [example[k] for example in processed_features] for k in processed_features[0]}
        main = self.model_input_names[0]
        if main not in processed_features:
            raise ValueError(f"pad needs {main!r} among the features; got {sorted(processed_features)}.")
        return_attention_mask = self.return_attention_mask if return_attention_mask is None else return_attention_mask
        values = processed_features[main]
        if len(values) == 0:
            return BatchFeature({**processed_features, **({"attention_mask": []} if return_attention_mask else {})})
        if return_tensors is None:
            return_tensors = "pt" if is_torch_tensor(values[0]) else "np"
        features = {k: (np.asarray(v) if isinstance(v[0], (int, float)) else [_numpy(x) for x in v])
                    for k, v in processed_features.items()}
        strategy = _STRATEGIES.get(getattr(padding, "value", padding))
        if strategy is None:
            raise ValueError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}.")
        if strategy == "max_length" and max_length is None:
            raise ValueError("padding='max_length' needs max_length.")
        if strategy != "do_not_pad" and self.padding_value is None:
            raise ValueError("Asking to pad but the feature extractor has no padding_value.")
        if truncation and max_length is None:
            raise ValueError("truncation=True needs max_length.")
        batch_size = len(features[main])
        if any(len(v) != batch_size for v in features.values()):
            raise ValueError("Some items in the output dictionary have a different batch size than others.")
        examples = [self._truncate({k: v[i] for k, v in features.items()}, max_length, pad_to_multiple_of, truncation)
                    for i in range(batch_size)]
        if strategy == "longest":
            max_length, strategy = max(len(e[main]) for e in examples), "max_length"
        out: dict[str, list[np.ndarray]] = {}
        for example in examples:
            padded = self._pad(example, max_length, strategy, pad_to_multiple_of, return_attention_mask)
            for key, value in padded.items():
                out.setdefault(key, []).append(value.astype(np.float32) if value.dtype == np.float64 else value)
        return BatchFeature(out, tensor_type=return_tensors)

    def _target(self, max_length: int | None, pad_to_multiple_of: int | None) -> int | None:
        if max_length is not None and pad_to_multiple_of and max_length % pad_to_multiple_of:
            return (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        return max_length

    def _pad(self, example: dict[str, np.ndarray], max_length: int | None, strategy: str,
             pad_to_multiple_of: int | None, return_attention_mask: bool) -> dict[str, np.ndarray]:
        main = self.model_input_names[0]
        values = example[main]
        target = self._target(len(values) if strategy == "longest" else max_length, pad_to_multiple_of)
        if return_attention_mask and "attention_mask" not in example:
            example["attention_mask"] = np.ones(len(values), dtype=np.int32)
        if strategy != "do_not_pad" and target is not None and len(values) < target:
            if self.padding_side not in ("left", "right"):
                raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}.")
            extra = (target - len(values), 0) if self.padding_side == "left" else (0, target - len(values))
            if return_attention_mask:
                example["attention_mask"] = np.pad(example["attention_mask"], extra)
            shape = (extra, (0, 0)) if self.feature_size > 1 else extra
            example[main] = np.pad(values, shape, "constant", constant_values=self.padding_value)
        return example

    def _truncate(self, example: dict[str, np.ndarray], max_length: int | None, pad_to_multiple_of: int | None,
                  truncation: bool) -> dict[str, np.ndarray]:
        if not truncation:
            return example
        target = self._target(max_length, pad_to_multiple_of)
        main = self.model_input_names[0]
        if len(example[main]) > target:
            example[main] = example[main][:target]
            if "attention_mask" in example:
                example["attention_mask"] = example["attention_mask"][:target]
        return example


def _numpy(value: Any) -> np.ndarray:
    if is_torch_tensor(value):
        return value.detach().cpu().numpy()
    return np.asarray(value)

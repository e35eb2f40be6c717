"""`AutoTokenizer`: pick the tokenizer class named by a checkpoint and load it."""

from __future__ import annotations

import os
from typing import Any

from ..hub import cached_file
from ..utils.io import read_optional_json
from . import models
from .fast import PreTrainedTokenizerFast
from .marian import MarianTokenizer
from .whisper import WhisperTokenizer

# Class names found in tokenizer_config.json ("Fast" suffix stripped) -> class.
TOKENIZER_CLASSES: dict[str, type[PreTrainedTokenizerFast]] = {
    "PreTrainedTokenizer": PreTrainedTokenizerFast,
    "PreTrainedTokenizerFast": PreTrainedTokenizerFast,
    "TokenizersBackend": PreTrainedTokenizerFast,
    "BertTokenizer": models.BertTokenizer,
    "DistilBertTokenizer": models.DistilBertTokenizer,
    "GPT2Tokenizer": models.GPT2Tokenizer,
    "RobertaTokenizer": models.RobertaTokenizer,
    "LlamaTokenizer": models.LlamaTokenizer,
    "T5Tokenizer": models.T5Tokenizer,
    "CLIPTokenizer": models.CLIPTokenizer,
    "MT5Tokenizer": models.T5Tokenizer,
    "BartTokenizer": models.BartTokenizer,
    "MBartTokenizer": models.MBartTokenizer,
    "MarianTokenizer": MarianTokenizer,
    "WhisperTokenizer": WhisperTokenizer,
    "WhisperTokenizerFast": WhisperTokenizer,
}

# config.json model_type -> class, for checkpoints whose tokenizer config names no class.
MODEL_TYPE_TO_TOKENIZER: dict[str, type[PreTrainedTokenizerFast]] = {
    "bert": models.BertTokenizer,
    "distilbert": models.DistilBertTokenizer,
    "roberta": models.RobertaTokenizer,
    "gpt2": models.GPT2Tokenizer,
    "llama": models.LlamaTokenizer,
    "t5": models.T5Tokenizer,
    "clip": models.CLIPTokenizer,
    "mt5": models.T5Tokenizer,
    "umt5": models.T5Tokenizer,
    "bart": models.BartTokenizer,
    "mbart": models.MBartTokenizer,
    "marian": MarianTokenizer,
    "whisper": WhisperTokenizer,
}

_HUB_KEYS = ("cache_dir", "revision", "local_files_only", "token", "subfolder")


class AutoTokenizer:
    """Load the right tokenizer class for a checkpoint: `AutoTokenizer.from_pretrained("folder-or-id")`.

    The class comes from `tokenizer_class` in `tokenizer_config.json`, else from `config.json`
    (`tokenizer_class`, then `model_type`); unknown classes fall back to `PreTrainedTokenizerFast`,
    which follows `tokenizer.json` as written. Remote code (`auto_map`) is never run.
    """

    def __init__(self) -> None:
        raise OSError(
            "AutoTokenizer is designed to be instantiated with `AutoTokenizer.from_pretrained(...)`."
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *inputs: Any, **kwargs: Any
    ) -> Any:
        """Load a tokenizer; see `PreTrainedTokenizerFast.from_pretrained` for the arguments.

        Args:
            pretrained_model_name_or_path: A folder, a repo id in the Hugging Face cache, or a `tokenizer.json`.
            tokenizer_type: A model type (`"bert"`, `"gpt2"`, ...) choosing the class directly.
            config: A model config whose `model_type` / `tokenizer_class` may choose the class.
        """
        kwargs.pop("use_fast", None)
        config = kwargs.pop("config", None)
        tokenizer_type = kwargs.pop("tokenizer_type", None)
        path = str(pretrained_model_name_or_path)
        if tokenizer_type is not None:
            if tokenizer_type not in MODEL_TYPE_TO_TOKENIZER:
                raise ValueError(
                    f"Passed `tokenizer_type` {tokenizer_type} does not exist. `tokenizer_type` should be one of "
                    f"{', '.join(MODEL_TYPE_TO_TOKENIZER)}."
                )
            return MODEL_TYPE_TO_TOKENIZER[tokenizer_type].from_pretrained(path, *inputs, **kwargs)
        hub = {k: kwargs[k] for k in _HUB_KEYS if kwargs.get(k) is not None}
        name = read_optional_json(path, "tokenizer_config.json", hub).get("tokenizer_class")
        model_config = (
            config.to_dict()
            if hasattr(config, "to_dict")
            else (config or read_optional_json(path, "config.json", hub))
        )
        name = name or model_config.get("tokenizer_class")
        tokenizer_class = TOKENIZER_CLASSES.get(name.removesuffix("Fast")) if name else None
        if tokenizer_class is None and not name:
            tokenizer_class = MODEL_TYPE_TO_TOKENIZER.get(model_config.get("model_type", ""))
        if tokenizer_class is models.LlamaTokenizer and _is_byte_level(path, hub):
            # Llama-3 style checkpoints declare LlamaTokenizer but ship byte-level BPE; like transformers,
            # load them with the generic class (no Llama defaults such as <unk> or left padding).
            tokenizer_class = PreTrainedTokenizerFast
        return (tokenizer_class or PreTrainedTokenizerFast).from_pretrained(path, *inputs, **kwargs)


def _is_byte_level(path: str, hub: dict[str, Any]) -> bool:
    file = (
        path if os.path.isfile(path) else cached_file(path, "tokenizer.json", raise_if_missing=False, **hub)
    )
    if file is None or not file.endswith(".json"):
        return False
    with open(file, encoding="utf-8") as f:
        return '"ByteLevel"' in f.read()

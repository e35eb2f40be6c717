"""``text2text-generation``, ``summarization`` and ``translation``: generate text from text with an
encoder-decoder (``...ForConditionalGeneration``, ``MarianMTModel``).

transformers 5 removed these pipelines; they behave as in transformers 4.57: each input gives a list of
records, one per returned sequence, ``{"<name>_text": ...}`` (``generated``, ``summary``, ``translation``)
or ``{"<name>_token_ids": tensor}`` with ``return_tensors=True``; a list of texts whose results all hold one
record gives one record per text. Unless the model's ``generation_config.json`` says otherwise, generation
uses ``max_new_tokens=256, num_beams=4`` (a ``max_length`` set by the model wins over the 256).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import torch

from .base import Pipeline

logger = logging.getLogger(__name__)


class ReturnType(enum.Enum):
    TENSORS = 0
    TEXT = 1


# The pipelines' own defaults, below what the model's generation config sets (transformers 4.57's values).
_PIPELINE_DEFAULTS = {"max_new_tokens": 256, "num_beams": 4}


class Text2TextGenerationPipeline(Pipeline):
    """Generate text from text with an encoder-decoder model: ``pipeline("text2text-generation", model=...)``.

    Call parameters: ``return_tensors``, ``return_type``, ``clean_up_tokenization_spaces``, ``truncation``,
    ``stop_sequence`` (its first token ends generation) and any ``generate`` argument (``max_length``,
    ``num_beams``, ``num_return_sequences``, ``generation_config``, ...). The model config's ``prefix``
    (or the task's ``task_specific_params``) is put before every input.
    """

    _model_tasks = ("seq2seq_lm",)
    _pipeline_calls_generate = True
    return_name = "generated"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefix = getattr(self.model.config, "prefix", None)
        self.generation_config = self._pipeline_generation_config()

    def _pipeline_generation_config(self) -> Any:
        """The pipeline's defaults, then whatever the model's generation config sets beyond the global
        defaults, then the task's ``task_specific_params``; the tokenizer's pad token when the model has none."""
        from pretrained.generation.configuration_utils import _DEFAULTS, _FIELDS, GenerationConfig

        config = GenerationConfig(**_PIPELINE_DEFAULTS)
        model_config = getattr(self.model, "generation_config", None)
        if model_config is not None:
            for name in _FIELDS:
                value = getattr(model_config, name, None)
                if getattr(config, name, None) is None and value is not None and value != _DEFAULTS.get(name):
                    setattr(config, name, value)
        # A length the model's config sets takes over from the pipeline's max_new_tokens default.
        if config.max_new_tokens == _PIPELINE_DEFAULTS["max_new_tokens"] and config.max_length not in (None, 20):
            config.max_new_tokens = None
        task_params = getattr(self.model.config, "task_specific_params", None) or {}
        if self.task in task_params:
            params = dict(task_params[self.task])
            if "prefix" in params:
                self.prefix = params.pop("prefix")
            config.update(**params)
        if self.tokenizer is not None and self.tokenizer.pad_token_id is not None and config.pad_token_id is None:
            config.pad_token_id = self.tokenizer.pad_token_id
        return config

    def _sanitize_parameters(self, return_tensors: bool | None = None, return_text: bool | None = None,
                             return_type: ReturnType | None = None, clean_up_tokenization_spaces: bool | None = None,
                             truncation: Any = None, stop_sequence: str | None = None,
                             **generate_kwargs: Any) -> tuple[dict, dict, dict]:
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        postprocess_params: dict[str, Any] = {}
        if return_tensors is not None and return_type is None:
            return_type = ReturnType.TENSORS if return_tensors else ReturnType.TEXT
        if return_type is not None:
            postprocess_params["return_type"] = return_type
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        if stop_sequence is not None:
            ids = self.tokenizer.encode(stop_sequence, add_special_tokens=False)
            if len(ids) > 1:
                logger.warning("Stopping on a multiple token sequence is not supported: the first token of the stop "
                               "sequence ends generation.")
            generate_kwargs["eos_token_id"] = ids[0]
        return preprocess_params, generate_kwargs, postprocess_params

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> bool:
        """Warn about lengths that look wrong for the task (nothing for plain text2text)."""
        return True

    def _parse_and_tokenize(self, text: Any, truncation: Any) -> dict[str, Any]:
        prefix = self.prefix or ""
        if isinstance(text, list):
            if self.tokenizer.pad_token_id is None:
                raise ValueError("Please make sure that the tokenizer has a pad_token_id when using a batch input")
            text, padding = [prefix + t for t in text], True
        elif isinstance(text, str):
            text, padding = prefix + text, False
        else:
            raise ValueError(f" `args[0]`: {text} have the wrong format. The should be either of type `str` or "
                             "type `list`")
        inputs = dict(self.tokenizer(text, padding=padding, truncation=truncation, return_tensors="pt"))
        inputs.pop("token_type_ids", None)  # not an argument of generate
        return inputs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Generate from one text or a list of texts (see the class docstring for the outputs)."""
        result = super().__call__(*args, **kwargs)
        first = args[0] if args else kwargs.get("inputs")
        if (isinstance(first, list) and all(isinstance(t, str) for t in first)
                and all(len(r) == 1 for r in result)):
            return [r[0] for r in result]
        return result

    def preprocess(self, inputs: Any, truncation: Any = False, **kwargs: Any) -> dict[str, Any]:
        return self._parse_and_tokenize(inputs, truncation=truncation)

    def _forward(self, model_inputs: dict[str, Any], **generate_kwargs: Any) -> dict[str, Any]:
        batch, input_length = model_inputs["input_ids"].shape
        config = self.generation_config
        self.check_inputs(input_length, generate_kwargs.get("min_length", config.min_length or 0),
                          generate_kwargs.get("max_length", config.max_length or 20))
        generate_kwargs.setdefault("generation_config", config)
        inputs = dict(model_inputs)
        for key, value in model_inputs.items():
            # Per-input settings of a batch (a multilingual tokenizer's forced_bos_token_id) must agree.
            if isinstance(value, list):
                if any(v != value[0] for v in value):
                    raise ValueError(f"the inputs batched together ask for different {key} values {value}; "
                                     "run them with batch_size=1 or in separate calls")
                inputs[key] = value[0]
        output_ids = self.model.generate(**inputs, **generate_kwargs)
        if not isinstance(output_ids, torch.Tensor):
            output_ids = output_ids.sequences
        return {"output_ids": output_ids.reshape(batch, output_ids.shape[0] // batch, *output_ids.shape[1:])}

    def postprocess(self, model_outputs: dict[str, Any], return_type: ReturnType = ReturnType.TEXT,
                    clean_up_tokenization_spaces: bool = False) -> list[dict[str, Any]]:
        records = []
        for output_ids in model_outputs["output_ids"][0]:
            if return_type == ReturnType.TENSORS:
                records.append({f"{self.return_name}_token_ids": output_ids})
            else:
                text = self.tokenizer.decode(output_ids, skip_special_tokens=True,
                                             clean_up_tokenization_spaces=clean_up_tokenization_spaces)
                records.append({f"{self.return_name}_text": text})
        return records


class SummarizationPipeline(Text2TextGenerationPipeline):
    """Summarize texts: ``pipeline("summarization", model=...)``; records are ``{"summary_text": ...}``."""

    return_name = "summary"

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> bool:
        if max_length < min_length:
            logger.warning(f"Your min_length={min_length} must be inferior than your max_length={max_length}.")
        if input_length < max_length:
            logger.warning(
                f"Your max_length is set to {max_length}, but your input_length is only {input_length}. Since this "
                "is a summarization task, where outputs shorter than the input are typically wanted, you might "
                f"consider decreasing max_length manually, e.g. summarizer('...', max_length={input_length // 2})")
        return True


class TranslationPipeline(Text2TextGenerationPipeline):
    """Translate texts: ``pipeline("translation_en_to_fr", model=...)`` (or ``"translation"`` with
    ``src_lang`` / ``tgt_lang``, used by multilingual tokenizers); records are ``{"translation_text": ...}``."""

    return_name = "translation"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        model = kwargs.get("model", args[0] if args else None)
        task_params = getattr(getattr(model, "config", None), "task_specific_params", None) or {}
        if kwargs.get("task") == "translation":
            # As transformers: a bare "translation" takes the checkpoint's first translation_xx_to_yy settings.
            chosen = next((key for key in task_params if key.startswith("translation")), None)
            if chosen is not None:
                logger.warning(f'"translation" task was used, instead of "translation_XX_to_YY", defaulting to '
                               f'"{chosen}"')
                kwargs["task"] = chosen
        super().__init__(*args, **kwargs)

    def check_inputs(self, input_length: int, min_length: int, max_length: int) -> bool:
        if input_length > 0.9 * max_length:
            logger.warning(f"Your input_length: {input_length} is bigger than 0.9 * max_length: {max_length}. You "
                           "might consider increasing your max_length manually, e.g. translator('...', max_length=400)")
        return True

    def preprocess(self, inputs: Any, truncation: Any = False, src_lang: str | None = None,
                   tgt_lang: str | None = None, **kwargs: Any) -> dict[str, Any]:
        build = getattr(self.tokenizer, "_build_translation_inputs", None)
        if build is not None:
            return dict(build(inputs, return_tensors="pt", truncation=truncation, src_lang=src_lang,
                              tgt_lang=tgt_lang))
        return self._parse_and_tokenize(inputs, truncation=truncation)

    def _sanitize_parameters(self, src_lang: str | None = None, tgt_lang: str | None = None,
                             **kwargs: Any) -> tuple[dict, dict, dict]:
        task = kwargs.pop("task", self.task)
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if src_lang is not None:
            preprocess_params["src_lang"] = src_lang
        if tgt_lang is not None:
            preprocess_params["tgt_lang"] = tgt_lang
        if src_lang is None and tgt_lang is None:
            parts = (task or "").split("_")
            if len(parts) == 4:  # translation, xx, to, yy
                preprocess_params["src_lang"], preprocess_params["tgt_lang"] = parts[1], parts[3]
        return preprocess_params, forward_params, postprocess_params

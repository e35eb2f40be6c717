"""`Seq2SeqTrainingArguments` and `Seq2SeqTrainer`: the `Trainer` for encoder-decoder models, whose
evaluation and prediction can generate (`predict_with_generate`) so metrics such as ROUGE or BLEU are
computed on generated text.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrained.generation.configuration_utils import GenerationConfig

from .arguments import TrainingArguments
from .outputs import PredictionOutput
from .trainer import Trainer


@dataclass
class Seq2SeqTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the generation settings of evaluation and prediction.

    Args:
        sortish_sampler: Accepted for compatibility; it has no effect (as in transformers 5).
        predict_with_generate: Evaluate and predict with `generate()`: predictions are generated token
            ids (padded to the generation length), for generative metrics.
        generation_max_length: `max_length` of those generations (default: the generation config's).
        generation_num_beams: `num_beams` of those generations (default: the generation config's).
        generation_config: A `GenerationConfig`, or a folder / file / model id to load one from; it
            replaces the model's `generation_config` when the trainer is built.
    """

    sortish_sampler: bool = field(default=False, metadata={"help": "Whether to use SortishSampler or not."})
    predict_with_generate: bool = field(
        default=False, metadata={"help": "Whether to use generate to calculate generative metrics (ROUGE, BLEU)."}
    )
    generation_max_length: int | None = field(
        default=None,
        metadata={"help": "The `max_length` to use on each evaluation loop when `predict_with_generate=True`. "
                          "Will default to the `max_length` value of the model configuration."},
    )
    generation_num_beams: int | None = field(
        default=None,
        metadata={"help": "The `num_beams` to use on each evaluation loop when `predict_with_generate=True`. "
                          "Will default to the `num_beams` value of the model configuration."},
    )
    generation_config: str | Path | GenerationConfig | None = field(
        default=None,
        metadata={"help": "Model id, file path or url pointing to a GenerationConfig json file, to use during "
                          "prediction."},
    )

    def to_dict(self) -> dict[str, Any]:
        """The arguments as a JSON-ready dict (a `GenerationConfig` becomes its dict)."""
        d = super().to_dict()
        if isinstance(self.generation_config, GenerationConfig):
            d["generation_config"] = self.generation_config.to_dict()
        return d


class Seq2SeqTrainer(Trainer):
    """`Trainer` whose `evaluate`, `predict` and `prediction_step` generate when
    `args.predict_with_generate` is set; they accept `generate()` keyword arguments (`max_length`,
    `max_new_tokens`, `num_beams`, ...), defaulting to `args.generation_max_length` / `generation_num_beams`.

    Takes the arguments of `Trainer`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.args, "generation_config", None) is not None:
            self.model.generation_config = self.load_generation_config(self.args.generation_config)

    @staticmethod
    def load_generation_config(gen_config_arg: str | Path | GenerationConfig) -> GenerationConfig:
        """A copy of `gen_config_arg`, or the config loaded from a folder, a file or a model id; checked
        strictly (a wrong setting raises `ValueError`)."""
        if isinstance(gen_config_arg, GenerationConfig):
            config = copy.deepcopy(gen_config_arg)
        else:
            path, name = Path(gen_config_arg), None
            if path.is_file():
                path, name = path.parent, path.name
            source = path if path.is_dir() else gen_config_arg
            config = GenerationConfig.from_pretrained(source, name)
        try:
            config.validate(strict=True)
        except ValueError as error:
            raise ValueError(f"{error}\n\nFix these issues to train your model.") from None
        return config

    def _generation_kwargs(self, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        # The arguments' defaults fill what the call leaves out.
        gen_kwargs = dict(gen_kwargs)
        if gen_kwargs.get("max_length") is None and gen_kwargs.get("max_new_tokens") is None \
                and self.args.generation_max_length is not None:
            gen_kwargs["max_length"] = self.args.generation_max_length
        if gen_kwargs.get("num_beams") is None and self.args.generation_num_beams is not None:
            gen_kwargs["num_beams"] = self.args.generation_num_beams
        return gen_kwargs

    def evaluate(self, eval_dataset: Any = None, ignore_keys: list[str] | None = None,
                 metric_key_prefix: str = "eval", **gen_kwargs: Any) -> dict[str, float]:
        """Loss and `compute_metrics` over `eval_dataset`; with `predict_with_generate` the predictions
        given to `compute_metrics` are generated with `gen_kwargs`."""
        self._gen_kwargs = self._generation_kwargs(gen_kwargs)
        return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def predict(self, test_dataset: Any, ignore_keys: list[str] | None = None, metric_key_prefix: str = "test",
                **gen_kwargs: Any) -> PredictionOutput:
        """Predictions (generated token ids with `predict_with_generate`), labels and metrics."""
        self._gen_kwargs = self._generation_kwargs(gen_kwargs)
        return super().predict(test_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)

    def prediction_step(self, model: nn.Module, inputs: dict[str, Any], prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None, **gen_kwargs: Any) -> tuple[Any, Any, Any]:
        """`(loss, generated ids, labels)` of one batch with `predict_with_generate` (ids and labels padded
        to the generation length with the pad token), else `Trainer.prediction_step`."""
        if not self.args.predict_with_generate or prediction_loss_only:
            return super().prediction_step(model, inputs, prediction_loss_only=prediction_loss_only,
                                           ignore_keys=ignore_keys)
        has_labels = "labels" in inputs
        inputs = self._prepare_inputs(inputs)
        if not gen_kwargs:
            gen_kwargs = dict(getattr(self, "_gen_kwargs", {}))
        gen_kwargs = {k: v for k, v in gen_kwargs.items() if not (k in ("num_beams", "max_length") and v is None)}
        # Decoder inputs made from the labels would make generate continue the reference: leave them out.
        skip = {"labels"}
        if has_labels and "decoder_input_ids" in inputs \
                and inputs["labels"].shape == inputs["decoder_input_ids"].shape:
            skip |= {"decoder_input_ids", "decoder_attention_mask"}
        generation_inputs = {k: v for k, v in inputs.items() if k not in skip}
        generated = self.model.generate(**generation_inputs, **gen_kwargs)

        # The length to pad to: the generation config's, with its defaults filled in.
        config = self.model.generation_config
        if config._from_model_config:
            config._from_model_config = False
        config.update(**config._get_default_generation_params(), defaults_only=True)
        length = self._padded_length(generated.shape[-1], config)
        if length is not None:
            generated = self._pad_tensors_to_max_len(generated, length)

        loss = None
        if has_labels:
            with torch.no_grad(), self.autocast_smart_context_manager(training=False):
                loss = self.compute_loss(model, inputs).detach().mean()
        if self.args.prediction_loss_only:
            return loss, None, None
        labels = None
        if has_labels:
            labels = inputs["labels"]
            length = self._padded_length(labels.shape[-1], config)
            if length is not None:
                labels = self._pad_tensors_to_max_len(labels, length)
        return loss, generated, labels

    @staticmethod
    def _padded_length(current: int, config: GenerationConfig) -> int | None:
        if config.max_length is not None and current < config.max_length:
            return config.max_length
        if config.max_new_tokens is not None and current < config.max_new_tokens + 1:
            return config.max_new_tokens + 1
        return None

    def _pad_tensors_to_max_len(self, tensor: torch.Tensor, max_length: int) -> torch.Tensor:
        """`tensor` right-padded to `max_length` with the tokenizer's pad (or eos) token, else the model's."""
        tokenizer = self.processing_class
        if tokenizer is not None and hasattr(tokenizer, "pad_token_id"):
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        elif getattr(self.model.config, "pad_token_id", None) is not None:
            pad = self.model.config.pad_token_id
        else:
            raise ValueError("Pad_token_id must be set in the configuration of the model, in order to pad tensors")
        padded = torch.full((tensor.shape[0], max_length), pad, dtype=tensor.dtype, device=tensor.device)
        padded[:, : tensor.shape[-1]] = tensor
        return padded

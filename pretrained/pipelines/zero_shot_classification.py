"""``zero-shot-classification``: rank any candidate labels with a model trained on NLI.

Each label becomes a hypothesis ("This example is {label}.") paired with the text; the model's
entailment logit scores it. The entailment class is found in ``config.label2id`` (a label starting
with "entail").
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from .base import ChunkPipeline
from .text_classification import check_text

logger = logging.getLogger("pretrained")


class ZeroShotClassificationArgumentHandler:
    """Checks labels and template and builds the (sequence, hypothesis) pairs."""

    def _parse_labels(self, labels: Any) -> list[str]:
        if isinstance(labels, str):
            labels = [label.strip() for label in labels.split(",") if label.strip()]
        return list(labels)

    def __call__(self, sequences: Any, labels: Any, hypothesis_template: str) -> tuple[list[list[str]], list[str]]:
        if not labels or not sequences:
            raise ValueError("You must include at least one label and at least one sequence.")
        if hypothesis_template.format(labels[0]) == hypothesis_template:
            raise ValueError(f'The provided hypothesis_template "{hypothesis_template}" was not able to be formatted '
                             "with the target labels. Make sure the passed template includes formatting syntax such "
                             "as {} where the label should go.")
        if isinstance(sequences, str):
            sequences = [sequences]
        pairs = [[sequence, hypothesis_template.format(label)] for sequence in sequences for label in labels]
        return pairs, sequences


class ZeroShotClassificationPipeline(ChunkPipeline):
    """Zero-shot text classification with an NLI ``...ForSequenceClassification`` model.

    ``pipe(text, candidate_labels=["sports", "politics"])`` → ``{"sequence", "labels", "scores"}`` with labels
    sorted by score. ``multi_label=True`` scores each label independently (entailment vs contradiction);
    otherwise the entailment logits are normalised over the labels. ``hypothesis_template`` defaults to
    ``"This example is {}."``.
    """

    _many_row_batches = True  # see Pipeline._many_rows

    _model_tasks = ("sequence_classification",)

    def __init__(self, *args: Any, args_parser: Any = None, **kwargs: Any) -> None:
        self._args_parser = args_parser or ZeroShotClassificationArgumentHandler()
        super().__init__(*args, **kwargs)
        if self.entailment_id == -1:
            logger.warning("Failed to determine 'entailment' label id from the label2id mapping in the model config. "
                           "Setting to -1. Define a descriptive label2id mapping in the model config to ensure "
                           "correct outputs.")

    @property
    def entailment_id(self) -> int:
        for label, index in self.model.config.label2id.items():
            if label.lower().startswith("entail"):
                return index
        return -1

    def _sanitize_parameters(self, **kwargs: Any):
        pre: dict[str, Any] = {}
        if "candidate_labels" in kwargs:
            pre["candidate_labels"] = self._args_parser._parse_labels(kwargs.pop("candidate_labels"))
        if "hypothesis_template" in kwargs:
            pre["hypothesis_template"] = kwargs.pop("hypothesis_template")
        post = {"multi_label": kwargs.pop("multi_label")} if "multi_label" in kwargs else {}
        if kwargs:
            raise TypeError(f"zero-shot-classification got unexpected parameter(s) {sorted(kwargs)}.")
        return pre, {}, post

    def __call__(self, sequences: Any = None, *args: Any, **kwargs: Any) -> Any:
        """Classify one text (a dict) or each of a list / stream of texts (a list of dicts)."""
        if len(args) == 1 and "candidate_labels" not in kwargs:
            kwargs["candidate_labels"] = args[0]
        elif args:
            raise ValueError(f"Unable to understand extra arguments {args}")
        if isinstance(sequences, list) and not sequences:
            raise ValueError("The zero-shot-classification pipeline received an empty list; pass at least one text.")
        if "candidate_labels" not in kwargs and "candidate_labels" not in self._preprocess_params:
            raise ValueError("zero-shot-classification needs candidate_labels=[...] (a list or a comma-separated "
                             "string).")
        return super().__call__(sequences, **kwargs)

    def preprocess(self, inputs: Any, candidate_labels: list[str] | None = None,
                   hypothesis_template: str = "This example is {}.") -> Any:
        check_text(inputs, "zero-shot-classification")
        pairs, sequences = self._args_parser(inputs, candidate_labels, hypothesis_template)
        if self.tokenizer.pad_token is None:
            logger.error("Tokenizer was not supporting padding necessary for zero-shot, attempting to use "
                         "`pad_token=eos_token`")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        for i, (label, pair) in enumerate(zip(candidate_labels, pairs)):
            yield {"candidate_label": label, "sequence": sequences[0], "is_last": i == len(candidate_labels) - 1,
                   **self._tokenize([pair])}

    def _tokenize(self, pairs: list[list[str]]) -> Any:
        # Truncate the text, never the hypothesis; a text too short to truncate is left whole.
        try:
            return self.tokenizer(pairs, return_tensors="pt", padding=True, truncation="only_first")
        except Exception as e:
            if "too short" not in str(e):
                raise
            return self.tokenizer(pairs, return_tensors="pt", padding=True, truncation=False)

    def _forward(self, inputs: dict[str, Any]) -> dict[str, Any]:
        model_inputs = self._model_kwargs({k: inputs[k] for k in self.tokenizer.model_input_names if k in inputs})
        logits = self.model(**model_inputs)["logits"]
        return {"candidate_label": inputs["candidate_label"], "sequence": inputs["sequence"],
                "is_last": inputs["is_last"], "logits": logits}

    def postprocess(self, model_outputs: list[dict[str, Any]], multi_label: bool = False) -> dict[str, Any]:
        labels = [out["candidate_label"] for out in model_outputs]
        logits = torch.cat([out["logits"].float() for out in model_outputs])  # (labels, classes)
        entailment = self.entailment_id
        if multi_label or len(labels) == 1:
            contradiction = -1 if entailment == 0 else 0
            scores = logits[:, [contradiction, entailment]].softmax(-1)[:, 1]
        else:
            scores = logits[:, entailment].softmax(-1)
        order = sorted(range(len(labels)), key=lambda i: float(scores[i]), reverse=True)
        values = scores.tolist()
        return {"sequence": model_outputs[0]["sequence"], "labels": [labels[i] for i in order],
                "scores": [values[i] for i in order]}

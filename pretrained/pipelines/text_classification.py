"""``text-classification`` (alias ``sentiment-analysis``): labels and scores for texts or text pairs."""

from __future__ import annotations

import enum
from typing import Any

import torch

from .base import Pipeline


class ClassificationFunction(enum.Enum):
    SIGMOID = "sigmoid"
    SOFTMAX = "softmax"
    NONE = "none"


def _function(value: Any) -> ClassificationFunction:
    if isinstance(value, ClassificationFunction):
        return value
    try:
        return ClassificationFunction[str(value).upper()]
    except KeyError:
        raise ValueError(f"Unrecognized `function_to_apply` argument: {value!r}; use 'sigmoid', 'softmax' or "
                         "'none'.") from None


def check_text(value: Any, task: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"The {task} pipeline expects text (str) inputs, got {type(value).__name__}: {value!r:.80}.")
    return value


def default_function(config: Any) -> ClassificationFunction:
    """What a classifier's logits go through when the call names nothing: by the config's ``problem_type``,
    else by its number of labels (one: sigmoid, more: softmax), else its ``function_to_apply``."""
    if config.problem_type == "regression":
        return ClassificationFunction.NONE
    if config.problem_type == "multi_label_classification" or config.num_labels == 1:
        return ClassificationFunction.SIGMOID
    if config.problem_type == "single_label_classification" or config.num_labels > 1:
        return ClassificationFunction.SOFTMAX
    if getattr(config, "function_to_apply", None) is not None:
        return _function(config.function_to_apply)
    return ClassificationFunction.NONE


class TextClassificationPipeline(Pipeline):
    """Classify texts with any ``...ForSequenceClassification`` model.

    A single label (``num_labels == 1``) or ``problem_type="multi_label_classification"`` applies a sigmoid,
    several labels a softmax, ``problem_type="regression"`` nothing. Outputs follow transformers 5:
    ``clf("text")`` → ``[{"label", "score"}]``; ``clf(["a", "b"])`` → one dict per text; with ``top_k``
    (``None`` = every label) each text gets a list of dicts sorted by score.

    Call parameters: ``top_k``, ``function_to_apply`` (``"sigmoid"``, ``"softmax"``, ``"none"``) and tokenizer
    keyword arguments (``truncation=True``, ``max_length=...``). A text pair is given as
    ``{"text": ..., "text_pair": ...}``. A list of texts runs in batches of similar length (outputs in input
    order).
    """

    _many_row_batches = True  # see Pipeline._many_rows

    _model_tasks = ("sequence_classification",)
    _sort_by_length = True
    function_to_apply = ClassificationFunction.NONE

    def _sanitize_parameters(self, function_to_apply: Any = None, top_k: Any = "", **tokenizer_kwargs: Any):
        post: dict[str, Any] = {}
        if isinstance(top_k, int) or top_k is None:
            if isinstance(top_k, int) and (isinstance(top_k, bool) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
            post["top_k"] = top_k
            post["_legacy"] = False
        elif top_k != "":
            raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}.")
        if function_to_apply is not None:
            post["function_to_apply"] = _function(function_to_apply)
        return tokenizer_kwargs, {}, post

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Classify one text, a pair dict, a list of them, or a stream (generator / dataset) of them."""
        if isinstance(inputs, list) and not inputs:
            raise ValueError("The text-classification pipeline received an empty list; pass at least one text.")
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, str) and "top_k" not in kwargs:
            return [result]  # transformers 5 wraps a single text's top label in a list
        return result

    def preprocess(self, inputs: Any, **tokenizer_kwargs: Any) -> dict[str, Any]:
        if isinstance(inputs, dict):
            unknown = set(inputs) - {"text", "text_pair"}
            if "text" not in inputs or unknown:
                raise ValueError('A text pair must be a dict {"text": ..., "text_pair": ...}; got keys '
                                 f"{sorted(inputs)}.")
            check_text(inputs["text"], "text-classification")
            return self.tokenizer(**inputs, return_tensors="pt", **tokenizer_kwargs)
        if isinstance(inputs, list) and len(inputs) == 1 and isinstance(inputs[0], list) and len(inputs[0]) == 2:
            return self.tokenizer(text=inputs[0][0], text_pair=inputs[0][1], return_tensors="pt", **tokenizer_kwargs)
        if isinstance(inputs, list):
            raise ValueError("The pipeline received invalid inputs, if you are trying to send text pairs, you can try "
                             'to send a dictionary `{"text": "My text", "text_pair": "My pair"}` in order to send a '
                             "text pair.")
        check_text(inputs, "text-classification")
        return self.tokenizer(inputs, return_tensors="pt", **tokenizer_kwargs)

    def preprocess_batch(self, inputs: list[Any], **tokenizer_kwargs: Any) -> dict[str, Any] | None:
        # Plain texts: one tokenizer call for the batch (pairs go through preprocess one by one).
        if not all(isinstance(x, str) for x in inputs):
            return None
        return dict(self.tokenizer(inputs, return_tensors="pt", **{"padding": True, **tokenizer_kwargs}))

    def _forward(self, model_inputs: dict[str, Any]) -> Any:
        return {"logits": self.model(**self._model_kwargs(dict(model_inputs)))["logits"]}

    def postprocess(self, model_outputs: Any, function_to_apply: Any = None, top_k: int | None = 1,
                    _legacy: bool = True) -> Any:
        function_to_apply = function_to_apply or default_function(self.model.config)
        logits = model_outputs["logits"][0].float()
        if function_to_apply == ClassificationFunction.SIGMOID:
            scores = torch.sigmoid(logits)
        elif function_to_apply == ClassificationFunction.SOFTMAX:
            scores = torch.softmax(logits, dim=-1)
        else:
            scores = logits
        id2label = self.model.config.id2label
        values = scores.tolist()
        if top_k == 1 and _legacy:
            best = max(range(len(values)), key=values.__getitem__)
            return {"label": id2label[best], "score": values[best]}
        results = [{"label": id2label[i], "score": v} for i, v in enumerate(values)]
        if not _legacy:
            results.sort(key=lambda r: r["score"], reverse=True)
            if top_k is not None:
                results = results[:top_k]
        return results

"""``fill-mask``: the most likely tokens for each mask token of a text."""

from __future__ import annotations

import logging
from typing import Any

import torch

from .base import Pipeline, PipelineException, check_positive_int
from .text_classification import check_text

logger = logging.getLogger("pretrained")


class FillMaskPipeline(Pipeline):
    """Predict masked tokens with any ``...ForMaskedLM`` model.

    Each prediction is ``{"score", "token", "token_str", "sequence"}``; a text with one mask gets a list of
    ``top_k`` predictions, a text with several masks one such list per mask (scores are per mask, not
    joint). Call parameters: ``top_k`` (default 5), ``targets`` (restrict the candidates; a target not in
    the vocabulary is replaced by its first token, with a warning), ``tokenizer_kwargs``.
    """

    _many_row_batches = True  # see Pipeline._many_rows

    _model_tasks = ("masked_lm",)

    def _sanitize_parameters(self, top_k: int | None = None, targets: Any = None,
                             tokenizer_kwargs: dict | None = None):
        pre = {} if tokenizer_kwargs is None else {"tokenizer_kwargs": tokenizer_kwargs}
        post: dict[str, Any] = {}
        if targets is not None:
            post["target_ids"] = self.get_target_ids(targets)
        if top_k is not None:
            post["top_k"] = check_positive_int("top_k", top_k)
        if self.tokenizer.mask_token_id is None:
            raise PipelineException("fill-mask", self.model.base_model_prefix,
                                    "The tokenizer does not define a `mask_token`.")
        return pre, {}, post

    def get_target_ids(self, targets: str | list[str]) -> torch.Tensor:
        """Token ids of ``targets``; a word outside the vocabulary stands for its first token."""
        if isinstance(targets, str):
            targets = [targets]
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            id_ = vocab.get(target)
            if id_ is None:
                pieces = self.tokenizer(target, add_special_tokens=False, return_attention_mask=False,
                                        return_token_type_ids=False, max_length=1, truncation=True)["input_ids"]
                if not pieces:
                    logger.warning("The specified target token `%s` does not exist in the model vocabulary. We "
                                   "cannot replace it with anything meaningful, ignoring it", target)
                    continue
                id_ = pieces[0]
                logger.warning("The specified target token `%s` does not exist in the model vocabulary. Replacing "
                               "with `%s`.", target, self.tokenizer.convert_ids_to_tokens(id_))
            ids.append(id_)
        ids = list(set(ids))  # the same order as transformers, which also dedupes through a set
        if not ids:
            raise ValueError("At least one target must be provided when passed.")
        return torch.tensor(ids)

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Fill the masks of one text or of each text of a list / stream."""
        if isinstance(inputs, list) and not inputs:
            raise ValueError("The fill-mask pipeline received an empty list; pass at least one text.")
        outputs = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and len(inputs) == 1:
            return outputs[0]  # as transformers does
        return outputs

    def preprocess(self, inputs: Any, tokenizer_kwargs: dict | None = None) -> dict[str, Any]:
        check_text(inputs, "fill-mask")
        model_inputs = self.tokenizer(inputs, return_tensors="pt", **(tokenizer_kwargs or {}))
        if not bool((model_inputs["input_ids"] == self.tokenizer.mask_token_id).any()):
            raise PipelineException("fill-mask", self.model.base_model_prefix,
                                    f"No mask_token ({self.tokenizer.mask_token}) found on the input: {inputs!r:.80}")
        return model_inputs

    def _forward(self, model_inputs: dict[str, Any]) -> Any:
        logits = self.model(**model_inputs)["logits"]
        return {"logits": logits, "input_ids": model_inputs["input_ids"]}

    def postprocess(self, model_outputs: Any, top_k: int = 5, target_ids: torch.Tensor | None = None) -> Any:
        if target_ids is not None and target_ids.shape[0] < top_k:
            top_k = target_ids.shape[0]
        input_ids = model_outputs["input_ids"][0]
        masked = torch.nonzero(input_ids == self.tokenizer.mask_token_id, as_tuple=False).squeeze(-1)
        probs = model_outputs["logits"][0, masked, :].float().softmax(dim=-1)
        if target_ids is not None:
            probs = probs[..., target_ids]
        values, predictions = probs.topk(top_k)
        single_mask = values.shape[0] == 1
        pad = self.tokenizer.pad_token_id
        result = []
        for i, (row_values, row_predictions) in enumerate(zip(values.tolist(), predictions.tolist())):
            row = []
            for v, p in zip(row_values, row_predictions):
                token = int(target_ids[p]) if target_ids is not None else p
                tokens = input_ids.clone()
                tokens[masked[i]] = token
                if pad is not None:
                    tokens = tokens[tokens != pad]  # batch padding is not part of the text
                sequence = self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single_mask)
                row.append({"score": v, "token": token, "token_str": self.tokenizer.decode([token]),
                            "sequence": sequence})
            result.append(row)
        return result[0] if single_mask else result

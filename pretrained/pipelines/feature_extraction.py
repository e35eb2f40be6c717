"""``feature-extraction``: the last hidden states of a base model, one vector per token."""

from __future__ import annotations

from typing import Any

from .base import Pipeline
from .text_classification import check_text


class FeatureExtractionPipeline(Pipeline):
    """Token features from any base model (``AutoModel``).

    ``pipe("text")`` returns a nested list of shape ``[1, tokens, hidden]`` (a tensor with
    ``return_tensors=True``). With no model, :func:`pretrained.pipeline` uses the embedded
    all-MiniLM-L6-v2; mean-pool and normalise the features to get its sentence embeddings.

    Deliberate difference from transformers: with ``batch_size > 1``, transformers returns each text's
    features padded to the longest text of its batch; pretrained drops the padded positions, so the
    output for a text does not depend on the batch it was run in. A list runs in batches of similar
    length (longest first; outputs in input order), so little compute goes to padding.

    Faster embeddings on the CPU: ``dtype=torch.bfloat16``, or int8 linears with dynamic int8 activations,
    ``model_kwargs={"quantization_config": TorchAoConfig(Int8DynamicActivationInt8WeightConfig())}`` (torchao's
    config, as in transformers; with or without bf16). The pipeline then runs those linears, and the
    encoder's self-attention, on :class:`~pretrained.inference.int8_dynamic.Int8DynamicKernels` (AVX-512 VNNI;
    the same numbers as torchao's own layers).

    Call parameters: ``truncation``, ``tokenize_kwargs`` (tokenizer arguments), ``return_tensors``.
    """

    _many_row_batches = True  # see Pipeline._many_rows

    # Any model works (transformers does not check either): the first output is taken as the features.
    _model_tasks = ()
    _sort_by_length = True

    def _sanitize_parameters(self, truncation: Any = None, tokenize_kwargs: dict | None = None,
                             return_tensors: Any = None, **kwargs: Any):
        if kwargs:
            raise TypeError(f"feature-extraction got unexpected parameter(s) {sorted(kwargs)}; tokenizer arguments "
                            "go in tokenize_kwargs={...}.")
        tokenize_kwargs = dict(tokenize_kwargs or {})
        if truncation is not None:
            if "truncation" in tokenize_kwargs:
                raise ValueError("truncation parameter defined twice (given as keyword argument as well as in "
                                 "tokenize_kwargs)")
            tokenize_kwargs["truncation"] = truncation
        post = {} if return_tensors is None else {"return_tensors": return_tensors}
        return tokenize_kwargs, {}, post

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Features of one text, a list of texts, or a stream of texts."""
        if isinstance(inputs, list) and not inputs:
            raise ValueError("The feature-extraction pipeline received an empty list; pass at least one text.")
        return super().__call__(inputs, **kwargs)

    def preprocess(self, inputs: Any, **tokenize_kwargs: Any) -> dict[str, Any]:
        check_text(inputs, "feature-extraction")
        return self.tokenizer(inputs, return_tensors="pt", **tokenize_kwargs)

    def preprocess_batch(self, inputs: list[Any], **tokenize_kwargs: Any) -> dict[str, Any] | None:
        if not all(isinstance(x, str) for x in inputs):
            return None  # preprocess raises the error for the bad input
        return dict(self.tokenizer(inputs, return_tensors="pt", **{"padding": True, **tokenize_kwargs}))

    def _forward(self, model_inputs: dict[str, Any]) -> Any:
        hidden = self.model(**model_inputs)[0]
        return {"hidden": hidden, "attention_mask": model_inputs.get("attention_mask")}

    def postprocess(self, model_outputs: Any, return_tensors: bool = False) -> Any:
        hidden = model_outputs["hidden"]
        mask = model_outputs.get("attention_mask")
        if mask is not None and hidden.ndim == 3 and not bool(mask.all()):
            hidden = _unpadded(hidden, mask[0])  # drop the positions added by batch padding
        return hidden if return_tensors else hidden.tolist()


def _unpadded(hidden: Any, mask: Any) -> Any:
    """``hidden`` without its padded positions: a view when the padding is on the right (the common case),
    a boolean-mask copy otherwise."""
    n = int(mask.sum())
    if n and bool(mask[n - 1]) and not bool(mask[n]):
        return hidden[:, :n]
    return hidden[:, mask.bool()]

"""``image-classification``: labels and scores for images, with any ``...ForImageClassification`` model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.nn.modules import module as module_globals

from pretrained.inference.many_rows import ManyRowsKernels

from .base import Pipeline, check_positive_int, pad_collate
from .text_classification import ClassificationFunction, _function, default_function


def load_pipeline_image(image: Any, timeout: float | None = None) -> Any:
    """A pipeline's image input as the image processor takes it: arrays and tensors as they are, anything
    else (a path, URL, base64 text or PIL image) loaded as an RGB PIL image."""
    if isinstance(image, (np.ndarray, torch.Tensor)):
        return image
    from pretrained.processing.image_utils import load_image_to_read

    return load_image_to_read(image, timeout=timeout)


class ImagePipeline(Pipeline):
    """What the image pipelines share: an image processor instead of a tokenizer, and batches made by
    stacking ``pixel_values`` (every image is processed to the same size)."""

    _load_tokenizer = False
    _load_image_processor = True

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_collate(items, None)

    def get_inference_context(self) -> Callable[[], Any]:
        # the encoder's many-row linears (every image's patches) on oneDNN's matmul
        return ManyRowsKernels.around(super().get_inference_context(), self.model)

    def _unobserved(self) -> bool:
        """Whether the model may skip work its full forward would do: eval mode and no forward hooks (on any
        module, or global) that would see the skipped calls."""
        if self.model.training or module_globals._global_forward_hooks or module_globals._global_forward_pre_hooks:
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks for m in self.model.modules())

    def _pixel_inputs(self, image: Any, timeout: float | None, **processor_kwargs: Any) -> dict[str, Any]:
        if self.image_processor is None:
            raise ValueError(f"The {self.task} pipeline needs an image processor: pass image_processor=... to "
                             "pipeline() or save preprocessor_config.json next to the model.")
        inputs = self.image_processor(load_pipeline_image(image, timeout), return_tensors="pt", **processor_kwargs)
        return dict(inputs.to(self.dtype))

    def preprocess_batch(self, inputs: list[Any], **preprocess_parameters: Any) -> dict[str, Any] | None:
        # One image processor call for the batch (its images resize in parallel); equal to processing them
        # one by one and stacking, since every image is processed on its own.
        if self.image_processor is None:
            return None
        timeout = preprocess_parameters.pop("timeout", None)
        images = [load_pipeline_image(image, timeout) for image in inputs]
        return self._pixel_batch(images, **preprocess_parameters)

    def _pixel_batch(self, images: list[Any], **preprocess_parameters: Any) -> dict[str, Any]:
        return dict(self.image_processor(images, return_tensors="pt", **preprocess_parameters).to(self.dtype))

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        if "images" in kwargs:
            inputs = kwargs.pop("images")
        if inputs is None:
            raise ValueError(f"Cannot call the {self.task or 'image'} pipeline without an inputs argument!")
        if isinstance(inputs, np.ndarray):  # one image, not a stream of rows
            inputs = torch.from_numpy(inputs)
        if isinstance(inputs, list) and not inputs:
            raise ValueError(f"The {self.task or 'image'} pipeline received an empty list; pass at least one image.")
        return super().__call__(inputs, **kwargs)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class ImageClassificationPipeline(ImagePipeline):
    """Classify images: ``pipe(image)`` → the ``top_k`` (default 5) ``{"label", "score"}`` dicts, best first;
    a list of images gives one such list per image.

    Images are paths, URLs, base64 text, PIL images, or numpy arrays / torch tensors. Call parameters:
    ``top_k``, ``function_to_apply`` (``"sigmoid"``, ``"softmax"``, ``"none"``; by default from the
    config, as in text classification), ``timeout`` (for URLs).
    """

    _model_tasks = ("image_classification",)

    def _sanitize_parameters(self, top_k: int | None = None, function_to_apply: Any = None,
                             timeout: float | None = None):
        pre = {} if timeout is None else {"timeout": timeout}
        post: dict[str, Any] = {}
        if top_k is not None:
            post["top_k"] = check_positive_int("top_k", top_k)
        if function_to_apply is not None:
            post["function_to_apply"] = _function(function_to_apply)
        return pre, {}, post

    def preprocess(self, image: Any, timeout: float | None = None) -> dict[str, Any]:
        return self._pixel_inputs(image, timeout)

    def _forward(self, model_inputs: dict[str, Any]) -> Any:
        return {"logits": self.model(**model_inputs)["logits"]}

    def postprocess(self, model_outputs: Any, function_to_apply: Any = None, top_k: int = 5) -> list[dict[str, Any]]:
        function_to_apply = function_to_apply or default_function(self.model.config)
        logits = model_outputs["logits"][0].float().numpy()
        if function_to_apply == ClassificationFunction.SIGMOID:
            scores = 1.0 / (1.0 + np.exp(-logits))
        elif function_to_apply == ClassificationFunction.SOFTMAX:
            scores = _softmax(logits)
        else:
            scores = logits
        id2label = self.model.config.id2label
        top_k = min(top_k, self.model.config.num_labels)
        if np.isnan(scores).any():  # NaN has no order: rank as a sort of all the dicts does
            results = [{"label": id2label[i], "score": score.item()} for i, score in enumerate(scores)]
            results.sort(key=lambda r: r["score"], reverse=True)
            return results[:top_k]
        # best first, ties in label order (what a stable sort of all scores gives): dicts for top_k only
        order = np.argsort(-scores, kind="stable")[:top_k]
        return [{"label": id2label[int(i)], "score": scores[i].item()} for i in order]

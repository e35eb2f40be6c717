"""``image-feature-extraction``: an image model's hidden states (or pooled output) as features."""

from __future__ import annotations

from typing import Any

from .image_classification import ImagePipeline


class ImageFeatureExtractionPipeline(ImagePipeline):
    """``pipe(image)`` → the last hidden states as a nested list ``[1, tokens, hidden]`` (a tensor with
    ``return_tensors=True``); ``pool=True`` gives the model's ``pooler_output`` instead.

    Call parameters: ``pool``, ``return_tensors``, ``timeout``, ``image_processor_kwargs`` (settings for
    the image processor, e.g. ``{"size": {"height": 100, "width": 100}}``).
    """

    _model_tasks = ()  # any image model: its first output is taken as the features

    def _sanitize_parameters(self, image_processor_kwargs: dict | None = None, return_tensors: Any = None,
                             pool: bool | None = None, timeout: float | None = None):
        pre = dict(image_processor_kwargs or {})
        if timeout is not None:
            pre["timeout"] = timeout
        post: dict[str, Any] = {}
        fwd: dict[str, Any] = {}
        if pool is not None:
            post["pool"] = fwd["pool"] = pool
        if return_tensors is not None:
            post["return_tensors"] = return_tensors
        return pre, fwd, post

    def preprocess(self, image: Any, timeout: float | None = None, **image_processor_kwargs: Any) -> dict[str, Any]:
        return self._pixel_inputs(image, timeout, **image_processor_kwargs)

    def _forward(self, model_inputs: dict[str, Any], pool: bool = False) -> Any:
        if pool and set(model_inputs) == {"pixel_values"} and self._pooled_only():
            # only the pooled class token is returned: the last layer runs for that row alone
            return {"features": None, "pooler_output": self.model.pooled_class_token(model_inputs["pixel_values"])}
        outputs = self.model(**model_inputs)
        return {"features": outputs[0], "pooler_output": outputs.get("pooler_output")}

    def postprocess(self, model_outputs: Any, pool: bool = False, return_tensors: bool = False) -> Any:
        if pool:
            outputs = model_outputs.get("pooler_output")
            if outputs is None:
                raise ValueError("No pooled output was returned. Make sure the model has a `pooler` layer when "
                                 "using the `pool` option.")
        else:
            outputs = model_outputs["features"]
        return outputs if return_tensors else outputs.tolist()

    def _pooled_only(self) -> bool:
        """Whether the model offers ``pooled_class_token`` (ViT with its pooler, CLIP's image tower) and nothing
        would see the skipped work."""
        model = self.model
        if not hasattr(model, "pooled_class_token") or getattr(model, "pooler", True) is None:
            return False
        return not (model.config.output_hidden_states or model.config.output_attentions) and self._unobserved()

"""``zero-shot-image-classification``: score an image against labels given at call time (CLIP)."""

from __future__ import annotations

from typing import Any

from .image_classification import ImagePipeline


class ZeroShotImageClassificationPipeline(ImagePipeline):
    """``pipe(image, candidate_labels=["cat", "dog"])`` → ``[{"score", "label"}, ...]`` over every label, best
    first; a list of images gives one list per image.

    Each label is put into ``hypothesis_template`` (default ``"This is a photo of {}."``), the texts and the
    image are embedded, and their similarities are softmaxed over the labels. Call parameters:
    ``candidate_labels``, ``hypothesis_template``, ``timeout``, ``tokenizer_kwargs``.
    """

    _load_tokenizer = True
    _model_tasks = ("zero_shot_image_classification",)

    def __call__(self, image: Any = None, candidate_labels: Any = None, **kwargs: Any) -> Any:
        if candidate_labels is not None:
            kwargs["candidate_labels"] = candidate_labels
        return super().__call__(image, **kwargs)

    def _sanitize_parameters(self, candidate_labels: Any = None, hypothesis_template: str | None = None,
                             timeout: float | None = None, tokenizer_kwargs: dict | None = None):
        pre: dict[str, Any] = {}
        if candidate_labels is not None:
            labels = [candidate_labels] if isinstance(candidate_labels, str) else list(candidate_labels)
            if not labels or not all(isinstance(label, str) for label in labels):
                raise ValueError(f"candidate_labels must be a non-empty list of strings, got {candidate_labels!r}.")
            pre["candidate_labels"] = labels
        if hypothesis_template is not None:
            if "{}" not in hypothesis_template:
                raise ValueError(f"hypothesis_template must contain '{{}}' where the label goes, got "
                                 f"{hypothesis_template!r}.")
            pre["hypothesis_template"] = hypothesis_template
        if timeout is not None:
            pre["timeout"] = timeout
        if tokenizer_kwargs is not None:
            pre["tokenizer_kwargs"] = tokenizer_kwargs
        return pre, {}, {}

    def preprocess(self, image: Any, candidate_labels: list[str] | None = None,
                   hypothesis_template: str = "This is a photo of {}.", timeout: float | None = None,
                   tokenizer_kwargs: dict | None = None) -> dict[str, Any]:
        if not candidate_labels:
            raise ValueError("The zero-shot-image-classification pipeline needs candidate_labels=[...].")
        inputs = self._pixel_inputs(image, timeout)
        texts = [hypothesis_template.format(label) for label in candidate_labels]
        text_inputs = self.tokenizer(texts, return_tensors="pt", **{"padding": True, **(tokenizer_kwargs or {})})
        inputs["text_inputs"] = dict(text_inputs)
        inputs["candidate_labels"] = candidate_labels
        return inputs

    def _pixel_batch(self, images: list[Any], candidate_labels: list[str] | None = None,
                     hypothesis_template: str = "This is a photo of {}.",
                     tokenizer_kwargs: dict | None = None) -> dict[str, Any]:
        if not candidate_labels:
            raise ValueError("The zero-shot-image-classification pipeline needs candidate_labels=[...].")
        batch = super()._pixel_batch(images)
        texts = [hypothesis_template.format(label) for label in candidate_labels]
        batch["text_inputs"] = dict(self.tokenizer(texts, return_tensors="pt",
                                                   **{"padding": True, **(tokenizer_kwargs or {})}))
        batch["candidate_labels"] = [candidate_labels] * len(images)
        return batch

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        # Every image of a call is scored against the same labels, so the batch shares one set of texts.
        first = items[0]
        if any(item["candidate_labels"] != first["candidate_labels"] for item in items):
            raise ValueError("Images batched together must share their candidate_labels.")
        batch = super().collate([{"pixel_values": item["pixel_values"]} for item in items])
        batch["text_inputs"] = first["text_inputs"]
        batch["candidate_labels"] = [item["candidate_labels"] for item in items]
        return batch

    def _forward(self, model_inputs: dict[str, Any]) -> Any:
        texts, pixels = model_inputs["text_inputs"], model_inputs["pixel_values"]
        if self._class_token_only(texts):
            # only logits_per_image is read: CLIP's image tower can run its last layer for the class token alone
            logits = self.model.class_token_logits(pixel_values=pixels, **texts)
        else:
            logits = self.model(**texts, pixel_values=pixels).logits_per_image
        return {"candidate_labels": model_inputs["candidate_labels"], "logits": logits}

    def _class_token_only(self, texts: dict[str, Any]) -> bool:
        """Whether the model offers ``class_token_logits`` and nothing would see the skipped work: eval mode,
        no hooks on the model's modules, text inputs it takes."""
        return (hasattr(self.model, "class_token_logits")
                and set(texts) <= {"input_ids", "attention_mask", "position_ids"} and self._unobserved())

    def postprocess(self, model_outputs: Any) -> list[dict[str, Any]]:
        labels = model_outputs["candidate_labels"]
        scores = model_outputs["logits"][0].softmax(dim=-1).tolist()
        ranked = sorted(zip(scores, labels), key=lambda pair: -pair[0])
        return [{"score": score, "label": label} for score, label in ranked]

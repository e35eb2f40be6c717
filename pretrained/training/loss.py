"""One training step of `Trainer`: forward, a loss normalised over the accumulated batch, backward.

Under gradient accumulation the loss of an optimizer step is the mean over the label items of all its
micro-batches (label tokens for a language model, examples for a classifier), so N accumulated
micro-batches give the gradient of one N times bigger batch. `Trainer.get_batch_samples` counts those
items once per step (`count_label_items`) and every micro-batch's `compute_loss` divides by the total.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .collators import IGNORE_INDEX
from .distributed import data_parallel_size


def count_label_items(batch: Any, shifts_labels: bool) -> torch.Tensor | int | None:
    """The label items a loss over `batch` averages, or None when the batch holds no tensor labels.

    Args:
        batch: A collated batch (a mapping with `labels`, or `shift_labels` already aligned to the logits).
        shifts_labels: Whether the model's loss drops the first label (a causal LM predicts token t+1
            from token t, so its first label is never a target).

    Returns:
        The count of labels other than -100 as a 0-dim tensor on the labels' device (no host sync), or
        the number of values of float labels (regression) as an int.
    """
    if not isinstance(batch, Mapping):
        return None
    labels = batch.get("shift_labels")
    shifted = labels is not None
    if labels is None:
        labels = batch.get("labels")
    if not isinstance(labels, torch.Tensor):
        return None
    if shifts_labels and not shifted:
        labels = labels[..., 1:]
    return labels.numel() if labels.is_floating_point() else labels.ne(IGNORE_INDEX).sum()


class TrainingStepMixin:
    """`training_step` and `compute_loss` of `Trainer`; override either to change what a step does."""

    def autocast_smart_context_manager(self, training: bool = True) -> contextlib.AbstractContextManager:
        """Autocast in bf16/fp16 when asked for (training: `bf16`/`fp16`; eval: also `*_full_eval`)."""
        args = self.args
        dtype = None
        if args.bf16 or (not training and args.bf16_full_eval):
            dtype = torch.bfloat16
        elif args.fp16 or (not training and args.fp16_full_eval):
            dtype = torch.float16
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=args.device.type, dtype=dtype)

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: int | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Forward and backward on one micro-batch.

        Args:
            model: The model to train (the compiled one under `torch_compile`).
            inputs: One collated micro-batch; moved to the device here.
            num_items_in_batch: Label items in the whole accumulated batch of this optimizer step. When
                None (not countable), each of the step's `current_gradient_accumulation_steps`
                micro-batches weighs the same.

        Returns:
            This micro-batch's detached share of the step's loss (the shares add up to the step's loss).
        """
        if not model.training:  # (evaluation switched it off); a submodule frozen in eval mode stays so
            model.train()
        inputs = self._prepare_inputs(inputs)
        with self.autocast_smart_context_manager():
            loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        scaled = self.loss_is_scaled_for_ga
        if scaled is None:
            scaled = num_items_in_batch is not None
        if not scaled:
            loss = loss / self.current_gradient_accumulation_steps
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return loss.detach()

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The loss of one batch (and the model's outputs with `return_outputs=True`).

        With `num_items_in_batch` (label items in the whole accumulated batch) the result is this
        batch's summed loss divided by it, so the micro-batch losses add up to the mean over the
        accumulated batch. A model without a `num_items_in_batch` argument returns a mean; it is
        scaled by this batch's item count over `num_items_in_batch`.
        """
        smoothing = self.args.label_smoothing_factor
        labels = None
        if (smoothing or self.compute_loss_func is not None) and "labels" in inputs:
            inputs = dict(inputs)
            labels = inputs.pop("labels")
        local_items = None
        if num_items_in_batch is not None and self.compute_loss_func is None and not smoothing:
            if self._model_takes_num_items or self.model_accepts_loss_kwargs:
                # As transformers 5.24: a forward with **kwargs is trusted to normalise by
                # `num_items_in_batch` (our causal LMs do); one whose loss is a plain mean (BERT's heads)
                # returns that mean unscaled, so N accumulated micro-batches sum N means (N times the
                # mean; the logged loss and grad norm too). Kept for parity with transformers' runs (its
                # issue #37766); `trainer.model_accepts_loss_kwargs = False` gives the exact mean.
                inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
            else:
                local_items = count_label_items(inputs, self._loss_shifts_labels)
        outputs = model(**inputs)
        if self.compute_loss_func is not None:
            loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        elif labels is not None:
            loss = self._smoothed_loss(outputs, labels, num_items_in_batch)
        else:
            if isinstance(outputs, Mapping):
                if outputs.get("loss") is None:
                    raise ValueError(
                        f"the model returned no loss (keys: {', '.join(outputs.keys())}); "
                        f"the batch had keys {', '.join(inputs.keys())}: are the labels missing?"
                    )
                loss = outputs["loss"]
            else:
                loss = outputs[0]
            if local_items is not None:
                loss = loss * (local_items / num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # the items were counted over the data-parallel processes, and DDP / FSDP average the gradients
            loss = loss * data_parallel_size(self.model)
        return (loss, outputs) if return_outputs else loss

    def _smoothed_loss(self, outputs: Any, labels: torch.Tensor, num_items: Any) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        if self._smoothing_shifts_labels:
            logits, labels = logits[..., :-1, :], labels[..., 1:]
        logits = logits.float().reshape(-1, logits.size(-1))
        labels = labels.reshape(-1).to(logits.device)
        reduction = "mean" if num_items is None else "sum"
        loss = nn.functional.cross_entropy(
            logits,
            labels,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.args.label_smoothing_factor,
            reduction=reduction,
        )
        return loss if num_items is None else loss / num_items

"""Evaluation and prediction of `Trainer`: `evaluate`, `predict`, `evaluation_loop`, `prediction_step`.

Per-batch losses, logits and labels are gathered on the device and moved to numpy every
`eval_accumulation_steps` batches (or once at the end); batches whose logits differ in sequence length
are padded with -100 when concatenated.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .collators import IGNORE_INDEX
from .outputs import EvalLoopOutput, EvalPrediction, PredictionOutput, denumpify, speed_metrics

logger = logging.getLogger(__name__)


class EvaluationMixin:
    """The evaluation and prediction methods of `Trainer`."""

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Loss (and `compute_metrics`) over `eval_dataset`; keys are prefixed with `metric_key_prefix`.

        A dict of datasets is evaluated one by one with prefixes `eval_<name>`.
        """
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if isinstance(dataset, dict):
            metrics: dict[str, float] = {}
            for name, ds in dataset.items():
                metrics.update(self.evaluate(ds, ignore_keys, f"{metric_key_prefix}_{name}"))
            return metrics
        dataloader = self.get_eval_dataloader(dataset)
        start = time.time()
        output = self.evaluation_loop(
            dataloader,
            description="Evaluation",
            prediction_loss_only=True if self.compute_metrics is None else None,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        output.metrics.update(
            speed_metrics(
                metric_key_prefix,
                start,
                num_samples=output.num_samples,
                num_steps=math.ceil(output.num_samples / self.args.eval_batch_size),
            )
        )
        self.log(output.metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics=output.metrics
        )
        return output.metrics

    def predict(
        self, test_dataset: Any, ignore_keys: list[str] | None = None, metric_key_prefix: str = "test"
    ) -> PredictionOutput:
        """Predictions (numpy), label ids and metrics over `test_dataset`."""
        dataloader = self.get_test_dataloader(test_dataset)
        start = time.time()
        output = self.evaluation_loop(
            dataloader, description="Prediction", ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )
        num_steps = math.ceil(output.num_samples / self.args.eval_batch_size)
        output.metrics.update(
            speed_metrics(metric_key_prefix, start, num_samples=output.num_samples, num_steps=num_steps)
        )
        self.control = self.callback_handler.on_predict(
            self.args, self.state, self.control, metrics=output.metrics
        )
        return PredictionOutput(output.predictions, output.label_ids, output.metrics)

    def num_examples(self, dataloader: DataLoader) -> int:
        """The examples `dataloader` goes through: its dataset's length, else batches x batch size.

        Raises:
            TypeError: Neither the dataset nor the loader has a length (an iterable dataset).
        """
        try:
            return len(dataloader.dataset)
        except (AttributeError, TypeError):
            return len(dataloader) * self.args.per_device_train_batch_size

    def evaluation_loop(
        self,
        dataloader: DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        """Run `prediction_step` over `dataloader`, gather losses/logits/labels and compute metrics."""
        args = self.args
        if prediction_loss_only is None:
            prediction_loss_only = args.prediction_loss_only
        logger.info(f"\n***** Running {description} *****")
        try:
            logger.info(f"  Num examples = {self.num_examples(dataloader)}")
        except TypeError:  # an iterable dataset: no length
            logger.info("  Num examples: Unknown")
        logger.info(f"  Batch size = {args.eval_batch_size}")
        model = self.model
        model.eval()
        self.callback_handler.eval_dataloader = dataloader
        want_inputs = "inputs" in args.include_for_metrics
        gathered: dict[str, list[Any]] = {"losses": [], "preds": [], "labels": [], "inputs": []}
        host: dict[str, Any] = {k: None for k in gathered}
        num_samples = 0

        def flush() -> None:
            # move what accumulated on the device to numpy (every eval_accumulation_steps batches)
            for k, v in gathered.items():
                if v:
                    chunk = _concat_all([_to_numpy(x) for x in v])
                    host[k] = chunk if host[k] is None else _concat_all([host[k], chunk])
                    v.clear()

        batches = iter(dataloader)
        # transformers' eval loader draws its workers' base seed from the global RNG when iterated (ours
        # has a private generator): draw once too, so a random collator (MLM masking) and whatever runs
        # after the evaluation see the RNG where a transformers run leaves it
        torch.empty((), dtype=torch.int64).random_()
        for step, inputs in enumerate(batches):
            batch_size = _batch_size(inputs)
            num_samples += batch_size
            loss, logits, labels = self.prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            if loss is not None:
                gathered["losses"].append(loss.detach().float().reshape(1).repeat(batch_size))
            if logits is not None:
                if self.preprocess_logits_for_metrics is not None:
                    logits = self.preprocess_logits_for_metrics(logits, labels)
                gathered["preds"].append(logits)
            if labels is not None:
                gathered["labels"].append(labels)
            if want_inputs and isinstance(inputs, Mapping) and "input_ids" in inputs:
                gathered["inputs"].append(inputs["input_ids"])
            self.control = self.callback_handler.on_prediction_step(args, self.state, self.control)
            if args.eval_accumulation_steps is not None and (step + 1) % args.eval_accumulation_steps == 0:
                flush()
        flush()

        preds, label_ids = host["preds"], host["labels"]
        metrics: dict[str, Any] = {}
        if self.compute_metrics is not None and preds is not None and label_ids is not None:
            extra = {}
            if want_inputs:
                extra["inputs"] = host["inputs"]
            if "loss" in args.include_for_metrics:
                extra["losses"] = host["losses"]
            metrics = dict(self.compute_metrics(EvalPrediction(preds, label_ids, **extra)))
        metrics = denumpify(metrics)
        if host["losses"] is not None:
            metrics["loss"] = float(np.mean(host["losses"]))
        for key in list(metrics):
            if not key.startswith(f"{metric_key_prefix}_"):
                metrics[f"{metric_key_prefix}_{key}"] = metrics.pop(key)
        return EvalLoopOutput(preds, label_ids, metrics, num_samples)

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, Any, Any]:
        """`(loss, logits, labels)` of one batch, without gradients."""
        inputs = self._prepare_inputs(inputs)
        has_labels = bool(self.label_names) and all(inputs.get(k) is not None for k in self.label_names)
        if ignore_keys is None:
            ignore_keys = list(
                getattr(getattr(model, "config", None), "keys_to_ignore_at_inference", None) or []
            )
        labels = None
        if has_labels:
            labels = tuple(inputs[k].detach() for k in self.label_names)
            labels = labels[0] if len(labels) == 1 else labels
        with torch.no_grad(), self.autocast_smart_context_manager(training=False):
            if has_labels or self.compute_loss_func is not None and "labels" in inputs:
                # as transformers: the batch's label items are counted and passed on, so a model that
                # normalises by them reports the loss it reports in training
                num_items = self._get_num_items_in_batch([inputs], self.args.device)
                loss, outputs = self.compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items)
                loss = loss.detach().mean()
            else:
                loss, outputs = None, model(**inputs)
        if prediction_loss_only:
            return loss, None, None
        if isinstance(outputs, Mapping):
            logits = tuple(v for k, v in outputs.items() if k not in ignore_keys + ["loss"])
        else:
            logits = tuple(outputs[1:] if has_labels else outputs)
        logits = _detach(logits)
        if len(logits) == 1:
            logits = logits[0]
        return loss, logits, labels


# ---- helpers for gathering evaluation outputs ---------------------------------------------------


def _batch_size(inputs: Any) -> int:
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v.shape[0]
    return 1


def _detach(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, Mapping):
        return {k: _detach(v) for k, v in x.items()}
    return x.detach() if isinstance(x, torch.Tensor) else x


def _to_numpy(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_to_numpy(v) for v in x)
    if isinstance(x, Mapping):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return x


def _concat_all(parts: list[Any]) -> Any:
    """Concatenate along the batch; arrays with different sequence lengths are padded with -100."""
    first = parts[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_concat_all([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, Mapping):
        return {k: _concat_all([p[k] for p in parts]) for k in first}
    if first.ndim <= 1 or all(p.shape[1:] == first.shape[1:] for p in parts):
        return np.concatenate(parts, axis=0)
    longest = max(p.shape[1] for p in parts)
    padded = []
    for p in parts:
        out = np.full((p.shape[0], longest, *p.shape[2:]), IGNORE_INDEX, dtype=p.dtype)
        out[:, : p.shape[1]] = p
        padded.append(out)
    return np.concatenate(padded, axis=0)

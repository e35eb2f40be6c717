"""Small result types of training and evaluation, with transformers' names and fields."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np


class EvalPrediction:
    """What `compute_metrics` receives: predictions and label ids (numpy arrays or tuples of them).

    Unpacks like a tuple: `predictions, labels = eval_pred` (plus `inputs` / `losses` when asked for
    through `include_for_metrics`).
    """

    def __init__(self, predictions: Any, label_ids: Any, inputs: Any = None, losses: Any = None):
        self.predictions = predictions
        self.label_ids = label_ids
        self.inputs = inputs
        self.losses = losses
        self.elements = (predictions, label_ids) + tuple(x for x in (inputs, losses) if x is not None)

    def __iter__(self):
        return iter(self.elements)

    def __getitem__(self, idx: int) -> Any:
        return self.elements[idx]

    def __len__(self) -> int:
        return len(self.elements)


class ExplicitEnum(StrEnum):
    """A string enum whose error for an unknown value lists the valid ones."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        raise ValueError(f"{value!r} is not a valid {cls.__name__}; choose one of {[m.value for m in cls]}")


class IntervalStrategy(ExplicitEnum):
    """When to log or evaluate (`logging_strategy`, `eval_strategy`)."""

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"


class SaveStrategy(ExplicitEnum):
    """When to save a checkpoint (`save_strategy`)."""

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"
    BEST = "best"


class HubStrategy(ExplicitEnum):
    """What to push to the Hub and when (`hub_strategy`)."""

    END = "end"
    EVERY_SAVE = "every_save"
    CHECKPOINT = "checkpoint"
    ALL_CHECKPOINTS = "all_checkpoints"


class SchedulerType(ExplicitEnum):
    """The names `lr_scheduler_type` accepts (see `schedulers.get_scheduler`)."""

    LINEAR = "linear"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine_with_restarts"
    POLYNOMIAL = "polynomial"
    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant_with_warmup"
    INVERSE_SQRT = "inverse_sqrt"
    REDUCE_ON_PLATEAU = "reduce_lr_on_plateau"
    COSINE_WITH_MIN_LR = "cosine_with_min_lr"
    COSINE_WARMUP_WITH_MIN_LR = "cosine_warmup_with_min_lr"
    WARMUP_STABLE_DECAY = "warmup_stable_decay"
    GREEDY = "greedy"


class EvalLoopOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float] | None
    num_samples: int | None


class PredictionOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float] | None


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]


def speed_metrics(
    split: str,
    start_time: float,
    num_samples: float | None = None,
    num_steps: int | None = None,
    num_tokens: int | None = None,
) -> dict:
    """`{split}_runtime` and, when counts are known, samples, steps and tokens per second.

    Args:
        split: The metric prefix (`train`, `eval`, `test`).
        start_time: `time.time()` when the operation started.
        num_samples / num_steps / num_tokens: What was processed since `start_time`.
    """
    runtime = time.time() - start_time
    out = {f"{split}_runtime": round(runtime, 4)}
    if runtime == 0:
        return out
    if num_samples is not None:
        out[f"{split}_samples_per_second"] = round(num_samples / runtime, 3)
    if num_steps is not None:
        out[f"{split}_steps_per_second"] = round(num_steps / runtime, 3)
    if num_tokens is not None:
        out[f"{split}_tokens_per_second"] = round(num_tokens / runtime, 3)
    return out


def denumpify(metrics: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars to Python numbers, so metrics are JSON-safe."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, np.generic) or isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        out[k] = v
    return out

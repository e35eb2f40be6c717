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


def _enum(name: str, doc: str, values: str) -> type[ExplicitEnum]:
    """An `ExplicitEnum` named `name` with a member per space-separated value, named as the value
    upper-cased, or as written before it in `NAME=value`."""
    members = {}
    for item in values.split():
        key, _, value = item.rpartition("=")
        members[key or value.upper()] = value
    cls = ExplicitEnum(name, members, module=__name__)
    cls.__doc__ = doc
    return cls


# transformers' names and values (`trainer_utils`), so code comparing or iterating them behaves the same
IntervalStrategy = _enum("IntervalStrategy", "When to log or evaluate.", "no steps epoch")
SaveStrategy = _enum("SaveStrategy", "When to save a checkpoint (`save_strategy`).", "no steps epoch best")
HubStrategy = _enum(
    "HubStrategy", "What to push to the Hub and when.", "end every_save checkpoint all_checkpoints"
)
SchedulerType = _enum(
    "SchedulerType",
    "The names `lr_scheduler_type` accepts (see `schedulers.get_scheduler`).",
    "linear cosine cosine_with_restarts polynomial constant constant_with_warmup inverse_sqrt "
    "REDUCE_ON_PLATEAU=reduce_lr_on_plateau cosine_with_min_lr cosine_warmup_with_min_lr warmup_stable_decay greedy",
)


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

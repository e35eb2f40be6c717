"""Small result types of training and evaluation, with transformers' names and fields."""

from __future__ import annotations

import time
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
    split: str, start_time: float, num_samples: int | None = None, num_steps: int | None = None
) -> dict:
    """`{split}_runtime` and, when counts are known, samples and steps per second."""
    runtime = time.time() - start_time
    out = {f"{split}_runtime": round(runtime, 4)}
    if runtime == 0:
        return out
    if num_samples is not None:
        out[f"{split}_samples_per_second"] = round(num_samples / runtime, 3)
    if num_steps is not None:
        out[f"{split}_steps_per_second"] = round(num_steps / runtime, 3)
    return out


def denumpify(metrics: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars to Python numbers, so metrics are JSON-safe."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, np.generic) or isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        out[k] = v
    return out

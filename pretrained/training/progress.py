"""Where one `train()` call stands: its `TrainingPlan` (how many micro-batches and optimizer steps) and
its `RunningLoss` (what has been summed since the last log). The loop (`train_loop.py`) passes both as
arguments instead of keeping them on the trainer."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch

from . import distributed
from .arguments import TrainingArguments


@dataclass(frozen=True)
class TrainingPlan:
    """How long one `train()` call runs, in micro-batches and optimizer steps."""

    batches_per_epoch: int  # an iterable dataset (length unknown): as many as `max_steps` takes
    steps_per_epoch: int
    max_steps: int
    num_epochs: int
    gradient_accumulation_steps: int

    @classmethod
    def from_args(cls, args: TrainingArguments, num_batches: int | None) -> TrainingPlan:
        """The plan for `num_batches` micro-batches per epoch (None: an iterable dataset)."""
        ga = args.gradient_accumulation_steps
        if num_batches is None:
            if args.max_steps <= 0:
                raise ValueError(
                    "training on an IterableDataset needs `max_steps` > 0 (its length is unknown)"
                )
            return cls(args.max_steps * ga, args.max_steps, args.max_steps, sys.maxsize, ga)
        if num_batches == 0:
            raise ValueError("the train dataloader is empty (dataset smaller than one batch with drop_last?)")
        steps_per_epoch = max(math.ceil(num_batches / ga), 1)
        if args.max_steps > 0:
            max_steps, num_epochs = args.max_steps, math.ceil(args.max_steps / steps_per_epoch)
        else:
            max_steps = math.ceil(args.num_train_epochs * steps_per_epoch)
            num_epochs = math.ceil(args.num_train_epochs)
        return cls(num_batches, steps_per_epoch, max_steps, num_epochs, ga)

    def batches_in_step(self, step: int) -> int:
        """Micro-batches of the epoch's optimizer step `step`: the last one takes what is left."""
        if step == self.steps_per_epoch - 1:
            return self.batches_per_epoch - step * self.gradient_accumulation_steps
        return self.gradient_accumulation_steps


class RunningLoss:
    """The training loss of one `train()` call: summed on the device between logs (no host sync per
    step), and on the host once logged.

    Args:
        global_step: The step the run starts from (past 0 when resuming).
        device: Where the per-step losses are summed.
        filter_nan_inf: Count a nan/inf micro-batch loss as the mean since the last log instead.
    """

    def __init__(self, global_step: int, device: torch.device, filter_nan_inf: bool):
        self.unlogged = torch.zeros((), device=device)
        self.logged = 0.0
        self.first_step = global_step
        self.last_logged_step = global_step
        self.filter_nan_inf = filter_nan_inf

    def add(self, loss: torch.Tensor, global_step: int) -> None:
        """Add one micro-batch's share of the loss of optimizer step `global_step + 1`."""
        if self.filter_nan_inf:
            since = 1 + global_step - self.last_logged_step
            loss = torch.where(torch.isfinite(loss), loss, self.unlogged / since)  # no device sync
        self.unlogged += loss

    def pop_mean(self, global_step: int) -> float:
        """The mean loss per step since the last log, which is now `global_step` (averaged over the
        processes of a distributed run: every process calls it at the same step)."""
        loss_sum = _mean_over_processes(self.unlogged)
        self.unlogged.zero_()
        mean = loss_sum / (global_step - self.last_logged_step)
        self.logged += loss_sum
        self.last_logged_step = global_step
        return mean

    def mean(self, global_step: int) -> float:
        """The mean loss per step over the whole run, up to `global_step`."""
        total = self.logged + _mean_over_processes(self.unlogged)
        return total / max(global_step - self.first_step, 0.001)


def _mean_over_processes(value: torch.Tensor) -> float:
    if not distributed.is_distributed():
        return value.item()
    return distributed.sum_over_processes(value).item() / distributed.world_size()

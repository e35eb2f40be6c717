"""Learning-rate schedules: `get_scheduler(name, optimizer, ...)` and one function per schedule.

Each schedule is a `LambdaLR` whose factor function is a module-level function
bound with `functools.partial`, so scheduler state saves and reloads with plain
`torch.save` / `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau


def _warmup(step: int, warmup: int) -> float:
    return step / max(1, warmup)


def _constant(step: int) -> float:
    return 1.0


def _constant_with_warmup(step: int, *, num_warmup_steps: int) -> float:
    return _warmup(step, num_warmup_steps) if step < num_warmup_steps else 1.0


def _linear(step: int, *, num_warmup_steps: int, num_training_steps: int) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    return max(0.0, (num_training_steps - step) / max(1, num_training_steps - num_warmup_steps))


def _cosine(
    step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: float, min_lr_rate: float = 0.0
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
    factor = 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress))
    return max(0.0, factor * (1 - min_lr_rate) + min_lr_rate)


def _cosine_hard_restarts(
    step: int, *, num_warmup_steps: int, num_training_steps: int, num_cycles: int
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((num_cycles * progress) % 1.0))))


def _polynomial(
    step: int, *, num_warmup_steps: int, num_training_steps: int, lr_end: float, power: float, lr_init: float
) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    if step > num_training_steps:
        return lr_end / lr_init  # LambdaLR multiplies by lr_init
    remaining = 1 - (step - num_warmup_steps) / (num_training_steps - num_warmup_steps)
    return ((lr_init - lr_end) * remaining**power + lr_end) / lr_init


def _inverse_sqrt(step: int, *, num_warmup_steps: int, timescale: int) -> float:
    if step < num_warmup_steps:
        return _warmup(step, num_warmup_steps)
    return 1.0 / math.sqrt((step + timescale - num_warmup_steps) / timescale)


def _cosine_warmup_min_lr(
    step: int,
    *,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float,
    min_lr_rate: float,
    warmup_lr_rate: float | None,
) -> float:
    # warmup starts above zero and the decay is shifted by one step (transformers' variant)
    if step < num_warmup_steps:
        if warmup_lr_rate is None:
            return (step + 1.0) / max(1.0, num_warmup_steps)
        return warmup_lr_rate + (1.0 - warmup_lr_rate) * step / max(1, num_warmup_steps - 1)
    progress = (step - num_warmup_steps + 1.0) / max(1.0, num_training_steps - num_warmup_steps)
    factor = 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress))
    return max(0.0, factor * (1 - min_lr_rate) + min_lr_rate)


def _wsd(
    step: int,
    *,
    num_warmup_steps: int,
    num_stable_steps: int,
    num_decay_steps: int,
    warmup_type: str,
    decay_type: str,
    min_lr_ratio: float,
    num_cycles: float,
) -> float:
    if step < num_warmup_steps:
        p = step / max(1, num_warmup_steps)
        if warmup_type == "linear":
            factor = p
        elif warmup_type == "cosine":
            factor = 0.5 * (1.0 - math.cos(math.pi * p))
        else:
            factor = 1.0 - math.sqrt(1.0 - p)
        return max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
    if step < num_warmup_steps + num_stable_steps:
        return 1.0
    if step < num_warmup_steps + num_stable_steps + num_decay_steps:
        p = (step - num_warmup_steps - num_stable_steps) / max(1, num_decay_steps)
        if decay_type == "linear":
            factor = 1.0 - p
        elif decay_type == "cosine":
            factor = 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * p))
        else:
            factor = 1.0 - math.sqrt(p)
        return max(0.0, factor * (1.0 - min_lr_ratio) + min_lr_ratio)
    return min_lr_ratio


# ---- public constructors (transformers' names) ------------------------------------------------


def _decay_schedule(
    optimizer: Optimizer,
    factor: Callable[..., float],
    num_warmup_steps: int,
    num_training_steps: int,
    last_epoch: int,
    **kwargs: Any,
) -> LambdaLR:
    """A `LambdaLR` of the warmup-then-decay `factor`, its arguments bound with `partial`."""
    fn = partial(factor, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **kwargs)
    return LambdaLR(optimizer, fn, last_epoch)


def get_constant_schedule(optimizer: Optimizer, last_epoch: int = -1) -> LambdaLR:
    """Constant learning rate."""
    return LambdaLR(optimizer, _constant, last_epoch=last_epoch)


def get_constant_schedule_with_warmup(
    optimizer: Optimizer, num_warmup_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup from 0, then constant."""
    return LambdaLR(optimizer, partial(_constant_with_warmup, num_warmup_steps=num_warmup_steps), last_epoch)


def get_linear_schedule_with_warmup(
    optimizer: Optimizer, num_warmup_steps: int, num_training_steps: int, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup from 0, then linear decay to 0 at `num_training_steps`."""
    return _decay_schedule(optimizer, _linear, num_warmup_steps, num_training_steps, last_epoch)


def get_cosine_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then a cosine decay (half a wave by default) to 0."""
    return _decay_schedule(
        optimizer, _cosine, num_warmup_steps, num_training_steps, last_epoch, num_cycles=num_cycles
    )


def get_cosine_with_hard_restarts_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: int = 1,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then `num_cycles` cosine decays, each restarting at the peak."""
    return _decay_schedule(
        optimizer,
        _cosine_hard_restarts,
        num_warmup_steps,
        num_training_steps,
        last_epoch,
        num_cycles=num_cycles,
    )


def get_polynomial_decay_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    lr_end: float = 1e-7,
    power: float = 1.0,
    last_epoch: int = -1,
) -> LambdaLR:
    """Linear warmup, then polynomial decay from the optimizer's lr to `lr_end`."""
    lr_init = optimizer.defaults["lr"]
    if not lr_init > lr_end:
        raise ValueError(f"lr_end ({lr_end}) must be smaller than the initial lr ({lr_init})")
    return _decay_schedule(
        optimizer,
        _polynomial,
        num_warmup_steps,
        num_training_steps,
        last_epoch,
        lr_end=lr_end,
        power=power,
        lr_init=lr_init,
    )


def get_inverse_sqrt_schedule(
    optimizer: Optimizer, num_warmup_steps: int, timescale: int | None = None, last_epoch: int = -1
) -> LambdaLR:
    """Linear warmup, then lr / sqrt((step + shift) / timescale)."""
    if timescale is None:
        timescale = num_warmup_steps or 10_000
    fn = partial(_inverse_sqrt, num_warmup_steps=num_warmup_steps, timescale=timescale)
    return LambdaLR(optimizer, fn, last_epoch=last_epoch)


def _min_lr_schedule(optimizer: Optimizer, factor: Callable[..., float], num_warmup_steps: int,
                     num_training_steps: int, last_epoch: int, min_lr: float | None, min_lr_rate: float | None,
                     **kwargs: Any) -> LambdaLR:
    """`_decay_schedule` of a `factor` that decays to a floor: `min_lr`, or `min_lr_rate` x the lr."""
    if min_lr is not None and min_lr_rate is not None:
        raise ValueError("give only one of min_lr and min_lr_rate")
    if min_lr is not None:
        min_lr_rate = min_lr / optimizer.defaults["lr"]
    if min_lr_rate is None:
        raise ValueError("cosine_with_min_lr needs `min_lr` or `min_lr_rate` in lr_scheduler_kwargs")
    return _decay_schedule(optimizer, factor, num_warmup_steps, num_training_steps, last_epoch,
                           min_lr_rate=min_lr_rate, **kwargs)


def get_cosine_with_min_lr_schedule_with_warmup(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
) -> LambdaLR:
    """Linear warmup, then cosine decay down to `min_lr` (or `min_lr_rate` x lr) instead of 0."""
    return _min_lr_schedule(optimizer, _cosine, num_warmup_steps, num_training_steps, last_epoch, min_lr,
                            min_lr_rate, num_cycles=num_cycles)


def get_cosine_with_min_lr_schedule_with_warmup_lr_rate(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
    min_lr: float | None = None,
    min_lr_rate: float | None = None,
    warmup_lr_rate: float | None = None,
) -> LambdaLR:
    """Like `cosine_with_min_lr`, with a warmup that starts at `warmup_lr_rate` x lr."""
    return _min_lr_schedule(optimizer, _cosine_warmup_min_lr, num_warmup_steps, num_training_steps, last_epoch,
                            min_lr, min_lr_rate, num_cycles=num_cycles, warmup_lr_rate=warmup_lr_rate)


def get_wsd_schedule(
    optimizer: Optimizer,
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0,
    num_cycles: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """Warmup, stable, decay: the "trapezoid" schedule."""
    if num_training_steps is None and num_stable_steps is None:
        raise ValueError("warmup_stable_decay needs num_training_steps or num_stable_steps")
    for name, kind in (("warmup_type", warmup_type), ("decay_type", decay_type)):
        if kind not in ("linear", "cosine", "1-sqrt"):
            raise ValueError(f"{name}={kind!r} is not one of linear, cosine, 1-sqrt")
    if num_stable_steps is None:
        num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps
    fn = partial(
        _wsd,
        num_warmup_steps=num_warmup_steps,
        num_stable_steps=num_stable_steps,
        num_decay_steps=num_decay_steps,
        warmup_type=warmup_type,
        decay_type=decay_type,
        min_lr_ratio=min_lr_ratio,
        num_cycles=num_cycles,
    )
    return LambdaLR(optimizer, fn, last_epoch)


def get_reduce_on_plateau_schedule(optimizer: Optimizer, **kwargs: Any) -> ReduceLROnPlateau:
    """torch's `ReduceLROnPlateau`, stepped with the evaluation metric after each evaluation."""
    return ReduceLROnPlateau(optimizer, **kwargs)


TYPE_TO_SCHEDULER_FUNCTION = {
    "linear": get_linear_schedule_with_warmup,
    "cosine": get_cosine_schedule_with_warmup,
    "cosine_with_restarts": get_cosine_with_hard_restarts_schedule_with_warmup,
    "polynomial": get_polynomial_decay_schedule_with_warmup,
    "constant": get_constant_schedule,
    "constant_with_warmup": get_constant_schedule_with_warmup,
    "inverse_sqrt": get_inverse_sqrt_schedule,
    "reduce_lr_on_plateau": get_reduce_on_plateau_schedule,
    "cosine_with_min_lr": get_cosine_with_min_lr_schedule_with_warmup,
    "cosine_warmup_with_min_lr": get_cosine_with_min_lr_schedule_with_warmup_lr_rate,
    "warmup_stable_decay": get_wsd_schedule,
}


def get_scheduler(
    name: str,
    optimizer: Optimizer,
    num_warmup_steps: int | None = None,
    num_training_steps: int | None = None,
    scheduler_specific_kwargs: dict | None = None,
) -> LRScheduler | ReduceLROnPlateau:
    """Build the schedule called `name` (see `TYPE_TO_SCHEDULER_FUNCTION`).

    Args:
        name: Schedule type, e.g. `"linear"`, `"cosine"`, `"warmup_stable_decay"`.
        optimizer: The optimizer whose learning rate is scheduled.
        num_warmup_steps: Warmup steps (needed by every schedule with a warmup).
        num_training_steps: Total optimizer steps (needed by every decaying schedule).
        scheduler_specific_kwargs: Extra arguments of that schedule (e.g. `num_cycles`, `min_lr`).
    """
    name = getattr(name, "value", name)
    if name not in TYPE_TO_SCHEDULER_FUNCTION:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(TYPE_TO_SCHEDULER_FUNCTION)}")
    fn = TYPE_TO_SCHEDULER_FUNCTION[name]
    kwargs = dict(scheduler_specific_kwargs or {})
    if name == "constant":
        return fn(optimizer)
    if name == "reduce_lr_on_plateau":
        return fn(optimizer, **kwargs)
    if num_warmup_steps is None:
        raise ValueError(f"the {name} schedule needs num_warmup_steps")
    if name == "constant_with_warmup":
        return fn(optimizer, num_warmup_steps=num_warmup_steps)
    if name == "inverse_sqrt":
        return fn(optimizer, num_warmup_steps=num_warmup_steps, **kwargs)
    if name == "warmup_stable_decay":
        return fn(
            optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **kwargs
        )
    if num_training_steps is None:
        raise ValueError(f"the {name} schedule needs num_training_steps")
    return fn(optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **kwargs)

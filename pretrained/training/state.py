"""`TrainerState` (saved as `trainer_state.json`) and `TrainerControl` (the callbacks' switches).

The JSON layout is transformers', so a checkpoint written by either library can
be resumed by the other.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any


class ExportableState:
    """A callback (or the control) whose state is saved in `trainer_state.json` and restored on resume.

    Subclasses return `{"args": {...constructor kwargs...}, "attributes": {...}}` from `state()`.
    """

    def state(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement state() to be saved in checkpoints")

    @classmethod
    def from_state(cls, state: dict) -> ExportableState:
        instance = cls(**state["args"])
        for k, v in state["attributes"].items():
            setattr(instance, k, v)
        return instance


@dataclass
class TrainerState:
    """What the loop knows about its progress; one step is one optimizer update.

    `log_history` holds every logged dict (`loss`, `grad_norm`, `learning_rate`, `epoch`, `step`,
    eval metrics, ...).
    """

    epoch: float | None = 0
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 500
    eval_steps: int = 500
    save_steps: int = 500
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.log_history is None:
            self.log_history = []
        if self.stateful_callbacks is None:
            self.stateful_callbacks = {}
        elif isinstance(self.stateful_callbacks, list):
            self.stateful_callbacks = _export_states(self.stateful_callbacks)

    def to_json_string(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    def save_to_json(self, json_path: str, text: str | None = None) -> None:
        """Write the state (or `text`, a `to_json_string()` taken earlier) atomically: temp file, then rename."""
        text = self.to_json_string() if text is None else text
        tmp = f"{json_path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, json_path)

    @classmethod
    def load_from_json(cls, json_path: str) -> TrainerState:
        with open(json_path, encoding="utf-8") as f:
            return cls.from_json_string(f.read())

    @classmethod
    def from_json_string(cls, text: str) -> TrainerState:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def compute_steps(self, args: Any, max_steps: int) -> None:
        """Turn ratio logging/eval/save steps (< 1) into step counts for a run of `max_steps`."""
        for kind in ("logging", "eval", "save"):
            steps = getattr(args, f"{kind}_steps")
            if steps is not None:
                if steps < 1:
                    steps = math.ceil(max_steps * steps)
                setattr(self, f"{kind}_steps", int(steps))


def _export_states(callbacks: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cb in callbacks:
        name = type(cb).__name__
        if name in out:  # several callbacks of one class: a list of states
            if not isinstance(out[name], list):
                out[name] = [out[name]]
            out[name].append(cb.state())
        else:
            out[name] = cb.state()
    return out


@dataclass
class TrainerControl(ExportableState):
    """Switches callbacks flip to steer the loop; the loop resets them at the matching boundary."""

    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False

    def _new_training(self) -> None:
        self.should_training_stop = False

    def _new_epoch(self) -> None:
        self.should_epoch_stop = False

    def _new_step(self) -> None:
        self.should_save = False
        self.should_evaluate = False
        self.should_log = False

    def state(self) -> dict:
        return {"args": dataclasses.asdict(self), "attributes": {}}

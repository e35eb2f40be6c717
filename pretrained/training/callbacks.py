"""Callbacks: hooks called at each event of the loop, with transformers' event names.

A callback reads `args`, `state` and `control` and may flip `control` switches
(stop, save, evaluate, log); it never changes the loop's arithmetic.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from .arguments import TrainingArguments
from .state import ExportableState, TrainerControl, TrainerState

logger = logging.getLogger(__name__)

EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_save",
    "on_log",
    "on_prediction_step",
    "on_push_begin",
)


class TrainerCallback:
    """Base class: override the events you need. Each receives `(args, state, control, **kwargs)`.

    The keyword arguments are `model`, `processing_class`, `optimizer`, `lr_scheduler`,
    `train_dataloader`, `eval_dataloader`, plus `metrics` (on_evaluate / on_predict) and `logs` (on_log).
    Return a `TrainerControl` (or None to keep the one you were given).
    """

    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """End of `Trainer.__init__`."""

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """Start of training."""

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """End of training."""

    def on_epoch_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """Start of an epoch."""

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """End of an epoch."""

    def on_step_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """Start of an optimizer step (before its first micro-batch)."""

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ):
        """After clipping, before `optimizer.step()`."""

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ):
        """After `optimizer.step()`, before the gradients are zeroed."""

    def on_substep_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """After a micro-batch that did not end an optimizer step."""

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """End of an optimizer step."""

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """After an evaluation (`metrics` in kwargs)."""

    def on_predict(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics, **kwargs
    ):
        """After a prediction."""

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """After a checkpoint was written."""

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """After logging (`logs` in kwargs)."""

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ):
        """After each evaluation/prediction batch."""

    def on_push_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs):
        """Before `Trainer.push_to_hub` saves and uploads."""


class CallbackHandler(TrainerCallback):
    """Calls every callback in order and threads `control` through them."""

    def __init__(
        self, callbacks: list[Any], model: Any, processing_class: Any, optimizer: Any, lr_scheduler: Any
    ):
        self.callbacks: list[TrainerCallback] = []
        for cb in callbacks:
            self.add_callback(cb)
        self.model = model
        self.processing_class = processing_class
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.train_dataloader = None
        self.eval_dataloader = None

    def add_callback(self, callback: type[TrainerCallback] | TrainerCallback) -> None:
        cb = callback() if isinstance(callback, type) else callback
        cb_class = callback if isinstance(callback, type) else type(callback)
        if any(type(c) is cb_class for c in self.callbacks) and cb_class is not EarlyStoppingCallback:
            logger.warning("adding %s, which is already among the callbacks", cb_class.__name__)
        self.callbacks.append(cb)

    def pop_callback(self, callback: type[TrainerCallback] | TrainerCallback) -> TrainerCallback | None:
        for cb in self.callbacks:
            if cb is callback or (isinstance(callback, type) and isinstance(cb, callback)):
                self.callbacks.remove(cb)
                return cb
        return None

    def remove_callback(self, callback: type[TrainerCallback] | TrainerCallback) -> None:
        self.pop_callback(callback)

    @property
    def callback_list(self) -> str:
        return "\n".join(type(cb).__name__ for cb in self.callbacks)

    def call_event(
        self, event: str, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs
    ):
        for cb in self.callbacks:
            result = getattr(cb, event)(
                args,
                state,
                control,
                model=self.model,
                processing_class=self.processing_class,
                optimizer=self.optimizer,
                lr_scheduler=self.lr_scheduler,
                train_dataloader=self.train_dataloader,
                eval_dataloader=self.eval_dataloader,
                **kwargs,
            )
            if result is not None:
                control = result
        return control

    def on_init_end(self, args, state, control, **kwargs):
        return self.call_event("on_init_end", args, state, control)

    def on_train_begin(self, args, state, control, **kwargs):
        control.should_training_stop = False
        return self.call_event("on_train_begin", args, state, control)

    def on_train_end(self, args, state, control, **kwargs):
        return self.call_event("on_train_end", args, state, control)

    def on_epoch_begin(self, args, state, control, **kwargs):
        control.should_epoch_stop = False
        return self.call_event("on_epoch_begin", args, state, control)

    def on_epoch_end(self, args, state, control, **kwargs):
        return self.call_event("on_epoch_end", args, state, control)

    def on_step_begin(self, args, state, control, **kwargs):
        control._new_step()
        return self.call_event("on_step_begin", args, state, control)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        return self.call_event("on_pre_optimizer_step", args, state, control)

    def on_optimizer_step(self, args, state, control, **kwargs):
        return self.call_event("on_optimizer_step", args, state, control)

    def on_substep_end(self, args, state, control, **kwargs):
        return self.call_event("on_substep_end", args, state, control)

    def on_step_end(self, args, state, control, **kwargs):
        return self.call_event("on_step_end", args, state, control)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        control.should_evaluate = False
        return self.call_event("on_evaluate", args, state, control, metrics=metrics)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        return self.call_event("on_predict", args, state, control, metrics=metrics)

    def on_save(self, args, state, control, **kwargs):
        control.should_save = False
        return self.call_event("on_save", args, state, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        control.should_log = False
        return self.call_event("on_log", args, state, control, logs=logs)

    def on_prediction_step(self, args, state, control, **kwargs):
        return self.call_event("on_prediction_step", args, state, control)

    def on_push_begin(self, args, state, control, **kwargs):
        return self.call_event("on_push_begin", args, state, control)


class DefaultFlowCallback(TrainerCallback):
    """Decides when to log, evaluate, save and stop, from the strategies in `TrainingArguments`."""

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step == 1 and args.logging_first_step:
            control.should_log = True
        if args.logging_strategy == "steps" and step % state.logging_steps == 0:
            control.should_log = True
        eval_due = args.eval_strategy == "steps" and step % state.eval_steps == 0
        if eval_due and args.eval_delay <= step:
            control.should_evaluate = True
        if args.save_strategy == "steps" and state.save_steps > 0 and step % state.save_steps == 0:
            control.should_save = True
        if step >= state.max_steps:
            control.should_training_stop = True
            # the last step is always evaluated / saved under a steps strategy
            if args.eval_strategy == "steps" and not eval_due and args.eval_delay <= step:
                control.should_evaluate = True
            if args.save_strategy == "steps":
                control.should_save = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if args.logging_strategy == "epoch":
            control.should_log = True
        if args.eval_strategy == "epoch" and args.eval_delay <= state.epoch:
            control.should_evaluate = True
        if args.save_strategy == "epoch":
            control.should_save = True
        return control


class ProgressCallback(TrainerCallback):
    """A tqdm progress bar over the optimizer steps, with the logs written under it."""

    def __init__(self, max_str_len: int = 100):
        self.max_str_len = max_str_len
        self.training_bar = None
        self.prediction_bar = None
        self.current_step = 0

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if not state.is_world_process_zero:  # one bar for a run of several processes
            return
        self.training_bar = tqdm(total=state.max_steps, initial=state.global_step, dynamic_ncols=True)
        self.current_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.update(state.global_step - self.current_step)
            self.current_step = state.global_step

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        from tqdm.auto import tqdm

        if (
            self.prediction_bar is None
            and state.is_world_process_zero
            and eval_dataloader is not None
            and hasattr(eval_dataloader, "__len__")
        ):
            self.prediction_bar = tqdm(
                total=len(eval_dataloader), leave=self.training_bar is None, dynamic_ncols=True
            )
        if self.prediction_bar is not None:
            self.prediction_bar.update(1)

    def _close_prediction_bar(self) -> None:
        if self.prediction_bar is not None:
            self.prediction_bar.close()
            self.prediction_bar = None

    def on_evaluate(self, args, state, control, **kwargs):
        self._close_prediction_bar()

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        self._close_prediction_bar()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is None or logs is None:
            return
        shown = {}
        for k, v in logs.items():
            if k == "total_flos":
                continue
            if isinstance(v, str) and len(v) > self.max_str_len:
                v = f"[string of length {len(v)}]"
            elif isinstance(v, float):
                v = f"{v:.4g}"
            shown[k] = v
        self.training_bar.write(str(shown))

    def on_train_end(self, args, state, control, **kwargs):
        if self.training_bar is not None:
            self.training_bar.close()
            self.training_bar = None


class PrinterCallback(TrainerCallback):
    """Prints the logs (used instead of the progress bar when `disable_tqdm=True`)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        # Removed from the caller's dict itself, as transformers does: `train()` logs its metrics dict, so
        # with `disable_tqdm=True` the returned train metrics (and train_results.json) carry no `total_flos`.
        if logs is not None:
            logs.pop("total_flos", None)
        if logs is not None and state.is_local_process_zero:
            print(logs)


class EarlyStoppingCallback(TrainerCallback, ExportableState):
    """Stop training when `metric_for_best_model` has not improved for `early_stopping_patience` evaluations.

    Args:
        early_stopping_patience: Evaluations without improvement before stopping.
        early_stopping_threshold: How much the metric must improve to count as an improvement.
    """

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float | None = 0.0):
        if early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be at least 1, got {early_stopping_patience}")
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold or 0.0
        self.early_stopping_patience_counter = 0

    def check_metric_value(self, args, state, control, metric_value: float) -> None:
        best = state.best_metric
        if best is None:
            self.early_stopping_patience_counter = 0
            return
        better = metric_value > best if args.greater_is_better else metric_value < best
        if better and abs(metric_value - best) > self.early_stopping_threshold:
            self.early_stopping_patience_counter = 0
        else:
            self.early_stopping_patience_counter += 1

    def on_train_begin(self, args, state, control, **kwargs):
        if args.metric_for_best_model is None:
            raise ValueError("EarlyStoppingCallback needs `metric_for_best_model` in TrainingArguments")
        if args.eval_strategy == "no":
            raise ValueError('EarlyStoppingCallback needs an `eval_strategy` of "steps" or "epoch"')
        if not args.load_best_model_at_end:
            logger.warning(
                "EarlyStoppingCallback without load_best_model_at_end: the last model is kept, not the best"
            )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        name = args.metric_for_best_model
        if not name.startswith("eval_"):
            name = f"eval_{name}"
        value = (metrics or {}).get(name)
        if value is None:
            logger.warning("early stopping needs the metric %r, which evaluation did not return", name)
            return
        self.check_metric_value(args, state, control, value)
        if self.early_stopping_patience_counter >= self.early_stopping_patience:
            control.should_training_stop = True

    def state(self) -> dict:
        return {
            "args": {
                "early_stopping_patience": self.early_stopping_patience,
                "early_stopping_threshold": self.early_stopping_threshold,
            },
            "attributes": {"early_stopping_patience_counter": self.early_stopping_patience_counter},
        }


class TensorBoardCallback(TrainerCallback):
    """Writes the logs to TensorBoard (`report_to="tensorboard"`); needs the `tensorboard` package."""

    def __init__(self, tb_writer: Any = None):
        if tb_writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: F401
            except ImportError as e:
                raise ImportError(
                    'report_to="tensorboard" needs the tensorboard package: pip install tensorboard'
                ) from e
        self.tb_writer = tb_writer

    def on_train_begin(self, args, state, control, **kwargs):
        if self.tb_writer is None and state.is_world_process_zero:
            from torch.utils.tensorboard import SummaryWriter

            log_dir = args.logging_dir or f"{args.output_dir}/runs"
            self.tb_writer = SummaryWriter(log_dir=log_dir)
            self.tb_writer.add_text("args", args.to_json_string())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.tb_writer is None or not logs:
            return
        for k, v in logs.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                tag = k if k.startswith(("eval_", "test_")) else f"train/{k}"
                self.tb_writer.add_scalar(tag, v, state.global_step)
        self.tb_writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.tb_writer is not None:
            self.tb_writer.close()
            self.tb_writer = None

"""The `set_*` helpers of `TrainingArguments`: group related fields under one call, as transformers'
do (`args.set_training(learning_rate=1e-4, batch_size=16).set_save(steps=100)`). Each sets exactly the
fields its arguments name, with transformers' defaults for the ones not passed, checks the values
the way `TrainingArguments(...)` does, and returns the arguments so calls chain."""

from __future__ import annotations

from typing import Any

from .outputs import HubStrategy, IntervalStrategy, SaveStrategy, SchedulerType


def _value(enum_cls: Any, value: Any) -> str:
    # an unknown value fails with the valid ones listed (ExplicitEnum); stored as the plain string
    return enum_cls(getattr(value, "value", value)).value


def _positive_steps(field: str, strategy: str, steps: float) -> None:
    if strategy == "steps" and steps == 0:
        raise ValueError(f"{field}: strategy 'steps' needs a positive number of steps, got steps={steps}")


class TrainingArgumentsSetters:
    """Mixed into `TrainingArguments` (see the module docstring)."""

    def _revalidate(self) -> Any:
        self._validate()  # type: ignore[attr-defined]
        return self

    def set_training(self, learning_rate: float = 5e-5, batch_size: int = 8, weight_decay: float = 0,
                     num_epochs: float = 3, max_steps: int = -1, gradient_accumulation_steps: int = 1,
                     seed: int = 42, activation_checkpointing: bool = False,
                     gradient_checkpointing: bool | None = None) -> Any:
        """Turn training on with these hyper-parameters (`gradient_checkpointing` is the v4 name)."""
        self.do_train = True
        self.learning_rate = learning_rate
        self.per_device_train_batch_size = batch_size
        self.weight_decay = weight_decay
        self.num_train_epochs = num_epochs
        self.max_steps = max_steps
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.seed = seed
        if gradient_checkpointing is not None:
            activation_checkpointing = gradient_checkpointing
        self.activation_checkpointing = self.gradient_checkpointing = activation_checkpointing
        return self._revalidate()

    def set_evaluate(self, strategy: Any = "no", steps: int = 500, batch_size: int = 8,
                     accumulation_steps: int | None = None, delay: float | None = None,
                     loss_only: bool = False) -> Any:
        """When and how to evaluate (`do_eval` follows the strategy)."""
        self.eval_strategy = _value(IntervalStrategy, strategy)
        _positive_steps("set_evaluate", self.eval_strategy, steps)
        self.do_eval = self.eval_strategy != "no"
        self.eval_steps = steps
        self.per_device_eval_batch_size = batch_size
        self.eval_accumulation_steps = accumulation_steps
        self.eval_delay = 0 if delay is None else delay  # our loop compares it with numbers
        self.prediction_loss_only = loss_only
        return self._revalidate()

    def set_testing(self, batch_size: int = 8, loss_only: bool = False) -> Any:
        """Turn prediction on with this batch size."""
        self.do_predict = True
        self.per_device_eval_batch_size = batch_size
        self.prediction_loss_only = loss_only
        return self._revalidate()

    def set_save(self, strategy: Any = "steps", steps: int = 500, total_limit: int | None = None,
                 on_each_node: bool = False) -> Any:
        """When to write checkpoints and how many to keep."""
        self.save_strategy = _value(SaveStrategy, strategy)
        _positive_steps("set_save", self.save_strategy, steps)
        self.save_steps = steps
        self.save_total_limit = total_limit
        self.save_on_each_node = on_each_node
        return self._revalidate()

    def set_logging(self, strategy: Any = "steps", steps: int = 500, report_to: str | list[str] = "none",
                    level: str = "passive", first_step: bool = False, nan_inf_filter: bool = False,
                    on_each_node: bool = False, replica_level: str = "passive") -> Any:
        """When to log, where to report, and at which log levels."""
        from .arguments import _normalise_report_to

        self.logging_strategy = _value(IntervalStrategy, strategy)
        _positive_steps("set_logging", self.logging_strategy, steps)
        self.logging_steps = steps
        self.report_to = _normalise_report_to(report_to)
        self.log_level = level
        self.logging_first_step = first_step
        self.logging_nan_inf_filter = nan_inf_filter
        self.log_on_each_node = on_each_node
        self.log_level_replica = replica_level
        return self._revalidate()

    def set_push_to_hub(self, model_id: str, strategy: Any = "every_save", token: str | None = None,
                        private_repo: bool | None = None, always_push: bool = False,
                        revision: str | None = None) -> Any:
        """Push to the Hub repository `model_id` (done through `huggingface_hub`)."""
        self.push_to_hub = True
        self.hub_model_id = model_id
        self.hub_strategy = _value(HubStrategy, strategy)
        self.hub_token = token
        self.hub_private_repo = private_repo
        self.hub_always_push = always_push
        self.hub_revision = revision
        return self._revalidate()

    def set_optimizer(self, name: Any = "adamw_torch", learning_rate: float = 5e-5, weight_decay: float = 0,
                      beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                      args: str | None = None) -> Any:
        """The optimizer (`optim`) and its hyper-parameters."""
        from .arguments import OptimizerNames

        self.optim = OptimizerNames(getattr(name, "value", name)).value
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.adam_beta1 = beta1
        self.adam_beta2 = beta2
        self.adam_epsilon = epsilon
        self.optim_args = args
        return self._revalidate()

    def set_lr_scheduler(self, name: Any = "linear", num_epochs: float = 3.0, max_steps: int = -1,
                         warmup_steps: float = 0) -> Any:
        """The learning-rate schedule and the run length it spans."""
        self.lr_scheduler_type = _value(SchedulerType, name)
        self.num_train_epochs = num_epochs
        self.max_steps = max_steps
        self.warmup_steps = warmup_steps
        return self._revalidate()

    def set_dataloader(self, train_batch_size: int = 8, eval_batch_size: int = 8, drop_last: bool = False,
                       num_workers: int = 0, pin_memory: bool = True, persistent_workers: bool = False,
                       prefetch_factor: int | None = None, multiprocessing_context: str | None = None,
                       in_order: bool = True, auto_find_batch_size: bool = False,
                       ignore_data_skip: bool = False, sampler_seed: int | None = None) -> Any:
        """Batch sizes and DataLoader options."""
        self.per_device_train_batch_size = train_batch_size
        self.per_device_eval_batch_size = eval_batch_size
        self.dataloader_drop_last = drop_last
        self.dataloader_num_workers = num_workers
        self.dataloader_pin_memory = pin_memory
        self.dataloader_persistent_workers = persistent_workers
        self.dataloader_prefetch_factor = prefetch_factor
        self.dataloader_multiprocessing_context = multiprocessing_context
        self.dataloader_in_order = in_order
        self.auto_find_batch_size = auto_find_batch_size
        self.ignore_data_skip = ignore_data_skip
        self.data_seed = sampler_seed
        return self._revalidate()

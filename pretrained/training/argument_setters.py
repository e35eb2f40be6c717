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

    def _apply(self, **fields: Any) -> Any:
        """Set `fields`, then check the whole as `TrainingArguments(...)` does; returns the arguments."""
        for name, value in fields.items():
            setattr(self, name, value)
        self._validate()  # type: ignore[attr-defined]
        return self

    def set_training(self, learning_rate: float = 5e-5, batch_size: int = 8, weight_decay: float = 0,
                     num_epochs: float = 3, max_steps: int = -1, gradient_accumulation_steps: int = 1,
                     seed: int = 42, activation_checkpointing: bool = False,
                     gradient_checkpointing: bool | None = None) -> Any:
        """Turn training on with these hyper-parameters (`gradient_checkpointing` is the v4 name)."""
        if gradient_checkpointing is not None:
            activation_checkpointing = gradient_checkpointing
        return self._apply(do_train=True, learning_rate=learning_rate, per_device_train_batch_size=batch_size,
                           weight_decay=weight_decay, num_train_epochs=num_epochs, max_steps=max_steps,
                           gradient_accumulation_steps=gradient_accumulation_steps, seed=seed,
                           activation_checkpointing=activation_checkpointing,
                           gradient_checkpointing=activation_checkpointing)

    def set_evaluate(self, strategy: Any = "no", steps: int = 500, batch_size: int = 8,
                     accumulation_steps: int | None = None, delay: float | None = None,
                     loss_only: bool = False) -> Any:
        """When and how to evaluate (`do_eval` follows the strategy)."""
        strategy = _value(IntervalStrategy, strategy)
        _positive_steps("set_evaluate", strategy, steps)
        return self._apply(eval_strategy=strategy, do_eval=strategy != "no", eval_steps=steps,
                           per_device_eval_batch_size=batch_size, eval_accumulation_steps=accumulation_steps,
                           eval_delay=0 if delay is None else delay,  # our loop compares it with numbers
                           prediction_loss_only=loss_only)

    def set_testing(self, batch_size: int = 8, loss_only: bool = False) -> Any:
        """Turn prediction on with this batch size."""
        return self._apply(do_predict=True, per_device_eval_batch_size=batch_size, prediction_loss_only=loss_only)

    def set_save(self, strategy: Any = "steps", steps: int = 500, total_limit: int | None = None,
                 on_each_node: bool = False) -> Any:
        """When to write checkpoints and how many to keep."""
        strategy = _value(SaveStrategy, strategy)
        _positive_steps("set_save", strategy, steps)
        return self._apply(save_strategy=strategy, save_steps=steps, save_total_limit=total_limit,
                           save_on_each_node=on_each_node)

    def set_logging(self, strategy: Any = "steps", steps: int = 500, report_to: str | list[str] = "none",
                    level: str = "passive", first_step: bool = False, nan_inf_filter: bool = False,
                    on_each_node: bool = False, replica_level: str = "passive") -> Any:
        """When to log, where to report, and at which log levels."""
        from .argument_checks import normalise_report_to

        strategy = _value(IntervalStrategy, strategy)
        _positive_steps("set_logging", strategy, steps)
        return self._apply(logging_strategy=strategy, logging_steps=steps, report_to=normalise_report_to(report_to),
                           log_level=level, logging_first_step=first_step, logging_nan_inf_filter=nan_inf_filter,
                           log_on_each_node=on_each_node, log_level_replica=replica_level)

    def set_push_to_hub(self, model_id: str, strategy: Any = "every_save", token: str | None = None,
                        private_repo: bool | None = None, always_push: bool = False,
                        revision: str | None = None) -> Any:
        """Push to the Hub repository `model_id` (done through `huggingface_hub`)."""
        return self._apply(push_to_hub=True, hub_model_id=model_id, hub_strategy=_value(HubStrategy, strategy),
                           hub_token=token, hub_private_repo=private_repo, hub_always_push=always_push,
                           hub_revision=revision)

    def set_optimizer(self, name: Any = "adamw_torch", learning_rate: float = 5e-5, weight_decay: float = 0,
                      beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
                      args: str | None = None) -> Any:
        """The optimizer (`optim`) and its hyper-parameters."""
        from .arguments import OptimizerNames

        return self._apply(optim=OptimizerNames(getattr(name, "value", name)).value, learning_rate=learning_rate,
                           weight_decay=weight_decay, adam_beta1=beta1, adam_beta2=beta2, adam_epsilon=epsilon,
                           optim_args=args)

    def set_lr_scheduler(self, name: Any = "linear", num_epochs: float = 3.0, max_steps: int = -1,
                         warmup_steps: float = 0) -> Any:
        """The learning-rate schedule and the run length it spans."""
        return self._apply(lr_scheduler_type=_value(SchedulerType, name), num_train_epochs=num_epochs,
                           max_steps=max_steps, warmup_steps=warmup_steps)

    def set_dataloader(self, train_batch_size: int = 8, eval_batch_size: int = 8, drop_last: bool = False,
                       num_workers: int = 0, pin_memory: bool = True, persistent_workers: bool = False,
                       prefetch_factor: int | None = None, multiprocessing_context: str | None = None,
                       in_order: bool = True, auto_find_batch_size: bool = False,
                       ignore_data_skip: bool = False, sampler_seed: int | None = None) -> Any:
        """Batch sizes and DataLoader options."""
        return self._apply(per_device_train_batch_size=train_batch_size, per_device_eval_batch_size=eval_batch_size,
                           dataloader_drop_last=drop_last, dataloader_num_workers=num_workers,
                           dataloader_pin_memory=pin_memory, dataloader_persistent_workers=persistent_workers,
                           dataloader_prefetch_factor=prefetch_factor,
                           dataloader_multiprocessing_context=multiprocessing_context, dataloader_in_order=in_order,
                           auto_find_batch_size=auto_find_batch_size, ignore_data_skip=ignore_data_skip,
                           data_seed=sampler_seed)

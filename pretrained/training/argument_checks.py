"""The checks `TrainingArguments` runs when built and after each `set_*` call: the values each field may
take, the bounds, the fields whose features this loop lacks (refused by name), and the rules that tie
fields together (strategies, steps, best-model tracking)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .distributed import fsdp_settings, local_process_index

INTERVAL_STRATEGIES = ("no", "steps", "epoch")
SAVE_STRATEGIES = ("no", "steps", "epoch", "best")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw_torch_foreach", "sgd", "adafactor", "adagrad")
OPTIMIZERS += ("rmsprop",)
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
SCHEDULERS += ("inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr")
SCHEDULERS += ("warmup_stable_decay",)
SAMPLING_STRATEGIES = ("random", "sequential", "group_by_length")
REPORTERS = ("tensorboard",)

# Fields transformers has that this loop does not implement: accepted at their defaults (so every program
# that spells them out still runs), refused by name with the reason otherwise.
_UNSUPPORTED = {
    "optim_target_modules": "GaLore/APOLLO optimizers are not implemented",
    "use_liger_kernel": "Liger kernels are not implemented",
    "liger_kernel_config": "Liger kernels are not implemented",
    "neftune_noise_alpha": "NEFTune noise embeddings are not implemented",
    "auto_find_batch_size": "the batch size is not searched, set per_device_train_batch_size",
    "enable_jit_checkpoint": "checkpoints on SIGTERM are not implemented",
    "eval_do_concat_batches": "evaluation always concatenates the batches' predictions",
    "skip_memory_metrics": "memory metrics are not reported",
    "accelerator_config": "training runs in one process, without an accelerate config",
    "parallelism_config": "training runs in one process, without a parallelism config",
    "deepspeed": "DeepSpeed is not implemented",
    "debug": "debug options (underflow_overflow, tpu_metrics_debug) are not implemented",
    "dataloader_multiprocessing_context": "data loader workers use the platform's default start method",
    "batch_eval_metrics": "compute_metrics runs once on the gathered predictions",
    "push_to_hub": "upload the output folder with huggingface_hub",
}

_LOWER_BOUNDS = {"eval_accumulation_steps": 1, "torch_empty_cache_steps": 1, "learning_rate": 0}
_LOWER_BOUNDS.update(warmup_steps=0, max_grad_norm=0, dataloader_num_workers=0, save_total_limit=0)
LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


def field_defaults(args: Any) -> dict[str, Any]:
    """`{field: default}` of an arguments dataclass (class or instance; a factory default counts as None)."""
    return {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(args)}


class TrainingArgumentsChecks:
    """Mixed into `TrainingArguments`: `_validate()` raises `ValueError` naming the field at fault."""

    def _validate(self) -> None:
        def check_choice(name: str, choices: tuple[str, ...]) -> None:
            value = getattr(self, name)
            value = getattr(value, "value", value)  # enums from other libraries
            if value not in choices:
                raise ValueError(f"`{name}`={value!r} is not one of {', '.join(choices)}")
            setattr(self, name, value)

        check_choice("eval_strategy", INTERVAL_STRATEGIES)
        check_choice("logging_strategy", INTERVAL_STRATEGIES)
        check_choice("save_strategy", SAVE_STRATEGIES)
        check_choice("optim", OPTIMIZERS)
        check_choice("lr_scheduler_type", SCHEDULERS)
        check_choice("train_sampling_strategy", SAMPLING_STRATEGIES)

        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        for name, least in _LOWER_BOUNDS.items():
            value = getattr(self, name)
            if value is not None and value < least:
                raise ValueError(f"`{name}` must be at least {least}, got {value}")
        if not 0 <= self.label_smoothing_factor < 1:
            raise ValueError(f"`label_smoothing_factor` must be in [0, 1), got {self.label_smoothing_factor}")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("nothing to train: set `num_train_epochs` > 0 or `max_steps` > 0")
        if self.fp16 and self.bf16:
            raise ValueError("`fp16` and `bf16` cannot both be set: pick one autocast dtype")
        if self.fp16_full_eval and self.bf16_full_eval:
            raise ValueError("`fp16_full_eval` and `bf16_full_eval` cannot both be set")
        if self.dataloader_prefetch_factor is not None and self.dataloader_num_workers == 0:
            raise ValueError("`dataloader_prefetch_factor` needs `dataloader_num_workers` > 0")
        if self.dataloader_persistent_workers and self.dataloader_num_workers == 0:
            raise ValueError("`dataloader_persistent_workers` needs `dataloader_num_workers` > 0")
        for name in ("log_level", "log_level_replica"):
            if getattr(self, name) not in ("passive", *LOG_LEVELS):
                raise ValueError(
                    f"`{name}`={getattr(self, name)!r} is not one of passive, debug, info, warning, error, critical"
                )
        defaults = field_defaults(self)
        for name, reason in _UNSUPPORTED.items():
            value = getattr(self, name)
            if value not in (defaults[name], None, "", [], {}):
                raise ValueError(f"`{name}`={value!r} is not supported: {reason}")
        if self.local_rank not in (-1, local_process_index()):
            raise ValueError(
                f"`local_rank`={self.local_rank} does not match this process's LOCAL_RANK "
                f"({local_process_index()}): start several processes with torchrun, which sets it"
            )
        fsdp_settings(self.fsdp, self.fsdp_config)  # refuses, by name, what FSDP2 here cannot do
        if self.include_num_input_tokens_seen not in ("no", "all", "non_padding"):
            raise ValueError(
                "`include_num_input_tokens_seen` must be a bool, 'all' or 'non_padding', "
                f"got {self.include_num_input_tokens_seen!r}"
            )

        # steps: positive; fractions in (0, 1) are ratios of the total steps; others must be integers
        for kind, strategy in (("logging", self.logging_strategy), ("eval", self.eval_strategy)):
            if strategy == "steps":
                self._check_steps(f"{kind}_steps")
        if self.save_strategy == "steps":
            self._check_steps("save_steps")

        if self.save_strategy == "best" and self.metric_for_best_model is None:
            raise ValueError('`save_strategy="best"` needs `metric_for_best_model`')
        if self.save_strategy == "best" and self.eval_strategy == "no":
            raise ValueError('`save_strategy="best"` needs an `eval_strategy` other than "no"')
        if self.load_best_model_at_end and self.save_strategy != "best":
            if self.eval_strategy != self.save_strategy:
                raise ValueError(
                    "`load_best_model_at_end` needs the save and eval strategies to match (or "
                    f'save_strategy="best"), got eval_strategy={self.eval_strategy!r} and '
                    f"save_strategy={self.save_strategy!r}"
                )
            if self.eval_strategy == "steps" and not _is_multiple(self.save_steps, self.eval_steps):
                raise ValueError(
                    "`load_best_model_at_end` needs `save_steps` to be a multiple of `eval_steps`, got "
                    f"save_steps={self.save_steps} and eval_steps={self.eval_steps}"
                )
        if self.lr_scheduler_type == "reduce_lr_on_plateau" and self.eval_strategy == "no":
            raise ValueError(
                '`lr_scheduler_type="reduce_lr_on_plateau"` needs an `eval_strategy` other than "no"'
            )

    def _check_steps(self, name: str) -> None:
        value = getattr(self, name)
        if value is None or value <= 0:
            raise ValueError(f"`{name}` must be positive with a 'steps' strategy, got {value!r}")
        if value > 1:
            if value != int(value):
                raise ValueError(f"`{name}` must be an integer when bigger than 1, got {value}")
            setattr(self, name, int(value))


def _is_multiple(a: float, b: float) -> bool:
    # compare as integers so ratio steps like 0.2 / 0.1 work
    big = 1_000_000
    return round(a * big) % round(b * big) == 0


def normalise_report_to(value: str | list[str] | None) -> list[str]:
    if value is None or value == "none" or value == ["none"]:
        return []
    if value == "all" or value == ["all"]:  # every installed reporter
        import importlib.util

        return [name for name in REPORTERS if importlib.util.find_spec(name) is not None]
    names = [value] if isinstance(value, str) else list(value)
    for name in names:
        if name not in REPORTERS:
            raise ValueError(
                f"`report_to` {name!r} is not supported; use one of: none, all, {', '.join(REPORTERS)}"
            )
    return names

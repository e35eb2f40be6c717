"""`TrainingArguments`: every knob of the training loop, validated when built.

Names and defaults follow transformers 5.24 (every one of its fields), and the v4 spellings people still write
(`evaluation_strategy`, `warmup_ratio`, `no_cuda`, `group_by_length`, ...) are accepted and mapped onto the
current names. This module does not import torch: reading a config and validating it is cheap.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .argument_checks import (  # noqa: F401 (the choice tables stay importable from here, where they lived)
    INTERVAL_STRATEGIES,
    LOG_LEVELS,
    OPTIMIZERS,
    REPORTERS,
    SAMPLING_STRATEGIES,
    SAVE_STRATEGIES,
    SCHEDULERS,
    TrainingArgumentsChecks,
    field_defaults,
    normalise_report_to,
)
from .argument_setters import TrainingArgumentsSetters
from .distributed import local_process_index, process_index, world_size

# v4 spelling -> current field. Values move over in __post_init__.
_V4_ALIASES = {"evaluation_strategy": "eval_strategy", "no_cuda": "use_cpu"}
_V4_ALIASES.update(per_gpu_train_batch_size="per_device_train_batch_size")
_V4_ALIASES.update(per_gpu_eval_batch_size="per_device_eval_batch_size")

# Strings that load as JSON objects (transformers' `_VALID_DICT_FIELDS`, those we accept).
_DICT_FIELDS = ("lr_scheduler_kwargs", "gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")

# The `optim` values this loop implements, as transformers' str-valued enum (`OptimizerNames.ADAMW_TORCH`).
OptimizerNames = enum.Enum("OptimizerNames", {name.upper(): name for name in OPTIMIZERS}, type=str)


class ParallelMode(enum.Enum):
    """How training is spread over devices; `pretrained` trains in one process on one device."""

    NOT_PARALLEL = "not_parallel"
    NOT_DISTRIBUTED = "not_distributed"
    DISTRIBUTED = "distributed"
    SAGEMAKER_MODEL_PARALLEL = "sagemaker_model_parallel"
    SAGEMAKER_DATA_PARALLEL = "sagemaker_data_parallel"
    TPU = "tpu"


def _alias(help_text: str, flag: bool = False) -> Any:
    # a flag takes `--name` alone, as its v4 field (a plain bool) did
    parsing = {"nargs": "?", "const": True} if flag else {}
    return field(default=None, repr=False, metadata={"alias": True, "help": help_text, **parsing})


@dataclass
class TrainingArguments(TrainingArgumentsChecks, TrainingArgumentsSetters):
    """Arguments of the training loop, with transformers' names and defaults.

    Args:
        output_dir: Where checkpoints (`checkpoint-N/`) and the final model are written.
        per_device_train_batch_size: Examples per forward pass in training.
        per_device_eval_batch_size: Examples per forward pass in evaluation.
        gradient_accumulation_steps: Forward/backward passes summed into one optimizer step.
            The loss is normalised by the number of label items of the whole accumulated batch,
            so accumulation gives the gradient of one bigger batch.
        num_train_epochs: Epochs to train when `max_steps` is not positive.
        max_steps: Optimizer steps to train; overrides `num_train_epochs` when positive.
        learning_rate: Peak learning rate.
        lr_scheduler_type: One of `get_scheduler`'s types.
        lr_scheduler_kwargs: Extra arguments of the scheduler (e.g. `{"num_cycles": 2}`).
        warmup_steps: Warmup optimizer steps; a value in `[0, 1)` is a ratio of the total steps.
        optim: `adamw_torch_fused` (default), `adamw_torch`, `adamw_torch_foreach`, `sgd`,
            `adafactor` (torch's Adafactor), `adagrad` or `rmsprop`.
        weight_decay: Decoupled weight decay, never applied to biases and normalisation weights.
        max_grad_norm: Clip the global gradient norm to this value (0 disables clipping).
        bf16 / fp16: Run forward passes under autocast in that dtype (fp16 adds a gradient scaler).
        gradient_checkpointing: Recompute activations in the backward pass to save memory.
        logging_strategy / logging_steps: When to log loss, learning rate, grad norm and epoch.
        eval_strategy / eval_steps: When to evaluate (`eval_steps` defaults to `logging_steps`).
        save_strategy / save_steps: When to write a checkpoint; `"best"` saves on a new best metric.
        save_total_limit: Keep at most this many checkpoints (the best one is always kept).
        save_in_background: (pretrained only) Copy the state to host memory and write the checkpoint in a
            background thread while training goes on; the folder appears (atomically) once written, and
            `on_save` fires then (at the next step end, save or the end of training) with the state saved.
        load_best_model_at_end: Reload the best checkpoint's weights when training ends.
        metric_for_best_model: Metric that ranks checkpoints (`"loss"` when not given and needed).
        greater_is_better: Whether a bigger metric is better (default: not for names ending in "loss").
        seed: Seed set before training (model init, dropout).
        data_seed: Seed of the data order (defaults to `seed`).
        train_sampling_strategy: `random`, `sequential` or `group_by_length`.
        report_to: `"none"`, `"tensorboard"` or a list of them.
        activation_checkpointing: transformers 5's name of `gradient_checkpointing` (the two mirror each
            other once built, as do their `_kwargs`).

    Every other field has the meaning and default of transformers' field of the same name. Under torchrun
    with several processes the run is data-parallel: DDP (`ddp_*`), or FSDP2 with `fsdp` / `fsdp_config`
    (see `training/distributed.py`). `log_level_replica`, `dataloader_in_order`, `eval_use_gather_object`,
    the Hub (`hub_*`, used only with `push_to_hub`), trackio (`project`, `trackio_*`) and
    `torch_empty_cache_steps` are accepted and have no effect; the features transformers has and this
    loop lacks (DeepSpeed, Liger, NEFTune, GaLore, ...) are refused by name unless left at their defaults.
    """

    output_dir: str | None = None
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    eval_accumulation_steps: int | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1

    # optimizer and schedule
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    optim: str = "adamw_torch_fused"
    optim_args: str | None = None
    lr_scheduler_type: str = "linear"
    lr_scheduler_kwargs: dict | str | None = None
    warmup_steps: float = 0
    max_grad_norm: float = 1.0
    label_smoothing_factor: float = 0.0
    average_tokens_across_devices: bool = True
    optim_target_modules: str | list[str] | None = None

    # precision and speed
    bf16: bool = False
    fp16: bool = False
    bf16_full_eval: bool = False
    fp16_full_eval: bool = False
    tf32: bool | None = None
    activation_checkpointing: bool | None = field(default=None, metadata={"nargs": "?", "const": True})
    activation_checkpointing_kwargs: dict | str | None = None
    gradient_checkpointing: bool | None = field(default=None, metadata={"nargs": "?", "const": True})
    gradient_checkpointing_kwargs: dict | str | None = None
    torch_compile: bool = False
    torch_compile_backend: str | None = None
    torch_compile_mode: str | None = None
    use_cpu: bool = False
    use_liger_kernel: bool = False
    liger_kernel_config: dict | None = None
    use_cache: bool = False
    neftune_noise_alpha: float | None = None
    torch_empty_cache_steps: int | None = None
    auto_find_batch_size: bool = False

    # logging
    logging_strategy: str = "steps"
    logging_steps: float = 500
    logging_first_step: bool = False
    logging_nan_inf_filter: bool = True
    logging_dir: str | None = None
    log_level: str = "passive"
    disable_tqdm: bool | None = None
    report_to: str | list[str] | None = "none"
    run_name: str | None = None
    include_num_input_tokens_seen: str | bool = "no"
    log_on_each_node: bool = True
    log_level_replica: str = "warning"
    project: str = "huggingface"
    trackio_space_id: str | None = None
    trackio_bucket_id: str | None = None
    trackio_static_space_id: str | None = None

    # evaluation
    eval_strategy: str = "no"
    eval_steps: float | None = None
    eval_delay: float = 0
    eval_on_start: bool = False
    prediction_loss_only: bool = False
    include_for_metrics: list[str] = field(default_factory=list)
    batch_eval_metrics: bool = False
    eval_do_concat_batches: bool = True
    eval_use_gather_object: bool = False

    # checkpoints
    save_strategy: str = "steps"
    save_steps: float = 500
    save_total_limit: int | None = None
    save_only_model: bool = False
    save_in_background: bool = False
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    ignore_data_skip: bool = False
    restore_callback_states_from_checkpoint: bool = False
    resume_from_checkpoint: str | None = None
    save_on_each_node: bool = False
    enable_jit_checkpoint: bool = False
    push_to_hub: bool = False
    hub_token: str | None = None
    hub_private_repo: bool | None = None
    hub_model_id: str | None = None
    hub_strategy: str = "every_save"
    hub_always_push: bool = False
    hub_revision: str | None = None

    # data
    seed: int = 42
    data_seed: int | None = None
    full_determinism: bool = False
    dataloader_drop_last: bool = False
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = True
    dataloader_persistent_workers: bool = False
    dataloader_prefetch_factor: int | None = None
    remove_unused_columns: bool = True
    label_names: list[str] | None = None
    train_sampling_strategy: str = "random"
    group_by_length: bool = False
    length_column_name: str = "length"
    dataloader_multiprocessing_context: str | None = None
    dataloader_in_order: bool = True

    # several processes and integrations (see the class docstring)
    accelerator_config: dict | str | None = None
    parallelism_config: Any = None
    ddp_find_unused_parameters: bool | None = None
    ddp_bucket_cap_mb: int | None = None
    ddp_broadcast_buffers: bool | None = None
    ddp_static_graph: bool | None = None
    ddp_backend: str | None = None
    ddp_timeout: int = 1800
    fsdp: str | None = field(default=None, metadata={"nargs": "?", "const": True})
    fsdp_config: dict | str | None = None
    deepspeed: dict | str | None = None
    debug: str | list[str] = ""
    skip_memory_metrics: bool = True
    local_rank: int = -1

    do_train: bool = False
    do_eval: bool = False
    do_predict: bool = False

    # v4 spellings: moved onto the fields above, then cleared; the last two are kept as given for
    # programs that read them (training ignores them)
    evaluation_strategy: str | None = _alias("v4 name of eval_strategy")
    warmup_ratio: float | None = _alias("v4: ratio of warmup steps; now warmup_steps < 1")
    no_cuda: bool | None = _alias("v4 name of use_cpu", flag=True)
    per_gpu_train_batch_size: int | None = _alias("v4 name of per_device_train_batch_size")
    per_gpu_eval_batch_size: int | None = _alias("v4 name of per_device_eval_batch_size")
    overwrite_output_dir: bool | None = _alias("v4; ignored", flag=True)
    save_safetensors: bool | None = _alias("v4; ignored (checkpoints are always safetensors)", flag=True)

    def __post_init__(self) -> None:
        self._apply_v4_spellings()
        if self.output_dir is None:
            self.output_dir = "trainer_output"
        self.output_dir = os.path.expanduser(os.fspath(self.output_dir))
        for name in _DICT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    setattr(self, name, json.loads(value))
                except json.JSONDecodeError as e:
                    raise ValueError(f"`{name}` must be a dict or a JSON object string, got {value!r}") from e
        # transformers 5 renamed gradient_checkpointing*; the new name wins, then both hold the same value
        for old, new in (
            ("gradient_checkpointing", "activation_checkpointing"),
            ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs"),
        ):
            if getattr(self, new) is None:
                setattr(self, new, getattr(self, old))
            setattr(self, old, getattr(self, new))
        if self.activation_checkpointing is None:
            self.activation_checkpointing = self.gradient_checkpointing = False
        if isinstance(self.include_num_input_tokens_seen, bool):
            self.include_num_input_tokens_seen = "all" if self.include_num_input_tokens_seen else "no"
        if isinstance(self.debug, str):  # as transformers: a space-separated string becomes a list
            self.debug = self.debug.split()
        if self.group_by_length:
            self.train_sampling_strategy = "group_by_length"
        self.report_to = normalise_report_to(self.report_to)
        if self.eval_strategy != "no":
            self.do_eval = True
        if self.eval_strategy == "steps" and not self.eval_steps:
            self.eval_steps = self.logging_steps
        needs_metric = self.load_best_model_at_end or self.lr_scheduler_type == "reduce_lr_on_plateau"
        if needs_metric and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if self.torch_compile_mode is not None or self.torch_compile_backend is not None:
            self.torch_compile = True
        if self.torch_compile and self.torch_compile_backend is None:
            self.torch_compile_backend = "inductor"
        if self.use_cpu:
            self.dataloader_pin_memory = False
        self._validate()

    def _apply_v4_spellings(self) -> None:
        for old, new in _V4_ALIASES.items():
            value = getattr(self, old)
            if value is None:
                continue
            default = _FIELD_DEFAULTS[new]
            current = getattr(self, new)
            if current != default and current != value:
                raise ValueError(f"`{old}` (v4 name) and `{new}` were both given, with different values")
            setattr(self, new, value)
            setattr(self, old, None)
        if self.warmup_ratio is not None:
            if self.warmup_steps:
                raise ValueError("give either `warmup_steps` or the v4 `warmup_ratio`, not both")
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"`warmup_ratio` must be in [0, 1), got {self.warmup_ratio}")
            self.warmup_steps = self.warmup_ratio
            self.warmup_ratio = None

    # ---- derived values -------------------------------------------------------------------

    @property
    def train_batch_size(self) -> int:
        """Examples per forward pass in training (one process, one device)."""
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        """Examples per forward pass in evaluation."""
        return self.per_device_eval_batch_size

    # Several processes are started by torchrun, which tells each its place in the environment
    # (WORLD_SIZE, RANK, LOCAL_RANK); alone, a process is rank 0 of a world of 1.

    @property
    def world_size(self) -> int:
        """Number of processes training together (torchrun's WORLD_SIZE; 1 alone)."""
        return world_size()

    @property
    def process_index(self) -> int:
        """Global index of this process (torchrun's RANK; 0 alone)."""
        return process_index()

    @property
    def local_process_index(self) -> int:
        """Index of this process on its machine (torchrun's LOCAL_RANK; 0 alone)."""
        return local_process_index()

    @property
    def parallel_mode(self) -> ParallelMode:
        """`DISTRIBUTED` under torchrun with several processes, else `NOT_PARALLEL`."""
        return ParallelMode.DISTRIBUTED if world_size() > 1 else ParallelMode.NOT_PARALLEL

    @property
    def n_gpu(self) -> int:
        """GPUs this process uses: 1 on CUDA, else 0."""
        return 1 if self.device.type == "cuda" else 0

    @property
    def should_save(self) -> bool:
        """Whether this process writes checkpoints and the model (the main process does)."""
        return (self.local_process_index if self.save_on_each_node else self.process_index) == 0

    @property
    def should_log(self) -> bool:
        """Whether this process logs (the main process does)."""
        return (self.local_process_index if self.log_on_each_node else self.process_index) == 0

    @contextlib.contextmanager
    def main_process_first(self, local: bool = True, desc: str = "work") -> Iterator[None]:
        """Context manager that runs its block on the main process first, then on the others (e.g. to
        build a dataset cache once); with one process it just runs it.

        Args:
            local: Main process of each machine (`True`) or of the first machine only (`False`).
            desc: What the block does, for logs.
        """
        from .distributed import barrier

        main = (self.local_process_index if local else self.process_index) == 0
        if not main:
            barrier()  # wait for the main process to finish the block
        try:
            yield
        finally:
            if main:
                barrier()

    @property
    def device(self) -> Any:
        """The device training runs on: CUDA, then MPS, then the CPU (`use_cpu` forces the CPU)."""
        import torch

        if self.use_cpu:
            return torch.device("cpu")
        if torch.cuda.is_available():
            if world_size() > 1:  # one device per process, by its rank on the machine
                return torch.device("cuda", local_process_index())
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def get_warmup_steps(self, num_training_steps: int) -> int:
        """Warmup steps for a run of `num_training_steps` (a `warmup_steps` below 1 is a ratio)."""
        if self.warmup_steps >= 1:
            return int(self.warmup_steps)
        return math.ceil(num_training_steps * self.warmup_steps)

    def get_process_log_level(self) -> int:
        """Log level of this process: `log_level` (or `log_level_replica` off the main process).

        `"passive"` keeps the level the `pretrained` logger has now.
        """
        import logging

        name = self.log_level if self.should_log else self.log_level_replica
        return LOG_LEVELS.get(name, logging.getLogger("pretrained").getEffectiveLevel())

    # ---- serialisation --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-safe data (v4 aliases left out, enums as values, tokens hidden)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.metadata.get("alias"):
                continue
            # as transformers does: a token never reaches a log, a model card or a saved file
            value = getattr(self, f.name)
            out[f.name] = f"<{f.name.upper()}>" if f.name.endswith("_token") else _json_safe(value)
        return out

    def to_json_string(self) -> str:
        """`to_dict()` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def to_sanitized_dict(self) -> dict[str, Any]:
        """Flat `{name: int | float | str | bool}` for hyper-parameter loggers such as TensorBoard."""
        return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in self.to_dict().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingArguments:
        """Build from a dict such as `to_dict()` or a config file, rejecting unknown keys by name."""
        unknown = sorted(set(data) - set(_FIELD_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown TrainingArguments field(s): {', '.join(unknown)}")
        return cls(**data)

    def __str__(self) -> str:
        body = ",\n".join(f"  {k}={v!r}" for k, v in sorted(self.to_dict().items()))
        return f"{type(self).__name__}(\n{body}\n)"

    __repr__ = __str__


_FIELD_DEFAULTS = field_defaults(TrainingArguments)


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "value"):  # enums
        return _json_safe(value.value)
    warnings.warn(f"TrainingArguments: storing {type(value).__name__} value as its str()")
    return str(value)

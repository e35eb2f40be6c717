"""`Trainer`: train, evaluate and predict with a PyTorch model, the transformers way.

`Trainer` itself holds construction, the model's inspection, the data loaders, the optimizer and the
schedule; the rest comes from one mixin per concern, each in a module of its own:

- `train_loop.TrainingLoopMixin`: `train` and its loop (`_inner_training_loop`, `_run_epoch`,
  `get_batch_samples`, `_maybe_log_save_evaluate`, `log`, ...);
- `loss.TrainingStepMixin`: `training_step` and `compute_loss`;
- `evaluation.EvaluationMixin`: `evaluate`, `predict`, `evaluation_loop`, `prediction_step`;
- `checkpointing.CheckpointingMixin`: `save_model`, `_save_checkpoint` and the loading on resume;
- `reporting.ReportingMixin`: `log_metrics`, `save_metrics`, `save_state`, `create_model_card`,
  `push_to_hub`, `floating_point_ops`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from pretrained.loading.device_map import spans_devices

from .arguments import TrainingArguments
from .callbacks import (
    CallbackHandler,
    DefaultFlowCallback,
    PrinterCallback,
    ProgressCallback,
    TensorBoardCallback,
    TrainerCallback,
)
from .checkpointing import CheckpointingMixin
from .collators import DataCollatorWithPadding, default_data_collator
from .distributed import data_parallel_rank, data_parallel_size, init_distributed
from .evaluation import EvaluationMixin
from .loss import TrainingStepMixin
from .optimizers import create_optimizer, get_decay_parameter_names, get_optimizer_cls_and_kwargs
from .outputs import EvalPrediction
from .reporting import ReportingMixin
from .sampling import EpochSampler
from .schedulers import get_scheduler
from .seeding import set_seed
from .state import TrainerControl, TrainerState
from .train_loop import TrainingLoopMixin

logger = logging.getLogger(__name__)


class Trainer(TrainingLoopMixin, TrainingStepMixin, EvaluationMixin, CheckpointingMixin, ReportingMixin):
    """Train, evaluate and predict with a PyTorch model, the transformers way.

    Args:
        model: An `nn.Module` whose forward takes the batch's keys as keyword arguments and returns
            a `ModelOutput`, dict or tuple with the loss first when labels are given.
        args: The `TrainingArguments` (default: `TrainingArguments("trainer_output")`).
        data_collator: Builds a batch from a list of examples (default: `DataCollatorWithPadding`
            when `processing_class` can pad, else `default_data_collator`).
        train_dataset / eval_dataset: A torch `Dataset` (or `datasets.Dataset`) of dict examples, or an
            `IterableDataset` (then `max_steps` is required). `eval_dataset` may be a dict of datasets.
        processing_class: Tokenizer (or processor) saved with every checkpoint and used for padding.
        model_init: Builds a fresh model; called at init and again at the start of `train()`.
        compute_loss_func: `(outputs, labels, num_items_in_batch=...) -> loss` replacing the model's loss.
            It must return the loss summed over items divided by `num_items_in_batch`.
        compute_metrics: `(EvalPrediction) -> dict` of metrics for `evaluate` / `predict`.
        callbacks: Extra `TrainerCallback`s (classes or instances).
        optimizers: `(optimizer, lr_scheduler)` to use instead of the ones built from `args`.
        optimizer_cls_and_kwargs: `(optimizer class, kwargs)` to build instead of `args.optim`.
        preprocess_logits_for_metrics: `(logits, labels) -> logits` applied per evaluation batch.

    Class attribute `loss_is_scaled_for_ga` (as transformers'): None decides per step (see
    `training_step`); True if `compute_loss` already normalises over the accumulated batch; False
    divides each micro-batch's loss by the accumulation steps.
    """

    loss_is_scaled_for_ga: bool | None = None

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        model_init: Callable[..., nn.Module] | None = None,
        compute_loss_func: Callable | None = None,
        compute_metrics: Callable[[EvalPrediction], dict] | None = None,
        callbacks: list[TrainerCallback | type[TrainerCallback]] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, Any] = (None, None),
        optimizer_cls_and_kwargs: tuple[type[torch.optim.Optimizer], dict[str, Any]] | None = None,
        preprocess_logits_for_metrics: Callable | None = None,
        tokenizer: Any = None,
    ):
        if args is None:
            args = TrainingArguments(output_dir="trainer_output")
        if not isinstance(args, TrainingArguments):
            raise TypeError(f"`args` must be a TrainingArguments, got {type(args).__name__}")
        self.args = args
        init_distributed(args)  # under torchrun: join the process group before anything is placed
        set_seed(args.seed, deterministic=args.full_determinism)
        if args.log_level != "passive":
            logging.getLogger("pretrained").setLevel(args.get_process_log_level())
        if args.tf32 is not None and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = args.tf32
            torch.backends.cudnn.allow_tf32 = args.tf32

        if processing_class is None and tokenizer is not None:  # v4 name
            processing_class = tokenizer
        self.processing_class = processing_class
        self.model_init = model_init
        if model_init is not None:
            if model is not None:
                logger.warning("Trainer got both `model` and `model_init`: `model_init` wins")
            model = self.call_model_init()
        if model is None:
            raise ValueError("Trainer needs a `model` or a `model_init`")
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if getattr(model, "is_quantized", False):
            from pretrained.quantizers.base import validate_quantization_for_training

            validate_quantization_for_training(model)
        self.model = self._place(model)
        self.model_wrapped = self.model

        if data_collator is None:
            can_pad = processing_class is not None and hasattr(processing_class, "pad")
            data_collator = DataCollatorWithPadding(processing_class) if can_pad else default_data_collator
        self.data_collator = data_collator
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.compute_loss_func = compute_loss_func
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.optimizer, self.lr_scheduler = optimizers
        if optimizer_cls_and_kwargs is not None and self.optimizer is not None:
            raise ValueError("pass either `optimizers` or `optimizer_cls_and_kwargs`, not both")
        self.optimizer_cls_and_kwargs = optimizer_cls_and_kwargs
        self._created_lr_scheduler = False
        self.scaler = None
        if args.eval_strategy != "no" and eval_dataset is None:
            raise ValueError(f"eval_strategy={args.eval_strategy!r} needs an `eval_dataset`")
        if (
            train_dataset is not None
            and not isinstance(train_dataset, IterableDataset)
            and not hasattr(train_dataset, "__len__")
        ):
            raise ValueError("a train_dataset without __len__ must be a torch IterableDataset")

        self._inspect_model()

        default = [DefaultFlowCallback, PrinterCallback if args.disable_tqdm else ProgressCallback]
        if "tensorboard" in args.report_to:
            default.append(TensorBoardCallback)
        self.callback_handler = CallbackHandler(
            default + list(callbacks or []), self.model, processing_class, self.optimizer, self.lr_scheduler
        )
        self.state = TrainerState(
            is_local_process_zero=self.is_local_process_zero(), is_world_process_zero=self.is_world_process_zero()
        )
        self.control = TrainerControl()
        self.is_in_train = False
        self.current_flos = 0  # counted per micro-batch, added to state.total_flos at saves and the end
        self.hub_model_id = None  # set by init_hf_repo
        self._pending_save = None  # a checkpoint being written in the background (see checkpointing.py)
        # micro-batches of the current optimizer step: weighs each one's loss where items can't be counted
        self.current_gradient_accumulation_steps = 1
        self.control = self.callback_handler.on_init_end(args, self.state, self.control)
        if getattr(self.model, "config", None) is not None:  # as transformers: the saved config says so too
            self.model.config.use_cache = args.use_cache

    # ---- model helpers --------------------------------------------------------------------------

    def call_model_init(self, trial: Any = None) -> nn.Module:
        """Build a model with `model_init` (called with `trial` when it takes an argument)."""
        n_args = len(inspect.signature(self.model_init).parameters)
        model = self.model_init() if n_args == 0 else self.model_init(trial)
        if model is None:
            raise RuntimeError("model_init returned None")
        return model

    def _place(self, model: nn.Module) -> nn.Module:
        # models dispatched over several devices (device_map) stay where they are
        if spans_devices(model):
            return model
        if str(getattr(model, "quantization_method", None)) == "bitsandbytes":
            return model  # bitsandbytes layers are placed when loaded; .to() would re-quantize them
        return model.to(self.args.device)

    def _inspect_model(self) -> None:
        model = self.model
        params = inspect.signature(model.forward).parameters
        self._signature_columns = [
            n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]
        # a model that takes `num_items_in_batch` normalises its own loss; any other loss is a mean
        # that the Trainer rescales by the batch's share of the items
        self._model_takes_num_items = "num_items_in_batch" in params
        # as transformers decides it: a model with an `accepts_loss_kwargs` attribute says so, otherwise
        # a forward with **kwargs counts as taking `num_items_in_batch` (see `compute_loss`)
        accepts = getattr(model, "accepts_loss_kwargs", None)
        self.model_accepts_loss_kwargs = (
            bool(accepts) if accepts is not None else any(p.kind == p.VAR_KEYWORD for p in params.values())
        )
        name = type(model).__name__
        config = getattr(model, "config", None)
        decoder_only = not getattr(config, "is_encoder_decoder", False)
        loss_type = getattr(model, "loss_type", None)
        # label smoothing shifts the logits of every causal LM (transformers: the causal-LM Auto table)
        self._smoothing_shifts_labels = (
            name.endswith(("ForCausalLM", "LMHeadModel")) or loss_type == "ForCausalLM"
        ) and decoder_only
        # counting a step's label items over labels[..., 1:]: transformers does so only for a model whose
        # loss type it recognises as causal LM ("ForCausalLM" in the class name, or `loss_type`);
        # GPT-2's `GPT2LMHeadModel` is counted over all labels, so its loss under the Trainer comes
        # out (L-1)/L of the mean. Counted the same way, so runs log transformers' numbers.
        self._loss_shifts_labels = ("ForCausalLM" in name or loss_type == "ForCausalLM") and decoder_only
        if self.args.label_names is not None:
            self.label_names = list(self.args.label_names)
        elif name.endswith("ForQuestionAnswering"):
            self.label_names = ["start_positions", "end_positions"]
        else:
            self.label_names = [n for n in self._signature_columns if "label" in n]

    # ---- data -----------------------------------------------------------------------------------

    def _collator_for(self, dataset: Any, description: str = "training") -> Callable:
        if not self.args.remove_unused_columns:
            return self.data_collator
        keep = set(self._signature_columns) | set(self.label_names) | {"label", "label_ids"}
        collate = self.data_collator
        noticed = False

        def collate_used_columns(features: list[Any]) -> Any:
            nonlocal noticed
            if features and isinstance(features[0], Mapping):
                if not noticed:  # once per loader, like transformers' notice
                    noticed = True
                    self._notice_ignored_columns([k for k in features[0] if k not in keep], description)
                kept = [{k: v for k, v in f.items() if k in keep} for f in features]
                if features[0] and not kept[0]:
                    raise ValueError(
                        f"none of the dataset's columns ({', '.join(features[0])}) is an argument of "
                        f"{type(self.model).__name__}.forward ({', '.join(self._signature_columns)}); "
                        "set remove_unused_columns=False to pass them all"
                    )
                features = kept
            return collate(features)

        return collate_used_columns

    def _notice_ignored_columns(self, ignored: list[str], description: str) -> None:
        if not ignored:
            return
        name = type(self.model).__name__
        columns = ", ".join(ignored)
        logger.info(
            "The following columns in the %s set don't have a corresponding argument in `%s.forward` and have "
            "been ignored: %s. If %s are not expected by `%s.forward`,  you can safely ignore this message.",
            description,
            name,
            columns,
            columns,
            name,
        )

    def _lengths(self, dataset: Any) -> list[int]:
        column = self.args.length_column_name
        if hasattr(dataset, "column_names") and column in dataset.column_names:
            return list(dataset[column])
        names = (
            ("input_ids",)
            if self.processing_class is None
            else tuple(getattr(self.processing_class, "model_input_names", ["input_ids"])[:1])
        )
        return [len(dataset[i][names[0]]) for i in range(len(dataset))]

    def _get_train_sampler(self, dataset: Any) -> EpochSampler | None:
        if isinstance(dataset, IterableDataset):
            return None
        args = self.args
        seed = args.data_seed if args.data_seed is not None else args.seed
        lengths = self._lengths(dataset) if args.train_sampling_strategy == "group_by_length" else None
        return EpochSampler(
            len(dataset),
            shuffle=args.train_sampling_strategy != "sequential",
            seed=seed,
            lengths=lengths,
            batch_size=args.train_batch_size,
            # processes of one tensor-parallel group read the same batches
            num_replicas=data_parallel_size(self.model),
            rank=data_parallel_rank(self.model),
        )

    def _dataloader(
        self, dataset: Any, batch_size: int, sampler: Any, drop_last: bool, description: str = "training"
    ) -> DataLoader:
        args = self.args
        workers = args.dataloader_num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self._collator_for(dataset, description),
            drop_last=drop_last,
            num_workers=workers,
            pin_memory=args.dataloader_pin_memory and args.device.type == "cuda",
            persistent_workers=args.dataloader_persistent_workers if workers else False,
            prefetch_factor=args.dataloader_prefetch_factor if workers else None,
            # a private generator: creating an iterator must not draw from the global RNG
            generator=torch.Generator().manual_seed(args.seed),
        )

    def get_train_dataloader(self) -> DataLoader:
        """The training DataLoader (its sampler is an `EpochSampler` for map-style datasets)."""
        if self.train_dataset is None:
            raise ValueError("Trainer: training needs a `train_dataset`")
        sampler = self._get_train_sampler(self.train_dataset)
        return self._dataloader(
            self.train_dataset, self.args.train_batch_size, sampler, self.args.dataloader_drop_last
        )

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        """A sequential DataLoader over `eval_dataset` (default: the Trainer's)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("Trainer: evaluation needs an `eval_dataset`")
        return self._dataloader(
            dataset, self.args.eval_batch_size, None, self.args.dataloader_drop_last, "evaluation"
        )

    def get_test_dataloader(self, test_dataset: Any) -> DataLoader:
        return self.get_eval_dataloader(test_dataset)

    def _prepare_inputs(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            return type(data)({k: self._prepare_inputs(v) for k, v in data.items()})
        if isinstance(data, (tuple, list)):
            return type(data)(self._prepare_inputs(v) for v in data)
        if isinstance(data, torch.Tensor):
            return data.to(self.args.device, non_blocking=True)
        return data

    # ---- optimizer and scheduler ----------------------------------------------------------------

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """The optimizer of `args.optim` (or `optimizer_cls_and_kwargs`) over `model` (default: the
        Trainer's), unless one was given."""
        model = self.model if model is None else model
        if self.optimizer is None:
            if self.optimizer_cls_and_kwargs is None:
                self.optimizer = create_optimizer(model, self.args)
            else:
                cls, kwargs = self.optimizer_cls_and_kwargs
                decay = set(get_decay_parameter_names(model))
                named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
                groups = [
                    {"params": [p for n, p in named if n in decay], "weight_decay": self.args.weight_decay},
                    {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0},
                ]
                self.optimizer = cls(groups, **kwargs)
        return self.optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        """The schedule of `args.lr_scheduler_type` over `num_training_steps`, unless one was given."""
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                optimizer or self.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        self.create_optimizer()
        self.create_scheduler(num_training_steps)

    get_optimizer_cls_and_kwargs = staticmethod(get_optimizer_cls_and_kwargs)

    def _get_learning_rate(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def get_num_trainable_parameters(self) -> int:
        """The number of parameters that require gradients."""
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def get_learning_rates(self) -> list[float]:
        """The learning rate of each optimizer parameter group."""
        if self.optimizer is None:
            raise ValueError("the Trainer has no optimizer yet: call create_optimizer() or train() first")
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_optimizer_group(self, param: str | nn.Parameter | None = None) -> dict | list[dict]:
        """The optimizer group holding `param` (a parameter or its name), or every group when None."""
        if self.optimizer is None:
            raise ValueError("the Trainer has no optimizer yet: call create_optimizer() or train() first")
        if param is None:
            return [group["params"] for group in self.optimizer.param_groups]
        if isinstance(param, str):
            named = dict(self.model.named_parameters())
            if param not in named:
                raise KeyError(f"{type(self.model).__name__} has no parameter named {param!r}")
            param = named[param]
        for group in self.optimizer.param_groups:
            if any(p is param for p in group["params"]):
                return group
        raise ValueError("the parameter is in no optimizer group (frozen, or added after the optimizer)")

    # ---- callbacks ------------------------------------------------------------------------------

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.callback_handler.remove_callback(callback)

    def is_world_process_zero(self) -> bool:
        """Whether this is the main process of the whole run (the one that writes shared files)."""
        return getattr(self.args, "process_index", 0) == 0

    def is_local_process_zero(self) -> bool:
        """Whether this is the main process of its machine."""
        return getattr(self.args, "local_process_index", 0) == 0

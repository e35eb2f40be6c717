"""`Trainer`: the training loop, evaluation, prediction and checkpoints.

The loop in `_train_loop` reads top to bottom: for each epoch, for each optimizer
step, gather `gradient_accumulation_steps` batches, count their label items,
run forward/backward on each (loss scaled by its share of the items), clip,
step, then let the callbacks decide whether to log, evaluate or save.

Exact resume: the data order of an epoch is a function of (seed, epoch)
(`EpochSampler`), the DataLoader gets its own generator, and the RNG states are
restored right before the first resumed step. A resumed run on the CPU is
therefore bit-identical to an uninterrupted one, and the batches already trained
in the current epoch are skipped by index, without loading them.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from pretrained.loading.device_map import spans_devices

from . import checkpoints as ckpt
from .arguments import TrainingArguments
from .callbacks import (
    CallbackHandler,
    DefaultFlowCallback,
    PrinterCallback,
    ProgressCallback,
    TensorBoardCallback,
    TrainerCallback,
)
from .collators import DataCollatorWithPadding, default_data_collator
from .optimizers import create_optimizer, get_decay_parameter_names, get_optimizer_cls_and_kwargs
from .outputs import EvalLoopOutput, EvalPrediction, PredictionOutput, TrainOutput, denumpify, speed_metrics
from .sampling import EpochSampler
from .schedulers import get_scheduler
from .seeding import get_rng_state, set_rng_state, set_seed
from .state import ExportableState, TrainerControl, TrainerState

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


class Trainer:
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
    """

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
        self.state = TrainerState()
        self.control = TrainerControl()
        self.is_in_train = False
        self._pending_save: _Thread | None = None  # a checkpoint being written in the background
        self._pending_state: TrainerState | None = None  # its state, for `on_save`
        self.control = self.callback_handler.on_init_end(args, self.state, self.control)

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
        name = type(model).__name__
        config = getattr(model, "config", None)
        self._loss_shifts_labels = (
            name.endswith(("ForCausalLM", "LMHeadModel"))
            or getattr(model, "loss_type", None) == "ForCausalLM"
        ) and not getattr(config, "is_encoder_decoder", False)
        if self.args.label_names is not None:
            self.label_names = list(self.args.label_names)
        elif name.endswith("ForQuestionAnswering"):
            self.label_names = ["start_positions", "end_positions"]
        else:
            self.label_names = [n for n in self._signature_columns if "label" in n]

    # ---- data -----------------------------------------------------------------------------------

    def _collator_for(self, dataset: Any) -> Callable:
        if not self.args.remove_unused_columns:
            return self.data_collator
        keep = set(self._signature_columns) | set(self.label_names) | {"label", "label_ids"}
        collate = self.data_collator

        def collate_used_columns(features: list[Any]) -> Any:
            if features and isinstance(features[0], Mapping):
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
        )

    def _dataloader(self, dataset: Any, batch_size: int, sampler: Any, drop_last: bool) -> DataLoader:
        args = self.args
        workers = args.dataloader_num_workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self._collator_for(dataset),
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
        return self._dataloader(dataset, self.args.eval_batch_size, None, self.args.dataloader_drop_last)

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

    def create_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of `args.optim` (or `optimizer_cls_and_kwargs`), unless one was given."""
        if self.optimizer is None:
            if self.optimizer_cls_and_kwargs is None:
                self.optimizer = create_optimizer(self.model, self.args)
            else:
                cls, kwargs = self.optimizer_cls_and_kwargs
                decay = set(get_decay_parameter_names(self.model))
                named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
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

    # ---- training -------------------------------------------------------------------------------

    def train(
        self,
        resume_from_checkpoint: str | bool | None = None,
        trial: Any = None,
        ignore_keys_for_eval: list[str] | None = None,
        **kwargs: Any,
    ) -> TrainOutput:
        """Train the model.

        Args:
            resume_from_checkpoint: `True` resumes from the last complete checkpoint in `output_dir`;
                a path resumes from that checkpoint folder. Model, optimizer, schedule, RNG states and
                the position in the data are restored; the batches already trained are skipped by
                index, without being loaded.
            trial: Passed to `model_init` when it takes an argument.
            ignore_keys_for_eval: Output keys left out of the evaluation predictions.

        Returns:
            `TrainOutput(global_step, training_loss, metrics)`.
        """
        if kwargs:
            raise TypeError(f"train() got unexpected keyword arguments: {', '.join(kwargs)}")
        args = self.args
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        if resume_from_checkpoint is None and args.resume_from_checkpoint:
            resume_from_checkpoint = args.resume_from_checkpoint
        if self.model_init is not None:
            set_seed(args.seed, deterministic=args.full_determinism)
            self.model = self.model_wrapped = self._place(self.call_model_init(trial))
            self._inspect_model()
            self.optimizer, self.lr_scheduler = None, None
        if self._created_lr_scheduler:  # a schedule built for an earlier run has the wrong length
            self.lr_scheduler, self._created_lr_scheduler = None, False
        if resume_from_checkpoint is True:
            resume_from_checkpoint = ckpt.get_last_checkpoint(args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(
                    f"resume_from_checkpoint=True but {args.output_dir} holds no complete checkpoint"
                )
        if resume_from_checkpoint is not None:
            if not ckpt.is_complete_checkpoint(resume_from_checkpoint):
                raise ValueError(
                    f"{resume_from_checkpoint} is not a complete checkpoint (no {ckpt.TRAINER_STATE_NAME})"
                )
            ckpt.load_model_weights(self.model, resume_from_checkpoint)
        self.is_in_train = True
        try:
            return self._train_loop(resume_from_checkpoint, trial, ignore_keys_for_eval)
        except BaseException:
            with contextlib.suppress(Exception):  # still finish writing the last checkpoint
                self._finish_pending_save(notify=False)
            raise
        finally:
            self.is_in_train = False

    def _train_loop(
        self, resume: str | None, trial: Any, ignore_keys_for_eval: list[str] | None
    ) -> TrainOutput:
        args = self.args
        ga = args.gradient_accumulation_steps
        dataloader = self.get_train_dataloader()
        sampler = dataloader.sampler if isinstance(dataloader.sampler, EpochSampler) else None

        # -- how long: batches per epoch, optimizer steps per epoch, total steps
        if isinstance(self.train_dataset, IterableDataset):
            if args.max_steps <= 0:
                raise ValueError(
                    "training on an IterableDataset needs `max_steps` > 0 (its length is unknown)"
                )
            batches_per_epoch, max_steps, num_epochs = None, args.max_steps, sys.maxsize
            steps_per_epoch = max_steps
        else:
            batches_per_epoch = len(dataloader)
            if batches_per_epoch == 0:
                raise ValueError(
                    "the train dataloader is empty (dataset smaller than one batch with drop_last?)"
                )
            steps_per_epoch = max(math.ceil(batches_per_epoch / ga), 1)
            if args.max_steps > 0:
                max_steps = args.max_steps
                num_epochs = math.ceil(max_steps / steps_per_epoch)
            else:
                max_steps = math.ceil(args.num_train_epochs * steps_per_epoch)
                num_epochs = math.ceil(args.num_train_epochs)

        # -- state, possibly restored
        self.state = TrainerState(
            stateful_callbacks=[
                cb
                for cb in self.callback_handler.callbacks + [self.control]
                if isinstance(cb, ExportableState)
            ]
        )
        self.state.compute_steps(args, max_steps)
        self.state.train_batch_size = args.train_batch_size
        epochs_done, batches_to_skip = 0, 0
        if resume is not None:
            self.state = TrainerState.load_from_json(os.path.join(resume, ckpt.TRAINER_STATE_NAME))
            if self.state.best_model_checkpoint and not os.path.isdir(self.state.best_model_checkpoint):
                self.state.best_model_checkpoint = None
            if args.restore_callback_states_from_checkpoint:
                self._restore_callback_states()
            if self.state.train_batch_size not in (None, args.train_batch_size):
                logger.warning(
                    "resuming with batch size %d, but the checkpoint was trained with %d: the position in "
                    "the epoch will not match",
                    args.train_batch_size,
                    self.state.train_batch_size,
                )
            epochs_done = self.state.global_step // steps_per_epoch
            if not args.ignore_data_skip:
                batches_to_skip = (self.state.global_step % steps_per_epoch) * ga
        self.state.max_steps = max_steps
        self.state.num_train_epochs = num_epochs
        self.state.compute_steps(args, max_steps)

        # -- model, optimizer, schedule
        model = self.model
        if args.gradient_checkpointing:
            if not hasattr(model, "gradient_checkpointing_enable"):
                raise ValueError(
                    f"gradient_checkpointing=True but {type(model).__name__} has no gradient_checkpointing_enable()"
                )
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs
            )
        self.create_optimizer_and_scheduler(max_steps)
        if args.fp16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler(args.device.type)
        if resume is not None:
            self._load_optimizer_and_scheduler(resume)
        if args.torch_compile:
            model = torch.compile(model, backend=args.torch_compile_backend, mode=args.torch_compile_mode)
        self.model_wrapped = model
        handler = self.callback_handler
        handler.model, handler.optimizer, handler.lr_scheduler = self.model, self.optimizer, self.lr_scheduler
        handler.train_dataloader = dataloader

        logger.info(
            "training: %s steps (%s per epoch), batch %d x %d accumulation",
            max_steps,
            steps_per_epoch,
            args.train_batch_size,
            ga,
        )
        start_time = time.time()
        self._initial_global_step = self.state.global_step
        self._tr_loss = torch.zeros((), device=args.device)  # summed since the last log, on device
        self._total_loss = 0.0
        self._last_logged_step = self.state.global_step
        grad_norm: torch.Tensor | None = None
        learning_rate: float | None = None
        params = list(self.model.parameters())
        self._clip_params = [p for p in params if p.requires_grad]
        model.zero_grad(set_to_none=True)
        model.train()

        self.control = handler.on_train_begin(args, self.state, self.control)
        if args.eval_on_start and resume is None:
            self._evaluate(trial, ignore_keys_for_eval)

        for epoch in range(epochs_done, num_epochs):
            skip = batches_to_skip if epoch == epochs_done else 0
            if sampler is not None:
                sampler.set_epoch(epoch)
                sampler.skip(skip * args.train_batch_size)  # by index: the skipped examples are never read
            dataloader.generator.manual_seed(args.seed + epoch)  # same worker seeds after a resume
            batches = iter(dataloader)
            if sampler is None and skip:  # an iterable dataset can only be skipped by reading it
                for _ in islice(batches, skip):
                    pass
            if resume is not None and epoch == epochs_done:
                self._load_rng_state(resume)  # after building the iterator, before the first step
            self.control = handler.on_epoch_begin(args, self.state, self.control)
            batch_index = skip  # batches of this epoch consumed so far
            total_batches = batches_per_epoch if batches_per_epoch is not None else max_steps * ga
            for update in range(skip // ga, steps_per_epoch):
                last_update = batches_per_epoch is not None and update == steps_per_epoch - 1
                wanted = batches_per_epoch - update * ga if last_update else ga
                micro_batches = list(islice(batches, wanted))
                if not micro_batches:
                    break  # an iterable dataset ran out
                items = self._count_items(micro_batches)
                num_items = (sum(items) or None) if items is not None else None
                self.control = handler.on_step_begin(args, self.state, self.control)
                for i, inputs in enumerate(micro_batches):
                    batch_index += 1
                    self._track_tokens(inputs)
                    # counted on the host above: compute_loss need not count again on the device
                    self._batch_items = items[i] if items is not None else None
                    loss = self.training_step(model, inputs, num_items, len(micro_batches))
                    self._batch_items = None
                    self._add_loss(loss)
                    if i < len(micro_batches) - 1:
                        self.control = handler.on_substep_end(args, self.state, self.control)

                grad_norm = self._clip_gradients(model)
                self.control = handler.on_pre_optimizer_step(args, self.state, self.control)
                self._optimizer_step()
                self.control = handler.on_optimizer_step(args, self.state, self.control)
                learning_rate = self._get_learning_rate()  # the rate this step used
                if not isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.lr_scheduler.step()
                for p in params:  # model.zero_grad(), without walking the module tree each step
                    p.grad = None
                self.state.global_step += 1
                self.state.epoch = epoch + batch_index / total_batches
                self.control = handler.on_step_end(args, self.state, self.control)
                self._maybe_log_save_evaluate(
                    grad_norm, learning_rate, trial, ignore_keys_for_eval, start_time
                )
                pending = self._pending_save
                if pending is not None and not pending.is_alive():
                    self._finish_pending_save()  # written in the background: `on_save` now
                if self.control.should_epoch_stop or self.control.should_training_stop:
                    break
            self.control = handler.on_epoch_end(args, self.state, self.control)
            self._maybe_log_save_evaluate(grad_norm, learning_rate, trial, ignore_keys_for_eval, start_time)
            if self.control.should_training_stop or self.state.global_step >= max_steps:
                break

        return self._finish_training(start_time, max_steps)

    def _finish_training(self, start_time: float, max_steps: int) -> TrainOutput:
        args = self.args
        self._finish_pending_save()
        self._total_loss += self._tr_loss.item()
        steps = self.state.global_step - self._initial_global_step
        train_loss = self._total_loss / max(steps, 0.001)
        metrics = speed_metrics("train", start_time, num_steps=steps)
        metrics["total_flos"] = self.state.total_flos
        metrics["train_loss"] = train_loss
        self.log(metrics)
        if args.load_best_model_at_end and self.state.best_model_checkpoint is not None:
            ckpt.load_model_weights(self.model, self.state.best_model_checkpoint)
        if self.state.best_model_checkpoint is not None and args.save_total_limit == 1:
            for path in ckpt.sorted_checkpoints(args.output_dir):
                if not os.path.samefile(path, self.state.best_model_checkpoint):
                    shutil.rmtree(path, ignore_errors=True)
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        return TrainOutput(self.state.global_step, train_loss, metrics)

    def _count_items(self, micro_batches: list[Any]) -> list[int] | None:
        """Label items (tokens, or examples) of each accumulated batch; None if not countable."""
        counts = []
        for batch in micro_batches:
            labels = batch.get("shift_labels") if isinstance(batch, Mapping) else None
            shifted = labels is not None
            if labels is None:
                labels = batch.get("labels") if isinstance(batch, Mapping) else None
            if not isinstance(labels, torch.Tensor):
                return None
            if self._loss_shifts_labels and not shifted:
                labels = labels[..., 1:]
            counts.append(
                labels.numel() if labels.is_floating_point() else int(labels.ne(IGNORE_INDEX).sum())
            )
        return counts

    def _track_tokens(self, inputs: Any) -> None:
        mode = self.args.include_num_input_tokens_seen
        if mode == "no" or not isinstance(inputs, Mapping) or "input_ids" not in inputs:
            return
        if mode == "non_padding" and "attention_mask" in inputs:
            self.state.num_input_tokens_seen += int(inputs["attention_mask"].sum())
        else:
            self.state.num_input_tokens_seen += inputs["input_ids"].numel()

    def _add_loss(self, loss: torch.Tensor) -> None:
        if self.args.logging_nan_inf_filter:
            # a nan/inf step counts as the average so far, without a device sync
            since = 1 + self.state.global_step - self._last_logged_step
            loss = torch.where(torch.isfinite(loss), loss, self._tr_loss / since)
        self._tr_loss += loss

    def _clip_gradients(self, model: nn.Module) -> torch.Tensor | None:
        if not self.args.max_grad_norm:
            return None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = getattr(self, "_clip_params", None) or [p for p in model.parameters() if p.requires_grad]
        return torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm)

    def _optimizer_step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()

    def autocast_smart_context_manager(self, training: bool = True) -> contextlib.AbstractContextManager:
        """Autocast in bf16/fp16 when asked for (training: `bf16`/`fp16`; eval: also `*_full_eval`)."""
        args = self.args
        dtype = None
        if args.bf16 or (not training and args.bf16_full_eval):
            dtype = torch.bfloat16
        elif args.fp16 or (not training and args.fp16_full_eval):
            dtype = torch.float16
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=args.device.type, dtype=dtype)

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: int | None = None,
        num_micro_batches: int = 1,
    ) -> torch.Tensor:
        """Forward and backward on one micro-batch; returns its (detached) share of the step's loss."""
        if not model.training:  # (evaluation switched it off); a submodule frozen in eval mode stays so
            model.train()
        inputs = self._prepare_inputs(inputs)
        with self.autocast_smart_context_manager():
            loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        if num_items_in_batch is None:
            loss = loss / num_micro_batches  # no item count: each micro-batch weighs the same
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return loss.detach()

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: int | torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """The loss of one batch.

        With `num_items_in_batch` (label items in the whole accumulated batch) the result is this
        batch's summed loss divided by it, so the micro-batch losses add up to the mean over the
        accumulated batch. A model without a `num_items_in_batch` argument returns a mean; it is
        scaled by this batch's item count over `num_items_in_batch`.
        """
        smoothing = self.args.label_smoothing_factor
        labels = None
        if (smoothing or self.compute_loss_func is not None) and "labels" in inputs:
            inputs = dict(inputs)
            labels = inputs.pop("labels")
        local_items = None
        if num_items_in_batch is not None and self.compute_loss_func is None and not smoothing:
            if self._model_takes_num_items:
                inputs = {**inputs, "num_items_in_batch": num_items_in_batch}
            else:
                local_items = getattr(self, "_batch_items", None)
                if local_items is None:
                    local_items = self._local_items(inputs)
        outputs = model(**inputs)
        if self.compute_loss_func is not None:
            loss = self.compute_loss_func(outputs, labels, num_items_in_batch=num_items_in_batch)
        elif labels is not None:
            loss = self._smoothed_loss(outputs, labels, num_items_in_batch)
        else:
            if isinstance(outputs, Mapping):
                if outputs.get("loss") is None:
                    raise ValueError(
                        f"the model returned no loss (keys: {', '.join(outputs.keys())}); "
                        f"the batch had keys {', '.join(inputs.keys())}: are the labels missing?"
                    )
                loss = outputs["loss"]
            else:
                loss = outputs[0]
            if local_items is not None:
                loss = loss * (local_items / num_items_in_batch)
        return (loss, outputs) if return_outputs else loss

    def _local_items(self, inputs: Mapping) -> torch.Tensor | int | None:
        labels = inputs.get("shift_labels")
        shifted = labels is not None
        if labels is None:
            labels = inputs.get("labels")
        if not isinstance(labels, torch.Tensor):
            return None
        if labels.is_floating_point():
            return labels.numel()
        if self._loss_shifts_labels and not shifted:
            labels = labels[..., 1:]
        return labels.ne(IGNORE_INDEX).sum()

    def _smoothed_loss(self, outputs: Any, labels: torch.Tensor, num_items: Any) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        if self._loss_shifts_labels:
            logits, labels = logits[..., :-1, :], labels[..., 1:]
        logits = logits.float().reshape(-1, logits.size(-1))
        labels = labels.reshape(-1).to(logits.device)
        reduction = "mean" if num_items is None else "sum"
        loss = nn.functional.cross_entropy(
            logits,
            labels,
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.args.label_smoothing_factor,
            reduction=reduction,
        )
        return loss if num_items is None else loss / num_items

    # ---- logging, evaluation, saving during training ----------------------------------------

    def _maybe_log_save_evaluate(
        self,
        grad_norm: torch.Tensor | None,
        learning_rate: float | None,
        trial: Any,
        ignore_keys_for_eval: list[str] | None,
        start_time: float,
    ) -> None:
        if self.control.should_log and self.state.global_step > self._last_logged_step:
            loss_sum = self._tr_loss.item()
            self._tr_loss.zero_()
            logs: dict[str, float] = {"loss": loss_sum / (self.state.global_step - self._last_logged_step)}
            if grad_norm is not None:
                logs["grad_norm"] = (
                    grad_norm.item() if isinstance(grad_norm, torch.Tensor) else float(grad_norm)
                )
            logs["learning_rate"] = learning_rate if learning_rate is not None else self._get_learning_rate()
            self._total_loss += loss_sum
            self._last_logged_step = self.state.global_step
            self.log(logs)
        if self.control.should_evaluate:
            metrics = self._evaluate(trial, ignore_keys_for_eval)
            is_best = self._determine_best_metric(metrics)
            if self.args.save_strategy == "best":
                self.control.should_save = is_best
        if self.control.should_save:
            self._save_checkpoint()
            if self._pending_save is None:
                self.control = self.callback_handler.on_save(self.args, self.state, self.control)
            else:  # `on_save` comes once the folder is written (see _finish_pending_save)
                self.control.should_save = False

    def _evaluate(self, trial: Any, ignore_keys: list[str] | None) -> dict[str, float]:
        metrics = self.evaluate(ignore_keys=ignore_keys)
        if isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            name = self.args.metric_for_best_model
            name = name if name.startswith("eval_") else f"eval_{name}"
            if name not in metrics:
                raise KeyError(
                    f"reduce_lr_on_plateau needs the metric {name!r}; evaluation returned {list(metrics)}"
                )
            self.lr_scheduler.step(metrics[name])
        return metrics

    def _determine_best_metric(self, metrics: dict[str, float]) -> bool:
        name = self.args.metric_for_best_model
        if name is None:
            return False
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            raise KeyError(
                f"metric_for_best_model={name!r} ({key}) is not among the evaluation metrics: {', '.join(metrics)}"
            )
        value = metrics[key]
        best = self.state.best_metric
        better = best is None or (value > best if self.args.greater_is_better else value < best)
        if better:
            self.state.best_metric = value
            if self.args.save_strategy != "no":
                self.state.best_global_step = self.state.global_step
        return better

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add `epoch` and `step` to `logs`, append them to `state.log_history` and call `on_log`."""
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch
        if self.args.include_num_input_tokens_seen != "no":
            logs["num_input_tokens_seen"] = self.state.num_input_tokens_seen
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self.control = self.callback_handler.on_log(self.args, self.state, self.control, logs=logs)

    # ---- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        args = self.args
        self._finish_pending_save()  # one checkpoint in flight at a time
        step = self.state.global_step
        final = os.path.join(args.output_dir, f"{ckpt.PREFIX_CHECKPOINT_DIR}-{step}")
        if self.state.best_global_step:
            best = os.path.join(
                args.output_dir, f"{ckpt.PREFIX_CHECKPOINT_DIR}-{self.state.best_global_step}"
            )
            if best == final or os.path.isdir(best):
                self.state.best_model_checkpoint = best
        stateful = [
            cb for cb in self.callback_handler.callbacks + [self.control] if isinstance(cb, ExportableState)
        ]
        self.state.stateful_callbacks = TrainerState(stateful_callbacks=stateful).stateful_callbacks
        files: dict[str, Any] = {}
        if not args.save_only_model:
            files[ckpt.OPTIMIZER_NAME] = self.optimizer.state_dict()
            files[ckpt.SCHEDULER_NAME] = self.lr_scheduler.state_dict()
            if self.scaler is not None:
                files[ckpt.SCALER_NAME] = self.scaler.state_dict()
            files[ckpt.RNG_STATE_NAME] = get_rng_state()
        state_json = self.state.to_json_string()
        if args.save_in_background:
            # training may change every live tensor from now on: write from a host copy
            model_state = ckpt.clone_to_host(self.model.state_dict())
            files = ckpt.clone_to_host(files)
            self._pending_save = _Thread(self._write_checkpoint, step, model_state, files, state_json)
            self._pending_state = TrainerState.from_json_string(state_json)  # what on_save will see
        else:
            self._write_checkpoint(step, None, files, state_json)

    def _write_checkpoint(self, step: int, model_state: Any, files: dict[str, Any], state_json: str) -> None:
        """Fill `tmp-checkpoint-N/`, write `trainer_state.json` last, rename it to `checkpoint-N/`, rotate."""
        args = self.args
        tmp, final = ckpt.begin_checkpoint(args.output_dir, step)
        self._save_model_files(tmp, model_state)
        for name, obj in files.items():
            ckpt.atomic_torch_save(obj, os.path.join(tmp, name))
        self.state.save_to_json(
            os.path.join(tmp, ckpt.TRAINER_STATE_NAME), state_json
        )  # last: marks completion
        ckpt.publish_checkpoint(tmp, final)
        ckpt.rotate_checkpoints(args.output_dir, args.save_total_limit, self.state.best_model_checkpoint)

    def _finish_pending_save(self, notify: bool = True) -> None:
        """Wait for a checkpoint being written in the background (re-raising its error), then fire
        `on_save` with the state as it was saved, as transformers does after a synchronous save."""
        pending, self._pending_save = self._pending_save, None
        if pending is not None:
            pending.join()
            if notify:
                self.control = self.callback_handler.on_save(self.args, self._pending_state, self.control)
            self._pending_state = None

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the model (safetensors), the processing class and `training_args.bin` to `output_dir`."""
        self._save_model_files(output_dir or self.args.output_dir, None)

    def _save_model_files(self, output_dir: str, model_state: dict[str, torch.Tensor] | None) -> None:
        os.makedirs(output_dir, exist_ok=True)
        ckpt.save_model_weights(self.model, output_dir, model_state)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(output_dir)
        # JSON-safe data (not a pickled TrainingArguments): loads with weights_only=True
        ckpt.atomic_torch_save(self.args.to_dict(), os.path.join(output_dir, ckpt.TRAINING_ARGS_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ckpt.OPTIMIZER_NAME)
        if not os.path.isfile(path):
            logger.warning("%s has no %s: the optimizer starts fresh", checkpoint, ckpt.OPTIMIZER_NAME)
            return
        self.optimizer.load_state_dict(ckpt.torch_load(path))
        path = os.path.join(checkpoint, ckpt.SCHEDULER_NAME)
        if os.path.isfile(path):
            self.lr_scheduler.load_state_dict(ckpt.torch_load(path))
        path = os.path.join(checkpoint, ckpt.SCALER_NAME)
        if self.scaler is not None and os.path.isfile(path):
            self.scaler.load_state_dict(ckpt.torch_load(path))

    def _load_rng_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ckpt.RNG_STATE_NAME)
        if not os.path.isfile(path):
            logger.warning(
                "%s has no %s: the resumed run will not be bit-identical", checkpoint, ckpt.RNG_STATE_NAME
            )
            return
        try:
            state = ckpt.torch_load(path)
        except Exception as e:  # e.g. numpy arrays pickled by another writer
            logger.warning("could not read %s (%s): RNG states not restored", path, e)
            return
        set_rng_state(state)

    def _restore_callback_states(self) -> None:
        saved = self.state.stateful_callbacks or {}
        for cb in self.callback_handler.callbacks + [self.control]:
            entry = saved.get(type(cb).__name__)
            if entry is None or not isinstance(cb, ExportableState):
                continue
            entry = entry[0] if isinstance(entry, list) else entry
            for k, v in entry.get("attributes", {}).items():
                setattr(cb, k, v)
            if isinstance(cb, TrainerControl):
                for k, v in entry.get("args", {}).items():
                    setattr(cb, k, v)

    # ---- evaluation and prediction ----------------------------------------------------------

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Loss (and `compute_metrics`) over `eval_dataset`; keys are prefixed with `metric_key_prefix`.

        A dict of datasets is evaluated one by one with prefixes `eval_<name>`.
        """
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if isinstance(dataset, dict):
            metrics: dict[str, float] = {}
            for name, ds in dataset.items():
                metrics.update(self.evaluate(ds, ignore_keys, f"{metric_key_prefix}_{name}"))
            return metrics
        dataloader = self.get_eval_dataloader(dataset)
        start = time.time()
        output = self.evaluation_loop(
            dataloader,
            description="Evaluation",
            prediction_loss_only=True if self.compute_metrics is None else None,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        output.metrics.update(
            speed_metrics(
                metric_key_prefix,
                start,
                num_samples=output.num_samples,
                num_steps=math.ceil(output.num_samples / self.args.eval_batch_size),
            )
        )
        self.log(output.metrics)
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics=output.metrics
        )
        return output.metrics

    def predict(
        self, test_dataset: Any, ignore_keys: list[str] | None = None, metric_key_prefix: str = "test"
    ) -> PredictionOutput:
        """Predictions (numpy), label ids and metrics over `test_dataset`."""
        dataloader = self.get_test_dataloader(test_dataset)
        start = time.time()
        output = self.evaluation_loop(
            dataloader, description="Prediction", ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )
        output.metrics.update(speed_metrics(metric_key_prefix, start, num_samples=output.num_samples))
        self.control = self.callback_handler.on_predict(
            self.args, self.state, self.control, metrics=output.metrics
        )
        return PredictionOutput(output.predictions, output.label_ids, output.metrics)

    def evaluation_loop(
        self,
        dataloader: DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        """Run `prediction_step` over `dataloader`, gather losses/logits/labels and compute metrics."""
        args = self.args
        if prediction_loss_only is None:
            prediction_loss_only = args.prediction_loss_only
        model = self.model
        model.eval()
        self.callback_handler.eval_dataloader = dataloader
        want_inputs = "inputs" in args.include_for_metrics
        gathered: dict[str, list[Any]] = {"losses": [], "preds": [], "labels": [], "inputs": []}
        host: dict[str, Any] = {k: None for k in gathered}
        num_samples = 0

        def flush() -> None:
            # move what accumulated on the device to numpy (every eval_accumulation_steps batches)
            for k, v in gathered.items():
                if v:
                    chunk = _concat_all([_to_numpy(x) for x in v])
                    host[k] = chunk if host[k] is None else _concat_all([host[k], chunk])
                    v.clear()

        for step, inputs in enumerate(dataloader):
            batch_size = _batch_size(inputs)
            num_samples += batch_size
            loss, logits, labels = self.prediction_step(model, inputs, prediction_loss_only, ignore_keys)
            if loss is not None:
                gathered["losses"].append(loss.detach().float().reshape(1).repeat(batch_size))
            if logits is not None:
                if self.preprocess_logits_for_metrics is not None:
                    logits = self.preprocess_logits_for_metrics(logits, labels)
                gathered["preds"].append(logits)
            if labels is not None:
                gathered["labels"].append(labels)
            if want_inputs and isinstance(inputs, Mapping) and "input_ids" in inputs:
                gathered["inputs"].append(inputs["input_ids"])
            self.control = self.callback_handler.on_prediction_step(args, self.state, self.control)
            if args.eval_accumulation_steps is not None and (step + 1) % args.eval_accumulation_steps == 0:
                flush()
        flush()

        preds, label_ids = host["preds"], host["labels"]
        metrics: dict[str, Any] = {}
        if self.compute_metrics is not None and preds is not None and label_ids is not None:
            extra = {}
            if want_inputs:
                extra["inputs"] = host["inputs"]
            if "loss" in args.include_for_metrics:
                extra["losses"] = host["losses"]
            metrics = dict(self.compute_metrics(EvalPrediction(preds, label_ids, **extra)))
        metrics = denumpify(metrics)
        if host["losses"] is not None:
            metrics["loss"] = float(np.mean(host["losses"]))
        for key in list(metrics):
            if not key.startswith(f"{metric_key_prefix}_"):
                metrics[f"{metric_key_prefix}_{key}"] = metrics.pop(key)
        return EvalLoopOutput(preds, label_ids, metrics, num_samples)

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, Any, Any]:
        """`(loss, logits, labels)` of one batch, without gradients."""
        inputs = self._prepare_inputs(inputs)
        has_labels = bool(self.label_names) and all(inputs.get(k) is not None for k in self.label_names)
        if ignore_keys is None:
            ignore_keys = list(
                getattr(getattr(model, "config", None), "keys_to_ignore_at_inference", None) or []
            )
        labels = None
        if has_labels:
            labels = tuple(inputs[k].detach() for k in self.label_names)
            labels = labels[0] if len(labels) == 1 else labels
        with torch.no_grad(), self.autocast_smart_context_manager(training=False):
            if has_labels or self.compute_loss_func is not None and "labels" in inputs:
                loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
                loss = loss.detach().mean()
            else:
                loss, outputs = None, model(**inputs)
        if prediction_loss_only:
            return loss, None, None
        if isinstance(outputs, Mapping):
            logits = tuple(v for k, v in outputs.items() if k not in ignore_keys + ["loss"])
        else:
            logits = tuple(outputs[1:] if has_labels else outputs)
        logits = _detach(logits)
        if len(logits) == 1:
            logits = logits[0]
        return loss, logits, labels

    # ---- callbacks ------------------------------------------------------------------------------

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.callback_handler.remove_callback(callback)

    def is_world_process_zero(self) -> bool:
        return True

    def is_local_process_zero(self) -> bool:
        return True


# ---- helpers for gathering evaluation outputs ---------------------------------------------------


def _batch_size(inputs: Any) -> int:
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    for v in values:
        if isinstance(v, torch.Tensor) and v.dim() > 0:
            return v.shape[0]
    return 1


def _detach(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_detach(v) for v in x)
    if isinstance(x, Mapping):
        return {k: _detach(v) for k, v in x.items()}
    return x.detach() if isinstance(x, torch.Tensor) else x


def _to_numpy(x: Any) -> Any:
    if isinstance(x, (tuple, list)):
        return type(x)(_to_numpy(v) for v in x)
    if isinstance(x, Mapping):
        return {k: _to_numpy(v) for k, v in x.items()}
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return x


def _concat_all(parts: list[Any]) -> Any:
    """Concatenate along the batch; arrays with different sequence lengths are padded with -100."""
    first = parts[0]
    if isinstance(first, (tuple, list)):
        return type(first)(_concat_all([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, Mapping):
        return {k: _concat_all([p[k] for p in parts]) for k in first}
    if first.ndim <= 1 or all(p.shape[1:] == first.shape[1:] for p in parts):
        return np.concatenate(parts, axis=0)
    longest = max(p.shape[1] for p in parts)
    padded = []
    for p in parts:
        out = np.full((p.shape[0], longest, *p.shape[2:]), IGNORE_INDEX, dtype=p.dtype)
        out[:, : p.shape[1]] = p
        padded.append(out)
    return np.concatenate(padded, axis=0)


class _Thread(threading.Thread):
    """Runs `fn(*args, **kwargs)` at once; `join()` re-raises its exception in the caller."""

    def __init__(self, fn: Callable, *args: Any, **kwargs: Any):
        super().__init__(daemon=True)
        self._call = (fn, args, kwargs)
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        fn, args, kwargs = self._call
        try:
            fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller by join()
            self._error = e

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error

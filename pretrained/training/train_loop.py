"""The training loop of `Trainer`, split the way transformers' overridable methods are.

`train` -> `_inner_training_loop`, one epoch at a time -> `_run_epoch`, one optimizer step at a time:
`get_batch_samples` gathers the step's micro-batches and counts their label items, `training_step`
runs forward/backward on each, `_optimizer_step` clips and steps, `_maybe_log_save_evaluate` acts on
what the callbacks asked for. Per-run values travel as arguments: the `TrainingPlan` (how long) and
the `RunningLoss` (what to log).

Exact resume: the data order of an epoch is a function of (seed, epoch) (`EpochSampler`), the
DataLoader gets its own generator, and the RNG states are restored right before the first resumed
step. A resumed run on the CPU is therefore bit-identical to an uninterrupted one, and the batches
already trained in the current epoch are skipped by index, without loading them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from . import checkpoints as ckpt
from . import distributed
from .loss import count_label_items
from .outputs import TrainOutput, speed_metrics
from .progress import RunningLoss, TrainingPlan
from .sampling import EpochSampler
from .seeding import set_seed
from .special_tokens import align_special_tokens
from .state import TrainerState

logger = logging.getLogger(__name__)


class TrainingLoopMixin:
    """`train` and the methods of its loop, for `Trainer`."""

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
                    f"resume_from_checkpoint=True but {args.output_dir} holds no complete checkpoint to resume from"
                )
        if resume_from_checkpoint is not None:
            problem = ckpt.checkpoint_problem(resume_from_checkpoint)
            if problem is not None:
                raise ValueError(f"{resume_from_checkpoint} is not a complete checkpoint: {problem}")
            if distributed.has_dtensor_parameters(self.model):  # a tensor-parallel model: shards of the weights
                distributed.load_full_state_dict(self.model, ckpt._read_state_dict(resume_from_checkpoint))
            else:
                ckpt.load_model_weights(self.model, resume_from_checkpoint)
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        if hasattr(tokenizer, "pad_token_id") and getattr(self.model, "config", None) is not None:
            align_special_tokens(self.model, self.processing_class)  # as transformers, before training
        self.is_in_train = True
        try:
            return self._inner_training_loop(resume_from_checkpoint, trial, ignore_keys_for_eval)
        except BaseException:
            with contextlib.suppress(Exception):  # still finish writing the last checkpoint
                self._finish_pending_save(notify=False)
            raise
        finally:
            self.is_in_train = False

    def _inner_training_loop(
        self, resume_from_checkpoint: str | None, trial: Any, ignore_keys_for_eval: list[str] | None
    ) -> TrainOutput:
        """Plan, state and optimizer for this run, then its epochs, from a checkpoint's position if given."""
        args, handler = self.args, self.callback_handler
        train_dataloader = self.get_train_dataloader()
        iterable = isinstance(self.train_dataset, IterableDataset)
        plan = TrainingPlan.from_args(args, None if iterable else len(train_dataloader))
        epochs_trained, batches_to_skip = self._init_training_state(plan, resume_from_checkpoint)
        model = self._prepare_for_training(plan.max_steps, train_dataloader, resume_from_checkpoint)
        self._log_training_start(
            plan, train_dataloader, model, epochs_trained, batches_to_skip, resume_from_checkpoint
        )
        self._initial_num_input_tokens_seen = self.state.num_input_tokens_seen
        start_time = time.time()
        tr_loss = RunningLoss(self.state.global_step, args.device, args.logging_nan_inf_filter)
        model.zero_grad(set_to_none=True)
        model.train()
        self.control = handler.on_train_begin(args, self.state, self.control)
        if args.eval_on_start and resume_from_checkpoint is None:
            self._evaluate(trial, ignore_keys_for_eval)

        for epoch in range(epochs_trained, plan.num_epochs):
            skip = batches_to_skip if epoch == epochs_trained else 0
            # the RNG states are restored where the saving run stood: before the epoch's iterator (which
            # draws from the global RNG) at an epoch's start, after it mid-epoch
            resuming = resume_from_checkpoint is not None and epoch == epochs_trained
            if resuming and skip == 0:
                self._load_rng_state(resume_from_checkpoint)
            epoch_iterator = self._epoch_iterator(train_dataloader, epoch, skip)
            if resuming and skip:
                self._load_rng_state(resume_from_checkpoint)
            self.control = handler.on_epoch_begin(args, self.state, self.control)
            self._run_epoch(
                model, epoch, epoch_iterator, plan, skip, tr_loss, trial, ignore_keys_for_eval, start_time
            )
            if self.control.should_training_stop or self.state.global_step >= plan.max_steps:
                break
        return self._finalize_training(trial, tr_loss, start_time)

    def _num_train_samples(self, plan: TrainingPlan, train_dataloader: DataLoader) -> tuple[int, float]:
        """(examples in the dataset, samples the whole schedule trains on), as transformers counts them."""
        args = self.args
        total_batch = args.train_batch_size * plan.gradient_accumulation_steps
        if isinstance(self.train_dataset, IterableDataset) or args.max_steps > 0:
            examples = len(self.train_dataset) if hasattr(self.train_dataset, "__len__") else 0
            return examples or total_batch * plan.max_steps, plan.max_steps * total_batch
        examples = self.num_examples(train_dataloader)
        return examples, examples * args.num_train_epochs

    def _log_training_start(
        self,
        plan: TrainingPlan,
        train_dataloader: DataLoader,
        model: nn.Module,
        epochs_trained: int,
        batches_to_skip: int,
        resume_from_checkpoint: str | None,
    ) -> None:
        """The `***** Running training *****` block at INFO, with transformers' lines and counts."""
        args = self.args
        examples, self._train_samples = self._num_train_samples(plan, train_dataloader)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        logger.info("***** Running training *****")
        logger.info(f"  Num examples = {examples:,}")
        logger.info(f"  Num Epochs = {plan.num_epochs:,}")
        logger.info(f"  Num update steps per epoch = {plan.steps_per_epoch:,}")
        logger.info(f"  Instantaneous batch size per device = {args.per_device_train_batch_size:,}")
        total = args.train_batch_size * plan.gradient_accumulation_steps
        logger.info(f"  Total train batch size (w. parallel, distributed & accumulation) = {total:,}")
        logger.info(f"  Gradient Accumulation steps = {plan.gradient_accumulation_steps}")
        logger.info(f"  Total optimization steps = {plan.max_steps:,}")
        logger.info(f"  Number of trainable parameters = {trainable:,}")
        if resume_from_checkpoint is not None:
            logger.info(
                f"  Resuming training from checkpoint with epoch {epochs_trained} and global step "
                f"{self.state.global_step}"
            )
            if not args.ignore_data_skip:
                logger.info(
                    f"  Fast-forwarding the dataloader past {epochs_trained} epochs and "
                    f"{batches_to_skip // plan.gradient_accumulation_steps} batches to resume from the exact "
                    "training state."
                )

    def _init_training_state(self, plan: TrainingPlan, resume_from_checkpoint: str | None) -> tuple[int, int]:
        """A fresh `TrainerState`, or the checkpoint's; returns (epochs trained, batches to skip in the next)."""
        args = self.args
        self.state = TrainerState(
            stateful_callbacks=self._stateful_callbacks(),
            is_local_process_zero=self.is_local_process_zero(),
            is_world_process_zero=self.is_world_process_zero(),
        )
        self.state.train_batch_size = args.train_batch_size
        epochs_trained, batches_to_skip = 0, 0
        if resume_from_checkpoint is not None:
            self.state = TrainerState.load_from_json(
                os.path.join(resume_from_checkpoint, ckpt.TRAINER_STATE_NAME)
            )
            # (written by the main process: each process is what it is)
            self.state.is_local_process_zero = self.is_local_process_zero()
            self.state.is_world_process_zero = self.is_world_process_zero()
            if self.state.best_model_checkpoint and not os.path.isdir(self.state.best_model_checkpoint):
                self.state.best_model_checkpoint = None
            self._load_callback_state()
            if self.state.train_batch_size not in (None, args.train_batch_size):
                logger.warning(
                    "resuming with batch size %d, but the checkpoint was trained with %d: the position in "
                    "the epoch will not match",
                    args.train_batch_size,
                    self.state.train_batch_size,
                )
            epochs_trained = self.state.global_step // plan.steps_per_epoch
            if not args.ignore_data_skip:
                steps_done = self.state.global_step % plan.steps_per_epoch
                batches_to_skip = steps_done * plan.gradient_accumulation_steps
        self.state.max_steps = plan.max_steps
        self.state.num_train_epochs = plan.num_epochs
        self.state.compute_steps(args, plan.max_steps)
        return epochs_trained, batches_to_skip

    def _prepare_for_training(
        self, max_steps: int, train_dataloader: DataLoader, resume_from_checkpoint: str | None
    ) -> nn.Module:
        """Optimizer, schedule and scaler (restored when resuming); returns the model to train."""
        args = self.args
        model = self.model
        if args.gradient_checkpointing:
            if not hasattr(model, "gradient_checkpointing_enable"):
                raise ValueError(
                    f"gradient_checkpointing=True but {type(model).__name__} has no gradient_checkpointing_enable()"
                )
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs
            )
        if model is self.model_wrapped:  # not yet wrapped for several processes (a second train() is)
            # before the optimizer: FSDP replaces the parameters by their shards
            model = distributed.wrap_model(model, args)
        self.create_optimizer_and_scheduler(max_steps)
        if args.fp16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler(args.device.type)
        if resume_from_checkpoint is not None:
            self._load_optimizer_and_scheduler(resume_from_checkpoint)
            self._load_scaler(resume_from_checkpoint)
        if args.torch_compile and model is self.model:
            model = torch.compile(model, backend=args.torch_compile_backend, mode=args.torch_compile_mode)
        self.model_wrapped = model
        handler = self.callback_handler
        handler.model, handler.optimizer, handler.lr_scheduler = self.model, self.optimizer, self.lr_scheduler
        handler.train_dataloader = train_dataloader
        return model

    def _epoch_iterator(self, train_dataloader: DataLoader, epoch: int, skip: int) -> Iterator[Any]:
        """The batches of `epoch`, past its first `skip` (skipped by index, unread, where a sampler allows)."""
        args = self.args
        sampler = train_dataloader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.set_epoch(epoch)
            sampler.skip(skip * args.train_batch_size)
        train_dataloader.generator.manual_seed(args.seed + epoch)  # same worker seeds after a resume
        batches = iter(train_dataloader)
        # transformers' loader draws its workers' base seed from the global torch RNG when an epoch's
        # iterator is made (ours comes from the private generator): draw once too, so that dropout
        # afterwards gets the same masks as a transformers run with the same seed
        torch.empty((), dtype=torch.int64).random_()
        if not isinstance(sampler, EpochSampler) and skip:  # an iterable dataset is skipped by reading it
            for _ in islice(batches, skip):
                pass
        return _one_ahead(batches)

    def _run_epoch(
        self,
        model: nn.Module,
        epoch: int,
        epoch_iterator: Iterator[Any],
        plan: TrainingPlan,
        skip: int,
        tr_loss: RunningLoss,
        trial: Any,
        ignore_keys_for_eval: list[str] | None,
        start_time: float,
    ) -> None:
        """The optimizer steps of one epoch, from its micro-batch `skip` on (0 unless resuming)."""
        args, handler = self.args, self.callback_handler
        params = list(self.model.parameters())
        grad_norm = lr = None  # of the last step: logged again at the epoch's end
        batches_done = skip
        for step in range(skip // plan.gradient_accumulation_steps, plan.steps_per_epoch):
            batch_samples, num_items_in_batch = self.get_batch_samples(
                epoch_iterator, plan.batches_in_step(step), args.device
            )
            if not batch_samples:
                break  # an iterable dataset ran out
            self.current_gradient_accumulation_steps = len(batch_samples)
            self.control = handler.on_step_begin(args, self.state, self.control)
            for i, inputs in enumerate(batch_samples):
                self._track_num_input_tokens(inputs)
                self.current_flos += float(self.floating_point_ops(inputs))
                # DDP: gradients are all-reduced once per optimizer step, with its last micro-batch
                with distributed.no_sync(model, last=i == len(batch_samples) - 1):
                    loss = self.training_step(model, inputs, num_items_in_batch)
                tr_loss.add(loss, self.state.global_step)
                if i < len(batch_samples) - 1:
                    self.control = handler.on_substep_end(args, self.state, self.control)
            batches_done += len(batch_samples)
            grad_norm, lr = self._optimizer_step(model, params)
            self.state.global_step += 1
            self.state.epoch = epoch + batches_done / plan.batches_per_epoch
            self.control = handler.on_step_end(args, self.state, self.control)
            self._maybe_log_save_evaluate(
                tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time, learning_rate=lr
            )
            self._poll_pending_save()  # a checkpoint written in the background gets its `on_save` now
            if self.control.should_epoch_stop or self.control.should_training_stop:
                break
        self.control = handler.on_epoch_end(args, self.state, self.control)
        self._maybe_log_save_evaluate(
            tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time, learning_rate=lr
        )

    def get_batch_samples(
        self, epoch_iterator: Iterator[Any], num_batches: int, device: torch.device
    ) -> tuple[list[Any], int | None]:
        """The next `num_batches` micro-batches (fewer where the epoch ends) and their label items.

        Args:
            epoch_iterator: The epoch's batches.
            num_batches: Micro-batches to take (the accumulation of one optimizer step).
            device: The training device (the count stays a host int: the batches are still on the host).

        Returns:
            `(batch_samples, num_items_in_batch)`: `num_items_in_batch` is the label items of all the
            micro-batches, or None when one of them has no countable labels.
        """
        batch_samples = list(islice(epoch_iterator, num_batches))
        return batch_samples, self._get_num_items_in_batch(batch_samples, device)

    def _get_num_items_in_batch(self, batch_samples: list[Any], device: torch.device) -> int | None:
        total = 0
        for batch in batch_samples:
            items = count_label_items(batch, self._loss_shifts_labels)
            if items is None:
                return None
            total += int(items)
        if self.args.average_tokens_across_devices and distributed.data_parallel_size(self.model) > 1:
            # every process divides by the global batch's items (see compute_loss)
            total = distributed.sum_over_processes(total)
        return total or None

    def _track_num_input_tokens(self, inputs: Any) -> None:
        mode = self.args.include_num_input_tokens_seen
        if mode == "no" or not isinstance(inputs, Mapping) or "input_ids" not in inputs:
            return
        if mode == "non_padding" and "attention_mask" in inputs:
            self.state.num_input_tokens_seen += int(inputs["attention_mask"].sum())
        else:
            self.state.num_input_tokens_seen += inputs["input_ids"].numel()

    def _optimizer_step(self, model: nn.Module, params: list[nn.Parameter]) -> tuple[Any, float]:
        """Clip, step the optimizer and the schedule, clear `params`' gradients.

        Returns:
            `(grad_norm, learning_rate)`: the norm before clipping (None without clipping) and the rate
            this step used.
        """
        args, handler = self.args, self.callback_handler
        grad_norm = self._clip_grad_norm(model, params)
        self.control = handler.on_pre_optimizer_step(args, self.state, self.control)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.control = handler.on_optimizer_step(args, self.state, self.control)
        learning_rate = self._get_learning_rate()
        if not isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.lr_scheduler.step()
        for p in params:  # model.zero_grad(), without walking the module tree each step
            p.grad = None
        return grad_norm, learning_rate

    def _clip_grad_norm(self, model: nn.Module, params: list[nn.Parameter] | None = None) -> Any:
        if not self.args.max_grad_norm:
            return None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = model.parameters() if params is None else params
        trainable = [p for p in params if p.requires_grad]
        if distributed.is_distributed():  # FSDP's DTensor gradients (maybe next to plain ones)
            from pretrained.distributed.clipping import clip_grad_norm_

            return clip_grad_norm_(trainable, self.args.max_grad_norm)
        return torch.nn.utils.clip_grad_norm_(trainable, self.args.max_grad_norm)

    # ---- logging, evaluation, saving during training ----------------------------------------

    def _maybe_log_save_evaluate(
        self,
        tr_loss: RunningLoss,
        grad_norm: torch.Tensor | float | None,
        model: nn.Module,
        trial: Any,
        epoch: int,
        ignore_keys_for_eval: list[str] | None,
        start_time: float,
        learning_rate: float | None = None,
    ) -> None:
        """Log, evaluate and save, as far as the callbacks asked for in `self.control`."""
        if self.control.should_log and self.state.global_step > tr_loss.last_logged_step:
            logs: dict[str, float] = {"loss": tr_loss.pop_mean(self.state.global_step)}
            if grad_norm is not None:
                logs["grad_norm"] = (
                    grad_norm.item() if isinstance(grad_norm, torch.Tensor) else float(grad_norm)
                )
            logs["learning_rate"] = learning_rate if learning_rate is not None else self._get_learning_rate()
            self.log(logs, start_time)
        if self.control.should_evaluate:
            metrics = self._evaluate(trial, ignore_keys_for_eval)
            is_best = self._determine_best_metric(metrics, trial)
            if self.args.save_strategy == "best":
                self.control.should_save = is_best
        if self.control.should_save:
            self._save_checkpoint(model, trial)
            if self._pending_save is None:
                self.control = self.callback_handler.on_save(self.args, self.state, self.control)
            else:  # `on_save` comes once the folder is written (see _finish_pending_save)
                self.control.should_save = False

    def _evaluate(
        self, trial: Any, ignore_keys_for_eval: list[str] | None, skip_scheduler: bool = False
    ) -> dict[str, float]:
        """`evaluate()`, then step a `reduce_lr_on_plateau` schedule with its metric."""
        metrics = self.evaluate(ignore_keys=ignore_keys_for_eval)
        if not skip_scheduler and isinstance(self.lr_scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            name = self.args.metric_for_best_model
            name = name if name.startswith("eval_") else f"eval_{name}"
            if name not in metrics:
                raise KeyError(
                    f"reduce_lr_on_plateau needs the metric {name!r}; evaluation returned {list(metrics)}"
                )
            self.lr_scheduler.step(metrics[name])
        return metrics

    def _determine_best_metric(self, metrics: dict[str, float], trial: Any) -> bool:
        """Whether `metrics` holds a new best `metric_for_best_model` (recorded in the state if so)."""
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
            if start_time is not None:  # tokens of this train() call per second, as transformers logs
                tokens = self.state.num_input_tokens_seen - getattr(self, "_initial_num_input_tokens_seen", 0)
                logs.update(speed_metrics("train", start_time, num_tokens=tokens))
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self.control = self.callback_handler.on_log(self.args, self.state, self.control, logs=logs)

    def _finalize_training(self, trial: Any, tr_loss: RunningLoss, start_time: float) -> TrainOutput:
        """Last `on_save`, train metrics, the best model (if asked for), `on_train_end`."""
        args = self.args
        logger.info(
            "\n\nTraining completed. Do not forget to share your model on huggingface.co/models =)\n\n"
        )
        self._finish_pending_save()
        steps = self.state.global_step - tr_loss.first_step
        train_loss = tr_loss.mean(self.state.global_step)
        # the samples of the whole schedule: count only the share of the steps run in this call
        samples = self._train_samples * steps / max(self.state.max_steps, 1)
        metrics = speed_metrics("train", start_time, num_samples=samples, num_steps=steps)
        self.store_flos()
        metrics["total_flos"] = self.state.total_flos
        metrics["train_loss"] = train_loss
        self.log(metrics)
        if args.load_best_model_at_end and self.state.best_model_checkpoint is not None:
            self._load_best_model()
        if self.state.best_model_checkpoint is not None and args.save_total_limit == 1:
            for path in ckpt.sorted_checkpoints(args.output_dir):
                if not os.path.samefile(path, self.state.best_model_checkpoint):
                    shutil.rmtree(path, ignore_errors=True)
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        return TrainOutput(self.state.global_step, train_loss, metrics)


def _one_ahead(batches: Iterator[Any]) -> Iterator[Any]:
    """Yield `batches`, each one after the next has been read: transformers' loader (accelerate's
    `DataLoaderShard`) reads one batch ahead to know the last, so a collator that draws from the global
    RNG (MLM masking) draws for batch k+1 before batch k's forward pass draws its dropout masks.
    Reading in the same order gives the same masks and dropout as a transformers run with the seed."""
    try:
        current = next(batches)
    except StopIteration:
        return
    for following in batches:
        yield current
        current = following
    yield current

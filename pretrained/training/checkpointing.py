"""Checkpoint save and resume of `Trainer`: what a checkpoint holds, and reading it back.

The folder format (file names, the atomic `tmp-checkpoint-N` -> `checkpoint-N` rename, rotation)
lives in `checkpoints.py`; this module decides what goes in a checkpoint and when `on_save` fires.
With `save_in_background=True` the live tensors are copied to the host and the folder is written
by a thread while training goes on; `on_save` fires once the folder is complete.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import checkpoints as ckpt
from . import distributed
from .args_file import save_training_args
from .seeding import get_rng_state, set_rng_state
from .state import ExportableState, TrainerControl, TrainerState

logger = logging.getLogger(__name__)


class CheckpointingMixin:
    """The save and load methods of `Trainer`.

    `self._pending_save` holds the checkpoint being written in the background, if any: one at a time.
    """

    def _stateful_callbacks(self) -> list[Any]:
        """The callbacks (and the control) whose state a checkpoint carries."""
        return [
            cb for cb in self.callback_handler.callbacks + [self.control] if isinstance(cb, ExportableState)
        ]

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        """Save `checkpoint-<global_step>/`: model, optimizer, schedule, scaler, RNG and trainer state."""
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
        logger.info(f"Saving model checkpoint to {final}")
        self.store_flos()
        stateful = self._stateful_callbacks()
        self.state.stateful_callbacks = TrainerState(stateful_callbacks=stateful).stateful_callbacks
        files: dict[str, Any] = {}
        # FSDP: every process takes part in gathering the full weights and optimizer state
        full_model_state = distributed.full_state_dict(self.model)
        if not args.save_only_model:
            files[ckpt.OPTIMIZER_NAME] = self._optimizer_state_to_save()
            files[ckpt.SCHEDULER_NAME] = self.lr_scheduler.state_dict()
            if self.scaler is not None:
                files[ckpt.SCALER_NAME] = self.scaler.state_dict()
            files[ckpt.RNG_STATE_NAME] = get_rng_state()
        state_json = self.state.to_json_string()
        if distributed.is_distributed():
            self._write_checkpoint_distributed(step, full_model_state, files, state_json)
        elif args.save_in_background:
            # training may change every live tensor from now on: write from a host copy
            model_state = ckpt.clone_to_host(self.model.state_dict())
            files = ckpt.clone_to_host(files)
            self._pending_save = _BackgroundSave(
                lambda: self._write_checkpoint(step, model_state, files, state_json),
                TrainerState.from_json_string(state_json),  # what on_save will see
            )
        else:
            self._write_checkpoint(step, None, files, state_json)

    def _write_checkpoint(self, step: int, model_state: Any, files: dict[str, Any], state_json: str) -> None:
        """Fill `tmp-checkpoint-N/`, write `trainer_state.json` last, rename it to `checkpoint-N/`, rotate."""
        self._complete_checkpoint(*ckpt.begin_checkpoint(self.args.output_dir, step), model_state, files, state_json)

    def _complete_checkpoint(self, tmp: str, final: str, model_state: Any, files: dict[str, Any],
                             state_json: str) -> None:
        """Write the model and `files` into `tmp`, `trainer_state.json` last, publish it as `final`, rotate."""
        self._save(tmp, model_state)
        for name, obj in files.items():
            ckpt.atomic_torch_save(obj, os.path.join(tmp, name))
        # last: its presence marks the checkpoint complete
        self.state.save_to_json(os.path.join(tmp, ckpt.TRAINER_STATE_NAME), state_json)
        ckpt.publish_checkpoint(tmp, final)
        ckpt.rotate_checkpoints(self.args.output_dir, self.args.save_total_limit, self.state.best_model_checkpoint)

    def _write_checkpoint_distributed(
        self, step: int, model_state: Any, files: dict[str, Any], state_json: str
    ) -> None:
        """`_write_checkpoint` shared by several processes: the main one creates the folder, each writes
        its own RNG state into it, the main one writes the rest and publishes it; barriers between."""
        args = self.args
        tmp = os.path.join(args.output_dir, f"tmp-{ckpt.PREFIX_CHECKPOINT_DIR}-{step}")
        if args.should_save:
            tmp, final = ckpt.begin_checkpoint(args.output_dir, step)
        distributed.barrier()
        rng = files.pop(ckpt.RNG_STATE_NAME, None)
        if rng is not None:
            ckpt.atomic_torch_save(rng, os.path.join(tmp, f"rng_state_{args.process_index}.pth"))
        distributed.barrier()
        if args.should_save:
            self._complete_checkpoint(tmp, final, model_state, files, state_json)
        distributed.barrier()

    def _optimizer_state_to_save(self) -> dict[str, Any]:
        """The optimizer's state dict; for sharded parameters (FSDP, tensor parallelism) gathered whole
        and keyed by parameter name."""
        if distributed.is_distributed() and distributed.has_dtensor_parameters(self.model):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            options = StateDictOptions(full_state_dict=True, cpu_offload=True)
            return get_optimizer_state_dict(self.model, self.optimizer, options=options)
        return self.optimizer.state_dict()

    def _finish_pending_save(self, notify: bool = True) -> None:
        """Wait for a checkpoint being written in the background (re-raising its error), then fire
        `on_save` with the state as it was saved, as transformers does after a synchronous save."""
        pending, self._pending_save = self._pending_save, None
        if pending is not None:
            pending.join()
            if notify:
                self.control = self.callback_handler.on_save(self.args, pending.saved_state, self.control)

    def _poll_pending_save(self) -> None:
        """Fire `on_save` for a background checkpoint that has finished writing, without waiting."""
        pending = self._pending_save
        if pending is not None and not pending.is_alive():
            self._finish_pending_save()

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Write the model (safetensors), the processing class and `training_args.bin` to `output_dir`."""
        output_dir = output_dir or self.args.output_dir
        full_model_state = distributed.full_state_dict(self.model)  # (FSDP: gathered by every process)
        if self.args.should_save:
            logger.info(f"Saving model checkpoint to {output_dir}")
            self._save(output_dir, full_model_state)
        distributed.barrier()

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write the model files to `output_dir`, from `state_dict` (a host copy) when given."""
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        ckpt.save_model_weights(self.model, output_dir, state_dict)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(output_dir)
        # the file transformers writes (its TrainingArguments, by name); read back without unpickling
        save_training_args(self.args, os.path.join(output_dir, ckpt.TRAINING_ARGS_NAME))

    def _load_optimizer_and_scheduler(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ckpt.OPTIMIZER_NAME)
        if not os.path.isfile(path):
            logger.warning("%s has no %s: the optimizer starts fresh", checkpoint, ckpt.OPTIMIZER_NAME)
            return
        if distributed.is_distributed() and distributed.has_dtensor_parameters(self.model):
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            options = StateDictOptions(full_state_dict=True)
            set_optimizer_state_dict(self.model, self.optimizer, ckpt.torch_load(path), options=options)
        else:
            self.optimizer.load_state_dict(ckpt.torch_load(path))
        path = os.path.join(checkpoint, ckpt.SCHEDULER_NAME)
        if os.path.isfile(path):
            self.lr_scheduler.load_state_dict(ckpt.torch_load(path))

    def _load_scaler(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ckpt.SCALER_NAME)
        if self.scaler is not None and os.path.isfile(path):
            self.scaler.load_state_dict(ckpt.torch_load(path))

    def _load_rng_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, ckpt.RNG_STATE_NAME)
        if self.args.world_size > 1:  # one file per process, as transformers writes them
            path = os.path.join(checkpoint, f"rng_state_{self.args.process_index}.pth")
        if not os.path.isfile(path):
            logger.warning(
                "%s has no %s: the resumed run will not be bit-identical", checkpoint, ckpt.RNG_STATE_NAME
            )
            return
        try:
            state = ckpt.torch_load(path, numpy_arrays=True)  # transformers pickles numpy's keys as an array
        except Exception as e:
            logger.warning("could not read %s (%s): RNG states not restored", path, e)
            return
        set_rng_state(state)

    def _load_callback_state(self) -> None:
        """Give the callbacks (and the control) the attributes saved in the resumed state."""
        if not self.args.restore_callback_states_from_checkpoint:
            return
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

    def _load_best_model(self) -> None:
        ckpt.load_model_weights(self.model, self.state.best_model_checkpoint)


class _BackgroundSave(threading.Thread):
    """Runs `write()` at once on its own thread; `join()` re-raises its exception in the caller."""

    def __init__(self, write: Callable[[], None], saved_state: TrainerState):
        super().__init__(daemon=True)
        self.saved_state = saved_state  # the state as saved: what `on_save` reports
        self._write = write
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._write()
        except BaseException as e:  # handed to the caller by join()
            self._error = e

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self._error is not None:
            raise self._error

"""Exact resume, crash-safe checkpoints, and accumulation equal to a bigger batch."""

import contextlib
import json
import os

import pytest
import torch
import training_helpers
from training_helpers import TinyClassifier, TinyForCausalLM, TokenDataset, VectorDataset, pad_collate

from pretrained import Trainer, TrainerCallback
from pretrained.training import checkpoints as ckpt
from pretrained.training.args_file import load_training_args


class Crash(Exception):
    pass


class CrashAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash(f"simulated crash at step {state.global_step}")


def _args(quiet_args, out, **kw):
    # 100 examples, batch 4, accumulation 2: 25 batches and 13 optimizer steps per epoch,
    # so step 20 is in the middle of the second epoch
    base = dict(
        output_dir=str(out),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=40,
        learning_rate=1e-2,
        warmup_steps=5,
        lr_scheduler_type="cosine",
        logging_steps=1,
        save_steps=10,
        seed=7,
    )
    base.update(kw)
    return quiet_args(**base)


def _run(quiet_args, out, resume=None, callbacks=(), **kw):
    data = VectorDataset(n=100)
    trainer = Trainer(
        TinyClassifier(dropout=0.3),
        _args(quiet_args, out, **kw),
        train_dataset=data,
        callbacks=list(callbacks),
    )
    with contextlib.suppress(Crash):
        trainer.train(resume_from_checkpoint=resume)
    return trainer, data


def _losses(state):
    return [
        (h["step"], h["loss"], h["grad_norm"], h["learning_rate"]) for h in state.log_history if "loss" in h
    ]


@pytest.mark.parametrize("background", [False, True])
def test_resume_is_bit_identical_without_rereading_skipped_data(quiet_args, tmp_path, background):
    ref, _ = _run(quiet_args, tmp_path / "a")

    # steps 21-23 are lost; with background saves, training went on while checkpoint-20 was written
    _run(quiet_args, tmp_path / "b", callbacks=[CrashAt(23)], save_in_background=background)
    assert ckpt.get_last_checkpoint(str(tmp_path / "b")).endswith("checkpoint-20")
    resumed, data = _run(quiet_args, tmp_path / "b", resume=True, save_in_background=background)

    for (name, p), q in zip(ref.model.named_parameters(), resumed.model.parameters()):
        assert torch.equal(p, q), name
    opt_a, opt_b = ref.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key, state in opt_a["state"].items():
        for field, value in state.items():
            assert torch.equal(value, opt_b["state"][key][field]), (key, field)
    assert _losses(ref.state) == _losses(resumed.state)
    assert len(_losses(resumed.state)) == 40
    # resumed at step 20 = 7 steps (14 batches, 56 examples) into epoch 1; read only the rest:
    # 44 examples of epoch 1, 100 of epoch 2 and 8 for step 40, and one batch of 4 read ahead after it
    # (the loader reads one batch ahead, as transformers' does, so random collators draw in its order)
    assert data.reads == 44 + 100 + 8 + 4


def test_checkpoint_killed_mid_write_is_ignored(quiet_args, tmp_path, monkeypatch):
    ref, _ = _run(quiet_args, tmp_path / "a")

    real_save = ckpt.atomic_torch_save

    def dying_save(obj, path):
        if "checkpoint-30" in path and path.endswith(ckpt.OPTIMIZER_NAME):
            raise Crash("killed while writing the optimizer of checkpoint-30")
        real_save(obj, path)

    monkeypatch.setattr(ckpt, "atomic_torch_save", dying_save)
    out = tmp_path / "b"
    _run(quiet_args, out)
    monkeypatch.setattr(ckpt, "atomic_torch_save", real_save)
    assert (out / "tmp-checkpoint-30").is_dir() and not (out / "checkpoint-30").exists()
    # a folder left half-written by another writer (no trainer_state.json) is ignored as well
    (out / "checkpoint-35").mkdir()
    (out / "checkpoint-35" / "model.safetensors").write_bytes(b"partial")

    assert ckpt.get_last_checkpoint(str(out)).endswith("checkpoint-20")
    resumed, _ = _run(quiet_args, out, resume=True)
    for p, q in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    assert not (out / "tmp-checkpoint-30").exists()  # the next save cleared it
    assert (out / "checkpoint-30" / "trainer_state.json").is_file()


def test_checkpoint_files_and_training_args(quiet_args, tmp_path):
    trainer, _ = _run(quiet_args, tmp_path, max_steps=10, save_steps=10)
    folder = tmp_path / "checkpoint-10"
    names = sorted(os.listdir(folder))
    assert names == sorted(
        [
            "model.safetensors",
            "optimizer.pt",
            "scheduler.pt",
            "rng_state.pth",
            "trainer_state.json",
            "training_args.bin",
        ]
    )
    args = load_training_args(folder / "training_args.bin")  # transformers' format, read without unpickling
    expected = trainer.args.to_dict()
    assert args.pop("accelerator_config")["even_batches"] is True  # transformers' AcceleratorConfig defaults
    expected.pop("accelerator_config")
    assert {k: args[k] for k in expected if not k.endswith("_token")} == {
        k: v for k, v in expected.items() if not k.endswith("_token")
    }
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.load(folder / name, weights_only=True)
    state = json.loads((folder / "trainer_state.json").read_text())
    assert state["global_step"] == 10 and len(state["log_history"]) == 10


def test_accumulation_equals_bigger_batch(quiet_args, tmp_path):
    """8 x 4 accumulated micro-batches give the loss and gradients of one batch of 32.

    The examples have different numbers of label tokens, so averaging per micro-batch would differ.
    """

    def make_args(name, **kw):
        return quiet_args(output_dir=str(tmp_path / name), **kw)

    def make_trainer(args, callbacks):
        data = TokenDataset(n=64)
        return Trainer(
            TinyForCausalLM(), args, train_dataset=data, data_collator=pad_collate, callbacks=callbacks
        )

    result = training_helpers.step_big_and_accumulated(make_args, make_trainer, big=(32, 1), accum=(8, 4))
    training_helpers.assert_same_step(result)
    # and the per-micro-batch mean would not have matched (the test can fail)
    data = TokenDataset(n=64)
    model = TinyForCausalLM()
    order = torch.randperm(64, generator=torch.Generator().manual_seed(42)).tolist()[:32]
    chunks = [pad_collate([data[i] for i in order[k : k + 8]]) for k in range(0, 32, 8)]
    naive = sum(model(**c)["loss"].item() for c in chunks) / 4
    full = model(**pad_collate([data[i] for i in order]))["loss"].item()
    assert abs(full - result["big"][0]) < 1e-6
    assert abs(naive - full) > 1e-4


def test_resume_from_explicit_path_and_errors(quiet_args, tmp_path):
    _run(quiet_args, tmp_path, max_steps=20)
    trainer, _ = _run(quiet_args, tmp_path, resume=str(tmp_path / "checkpoint-10"), max_steps=20)
    assert trainer.state.global_step == 20
    with pytest.raises(ValueError, match="no complete checkpoint"):
        _run(quiet_args, tmp_path / "empty", resume=True)
    (tmp_path / "checkpoint-99").mkdir()
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        _run(quiet_args, tmp_path, resume=str(tmp_path / "checkpoint-99"))


CHILD = """
import os, sys
sys.path.insert(0, {helpers!r})
from training_helpers import TinyClassifier, VectorDataset
import torch
from pretrained import Trainer, TrainingArguments
from pretrained.training import checkpoints as ckpt

torch.set_num_threads(1)
real_save = ckpt.atomic_torch_save

def dying_save(obj, path):
    real_save(obj, path)
    if "checkpoint-30" in path and path.endswith(ckpt.OPTIMIZER_NAME):
        os._exit(9)  # the process dies at once: no cleanup, no exception handlers

ckpt.atomic_torch_save = dying_save
args = TrainingArguments({out!r}, per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=40,
                         learning_rate=1e-2, warmup_steps=5, lr_scheduler_type="cosine", logging_steps=1,
                         save_steps=10, seed=7, disable_tqdm=True, use_cpu=True)
Trainer(TinyClassifier(dropout=0.3), args, train_dataset=VectorDataset(n=100)).train()
"""


def test_process_killed_while_saving(quiet_args, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "b"
    code = CHILD.format(helpers=os.path.dirname(__file__), out=str(out))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 9, result.stderr
    assert (out / "tmp-checkpoint-30" / ckpt.OPTIMIZER_NAME).is_file()  # half written
    assert not (out / "checkpoint-30").exists()
    resumed, _ = _run(quiet_args, out, resume=True)
    ref, _ = _run(quiet_args, tmp_path / "a")
    for p, q in zip(ref.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)


class SeesCheckpoints(TrainerCallback):
    """Records, at each `on_save`, the step it reports and whether that checkpoint is complete on disk."""

    def __init__(self):
        self.seen = []

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        self.seen.append((state.global_step, ckpt.is_complete_checkpoint(folder)))


@pytest.mark.parametrize("background", [False, True])
def test_on_save_fires_once_per_checkpoint_after_it_is_written(quiet_args, tmp_path, background):
    """transformers' contract: `on_save` follows a written checkpoint, with its step (also in the background)."""
    seer = SeesCheckpoints()
    trainer, _ = _run(quiet_args, tmp_path, callbacks=[seer], save_in_background=background, max_steps=30)
    assert seer.seen == [(10, True), (20, True), (30, True)]
    assert trainer.state.global_step == 30 and not trainer.control.should_save

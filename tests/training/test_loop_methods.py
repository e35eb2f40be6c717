"""The loop's overridable methods, with transformers' signatures: subclasses that override them still
drive training, and `get_batch_samples` counts the label items of an accumulated step."""

import math

import pytest
import torch
from torch import nn
from training_helpers import (
    TinyClassifier,
    TinyForCausalLM,
    TokenDataset,
    VectorDataset,
    assert_same_step,
    pad_collate,
    step_big_and_accumulated,
)

from pretrained import Trainer
from pretrained.training.train_loop import RunningLoss, TrainingPlan


def _lm_args(quiet_args, tmp_path, name, **kw):
    base = dict(
        output_dir=str(tmp_path / name),
        per_device_train_batch_size=4,
        gradient_accumulation_steps=3,
        num_train_epochs=1,
        logging_steps=1,
        save_strategy="no",
        seed=5,
    )
    base.update(kw)
    return quiet_args(**base)


def _make_args(quiet_args, tmp_path):
    return lambda name, **kw: _lm_args(quiet_args, tmp_path, name, **kw)


def _losses(trainer):
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_get_batch_samples_counts_the_items_of_the_accumulated_step(quiet_args, tmp_path):
    data = TokenDataset(n=10)
    batches = [pad_collate([data[i] for i in range(k, min(k + 4, 10))]) for k in range(0, 10, 4)]
    trainer = Trainer(TinyForCausalLM(), _lm_args(quiet_args, tmp_path, "a"), data_collator=pad_collate)

    samples, items = trainer.get_batch_samples(iter(batches), 2, torch.device("cpu"))
    assert len(samples) == 2
    # a causal LM's loss never targets the first token of a row
    assert items == sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches[:2])
    assert items < sum(int((b["labels"] != -100).sum()) for b in batches[:2])

    samples, items = trainer.get_batch_samples(iter(batches[2:]), 3, torch.device("cpu"))
    assert len(samples) == 1  # the epoch ends: what is left
    assert items == int((batches[2]["labels"][:, 1:] != -100).sum())

    # labels already aligned with the logits (`shift_labels`) are counted as they are
    aligned = {**batches[0], "shift_labels": batches[0]["labels"]}
    expected = int((batches[0]["labels"] != -100).sum())
    assert trainer.get_batch_samples(iter([aligned]), 1, torch.device("cpu"))[1] == expected

    # a classifier counts examples; a batch without labels cannot be counted
    trainer = Trainer(TinyClassifier(), _lm_args(quiet_args, tmp_path, "b"))
    cls_batch = {"x": torch.zeros(5, 8), "labels": torch.zeros(5, dtype=torch.long)}
    assert trainer.get_batch_samples(iter([cls_batch, cls_batch]), 2, torch.device("cpu"))[1] == 10
    no_labels = {"x": torch.zeros(5, 8)}
    assert trainer.get_batch_samples(iter([cls_batch, no_labels]), 2, torch.device("cpu"))[1] is None


def test_get_batch_samples_is_asked_for_each_step_and_its_override_is_used(quiet_args, tmp_path):
    asked = []

    class Recording(Trainer):
        def get_batch_samples(self, epoch_iterator, num_batches, device):
            samples, items = super().get_batch_samples(epoch_iterator, num_batches, device)
            asked.append((num_batches, len(samples), items))
            return samples, items

    # 10 examples, batch 4: 3 micro-batches per epoch; accumulation 2 -> steps of 2 then 1
    args = _lm_args(quiet_args, tmp_path, "a", gradient_accumulation_steps=2, num_train_epochs=2)
    trainer = Recording(TinyForCausalLM(), args, train_dataset=TokenDataset(n=10), data_collator=pad_collate)
    trainer.train()
    assert [(n, got) for n, got, _ in asked] == [(2, 2), (1, 1), (2, 2), (1, 1)]
    assert all(isinstance(items, int) and items > 0 for _, _, items in asked)
    assert trainer.state.global_step == 4


def test_training_step_override_with_transformers_signature_drives_the_loop(quiet_args, tmp_path):
    calls = []

    class Counting(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            calls.append(num_items_in_batch)
            return super().training_step(model, inputs, num_items_in_batch)

    def make(cls, name):
        args = _lm_args(quiet_args, tmp_path, name)
        return cls(TinyForCausalLM(), args, train_dataset=TokenDataset(n=24), data_collator=pad_collate)

    plain, counting = make(Trainer, "plain"), make(Counting, "counting")
    plain.train()
    counting.train()
    assert len(calls) == 6  # 24 examples, batch 4: six micro-batches in two steps of three
    assert calls[0] == calls[1] == calls[2] and calls[3] == calls[4] == calls[5]  # one count a step
    assert _losses(counting) == _losses(plain)
    for p, q in zip(plain.model.parameters(), counting.model.parameters()):
        assert torch.equal(p, q)


def test_compute_loss_override_gets_the_step_item_count(quiet_args, tmp_path):
    """A token-sum loss divided by `num_items_in_batch`: accumulation equals the bigger batch."""
    seen = []

    class TokenSum(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs["logits"][:, :-1]
            loss = nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), reduction="sum"
            )
            seen.append(num_items_in_batch)
            loss = loss / num_items_in_batch
            return (loss, outputs) if return_outputs else loss

    def make_trainer(args, callbacks):
        data = TokenDataset(n=24)
        return TokenSum(
            TinyForCausalLM(), args, train_dataset=data, data_collator=pad_collate, callbacks=callbacks
        )

    assert_same_step(
        step_big_and_accumulated(_make_args(quiet_args, tmp_path), make_trainer, (12, 1), (4, 3))
    )
    assert seen[0] == seen[1] == seen[2] == seen[3]  # the big batch's count, and each micro-batch's


def test_uncountable_labels_weigh_micro_batches_equally(quiet_args, tmp_path):
    """Without a `labels` tensor there is no item count: each micro-batch's mean loss weighs 1 / steps."""

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(8, 1)

        def forward(self, x, target):
            return {"loss": nn.functional.mse_loss(self.lin(x).squeeze(-1), target)}

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            self.base = VectorDataset(32)

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            item = self.base[i]
            return {"x": item["x"], "target": item["labels"].float()}

    def make_trainer(args, callbacks):
        return Trainer(Regressor(), args, train_dataset=Data(), callbacks=callbacks)

    assert_same_step(
        step_big_and_accumulated(_make_args(quiet_args, tmp_path), make_trainer, (16, 1), (4, 4))
    )


def test_maybe_log_save_evaluate_override_with_transformers_signature(quiet_args, tmp_path):
    seen = []

    class Extra(Trainer):
        def _maybe_log_save_evaluate(
            self,
            tr_loss,
            grad_norm,
            model,
            trial,
            epoch,
            ignore_keys_for_eval,
            start_time,
            learning_rate=None,
        ):
            seen.append((self.state.global_step, epoch, learning_rate))
            super()._maybe_log_save_evaluate(
                tr_loss, grad_norm, model, trial, epoch, ignore_keys_for_eval, start_time, learning_rate
            )

    args = _lm_args(quiet_args, tmp_path, "a", gradient_accumulation_steps=1, num_train_epochs=2)
    trainer = Extra(TinyClassifier(), args, train_dataset=VectorDataset(8))
    trainer.train()
    # after each step, then at each epoch's end with the last step's rate
    assert [(s, e) for s, e, _ in seen] == [(1, 0), (2, 0), (2, 0), (3, 1), (4, 1), (4, 1)]
    assert seen[1][2] == seen[2][2] and seen[4][2] == seen[5][2]
    assert len(_losses(trainer)) == 4


def test_training_plan():
    class Args:
        gradient_accumulation_steps = 4
        max_steps = -1
        num_train_epochs = 2.5

    plan = TrainingPlan.from_args(Args, 10)  # steps of 4, 4 and the 2 left
    assert (plan.steps_per_epoch, plan.max_steps, plan.num_epochs) == (3, 8, 3)
    assert [plan.batches_in_step(s) for s in range(3)] == [4, 4, 2]
    Args.max_steps = 5
    plan = TrainingPlan.from_args(Args, None)  # an iterable dataset: max_steps steps of 4
    assert (plan.steps_per_epoch, plan.batches_per_epoch) == (5, 20)
    assert [plan.batches_in_step(s) for s in range(5)] == [4] * 5
    with pytest.raises(ValueError, match="empty"):
        TrainingPlan.from_args(Args, 0)
    Args.max_steps = 0
    with pytest.raises(ValueError, match="max_steps"):
        TrainingPlan.from_args(Args, None)


def test_running_loss():
    loss = RunningLoss(global_step=10, device=torch.device("cpu"), filter_nan_inf=True)
    loss.add(torch.tensor(1.0), 10)
    loss.add(torch.tensor(3.0), 11)
    assert loss.pop_mean(12) == 2.0 and loss.last_logged_step == 12
    loss.add(torch.tensor(4.0), 12)
    loss.add(torch.tensor(math.nan), 13)  # counts as the mean since the last log: 4 / 2
    assert loss.unlogged.item() == 6.0
    assert loss.mean(14) == (4.0 + 6.0) / 4

"""The Trainer's features on tiny hand-written models: callbacks, evaluation, rotation, hooks, data."""

import os

import numpy as np
import pytest
import torch
from training_helpers import TinyClassifier, TinyForCausalLM, TokenDataset, VectorDataset, pad_collate

from pretrained import EarlyStoppingCallback, EvalPrediction, Trainer, TrainerCallback, TrainerControl


def accuracy(pred: EvalPrediction):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


class Scripted:
    """compute_metrics returning a fixed sequence of scores, one per evaluation."""

    def __init__(self, scores):
        self.scores = list(scores)
        self.calls = 0

    def __call__(self, pred):
        score = self.scores[min(self.calls, len(self.scores) - 1)]
        self.calls += 1
        return {"score": score}


class Recorder(TrainerCallback):
    def __init__(self):
        self.events = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            events = object.__getattribute__(self, "events")
            return lambda *a, **k: events.append(name)
        return object.__getattribute__(self, name)


def test_learns_and_evaluates(quiet_args):
    args = quiet_args(
        num_train_epochs=4, learning_rate=2e-2, per_device_train_batch_size=8, eval_strategy="epoch"
    )
    trainer = Trainer(
        TinyClassifier(),
        args,
        train_dataset=VectorDataset(128),
        eval_dataset=VectorDataset(64, seed=1),
        compute_metrics=accuracy,
    )
    before = trainer.evaluate()
    out = trainer.train()
    after = trainer.evaluate()
    assert out.global_step == 64 and trainer.state.epoch == 4
    assert after["eval_accuracy"] > 0.85 > before["eval_accuracy"]
    assert after["eval_loss"] < before["eval_loss"]
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    assert [h["epoch"] for h in evals] == [
        1,
        2,
        3,
        4,
        4,
    ]  # each epoch, then after (train() starts a new state)
    pred = trainer.predict(VectorDataset(10, seed=2))
    assert pred.predictions.shape == (10, 2) and pred.label_ids.shape == (10,)
    assert set(pred.metrics) >= {"test_loss", "test_accuracy", "test_runtime"}


def test_eval_accumulation_padding_and_preprocess(quiet_args):
    """Variable-length logits are padded with -100 across batches; the result does not depend on
    eval_accumulation_steps; preprocess_logits_for_metrics sees each batch."""
    seen = []

    def preprocess(logits, labels):
        seen.append(tuple(logits.shape))
        return logits.argmax(-1)

    results = []
    for steps in (None, 1, 3):
        args = quiet_args(per_device_eval_batch_size=4, eval_accumulation_steps=steps)
        trainer = Trainer(
            TinyForCausalLM(),
            args,
            data_collator=pad_collate,
            compute_metrics=lambda p: {"n": float((p.label_ids != -100).sum())},
            preprocess_logits_for_metrics=preprocess,
        )
        results.append(trainer.predict(TokenDataset(10)))
    for r in results[1:]:
        np.testing.assert_array_equal(r.predictions, results[0].predictions)
        np.testing.assert_array_equal(r.label_ids, results[0].label_ids)
        assert r.metrics["test_loss"] == pytest.approx(results[0].metrics["test_loss"], rel=1e-6)
    assert results[0].predictions.shape == (10, 12)
    assert results[0].metrics["test_n"] == sum(len(x["input_ids"]) for x in TokenDataset(10))
    assert len(seen) == 9  # 3 batches x 3 runs


def test_callback_events_and_control(quiet_args):
    rec = Recorder()
    args = quiet_args(
        per_device_train_batch_size=16,
        gradient_accumulation_steps=2,
        num_train_epochs=1,
        logging_steps=1,
        save_strategy="no",
    )
    Trainer(TinyClassifier(), args, train_dataset=VectorDataset(64), callbacks=[rec]).train()
    ev = rec.events
    assert ev[:4] == ["on_init_end", "on_train_begin", "on_epoch_begin", "on_step_begin"]
    step = [
        "on_step_begin",
        "on_substep_end",
        "on_pre_optimizer_step",
        "on_optimizer_step",
        "on_step_end",
        "on_log",
    ]
    assert ev[3:9] == step and ev[9:15] == step
    assert ev[-3:] == ["on_epoch_end", "on_log", "on_train_end"]

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                control.should_training_stop = True
            return control

    trainer = Trainer(
        TinyClassifier(),
        quiet_args(max_steps=50, save_strategy="no"),
        train_dataset=VectorDataset(64),
        callbacks=[StopAt],
    )
    assert trainer.train().global_step == 3
    assert isinstance(trainer.control, TrainerControl)
    assert trainer.pop_callback(StopAt) is not None and trainer.pop_callback(StopAt) is None


def test_early_stopping_and_best_checkpoint_rotation(quiet_args, tmp_path):
    scores = Scripted([0.5, 0.9, 0.3, 0.2, 0.8, 0.95])
    args = quiet_args(
        max_steps=60,
        eval_strategy="steps",
        eval_steps=5,
        save_steps=5,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="score",
    )
    trainer = Trainer(
        TinyClassifier(),
        args,
        train_dataset=VectorDataset(64),
        eval_dataset=VectorDataset(16),
        compute_metrics=scores,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=2)],
    )
    trainer.train()
    # best at the 2nd evaluation (step 10); the 3rd and 4th did not improve: stop at step 20
    assert trainer.state.global_step == 20
    assert trainer.state.best_metric == 0.9 and trainer.state.best_global_step == 10
    out = tmp_path / "out"
    assert trainer.state.best_model_checkpoint == str(out / "checkpoint-10")
    # save_total_limit=1 with a best model: only the best survives the end of training
    assert sorted(os.listdir(out)) == ["checkpoint-10"]
    # and the best weights were loaded back
    from safetensors.torch import load_file

    best = load_file(out / "checkpoint-10" / "model.safetensors")
    for name, p in trainer.model.state_dict().items():
        assert torch.equal(p, best[name]), name
    saved = trainer.state.stateful_callbacks
    assert saved["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"] == 2


def test_rotation_keeps_newest_and_best(quiet_args, tmp_path):
    args = quiet_args(
        max_steps=30,
        eval_strategy="steps",
        eval_steps=5,
        save_steps=5,
        save_total_limit=2,
        metric_for_best_model="score",
    )
    Trainer(
        TinyClassifier(),
        args,
        train_dataset=VectorDataset(64),
        eval_dataset=VectorDataset(16),
        compute_metrics=Scripted([0.1, 0.9, 0.2, 0.3, 0.4, 0.5]),
    ).train()
    assert sorted(os.listdir(tmp_path / "out")) == ["checkpoint-10", "checkpoint-30"]


def test_save_strategy_best(quiet_args, tmp_path):
    args = quiet_args(
        max_steps=20, eval_strategy="steps", eval_steps=5, save_strategy="best", metric_for_best_model="score"
    )
    Trainer(
        TinyClassifier(),
        args,
        train_dataset=VectorDataset(64),
        eval_dataset=VectorDataset(16),
        compute_metrics=Scripted([0.1, 0.9, 0.2, 0.95]),
    ).train()
    assert sorted(os.listdir(tmp_path / "out")) == ["checkpoint-10", "checkpoint-20", "checkpoint-5"]


def test_iterable_dataset(quiet_args):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            data = VectorDataset(40)
            return (data[i] for i in range(len(data)))

    trainer = Trainer(
        TinyClassifier(),
        quiet_args(max_steps=12, per_device_train_batch_size=8, save_strategy="no"),
        train_dataset=Stream(),
    )
    assert trainer.train().global_step == 12  # 5 batches per pass: the stream is restarted
    with pytest.raises(ValueError, match="max_steps"):
        Trainer(TinyClassifier(), quiet_args(save_strategy="no"), train_dataset=Stream()).train()


def test_compute_loss_func_and_label_smoothing(quiet_args):
    calls = []

    def loss_func(outputs, labels, num_items_in_batch=None):
        calls.append(num_items_in_batch)
        return (
            torch.nn.functional.cross_entropy(outputs["logits"], labels, reduction="sum") / num_items_in_batch
        )

    args = quiet_args(
        max_steps=2,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        save_strategy="no",
        logging_steps=1,
    )
    Trainer(TinyClassifier(), args, train_dataset=VectorDataset(32), compute_loss_func=loss_func).train()
    assert calls == [8, 8, 8, 8]

    # label smoothing: the logged loss is the smoothed cross-entropy of the batch
    model = TinyClassifier(dropout=0.0)
    args = quiet_args(
        max_steps=1,
        per_device_train_batch_size=32,
        label_smoothing_factor=0.2,
        save_strategy="no",
        logging_steps=1,
        train_sampling_strategy="sequential",
    )
    data = VectorDataset(32)
    expected = torch.nn.functional.cross_entropy(model(data.x)["logits"], data.y, label_smoothing=0.2).item()
    trainer = Trainer(model, args, train_dataset=data)
    trainer.train()
    assert trainer.state.log_history[0]["loss"] == pytest.approx(expected, rel=1e-6)


def test_model_init_and_reproducibility(quiet_args):
    made = []

    def model_init():
        made.append(1)
        return TinyClassifier(seed=len(made))

    args = quiet_args(max_steps=5, save_strategy="no", logging_steps=1)
    trainer = Trainer(args=args, model_init=model_init, train_dataset=VectorDataset(32))
    first = trainer.train().training_loss
    second = trainer.train().training_loss
    assert len(made) == 3  # at init and at the start of each train()
    assert first != second  # different seeds in model_init
    with pytest.raises(ValueError, match="model"):
        Trainer(args=args)


def test_unused_columns_are_removed(quiet_args):
    class WithExtras(VectorDataset):
        def __getitem__(self, i):
            return {**super().__getitem__(i), "text": "a string", "idx": i}

    args = quiet_args(max_steps=2, save_strategy="no")
    Trainer(TinyClassifier(), args, train_dataset=WithExtras(16)).train()
    args = quiet_args(max_steps=2, save_strategy="no", remove_unused_columns=False)
    with pytest.raises(TypeError, match="idx"):
        Trainer(TinyClassifier(), args, train_dataset=WithExtras(16)).train()


def test_bf16_autocast_and_group_by_length(quiet_args):
    seen = []

    class Probe(TinyForCausalLM):
        def forward(self, input_ids, attention_mask=None, labels=None):
            seen.append(
                torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            )
            return super().forward(input_ids, attention_mask, labels)

    args = quiet_args(
        max_steps=3, bf16=True, save_strategy="no", per_device_train_batch_size=4, group_by_length=True
    )
    trainer = Trainer(Probe(), args, train_dataset=TokenDataset(64), data_collator=pad_collate)
    trainer.train()
    assert seen == [True] * 3
    sampler = trainer.get_train_dataloader().sampler
    order = sampler.epoch_indices(0)
    lengths = [len(TokenDataset(64)[i]["input_ids"]) for i in order]
    assert lengths[0] == max(lengths)  # the longest batch goes first
    assert sorted(order) == list(range(64))


def test_optimizers_and_weight_decay_groups(quiet_args):
    from pretrained.training.optimizers import get_decay_parameter_names

    names = get_decay_parameter_names(TinyClassifier())
    assert names == ["net.0.weight", "net.3.weight"]  # no biases, no LayerNorm
    for optim in ("adamw_torch", "adamw_torch_fused", "sgd", "adafactor", "rmsprop", "adagrad"):
        args = quiet_args(max_steps=2, optim=optim, weight_decay=0.1, save_strategy="no")
        trainer = Trainer(TinyClassifier(), args, train_dataset=VectorDataset(16))
        trainer.train()
        groups = trainer.optimizer.param_groups
        assert [g["weight_decay"] for g in groups] == [0.1, 0.0], optim


def test_tensorboard_needs_its_package(quiet_args):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install tensorboard"):
            Trainer(TinyClassifier(), quiet_args(report_to="tensorboard"))
    else:
        pytest.skip("tensorboard is installed")


def test_eval_needs_dataset_and_loss_error(quiet_args):
    with pytest.raises(ValueError, match="eval_dataset"):
        Trainer(TinyClassifier(), quiet_args(eval_strategy="epoch"))

    class NoLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 2)

        def forward(self, x, labels=None):
            return {"logits": self.lin(x)}

    with pytest.raises(ValueError, match="no loss"):
        Trainer(NoLoss(), quiet_args(max_steps=1), train_dataset=VectorDataset(8)).train()


def test_strategies_epoch_first_step_and_tokens(quiet_args, tmp_path):
    args = quiet_args(
        num_train_epochs=2,
        per_device_train_batch_size=16,
        logging_strategy="epoch",
        logging_first_step=True,
        eval_strategy="epoch",
        eval_on_start=True,
        save_strategy="epoch",
        include_num_input_tokens_seen=True,
        train_sampling_strategy="sequential",
    )
    data = TokenDataset(32)
    trainer = Trainer(
        TinyForCausalLM(),
        args,
        train_dataset=data,
        eval_dataset=TokenDataset(8, seed=1),
        data_collator=pad_collate,
    )
    trainer.train()
    history = trainer.state.log_history
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 4]
    assert [h["step"] for h in history if "eval_loss" in h] == [0, 2, 4]
    assert sorted(os.listdir(tmp_path / "out")) == ["checkpoint-2", "checkpoint-4"]
    padded = sum(pad_collate([data[i] for i in range(k, k + 16)])["input_ids"].numel() for k in (0, 16))
    assert trainer.state.num_input_tokens_seen == 2 * padded


def test_fp16_scaler_and_torch_compile_flags(quiet_args, tmp_path):
    args = quiet_args(max_steps=2, fp16=True, save_steps=2, per_device_train_batch_size=8)
    trainer = Trainer(TinyClassifier(), args, train_dataset=VectorDataset(32))
    trainer.train()
    assert trainer.scaler is not None
    assert (tmp_path / "out" / "checkpoint-2" / "scaler.pt").is_file()
    torch.load(tmp_path / "out" / "checkpoint-2" / "scaler.pt", weights_only=True)

    # the eager backend checks the wiring without compiling kernels
    args = quiet_args(
        output_dir=str(tmp_path / "c"), max_steps=2, torch_compile_backend="eager", save_strategy="no"
    )
    assert args.torch_compile
    trainer = Trainer(TinyClassifier(), args, train_dataset=VectorDataset(32))
    trainer.train()
    assert (
        type(trainer.model_wrapped).__name__ == "OptimizedModule"
        and trainer.model_wrapped is not trainer.model
    )


def test_progress_bar_eval_dict_and_plateau_schedule(quiet_args, capsys):
    args = quiet_args(
        max_steps=6,
        disable_tqdm=False,
        eval_strategy="steps",
        eval_steps=2,
        logging_steps=2,
        save_strategy="no",
        learning_rate=0.1,
        lr_scheduler_type="reduce_lr_on_plateau",
        lr_scheduler_kwargs={"patience": 0, "factor": 0.5},
        metric_for_best_model="a_score",  # with a dict of eval sets, metrics are named eval_<set>_<metric>
    )
    evals = {"a": VectorDataset(8, seed=1), "b": VectorDataset(8, seed=2)}
    trainer = Trainer(
        TinyClassifier(),
        args,
        train_dataset=VectorDataset(32),
        eval_dataset=evals,
        compute_metrics=Scripted([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
    )
    trainer.train()
    err = capsys.readouterr().err
    assert "6/6" in err  # the tqdm bar reached the end
    keys = set().union(*(h.keys() for h in trainer.state.log_history))
    assert {"eval_a_loss", "eval_b_loss", "eval_a_score", "eval_b_score"} <= keys
    # eval_a_score rises: not an improvement in ReduceLROnPlateau's default "min" mode, so the lr drops
    lrs = [h["learning_rate"] for h in trainer.state.log_history if "learning_rate" in h]
    assert lrs[0] == 0.1 and lrs[-1] < lrs[0]

"""TrainingArguments: transformers' names and defaults, v4 spellings, clear validation errors."""

import dataclasses
import json

import pytest

from pretrained import TrainingArguments


def test_defaults_match_transformers():
    from transformers import TrainingArguments as Reference

    ours = TrainingArguments("out").to_dict()
    theirs = Reference("out")
    shared = [f.name for f in dataclasses.fields(Reference) if f.name in ours]
    assert len(shared) > 70
    skip = {"report_to", "disable_tqdm", "gradient_checkpointing", "logging_dir"}  # normalised differently
    different = {
        n: (ours[n], getattr(theirs, n))
        for n in shared
        if n not in skip and ours[n] != getattr(getattr(theirs, n), "value", getattr(theirs, n))
    }
    assert different == {}
    assert ours["report_to"] == [] and theirs.report_to == []


def test_v4_spellings_are_accepted():
    args = TrainingArguments(
        "out",
        evaluation_strategy="steps",
        eval_steps=5,
        warmup_ratio=0.1,
        no_cuda=True,
        group_by_length=True,
        overwrite_output_dir=True,
    )
    assert args.eval_strategy == "steps"
    assert args.warmup_steps == 0.1 and args.get_warmup_steps(95) == 10
    assert args.use_cpu and args.train_sampling_strategy == "group_by_length"
    assert "evaluation_strategy" not in args.to_dict()
    with pytest.raises(ValueError, match="warmup_ratio"):
        TrainingArguments("out", warmup_ratio=0.1, warmup_steps=10)


def test_derived_defaults():
    args = TrainingArguments(
        "out", eval_strategy="steps", logging_steps=7, load_best_model_at_end=True, save_steps=14
    )
    assert args.eval_steps == 7
    assert args.metric_for_best_model == "loss" and args.greater_is_better is False
    args = TrainingArguments("out", metric_for_best_model="accuracy")
    assert args.greater_is_better is True
    assert TrainingArguments("out", lr_scheduler_kwargs='{"num_cycles": 2}').lr_scheduler_kwargs == {
        "num_cycles": 2
    }
    assert TrainingArguments("out", warmup_steps=12).get_warmup_steps(100) == 12
    import importlib.util

    installed = importlib.util.find_spec("tensorboard") is not None
    assert TrainingArguments("out", report_to="all").report_to == (["tensorboard"] if installed else [])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fp16": True, "bf16": True}, "fp16` and `bf16"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
        ({"eval_strategy": "sometimes"}, "eval_strategy"),
        ({"optim": "adam_9000"}, "optim"),
        ({"lr_scheduler_type": "zigzag"}, "lr_scheduler_type"),
        ({"save_steps": 2.5}, "save_steps` must be an integer"),
        ({"logging_steps": 0}, "logging_steps"),
        ({"load_best_model_at_end": True, "eval_strategy": "epoch"}, "save and eval strategies"),
        (
            {"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 3, "save_steps": 10},
            "multiple",
        ),
        ({"save_strategy": "best"}, "metric_for_best_model"),
        ({"lr_scheduler_type": "reduce_lr_on_plateau"}, "eval_strategy"),
        ({"label_smoothing_factor": 1.0}, "label_smoothing_factor"),
        ({"max_steps": -1, "num_train_epochs": 0}, "nothing to train"),
        ({"dataloader_prefetch_factor": 2}, "dataloader_num_workers"),
        ({"report_to": "wandb"}, "report_to"),
        ({"push_to_hub": True}, "push_to_hub"),
        ({"batch_eval_metrics": True}, "batch_eval_metrics"),
        ({"log_level": "loud"}, "log_level"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"lr_scheduler_kwargs": "{not json"}, "lr_scheduler_kwargs"),
        ({"evaluation_strategy": "steps", "eval_strategy": "epoch"}, "both given"),
    ],
)
def test_contradictions_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainingArguments("out", **kwargs)


def test_serialisation_round_trip():
    args = TrainingArguments(
        "out", learning_rate=3e-5, lr_scheduler_kwargs={"num_cycles": 2}, label_names=["y"]
    )
    data = json.loads(args.to_json_string())
    assert TrainingArguments.from_dict(data).to_dict() == args.to_dict()
    with pytest.raises(ValueError, match="unknown TrainingArguments field"):
        TrainingArguments.from_dict({"output_dir": "o", "learning_rat": 1.0})

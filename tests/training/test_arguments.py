"""TrainingArguments: transformers' names and defaults, v4 spellings, clear validation errors."""

import dataclasses
import json

import pytest

from pretrained import TrainingArguments


def _declared_default(f):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def test_every_transformers_field_with_its_default():
    from transformers import TrainingArguments as Reference

    ours = {f.name: _declared_default(f) for f in dataclasses.fields(TrainingArguments)}
    theirs = {f.name: _declared_default(f) for f in dataclasses.fields(Reference)}
    assert sorted(set(theirs) - set(ours)) == []
    assert {n: (ours[n], v) for n, v in theirs.items() if ours[n] != v} == {}
    # and once built (post-init normalisation), the values programs read agree too
    built, reference = TrainingArguments("out").to_dict(), Reference("out")
    # normalised or hidden differently
    skip = {"report_to", "logging_dir", "accelerator_config", "hub_token", "disable_tqdm"}
    different = {
        n: (built[n], getattr(reference, n))
        for n in theirs
        if n not in skip and built[n] != getattr(getattr(reference, n), "value", getattr(reference, n))
    }
    assert different == {}
    assert built["report_to"] == [] and reference.report_to == []


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
        ({"deepspeed": "ds_config.json"}, "`deepspeed`.*not supported"),
        ({"fsdp": "hybrid_shard"}, "`fsdp`.*not supported"),
        ({"use_liger_kernel": True}, "`use_liger_kernel`.*not supported"),
        ({"neftune_noise_alpha": 5.0}, "`neftune_noise_alpha`.*not supported"),
        ({"auto_find_batch_size": True}, "`auto_find_batch_size`.*not supported"),
        ({"skip_memory_metrics": False}, "`skip_memory_metrics`.*not supported"),
        ({"debug": "underflow_overflow"}, "`debug`.*not supported"),
        ({"local_rank": 1}, "`local_rank`"),
        ({"log_level_replica": "loud"}, "log_level_replica"),
        ({"torch_empty_cache_steps": 0}, "torch_empty_cache_steps"),
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


def test_single_process_helpers():
    import logging

    args = TrainingArguments("out", log_level="info")
    assert (args.world_size, args.process_index, args.local_process_index) == (1, 0, 0)
    assert args.parallel_mode.value == "not_parallel"
    assert args.should_log and args.should_save
    ran = []
    with args.main_process_first(desc="tokenize"):
        ran.append(True)
    assert ran == [True]
    assert args.get_process_log_level() == logging.INFO
    passive = TrainingArguments("out").get_process_log_level()
    assert passive == logging.getLogger("pretrained").getEffectiveLevel()


def test_accepted_fields_and_checkpointing_rename():
    several_processes = dict(ddp_find_unused_parameters=False, ddp_timeout=60, local_rank=0)
    hub = dict(hub_model_id="me/model", hub_token="secret")
    rename = dict(activation_checkpointing=True, activation_checkpointing_kwargs='{"use_reentrant": false}')
    args = TrainingArguments(
        "out", torch_empty_cache_steps=10, use_cache=True, **several_processes, **hub, **rename
    )
    assert args.gradient_checkpointing is True
    assert args.gradient_checkpointing_kwargs == {"use_reentrant": False}
    data = args.to_dict()
    assert data["hub_token"] == "<HUB_TOKEN>" and "secret" not in args.to_json_string() + str(args)
    old = TrainingArguments("out", gradient_checkpointing=True)
    assert old.activation_checkpointing is True
    assert TrainingArguments("out").gradient_checkpointing is False


def test_training_args_bin_loads_with_every_transformers_field(tmp_path):
    import torch
    from transformers import TrainingArguments as Reference

    path = tmp_path / "training_args.bin"
    torch.save(TrainingArguments("out", learning_rate=1e-4), path)
    loaded = torch.load(path, weights_only=False)
    assert loaded.learning_rate == 1e-4
    # code written for transformers' object reads any of its fields from ours
    for f in dataclasses.fields(Reference):
        getattr(loaded, f.name)


def test_enums_match_transformers():
    from transformers.training_args import OptimizerNames as TheirOptimizers
    from transformers.training_args import ParallelMode as TheirModes

    from pretrained.training.arguments import OptimizerNames, ParallelMode

    assert {m.name: m.value for m in ParallelMode} == {m.name: m.value for m in TheirModes}
    ours = {m.name: m.value for m in OptimizerNames if m.value != "adamw_torch_foreach"}  # pretrained's extra
    assert ours.items() <= {m.name: m.value for m in TheirOptimizers}.items()
    assert TrainingArguments("out", optim=OptimizerNames.SGD).optim == "sgd"
    assert TrainingArguments("out", optim=TheirOptimizers.ADAMW_TORCH).optim == "adamw_torch"

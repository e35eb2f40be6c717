"""`pretrained train CONFIG`: JSON and YAML configs, resume, clear errors."""

import json
import shutil
import sys

import pytest
from cli_fixtures import TOKENIZER_FILES, save_tiny_bert_classifier

from pretrained.cli import main


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert_classifier(tmp_path_factory.mktemp("tiny-bert"))


def _data(tmp_path):
    rows = [
        {"text": f"sample {w} number {i}", "label": "pos" if i % 2 else "neg"}
        for i, w in enumerate("abcdefghijklmnop")
    ]
    for name, part in (("train.jsonl", rows[:12]), ("test.jsonl", rows[12:])):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in part))


def _config(tmp_path, model, **extra):
    return {
        "model": str(model),
        "task": "sequence-classification",
        "train_file": str(tmp_path / "train.jsonl"),
        "eval_file": str(tmp_path / "test.jsonl"),
        "max_length": 16,
        "args": {
            "output_dir": str(tmp_path / "out"),
            "max_steps": 4,
            "per_device_train_batch_size": 4,
            "save_steps": 2,
            "disable_tqdm": True,
            "use_cpu": True,
        },
        **extra,
    }


def test_train_from_json_then_resume(tmp_path, tiny_bert, capsys):
    _data(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(tmp_path, tiny_bert)))
    assert main(["train", str(path)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "eval_accuracy" in metrics and metrics["train_loss"] > 0
    out = tmp_path / "out"
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    saved = json.loads((out / "config.json").read_text())
    assert saved["label2id"] == {"neg": 0, "pos": 1}

    # resume from checkpoint-2 to 6 steps, overriding a field from the command line
    assert main(["train", str(path), "--resume", str(out / "checkpoint-2"), "--set", "max_steps=6"]) == 0
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["max_steps"] == 6


def test_yaml_config_and_missing_pyyaml(tmp_path, tiny_bert, monkeypatch, capsys):
    yaml = pytest.importorskip("yaml")
    _data(tmp_path)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path, tiny_bert)))
    assert main(["train", str(path), "--set", "max_steps=2"]) == 0
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert main(["train", str(path)]) == 1
    assert "needs PyYAML" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"task": "summarise"}, "task 'summarise'"),
        ({"epochs": 3}, "unknown config key"),
        ({"train_file": "/nope.jsonl"}, "does not exist"),
        ({"text_column": "body"}, "column 'body' is missing"),
        ({"args": {"output_dir": "x", "learning_rat": 1}}, "unknown TrainingArguments field"),
    ],
)
def test_errors_name_the_problem(tmp_path, tiny_bert, capsys, change, message):
    _data(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**_config(tmp_path, tiny_bert), **change}))
    assert main(["train", str(path)]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("task", ["token-classification", "masked-lm", "causal-lm"])
def test_other_tasks(tmp_path, tiny_bert, capsys, task):
    model = tiny_bert
    if task == "token-classification":
        rows = [{"tokens": ["the", "cat", f"n{i}"], "tags": ["O", "B", "O"]} for i in range(8)]
        extra = {"text_column": "tokens", "label_column": "tags"}
    else:
        rows = [{"text": f"the cat sat on mat number {i}"} for i in range(8)]
        extra = {}
    if task == "causal-lm":
        from pretrained.models.llama import LlamaConfig

        model = tmp_path / "llama"
        LlamaConfig(
            vocab_size=30522, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
        ).save_pretrained(model)
        for name in TOKENIZER_FILES:
            shutil.copy(tiny_bert / name, model / name)
        extra["from_scratch"] = True
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {**_config(tmp_path, model, task=task, **extra), "eval_file": str(tmp_path / "train.jsonl")}
    config["args"]["max_steps"] = 2
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main(["train", str(path)]) == 0, capsys.readouterr().err
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["eval_loss"] > 0
    if task == "token-classification":
        assert 0 <= metrics["eval_accuracy"] <= 1
    assert (tmp_path / "out" / "checkpoint-2" / "trainer_state.json").is_file()

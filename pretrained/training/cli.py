"""`pretrained train CONFIG`: fine-tune or train a model from a JSON (or YAML) config file.

A config names the model, the task, the data files and the `TrainingArguments`:

```yaml
model: path/or/repo-id          # a folder or a repo id in the local Hugging Face cache
task: sequence-classification   # or token-classification, masked-lm, causal-lm
tokenizer: path/or/repo-id      # default: the model
num_labels: 2                   # sequence/token classification (default: from the model's config)
from_scratch: false             # true: build the model from its config, random weights
train_file: data/train.jsonl    # .jsonl, .json (a list of objects) or .csv
eval_file: data/test.jsonl      # optional
text_column: text
text_pair_column: null          # second text of a pair (sequence classification)
label_column: label             # int labels, or strings mapped to ids (sorted)
max_length: 128
mlm_probability: 0.15           # masked-lm
resume_from_checkpoint: null    # true, or a checkpoint folder
args:                           # TrainingArguments fields
  output_dir: out
  num_train_epochs: 3
```

JSON configs always work; YAML needs PyYAML (`pip install pyyaml`). `--set key=value` overrides a
`TrainingArguments` field (the value is read as JSON when it parses, else as a string).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from typing import Any

from .launch import add_launch_arguments, relaunch

TASKS = ("sequence-classification", "token-classification", "masked-lm", "causal-lm")
_CONFIG_KEYS = {
    "model",
    "task",
    "tokenizer",
    "num_labels",
    "from_scratch",
    "train_file",
    "eval_file",
    "text_column",
    "text_pair_column",
    "label_column",
    "max_length",
    "mlm_probability",
    "resume_from_checkpoint",
    "args",
}


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `train` sub-command to an argparse `subparsers` object; its handler is `args.func`."""
    parser = subparsers.add_parser(
        "train",
        help="train or fine-tune a model from a JSON/YAML config",
        description=__doc__.split("\n\n")[0].strip("`"),
        epilog=__doc__.split("\n\n", 1)[1].replace("```yaml\n", "").replace("```\n", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="config file (.json, or .yaml/.yml with PyYAML installed)")
    parser.add_argument("--output-dir", "--output_dir", dest="output_dir", help="overrides args.output_dir")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=None, help="resume (from the last or a given checkpoint)"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainingArguments field"
    )
    add_launch_arguments(parser)
    parser.set_defaults(func=run_train)
    return parser


def load_config(path: str) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict, with errors that name the file and the problem."""
    if not os.path.isfile(path):
        raise OSError(f"config file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError as e:
            raise ValueError(
                f"{path} is YAML, which needs PyYAML (pip install pyyaml); or write it as JSON"
            ) from e
        config = yaml.safe_load(text)
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping of config keys, got {type(config).__name__}")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise ValueError(
            f"{path}: unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(_CONFIG_KEYS))}"
        )
    for key in ("model", "task", "train_file"):
        if key not in config:
            raise ValueError(f"{path}: missing required key {key!r}")
    if config["task"] not in TASKS:
        raise ValueError(f"{path}: task {config['task']!r} is not one of {', '.join(TASKS)}")
    return config


def read_rows(path: str) -> list[dict[str, Any]]:
    """Rows of a .jsonl, .json (list of objects) or .csv file."""
    if not os.path.isfile(path):
        raise OSError(f"data file {path} does not exist")
    with open(path, encoding="utf-8", newline="") as f:
        if path.endswith(".csv"):
            return list(csv.DictReader(f))
        if path.endswith(".json"):
            rows = json.load(f)
            if not isinstance(rows, list):
                raise ValueError(f"{path} must hold a JSON list of objects")
            return rows
        rows = []
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}, line {n}: not valid JSON: {e}") from e
        return rows


def _column(rows: list[dict], name: str, path: str) -> list[Any]:
    try:
        return [row[name] for row in rows]
    except KeyError:
        raise ValueError(
            f"{path}: column {name!r} is missing (columns: {', '.join(rows[0]) if rows else 'none'})"
        ) from None


def _label_ids(values: list[Any], label2id: dict[str, int] | None) -> tuple[list[int], dict[str, int] | None]:
    if all(isinstance(v, int) for v in values):
        return values, label2id
    if label2id is None:
        label2id = {str(v): i for i, v in enumerate(sorted({str(v) for v in values}))}
    try:
        return [label2id[str(v)] for v in values], label2id
    except KeyError as e:
        raise ValueError(f"label {e.args[0]!r} is not among the training labels {sorted(label2id)}") from None


def build_dataset(
    config: dict[str, Any], path: str, tokenizer: Any, label2id: dict | None
) -> tuple[list[dict], dict | None]:
    """Tokenize the rows of `path` for the config's task."""
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"data file {path} has no rows")
    task = config["task"]
    max_length = config.get("max_length", 128)
    texts = _column(rows, config.get("text_column", "text"), path)
    if task == "token-classification":
        # each row holds pre-split words and one label per word
        enc = tokenizer(texts, is_split_into_words=True, truncation=True, max_length=max_length)
        tags, label2id = _label_ids(
            [t for row in _column(rows, config.get("label_column", "labels"), path) for t in row], label2id
        )
        out, k = [], 0
        for i, row_tags in enumerate(_column(rows, config.get("label_column", "labels"), path)):
            ids = tags[k : k + len(row_tags)]
            k += len(row_tags)
            word_ids = enc.word_ids(i)
            labels = [
                -100 if w is None or (j and word_ids[j - 1] == w) else ids[w] for j, w in enumerate(word_ids)
            ]
            out.append({**{key: enc[key][i] for key in enc}, "labels": labels})
        return out, label2id
    pairs = config.get("text_pair_column")
    enc = tokenizer(
        texts, _column(rows, pairs, path) if pairs else None, truncation=True, max_length=max_length
    )
    out = [{key: enc[key][i] for key in enc} for i in range(len(rows))]
    if task == "sequence-classification":
        labels, label2id = _label_ids(_column(rows, config.get("label_column", "label"), path), label2id)
        for row, label in zip(out, labels):
            row["labels"] = label
    return out, label2id


def _accuracy(pred: Any) -> dict[str, float]:
    import numpy as np

    logits, labels = pred.predictions, pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    predicted = np.asarray(logits).argmax(-1)
    mask = labels != -100
    return {"accuracy": float((predicted[mask] == labels[mask]).mean())}


def run_train(cli_args: argparse.Namespace) -> int:
    """Handler of `pretrained train`: load, tokenize, train, save, evaluate; prints metrics as JSON."""
    code = relaunch(cli_args)  # `--nproc-per-node N`: the same command in N processes under torchrun
    if code is not None:
        return code
    import pretrained
    from pretrained import Trainer, TrainingArguments

    from .collators import (
        DataCollatorForLanguageModeling,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
    )

    config = load_config(cli_args.config)
    arg_values = dict(config.get("args") or {})
    for item in cli_args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            arg_values[key] = json.loads(value)
        except json.JSONDecodeError:
            arg_values[key] = value
    if cli_args.output_dir:
        arg_values["output_dir"] = cli_args.output_dir
    if config.get("eval_file") is None and arg_values.get("eval_strategy", "no") != "no":
        raise ValueError("args.eval_strategy needs an eval_file in the config")
    args = TrainingArguments.from_dict(arg_values)

    task = config["task"]
    tokenizer = pretrained.AutoTokenizer.from_pretrained(config.get("tokenizer") or config["model"])
    train, label2id = build_dataset(config, config["train_file"], tokenizer, None)
    evaluation = None
    if config.get("eval_file"):
        evaluation, _ = build_dataset(config, config["eval_file"], tokenizer, label2id)

    auto = {
        "sequence-classification": pretrained.AutoModelForSequenceClassification,
        "token-classification": pretrained.AutoModelForTokenClassification,
        "masked-lm": pretrained.AutoModelForMaskedLM,
        "causal-lm": pretrained.AutoModelForCausalLM,
    }[task]
    model_kwargs: dict[str, Any] = {}
    if task in ("sequence-classification", "token-classification"):
        num_labels = config.get("num_labels") or (len(label2id) if label2id else None)
        if num_labels:
            model_kwargs["num_labels"] = num_labels
        if label2id:
            model_kwargs["label2id"] = label2id
            model_kwargs["id2label"] = {i: name for name, i in label2id.items()}
    if config.get("from_scratch"):
        model_config = pretrained.AutoConfig.from_pretrained(config["model"], **model_kwargs)
        model = auto.from_config(model_config)
    else:
        model = auto.from_pretrained(config["model"], **model_kwargs)

    if task == "masked-lm":
        collator = DataCollatorForLanguageModeling(
            tokenizer, mlm_probability=config.get("mlm_probability", 0.15)
        )
    elif task == "causal-lm":
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    elif task == "token-classification":
        collator = DataCollatorForTokenClassification(tokenizer)
    else:
        collator = DataCollatorWithPadding(tokenizer)
    classify = task in ("sequence-classification", "token-classification")
    trainer = Trainer(
        model,
        args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=_accuracy if classify else None,
    )
    resume = cli_args.resume if cli_args.resume is not None else config.get("resume_from_checkpoint")
    if isinstance(resume, str) and resume.lower() in ("true", "last"):
        resume = True
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model()
    metrics = dict(result.metrics)
    if evaluation is not None:
        metrics.update(trainer.evaluate())
    if trainer.is_world_process_zero():  # (under torchrun every process got here)
        print(json.dumps(metrics))
    return 0

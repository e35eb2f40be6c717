"""The README.md model card `Trainer.create_model_card` writes: metadata, results, hyperparameters.

The layout follows the cards transformers' Trainer drafts (YAML metadata, a results list, the
hyperparameters, a table of the evaluations during training), so a folder pushed by either library
reads the same on the Hub.
"""

from __future__ import annotations

import os
from typing import Any

_INTRO = (
    "<!-- This model card has been generated automatically according to the information the Trainer had "
    "access to. You should probably proofread and complete it, then remove this comment. -->"
)
_MORE = "More information needed"


def _as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _metric_title(key: str) -> str:
    """`eval_f1_score` -> `F1 Score` (the table's column names)."""
    for prefix in ("eval_", "test_"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return " ".join(w.capitalize() for w in key.split("_"))


def _fmt(value: Any) -> str:
    """Floats with more than 4 decimals rounded to 4 (`0.5` stays `0.5`), as transformers' cards show them."""
    if isinstance(value, float) and len(str(value).partition(".")[2]) > 4:
        return f"{value:.4f}"
    return str(value)


_SPEED_KEYS = ("_runtime", "_samples_per_second", "_steps_per_second", "_tokens_per_second")


def _eval_results(log_history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of the training results table and the last evaluation's metrics."""
    rows: list[dict[str, Any]] = []
    train_loss: Any = "No log"
    last: dict[str, Any] = {}
    # the table holds the evaluations made during training (before the entry `train()` ends with), as
    # transformers' cards do; an evaluation after training only gives the results listed above it
    trained = any("train_runtime" in entry for entry in log_history)
    during = trained
    for entry in log_history:
        if "train_runtime" in entry:
            during = False
        if "loss" in entry:
            train_loss = entry["loss"]
        if "eval_loss" not in entry:
            continue
        metrics = {
            k: v
            for k, v in entry.items()
            if k.startswith("eval_") and not k.endswith(_SPEED_KEYS) and k != "eval_loss"
        }
        row = {"Training Loss": train_loss, "Epoch": entry.get("epoch"), "Step": entry.get("step")}
        row["Validation Loss"] = entry["eval_loss"]
        row.update({_metric_title(k): v for k, v in metrics.items()})
        if during:
            rows.append(row)
        last = {"Loss": entry["eval_loss"], **{_metric_title(k): v for k, v in metrics.items()}}
    return rows, last


def _table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(":---:" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _hyperparameters(args: Any, state: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "learning_rate": args.learning_rate,
        "train_batch_size": args.per_device_train_batch_size,
        "eval_batch_size": args.per_device_eval_batch_size,
        "seed": args.seed,
    }
    if args.gradient_accumulation_steps > 1:
        out["gradient_accumulation_steps"] = args.gradient_accumulation_steps
        out["total_train_batch_size"] = args.train_batch_size * args.gradient_accumulation_steps
    optim = getattr(args.optim, "value", args.optim)
    out["optimizer"] = (
        f"Use {optim} with betas=({args.adam_beta1},{args.adam_beta2}) and epsilon={args.adam_epsilon}"
    )
    out["lr_scheduler_type"] = getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)
    if args.warmup_steps:
        out["lr_scheduler_warmup_steps"] = args.warmup_steps
    if args.max_steps > 0:
        out["training_steps"] = args.max_steps
    else:
        out["num_epochs"] = args.num_train_epochs
    if args.fp16 or args.bf16:
        out["mixed_precision_training"] = "Native AMP"
    return out


def render_model_card(trainer: Any, card: dict[str, Any]) -> str:
    """The text of the model card for what `trainer` trained.

    Args:
        trainer: The `Trainer` (its arguments, state and model).
        card: The arguments of `Trainer.create_model_card` (`language`, `license`, `tags`, `model_name`,
            `finetuned_from`, `tasks`, `dataset_tags`, `dataset`, `dataset_args`), None where not given.
    """
    import huggingface_hub
    import torch

    from pretrained import __version__

    args, state = trainer.args, trainer.state
    model_name, finetuned_from = card.get("model_name"), card.get("finetuned_from")
    dataset, dataset_args = card.get("dataset"), card.get("dataset_args")
    if model_name is None:
        model_name = os.path.basename(os.path.normpath(args.output_dir))
    if finetuned_from is None:
        name = getattr(getattr(trainer.model, "config", None), "_name_or_path", None)
        # a local folder is no Hub id to link to
        if name and not os.path.isdir(name):
            finetuned_from = name
    tags = ["generated_from_trainer"] + [
        t for t in _as_list(card.get("tags")) if t != "generated_from_trainer"
    ]
    rows, last = _eval_results(state.log_history)
    metric_names = [k.lower().replace(" ", "_") for k in last if k != "Loss"]
    data = huggingface_hub.ModelCardData(
        language=card.get("language"),
        license=card.get("license"),
        library_name="transformers",
        base_model=finetuned_from,
        tags=tags,
        datasets=_as_list(card.get("dataset_tags")) or None,
        metrics=metric_names or None,
        model_name=model_name,
    )
    if card.get("tasks"):
        data.pipeline_tag = _as_list(card["tasks"])[0]
    datasets = _as_list(dataset)
    on = f" on the {', '.join(datasets)} dataset" if datasets else " on an unknown dataset"
    if dataset_args:
        on += f" ({', '.join(_as_list(dataset_args))})"
    base = f"[{finetuned_from}](https://huggingface.co/{finetuned_from})" if finetuned_from else "a model"
    parts = ["---", data.to_yaml(), "---", "", _INTRO, "", f"# {model_name}", ""]
    parts.append(f"This model is a fine-tuned version of {base}{on}.")
    if last:
        parts.append("It achieves the following results on the evaluation set:")
        parts += [f"- {k}: {_fmt(v)}" for k, v in last.items()]
    for title in ("Model description", "Intended uses & limitations", "Training and evaluation data"):
        parts += ["", f"## {title}", "", _MORE]
    parts += ["", "## Training procedure", "", "### Training hyperparameters", ""]
    parts.append("The following hyperparameters were used during training:")
    parts += [f"- {k}: {v}" for k, v in _hyperparameters(args, state).items()]
    # transformers writes the section even when no evaluation ran during training (an empty table)
    parts += ["", "### Training results", "", _table(rows) if rows else ""]
    parts += ["", "### Framework versions", ""]
    parts += [
        f"- Pretrained {__version__}",
        f"- Pytorch {torch.__version__}",
        f"- Huggingface Hub {huggingface_hub.__version__}",
    ]
    return "\n".join(parts) + "\n"

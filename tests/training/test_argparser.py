"""HfArgumentParser: the same dataclasses as transformers' parser for the same command lines."""

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest
import transformers

from pretrained.training.argparser import HfArg, HfArgumentParser
from pretrained.training.arguments import TrainingArguments


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class ModelArgs:
    model_name_or_path: str = field(metadata={"help": "Path or id of the model."})
    cache_dir: str | None = None
    use_fast: bool = True
    trust_remote_code: bool = False
    low_cpu: bool | None = None
    color: Color = Color.RED
    mode: Literal["train", "eval", 3] = "train"
    layers: list[int] = field(default_factory=lambda: [1, 2])
    names: list[str] | None = None
    dropout: float = 0.1
    max_len: int | None = None
    tag: str = HfArg(default="x", aliases=["-t"], help="A tag.")


ARGVS = [
    ["--model_name_or_path", "m"],
    ["--model-name-or-path", "m", "--no_use_fast", "--trust_remote_code", "--low_cpu", "false"],
    ["--model_name_or_path", "m", "--use_fast", "false", "--trust_remote_code", "yes", "--color", "blue"],
    ["--model_name_or_path", "m", "--mode", "3", "--layers", "4", "5", "6", "--names", "a", "b"],
    ["--model_name_or_path", "m", "--dropout", "0.3", "--max_len", "128", "-t", "y", "--no-use-fast"],
]


@pytest.mark.parametrize("argv", ARGVS)
def test_same_dataclasses_as_transformers(argv):
    (ours,) = HfArgumentParser(ModelArgs).parse_args_into_dataclasses(argv, look_for_args_file=False)
    (theirs,) = transformers.HfArgumentParser(ModelArgs).parse_args_into_dataclasses(
        argv, look_for_args_file=False
    )
    assert ours == theirs


def test_training_arguments_from_the_command_line():
    argv = ["--output_dir", "o", "--do_train", "--learning_rate", "3e-5", "--no_dataloader_pin_memory"]
    argv += ["--fp16", "false", "--lr_scheduler_type", "cosine", "--gradient_checkpointing"]
    argv += ["--include_num_input_tokens_seen", "--label_names", "a", "b", "--warmup_steps", "0.1"]
    argv += ["--eval_strategy", "steps", "--eval_steps", "5", "--save_total_limit", "2"]
    model, ours = HfArgumentParser((ModelArgs, TrainingArguments)).parse_args_into_dataclasses(
        ["--model_name_or_path", "m", *argv], look_for_args_file=False
    )
    (theirs,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_args_into_dataclasses(
        argv, look_for_args_file=False
    )
    assert model.model_name_or_path == "m"
    for f in dataclasses.fields(transformers.TrainingArguments):
        if f.name in ("accelerator_config", "disable_tqdm", "logging_dir"):
            continue  # normalised differently after parsing
        value = getattr(theirs, f.name)
        assert getattr(ours, f.name) == getattr(value, "value", value), f.name


def test_help_text_and_required_fields(capsys):
    parser = HfArgumentParser(ModelArgs)
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses([], look_for_args_file=False)
    assert "--model_name_or_path" in capsys.readouterr().err
    text = parser.format_help()
    assert "Path or id of the model." in text and "A tag." in text and "--no_use_fast" in text
    assert "{red,blue}" in text


def test_remaining_strings_and_extra_namespace():
    parser = HfArgumentParser(ModelArgs)
    parser.add_argument("--extra", type=int, default=0)
    model, extra, rest = parser.parse_args_into_dataclasses(
        ["--model_name_or_path", "m", "--extra", "3", "--unknown", "1"],
        return_remaining_strings=True,
        look_for_args_file=False,
    )
    assert model.model_name_or_path == "m" and extra.extra == 3 and rest == ["--unknown", "1"]
    with pytest.raises(ValueError, match="--unknown"):
        parser.parse_args_into_dataclasses(
            ["--model_name_or_path", "m", "--unknown"], look_for_args_file=False
        )


def test_args_files(tmp_path):
    defaults = tmp_path / "defaults.args"
    defaults.write_text("--model_name_or_path from_file --dropout 0.5")
    more = tmp_path / "more.args"
    more.write_text("--max_len 7")
    (model,) = HfArgumentParser(ModelArgs).parse_args_into_dataclasses(
        ["--dropout", "0.2", "--args_file", str(more)],
        args_filename=str(defaults),
        args_file_flag="--args_file",
    )
    assert (model.model_name_or_path, model.dropout, model.max_len) == ("from_file", 0.2, 7)


def test_dict_json_and_yaml(tmp_path):
    parser = HfArgumentParser((ModelArgs, TrainingArguments))
    values = {"model_name_or_path": "m", "layers": [3], "output_dir": "o", "learning_rate": 1e-3}
    model, training = parser.parse_dict(values)
    assert model.layers == [3] and training.learning_rate == 1e-3
    with pytest.raises(ValueError, match="learning_rat"):
        parser.parse_dict({**values, "learning_rat": 1})
    assert parser.parse_dict({**values, "learning_rat": 1}, allow_extra_keys=True)[1].output_dir == "o"

    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    assert parser.parse_json_file(path) == (model, training)
    # one JSON file as the whole command line reads it, as the example scripts do
    assert parser.parse_args_into_dataclasses([str(path)])[0] == model
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ValueError, match="bad.json"):
        parser.parse_json_file(tmp_path / "bad.json")

    yaml = pytest.importorskip("yaml")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(values))
    assert parser.parse_yaml_file(tmp_path / "config.yaml")[0] == model


def test_yaml_missing_is_a_clear_error(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ImportError, match="pyyaml"):
        HfArgumentParser(ModelArgs).parse_yaml_file(tmp_path / "config.yaml")


def test_unparseable_union_names_the_field():
    @dataclass
    class Bad:
        value: int | float = 1

    with pytest.raises(ValueError, match="'value'"):
        HfArgumentParser(Bad)


def test_optional_flag_needs_a_value_and_unsupported_features_are_named():
    parser = HfArgumentParser(TrainingArguments)
    for flags in (["--tf32"], ["--tf32", "maybe"]):
        with pytest.raises(SystemExit):
            parser.parse_args_into_dataclasses(["--output_dir", "o", *flags], look_for_args_file=False)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", "o", "--tf32", "no"], look_for_args_file=False
    )
    assert args.tf32 is False
    (args,) = parser.parse_args_into_dataclasses(["--output_dir", "o"], look_for_args_file=False)
    assert args.tf32 is None
    for argv, name in ((["--fsdp", "hybrid_shard"], "fsdp"), (["--deepspeed", "ds.json"], "deepspeed")):
        with pytest.raises(ValueError, match=f"`{name}`.*not supported"):
            parser.parse_args_into_dataclasses(["--output_dir", "o", *argv], look_for_args_file=False)


def test_v4_flags_on_the_command_line():
    # command lines written for transformers 4 still parse, and scripts that read the old flags see them
    argv = ["--output_dir", "o", "--overwrite_output_dir", "--no_cuda", "--evaluation_strategy", "epoch"]
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses(argv, look_for_args_file=False)
    assert args.overwrite_output_dir is True and args.use_cpu and args.eval_strategy == "epoch"

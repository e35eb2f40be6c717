"""Configs read and write config.json like transformers does."""

import json
import os
import stat

import pytest
import transformers as T

import pretrained as P


def test_roundtrip_with_transformers(tmp_path):
    T.BertConfig(hidden_size=48, num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}).save_pretrained(tmp_path)
    config = P.AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, P.BertConfig)
    assert config.hidden_size == 48 and config.num_labels == 3
    assert config.id2label == {0: "neg", 1: "neu", 2: "pos"} and config.label2id["pos"] == 2
    config.save_pretrained(tmp_path / "out")
    ours = json.loads((tmp_path / "out" / "config.json").read_text())
    theirs = json.loads((tmp_path / "config.json").read_text())
    # transformers 5 writes "label2id": null when only id2label was given; we write the derived mapping.
    assert ours.pop("label2id") == {"neg": 0, "neu": 1, "pos": 2}
    theirs.pop("label2id")
    assert ours == theirs
    reread = T.AutoConfig.from_pretrained(tmp_path / "out")
    assert reread.id2label == {0: "neg", 1: "neu", 2: "pos"} and reread.hidden_size == 48


def test_only_non_default_base_values_written(tmp_path):
    P.BertConfig().save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    assert "output_hidden_states" not in data and "id2label" not in data and "return_dict" not in data
    assert data["model_type"] == "bert" and data["hidden_size"] == 768
    assert data == json.loads(T.BertConfig().to_json_string())


def test_unknown_keys_kept_and_written_back(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "my_custom_field": [1, 2]}))
    config = P.AutoConfig.from_pretrained(tmp_path)
    assert config.my_custom_field == [1, 2]
    config.save_pretrained(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["my_custom_field"] == [1, 2]


def test_attribute_map_aliases():
    config = P.DistilBertConfig(dim=64, n_heads=4)
    assert config.hidden_size == 64 and config.num_attention_heads == 4
    config.hidden_size = 128
    assert config.dim == 128
    assert "hidden_size" not in config.to_dict()
    assert P.DistilBertConfig(hidden_size=96).dim == 96


def test_num_labels_and_legacy_torch_dtype(tmp_path):
    config = P.BertConfig()
    assert config.num_labels == 2 and config.id2label == {0: "LABEL_0", 1: "LABEL_1"}
    config.num_labels = 4
    assert list(config.label2id) == ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "torch_dtype": "float16"}))
    loaded = P.AutoConfig.from_pretrained(tmp_path)
    assert loaded.dtype == "float16" and loaded.torch_dtype == "float16"


def test_kwargs_override_and_unused():
    config, unused = P.BertConfig.from_dict({"hidden_size": 8}, hidden_size=16, foo=1, return_unused_kwargs=True)
    assert config.hidden_size == 16 and unused == {"foo": 1}


def test_bad_files(tmp_path):
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(OSError, match="not valid JSON"):
        P.AutoConfig.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 3}))
    with pytest.raises(ValueError, match="no 'model_type'"):
        P.AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="problem_type"):
        P.BertConfig(problem_type="nonsense")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_saved_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        P.BertConfig(hidden_size=32, num_attention_heads=4).save_pretrained(tmp_path / str(umask))
        P.GenerationConfig(max_new_tokens=3).save_pretrained(tmp_path / str(umask))
    finally:
        os.umask(old)
    for name in ("config.json", "generation_config.json"):
        assert stat.S_IMODE(os.stat(tmp_path / str(umask) / name).st_mode) == 0o666 & ~umask, name
    assert not [p for p in os.listdir(tmp_path / str(umask)) if p.endswith(".tmp")]


# DistilBERT declares no use_cache: both libraries drop it there (and legacy generation flags everywhere).
@pytest.mark.parametrize(("name", "values"), [
    (name, values) for name in ("BertConfig", "GPT2Config", "LlamaConfig", "DistilBertConfig", "RobertaConfig")
    for values in ({}, {"use_cache": False}, {"hidden_size": 64, "num_attention_heads": 4},
                   {"max_length": 128, "num_beams": 4, "do_sample": True})
])  # fmt: skip
def test_saved_json_matches_transformers(tmp_path, name, values):
    if "hidden_size" in values and name in ("GPT2Config", "DistilBertConfig"):
        values = {}  # their own names for the same fields are tested by the default case
    getattr(T, name)(**values).save_pretrained(tmp_path / "theirs")
    getattr(P, name)(**values).save_pretrained(tmp_path / "ours")
    theirs = json.loads((tmp_path / "theirs" / "config.json").read_text())
    ours = json.loads((tmp_path / "ours" / "config.json").read_text())
    assert ours == theirs

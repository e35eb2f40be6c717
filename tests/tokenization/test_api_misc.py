"""Smaller API points against transformers: split_special_tokens, add_bos/eos_token, named extra tokens,
decoding tensors, the transformers-4 names, and the public exports."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import CORPUS, assert_same_encoding  # noqa: E402


def _fresh(tokenizer_dirs, name, **kwargs):
    import transformers

    from pretrained import AutoTokenizer

    path = tokenizer_dirs(name)
    return AutoTokenizer.from_pretrained(path, **kwargs), transformers.AutoTokenizer.from_pretrained(
        path, **kwargs
    )


@pytest.mark.parametrize("name", ["minilm", "llama_spbpe"])
def test_split_special_tokens(tokenizer_dirs, name):
    ours, theirs = _fresh(tokenizer_dirs, name)
    text = CORPUS[10]
    assert ours(text, split_special_tokens=True) == theirs(text, split_special_tokens=True)
    assert ours.tokenize(text, split_special_tokens=True) == theirs.tokenize(text, split_special_tokens=True)
    ours, theirs = _fresh(tokenizer_dirs, name, split_special_tokens=True)
    assert ours(CORPUS) == theirs(CORPUS)


def test_add_bos_eos_token(tokenizer_dirs):
    ours, theirs = _fresh(tokenizer_dirs, "llama_spbpe")
    for tok in (ours, theirs):
        tok.add_eos_token = True
        tok.add_bos_token = False
    assert ours(CORPUS, CORPUS) == theirs(CORPUS, CORPUS)
    ours, theirs = _fresh(tokenizer_dirs, "bytelevel_chatml", add_bos_token=True, bos_token="<|im_start|>")
    assert ours(CORPUS) == theirs(CORPUS)
    assert ours.num_special_tokens_to_add() == theirs.num_special_tokens_to_add() == 1


def test_named_extra_special_tokens(tokenizer_dirs, tmp_path):
    import transformers

    from pretrained import AutoTokenizer

    ours, theirs = _fresh(
        tokenizer_dirs, "gpt2", image_token="<image>", extra_special_tokens={"audio_token": "<audio>"}
    )
    for attr in ("image_token", "image_token_id", "audio_token", "audio_token_id", "all_special_tokens"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    text = "look <image> and <audio>"
    assert ours(text) == theirs(text)
    ours.save_pretrained(tmp_path)
    for tok in (
        AutoTokenizer.from_pretrained(tmp_path),
        transformers.AutoTokenizer.from_pretrained(tmp_path),
    ):
        assert tok.image_token == "<image>" and tok(text) == theirs(text)


def test_decode_tensors_and_old_names(load_pair):
    import numpy as np

    ours, theirs = load_pair("minilm")
    batch = theirs(CORPUS, padding=True, return_tensors="pt")
    assert ours.batch_decode(batch["input_ids"], skip_special_tokens=True) == theirs.batch_decode(
        batch["input_ids"], skip_special_tokens=True
    )
    assert ours.decode(batch["input_ids"][0]) == theirs.decode(batch["input_ids"][0])
    assert ours.decode(np.asarray(batch["input_ids"][1])) == theirs.decode(np.asarray(batch["input_ids"][1]))
    assert ours.decode(batch["input_ids"]) == theirs.decode(batch["input_ids"])
    assert_same_encoding(
        ours.encode_plus("a", "b", return_tensors="np"), theirs("a", "b", return_tensors="np")
    )
    assert_same_encoding(
        ours.batch_encode_plus([("a", "b"), ("c d", "e")], padding=True),
        theirs(["a", "c d"], ["b", "e"], padding=True),
    )
    assert (
        ours.encode(CORPUS[1], return_tensors="pt").tolist()
        == theirs.encode(CORPUS[1], return_tensors="pt").tolist()
    )
    assert ours.max_len_single_sentence == theirs.max_len_single_sentence
    assert ours.get_special_tokens_mask(batch["input_ids"][0].tolist(), already_has_special_tokens=True) == (
        theirs.get_special_tokens_mask(batch["input_ids"][0].tolist(), already_has_special_tokens=True)
    )


def test_exports():
    import transformers

    import pretrained

    for name in (
        "AutoTokenizer",
        "PreTrainedTokenizerFast",
        "PreTrainedTokenizerBase",
        "BatchEncoding",
        "BertTokenizer",
        "BertTokenizerFast",
        "GPT2TokenizerFast",
        "RobertaTokenizerFast",
        "LlamaTokenizerFast",
        "T5TokenizerFast",
        "PreTrainedTokenizer",
    ):
        assert hasattr(pretrained, name), name
        assert hasattr(transformers, name), name
    assert pretrained.BertTokenizerFast is pretrained.BertTokenizer
    assert issubclass(pretrained.BertTokenizer, pretrained.PreTrainedTokenizerBase)


def test_config_options_from_kwargs_and_files(tokenizer_dirs, tmp_path):
    import json
    import shutil

    import transformers

    from pretrained import AutoTokenizer

    options = {
        "truncation_side": "left",
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        "padding_side": "left",
        "model_max_length": 16,
    }
    src = tokenizer_dirs("minilm")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, name), tmp_path / name)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, **options}))
    pairs = [
        (
            AutoTokenizer.from_pretrained(src, **options),
            transformers.AutoTokenizer.from_pretrained(src, **options),
        )
    ]
    pairs.append(
        (AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path))
    )
    text = ["Hello , world ! It 's a test , isn't it ?"] + CORPUS
    for ours, theirs in pairs:
        for key, value in options.items():
            assert getattr(ours, key) == getattr(theirs, key) == value, key
        for tensors in (None, "pt"):
            assert_same_encoding(
                ours(text, padding=True, truncation=True, return_tensors=tensors),
                theirs(text, padding=True, truncation=True, return_tensors=tensors),
            )
        ids = theirs(text[0])["input_ids"]
        assert ours.decode(ids) == theirs.decode(ids)

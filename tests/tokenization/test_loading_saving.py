"""Loading options, saving round trips in both directions, BatchEncoding helpers, torch-free import."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import CORPUS, PAIRS, assert_same_encoding  # noqa: E402


def test_import_and_load_without_torch(tokenizer_dirs):
    path = str(tokenizer_dirs("minilm"))
    code = (
        "import sys, pretrained\n"
        "from pretrained import AutoTokenizer\n"
        f"tok = AutoTokenizer.from_pretrained({path!r})\n"
        "enc = tok(['hello world', 'a'], padding=True, return_tensors='np')\n"
        "tok.decode(enc['input_ids'][0])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'transformers' not in sys.modules, 'transformers was imported'\n"
        "tok.apply_chat_template([{'role': 'user', 'content': 'hi'}], chat_template='{{ messages[0].content }}')\n"
        "assert 'torch' not in sys.modules, 'torch was imported by chat templates'\n"
        "tok(['x'], return_tensors='pt')\n"
        "assert 'torch' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["minilm", "bytelevel_chatml", "t5_unigram", "llama_spbpe", "roberta"])
def test_save_round_trip_both_ways(load_pair, tmp_path, name):
    import transformers

    from pretrained import AutoTokenizer

    ours, theirs = load_pair(name)
    pad = theirs.pad_token is not None
    ours.save_pretrained(tmp_path / "ours")
    theirs.save_pretrained(tmp_path / "theirs")
    reference = theirs(
        CORPUS, PAIRS + PAIRS[: len(CORPUS) - len(PAIRS)], padding=pad, truncation=True, max_length=20
    )
    for folder in ("ours", "theirs"):
        a = AutoTokenizer.from_pretrained(tmp_path / folder)
        b = transformers.AutoTokenizer.from_pretrained(tmp_path / folder)
        for tok in (a, b):
            got = tok(
                CORPUS,
                PAIRS + PAIRS[: len(CORPUS) - len(PAIRS)],
                padding=pad,
                truncation=True,
                max_length=20,
            )
            assert_same_encoding(got, reference, (folder, type(tok)))
            assert tok.special_tokens_map == theirs.special_tokens_map
            assert tok.chat_template == theirs.chat_template
            assert tok.model_max_length == theirs.model_max_length
            assert tok.padding_side == theirs.padding_side
        assert type(a).__name__.removesuffix("Fast") in (type(b).__name__, "PreTrainedTokenizer")
    config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    assert "name_or_path" not in config and "tokenizer_file" not in config


def test_added_tokens_and_special_tokens_round_trip(load_pair, tmp_path):
    import transformers

    from pretrained import AutoTokenizer

    ours, _ = load_pair("gpt2")
    fresh = AutoTokenizer.from_pretrained(ours.name_or_path)
    theirs = transformers.AutoTokenizer.from_pretrained(ours.name_or_path)
    for tok in (fresh, theirs):
        assert tok.add_tokens(["<new_tok>", "brandnew"]) == 2
        assert tok.add_special_tokens({"pad_token": "<PAD>", "extra_special_tokens": ["<tool>"]}) == 2
    text = "a brandnew <new_tok> and <tool> with <PAD>"
    assert fresh(text) == theirs(text)
    assert fresh.decode(fresh(text)["input_ids"], skip_special_tokens=True) == theirs.decode(
        theirs(text)["input_ids"], skip_special_tokens=True
    )
    assert fresh.get_added_vocab() == theirs.get_added_vocab()
    fresh.save_pretrained(tmp_path)
    again_ours = AutoTokenizer.from_pretrained(tmp_path)
    again_theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert again_ours(text) == theirs(text) == again_theirs(text)
    assert again_ours.pad_token == again_theirs.pad_token == "<PAD>"
    assert again_ours.extra_special_tokens == again_theirs.extra_special_tokens == ["<tool>"]


def test_legacy_special_tokens_map_and_kwargs(tokenizer_dirs, tmp_path):
    import shutil

    import transformers

    from pretrained import AutoTokenizer

    src = tokenizer_dirs("gpt2")
    shutil.copy(os.path.join(src, "tokenizer.json"), tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "GPT2Tokenizer", "model_max_length": 64, "padding_side": "left"})
    )
    (tmp_path / "special_tokens_map.json").write_text(
        json.dumps({"pad_token": {"content": "<|endoftext|>", "lstrip": False, "rstrip": False}})
    )
    ours, theirs = (
        AutoTokenizer.from_pretrained(tmp_path),
        transformers.AutoTokenizer.from_pretrained(tmp_path),
    )
    assert ours.pad_token == theirs.pad_token == "<|endoftext|>"
    assert ours.model_max_length == theirs.model_max_length == 64
    assert ours(CORPUS, padding=True, truncation=True) == theirs(CORPUS, padding=True, truncation=True)
    ours = AutoTokenizer.from_pretrained(tmp_path, padding_side="right", model_max_length=8)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path, padding_side="right", model_max_length=8)
    assert ours(CORPUS, padding="max_length", truncation=True) == theirs(
        CORPUS, padding="max_length", truncation=True
    )


def test_missing_files_error(tmp_path):
    from pretrained import AutoTokenizer, PreTrainedTokenizerFast

    with pytest.raises(OSError, match="tokenizer.json"):
        AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(OSError):
        PreTrainedTokenizerFast.from_pretrained("no-such-org/no-such-model-xyz", local_files_only=True)
    with pytest.raises(OSError, match="Can't load tokenizer for '/no/such/dir'"):
        AutoTokenizer.from_pretrained("/no/such/dir")


def test_batch_encoding_helpers(load_pair):
    import torch

    ours, theirs = load_pair("minilm")
    question, context = ["who lives here?", "where?"], ["Sarah lives in Paris, café naïve.", "in 日本"]
    kwargs = dict(
        padding="max_length",
        truncation="only_second",
        max_length=16,
        stride=4,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    a, b = ours(question, context, **kwargs), theirs(question, context, **kwargs)
    assert_same_encoding(a, b)
    for i in range(len(b["input_ids"])):
        assert a.word_ids(i) == b.word_ids(i) and a.tokens(i) == b.tokens(i)
        assert a.sequence_ids(i) == b.sequence_ids(i)
        for t in range(3):
            assert a.token_to_word(i, t) == b.token_to_word(i, t)
            assert a.token_to_chars(i, t) == b.token_to_chars(i, t)
            assert a.token_to_sequence(i, t) == b.token_to_sequence(i, t)
    for c in range(6):
        assert a.char_to_token(0, c, sequence_index=1) == b.char_to_token(0, c, sequence_index=1)
        assert a.char_to_word(0, c) == b.char_to_word(0, c)
    assert a.word_to_tokens(0, 1) == b.word_to_tokens(0, 1)
    assert a.word_to_chars(0, 1) == b.word_to_chars(0, 1)
    assert a.n_sequences == b.n_sequences == 2
    assert a[0].ids == b[0].ids
    assert a.input_ids is a["input_ids"]
    assert a.to("cpu") is a and a["input_ids"].device == torch.device("cpu")
    single = ours("hello there")
    assert single.char_to_token(3) == theirs("hello there").char_to_token(3)
    with pytest.raises(AttributeError):
        _ = single.not_a_key
    # The numpy fast path pads the Rust encodings lazily; they must match the arrays.
    lazy = ours(["short", "a much longer sentence here"], padding=True, return_tensors="np")
    assert [len(e.ids) for e in lazy.encodings] == [lazy["input_ids"].shape[1]] * 2
    assert lazy.encodings[0].ids == lazy["input_ids"][0].tolist()


def test_load_repo_id_from_hf_cache(tokenizer_dirs, tmp_path, monkeypatch):
    import shutil

    import transformers

    from pretrained import AutoTokenizer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-tokenizer"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    src = tokenizer_dirs("bytelevel_chatml")
    for name in os.listdir(src):
        shutil.copy(os.path.join(src, name), snapshot / name)
    (snapshot / "config.json").write_text(json.dumps({"model_type": "gpt2"}))  # transformers needs one
    ours = AutoTokenizer.from_pretrained("tiny-org/tiny-tokenizer", cache_dir=tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained("tiny-org/tiny-tokenizer", cache_dir=tmp_path)
    assert ours(CORPUS) == theirs(CORPUS)
    assert ours.chat_template == theirs.chat_template is not None
    with pytest.raises(OSError, match="tiny-org/missing"):
        AutoTokenizer.from_pretrained("tiny-org/missing", cache_dir=tmp_path)

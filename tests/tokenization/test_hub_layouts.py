"""Hub-style files whose tokenizer.json pipeline differs from the family class: transformers 5 rebuilds
the family tokenizer from the vocabulary, and so must we (or keep the file, where transformers does)."""

from __future__ import annotations

import json
import os
import sys

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import CORPUS, PAIRS, _bpe_vocab, _wordpiece_vocab  # noqa: E402

TEXTS = [*CORPUS, "Hello</s>world <s> x", " leading", "a\nb", "Ünïcödé ＡＢＣ ﬁ"]


def _check(path):
    import transformers

    from pretrained import AutoTokenizer

    ours, theirs = AutoTokenizer.from_pretrained(path), transformers.AutoTokenizer.from_pretrained(path)
    assert type(ours).__name__.removesuffix("Fast") == type(theirs).__name__.replace(
        "TokenizersBackend", "PreTrainedTokenizer"
    )
    assert ours(TEXTS) == theirs(TEXTS)
    assert ours(TEXTS[: len(PAIRS)], PAIRS, return_offsets_mapping=True) == theirs(
        TEXTS[: len(PAIRS)], PAIRS, return_offsets_mapping=True
    )
    ids = theirs(TEXTS)["input_ids"]
    assert ours.batch_decode(ids) == theirs.batch_decode(ids)
    return ours, theirs


def _write(path, tok: Tokenizer, config: dict, model_type: str):
    path.mkdir()
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


@pytest.mark.parametrize("legacy", [True, False])
def test_llama2_style_normalizer_file(tmp_path, legacy):
    vocab, merges = _bpe_vocab(False, ["<unk>", "<s>", "</s>"])
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=merges, byte_fallback=True, fuse_unk=True, unk_token="<unk>")
    )
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "add_bos_token": True,
        "legacy": legacy,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
    }
    ours, _ = _check(_write(tmp_path / "llama2", tok, config, "llama"))
    assert ours.backend_tokenizer.normalizer is None  # rebuilt like transformers, not the file's normaliser


def test_llama3_style_byte_level_file_declared_llama(tmp_path):
    vocab, merges = _bpe_vocab(True, ["<|begin_of_text|>", "<|end_of_text|>"])
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A",
        pair="<|begin_of_text|> $A $B",
        special_tokens=[("<|begin_of_text|>", 0)],
    )
    config = {
        "tokenizer_class": "LlamaTokenizer",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
    }
    _check(_write(tmp_path / "llama3", tok, config, "llama"))


def test_bert_file_normalizer_overridden_by_config(tmp_path):
    tok = Tokenizer(models.WordPiece(_wordpiece_vocab(lowercase=True), unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]
    )
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": 64}
    _check(_write(tmp_path / "bert", tok, config, "bert"))


def test_gpt2_file_with_unk_and_prefix_space(tmp_path):
    vocab, merges = _bpe_vocab(True, ["<|endoftext|>"])
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    config = {"tokenizer_class": "GPT2Tokenizer", "add_prefix_space": True}
    _check(_write(tmp_path / "gpt2", tok, config, "gpt2"))

"""Legacy vocabularies (no tokenizer.json): vocab.txt, vocab.json + merges.txt, SentencePiece tokenizer.model.

transformers loads vocab.txt and vocab.json+merges.txt folders directly. It needs `sentencepiece` and
`protobuf` (not installed) to read a `.model`, so for those the oracle is what transformers builds from
the pieces it would extract: `LlamaTokenizer(vocab, generate_merges(vocab))` / `T5Tokenizer(vocab)`.
The `.model` files are written here with a small protobuf encoder.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import CORPUS, PAIRS, assert_same_encoding  # noqa: E402

TEXTS = CORPUS
SECOND = PAIRS + PAIRS[: len(CORPUS) - len(PAIRS)]


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 -> 10-byte two's complement, as protobuf writes it
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: int | float | bytes | str) -> bytes:
    if isinstance(value, float):
        return _varint(number << 3 | 5) + struct.pack("<f", value)
    if isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        return _varint(number << 3 | 2) + _varint(len(data)) + data
    return _varint(number << 3) + _varint(value)


def write_sentencepiece_model(path, pieces, *, model_type: int, unk_id: int, charsmap: bytes = b"") -> None:
    """pieces: (text, score, type) with type 1 normal, 2 unknown, 3 control, 4 user-defined."""
    body = b"".join(_field(1, _field(1, p) + _field(2, float(s)) + _field(3, t)) for p, s, t in pieces)
    trainer = _field(3, model_type) + _field(40, unk_id) + _field(41, 1) + _field(42, 2) + _field(43, -1)
    trainer += _field(99, "an unknown field to skip")
    normalizer = _field(1, "identity") + (_field(2, charsmap) if charsmap else b"")
    with open(path, "wb") as f:
        f.write(body + _field(2, trainer) + _field(3, normalizer))


def _compare(ours, theirs, context):
    for kwargs in (
        {},
        {"padding": True, "truncation": True, "max_length": 12, "return_offsets_mapping": True},
    ):
        if "padding" in kwargs and theirs.pad_token is None:
            continue
        assert_same_encoding(ours(TEXTS, **kwargs), theirs(TEXTS, **kwargs), (context, kwargs))
        assert_same_encoding(
            ours(TEXTS, SECOND, **kwargs), theirs(TEXTS, SECOND, **kwargs), (context, kwargs)
        )
    ids = theirs(TEXTS)["input_ids"]
    assert ours.batch_decode(ids) == theirs.batch_decode(ids), context
    assert ours.batch_decode(ids, skip_special_tokens=True) == theirs.batch_decode(
        ids, skip_special_tokens=True
    )
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.get_vocab() == theirs.get_vocab()


@pytest.mark.parametrize("name", ["bert_uncased", "bert_cased", "minilm"])
def test_vocab_txt(tokenizer_dirs, load_pair, tmp_path, name):
    import transformers

    from pretrained import AutoTokenizer

    src = tokenizer_dirs(name)
    _, reference = load_pair(name)
    vocab = sorted(reference.get_vocab().items(), key=lambda kv: kv[1])
    (tmp_path / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")
    for extra in ("tokenizer_config.json", "special_tokens_map.json"):
        if os.path.exists(os.path.join(src, extra)):
            shutil.copy(os.path.join(src, extra), tmp_path / extra)
    ours, theirs = (
        AutoTokenizer.from_pretrained(tmp_path),
        transformers.AutoTokenizer.from_pretrained(tmp_path),
    )
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
    _compare(ours, theirs, name)
    _compare(ours, reference, (name, "vs tokenizer.json"))


@pytest.mark.parametrize("name", ["gpt2", "roberta"])
def test_vocab_json_and_merges(tokenizer_dirs, tmp_path, name):
    import transformers

    from pretrained import AutoTokenizer

    src = tokenizer_dirs(name)
    with open(os.path.join(src, "tokenizer.json"), encoding="utf-8") as f:
        model = json.load(f)["model"]
    (tmp_path / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), encoding="utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    shutil.copy(os.path.join(src, "tokenizer_config.json"), tmp_path / "tokenizer_config.json")
    ours, theirs = (
        AutoTokenizer.from_pretrained(tmp_path),
        transformers.AutoTokenizer.from_pretrained(tmp_path),
    )
    assert type(ours).__name__ == type(theirs).__name__
    _compare(ours, theirs, name)
    # Saving writes a tokenizer.json that transformers reads back the same.
    ours.save_pretrained(tmp_path / "saved")
    _compare(AutoTokenizer.from_pretrained(tmp_path / "saved"), theirs, (name, "saved"))
    _compare(ours, transformers.AutoTokenizer.from_pretrained(tmp_path / "saved"), (name, "saved by us"))


def test_sentencepiece_bpe_model(load_pair, tmp_path):
    import transformers
    from tokenizers import AddedToken
    from transformers.tokenization_utils_base import generate_merges

    from pretrained import AutoTokenizer

    _, trained = load_pair("llama_spbpe")
    vocab = dict(
        sorted(trained.backend_tokenizer.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1])
    )
    types = {"<unk>": 2, "<s>": 3, "</s>": 3}
    pieces = [(piece, -float(i), types.get(piece, 1)) for piece, i in vocab.items()]
    write_sentencepiece_model(tmp_path / "tokenizer.model", pieces, model_type=2, unk_id=0)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True})
    )
    ours = AutoTokenizer.from_pretrained(tmp_path)
    theirs = transformers.LlamaTokenizer(
        vocab=vocab,
        merges=generate_merges(vocab),
        additional_special_tokens=[
            AddedToken("<s>", normalized=False, special=True),
            AddedToken("</s>", normalized=False, special=True),
        ],
        add_bos_token=True,
    )
    assert ours("Hello")["input_ids"][0] == ours.bos_token_id
    _compare(ours, theirs, "llama .model")


def test_sentencepiece_unigram_model(load_pair, tmp_path):
    import transformers
    from tokenizers import AddedToken

    from pretrained import AutoTokenizer

    _, trained = load_pair("t5_unigram")
    model = json.loads(trained.backend_tokenizer.to_str())["model"]
    vocab = [(piece, score) for piece, score in model["vocab"]]
    types = {"<pad>": 3, "</s>": 3, "<unk>": 2}
    pieces = [(piece, score, types.get(piece, 1)) for piece, score in vocab]
    write_sentencepiece_model(tmp_path / "tokenizer.model", pieces, model_type=1, unk_id=2)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 5})
    )
    ours = AutoTokenizer.from_pretrained(tmp_path)
    theirs = transformers.T5Tokenizer(
        # transformers' T5 converter appends the sentinels to the pieces, the last one first
        vocab=vocab + [(f"<extra_id_{i}>", 0.0) for i in range(4, -1, -1)],
        extra_ids=5,
        additional_special_tokens=[
            AddedToken("<pad>", normalized=False, special=True),
            AddedToken("</s>", normalized=False, special=True),
        ],
    )
    assert ours.extra_special_tokens == theirs.extra_special_tokens
    _compare(ours, theirs, "t5 .model")


def test_sentencepiece_reader_errors(tmp_path):
    from pretrained.tokenization.sentencepiece_model import read_sentencepiece_model

    write_sentencepiece_model(
        tmp_path / "ok.model", [("<unk>", 0.0, 2), ("▁a", -1.5, 1)], model_type=2, unk_id=0
    )
    model = read_sentencepiece_model(str(tmp_path / "ok.model"))
    assert [(p.piece, p.score, p.type) for p in model.pieces] == [("<unk>", 0.0, 2), ("▁a", -1.5, 1)]
    assert (model.model_type, model.unk_id, model.pad_id) == (2, 0, -1)
    (tmp_path / "bad.model").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ValueError, match="bad.model"):
        read_sentencepiece_model(str(tmp_path / "bad.model"))


def test_old_bert_folder_with_added_tokens_and_special_map(load_pair, tmp_path):
    """A transformers-3 era folder: vocab.txt, added_tokens.json, special_tokens_map.json, config.json only."""
    import transformers

    from pretrained import AutoTokenizer

    _, reference = load_pair("bert_cased")
    vocab = sorted(reference.get_vocab().items(), key=lambda kv: kv[1])
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8")
    n = len(vocab)
    (tmp_path / "added_tokens.json").write_text(json.dumps({"<ent>": n, "<ent2>": n + 1}))
    (tmp_path / "special_tokens_map.json").write_text(
        json.dumps(
            {
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
                "additional_special_tokens": ["<ent2>"],
            }
        )
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": False, "model_max_length": 32})
    )
    ours, theirs = (
        AutoTokenizer.from_pretrained(tmp_path),
        transformers.AutoTokenizer.from_pretrained(tmp_path),
    )
    assert type(ours).__name__ == type(theirs).__name__ == "BertTokenizer"
    text = ["Hello <ent> world <ent2> Café", "<ent2><ent>"]
    assert ours(text) == theirs(text)
    # Deliberate difference: transformers reads `additional_special_tokens` of special_tokens_map.json after
    # added_tokens.json, so "<ent2>" is listed as special but not marked special in the backend and survives
    # skip_special_tokens. Here it is special everywhere.
    ids = ours(text[0])["input_ids"]
    assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True).replace(
        " <ent2>", ""
    )
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.extra_special_tokens == theirs.extra_special_tokens
    assert ours.get_added_vocab() == theirs.get_added_vocab()

"""Build a family's Rust `tokenizers.Tokenizer` from its vocabulary, the way transformers 5 does.

The vocabulary comes from legacy files (`vocab.txt`; `vocab.json` + `merges.txt`; a SentencePiece
`tokenizer.model`, read by `sentencepiece_model.py`) or from the `model` section of a `tokenizer.json`:
transformers 5 rebuilds the family tokenizers (BERT, GPT-2, RoBERTa, Llama, T5) from the vocabulary
with the family's own normaliser, pre-tokenizer and decoder, ignoring those in `tokenizer.json`, and
so do we. Post-processors are set by the tokenizer classes (`models.py`).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram, WordPiece

from .sentencepiece_model import CONTROL, USER_DEFINED, read_sentencepiece_model


def _require(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise OSError(f"{what} file not found: {path}")
    return path


# -- vocabularies ------------------------------------------------------------------------------------


def tokenizer_json_parts(path: str) -> dict[str, Any]:
    """What transformers takes from a `tokenizer.json` when it rebuilds a family tokenizer.

    Returns `model_type`, `vocab` (dict, or `(piece, score)` list for Unigram), `merges`,
    `precompiled_charsmap`, `byte_level` (a ByteLevel step anywhere), and `post_processor`,
    `padding`, `truncation` as Rust objects (read from a copy of the file with an emptied vocabulary).
    """
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    model = data.get("model") or {}
    model_type = model.get("type")
    vocab = model.get("vocab")
    if model_type == "Unigram":
        vocab = [tuple(item) for item in vocab]
    elif isinstance(vocab, list):
        vocab = {(t[0] if isinstance(t, list) else t): i for i, t in enumerate(vocab)}
    merges = model.get("merges")
    if merges is not None:
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]

    minimal = dict(data)
    minimal["added_tokens"] = []
    empty_model = dict(model)
    if model_type == "Unigram":
        empty_model["vocab"], empty_model["unk_id"] = [["<unk>", 0.0]], 0
    else:
        empty_model["vocab"] = {}
        if "merges" in empty_model:
            empty_model["merges"] = []
    minimal["model"] = empty_model
    shell = Tokenizer.from_str(json.dumps(minimal))

    charsmap = None
    normalizer = data.get("normalizer")
    steps = (
        normalizer.get("normalizers", [])
        if normalizer and normalizer.get("type") == "Sequence"
        else [normalizer]
    )
    for step in steps:
        if step and step.get("type") == "Precompiled" and step.get("precompiled_charsmap"):
            charsmap = base64.b64decode(step["precompiled_charsmap"])
    return {
        "model_type": model_type,
        "vocab": vocab,
        "merges": merges,
        "precompiled_charsmap": charsmap,
        "byte_level": '"ByteLevel"' in json.dumps([data.get("pre_tokenizer"), data.get("decoder")]),
        "post_processor": shell.post_processor,
        "padding": shell.padding,
        "truncation": shell.truncation,
    }


def read_bpe_files(vocab_file: str, merges_file: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Read `vocab.json` and `merges.txt` (a `#version` header line is skipped)."""
    with open(_require(vocab_file, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    merges = []
    with open(_require(merges_file, "merges.txt"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            line = line.rstrip("\r\n")
            if (i == 0 and line.startswith("#version")) or not line:
                continue
            left, _, right = line.partition(" ")
            merges.append((left, right))
    return vocab, merges


def merges_from_vocab(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Merges of a SentencePiece BPE vocabulary (which stores none), in transformers' order.

    Every split of a piece into two pieces of the vocabulary is a merge; merges are ranked by the id of
    the merged piece, then by the lengths of the left and right parts, then by the parts' ids.
    """
    merges = []
    for piece, piece_id in vocab.items():
        splits = [
            (piece[:i], piece[i:]) for i in range(1, len(piece)) if piece[:i] in vocab and piece[i:] in vocab
        ]
        splits.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend((left, right, piece_id) for left, right in splits)
    merges.sort(key=lambda m: (m[2], len(m[0]), len(m[1])))
    return [(left, right) for left, right, _ in merges]


def sentencepiece_parts(path: str) -> dict[str, Any]:
    """Vocabulary (dict and scored list), unk id, charsmap and added tokens of a SentencePiece `.model`."""
    model = read_sentencepiece_model(_require(path, "SentencePiece model"))
    return {
        "vocab": {p.piece: i for i, p in enumerate(model.pieces)},
        "scores": [(p.piece, p.score) for p in model.pieces],
        "unk_id": model.unk_id,
        "precompiled_charsmap": model.precompiled_charsmap or None,
        # Control pieces are special; user-defined pieces are plain added tokens.
        "added_tokens": [
            AddedToken(p.piece, normalized=False, special=p.type == CONTROL)
            for p in model.pieces
            if p.type in (CONTROL, USER_DEFINED)
        ],
    }


# -- family tokenizers (no post-processor) -----------------------------------------------------------


def wordpiece_tokenizer(
    vocab: str | dict[str, int],
    *,
    unk_token: str,
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
) -> Tokenizer:
    """BERT: BertNormalizer + BertPreTokenizer + WordPiece (`vocab` is a dict or a `vocab.txt` path)."""
    if isinstance(vocab, str):
        _require(vocab, "vocab.txt")
    tokenizer = Tokenizer(WordPiece(vocab, unk_token=unk_token))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    return tokenizer


def byte_level_bpe_tokenizer(
    vocab: dict[str, int], merges: list[tuple[str, str]], *, add_prefix_space: bool = False
) -> Tokenizer:
    """GPT-2 / RoBERTa: byte-level BPE."""
    tokenizer = Tokenizer(
        BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False)
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def llama_tokenizer(
    vocab: dict[str, int],
    merges: list[tuple[str, str]],
    *,
    add_prefix_space: bool | None = None,
    legacy: bool = False,
) -> Tokenizer:
    """Llama: SentencePiece-style BPE with byte fallback, Metaspace, no normaliser."""
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None))
    add_prefix_space = True if add_prefix_space is None else add_prefix_space
    scheme = ("always" if legacy else "first") if add_prefix_space else "never"
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer


def _unigram_metaspace(scores: list[tuple[str, float]], unk_id: int) -> Tokenizer:
    # The SentencePiece Unigram layout T5 and mBART share: split on whitespace, "▁" before every word.
    tokenizer = Tokenizer(Unigram(scores, unk_id=unk_id, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    return tokenizer


def t5_tokenizer(scores: list[tuple[str, float]], *, precompiled_charsmap: bytes | None = None) -> Tokenizer:
    """T5: Unigram (unknown id 2, as in transformers), the SentencePiece charsmap, Metaspace."""
    tokenizer = _unigram_metaspace(scores, unk_id=2)
    if precompiled_charsmap:
        tokenizer.normalizer = normalizers.Precompiled(precompiled_charsmap)
    return tokenizer


def mbart_tokenizer(scores: list[tuple[str, float]]) -> Tokenizer:
    """mBART: Unigram (unknown id 3, fairseq's layout), no normaliser, Metaspace."""
    return _unigram_metaspace(scores, unk_id=3)

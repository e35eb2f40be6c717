"""Build a Rust `tokenizers.Tokenizer` from legacy vocabulary files, as transformers 5 does.

- `vocab.txt` (BERT WordPiece, with its normaliser options),
- `vocab.json` + `merges.txt` (GPT-2 / RoBERTa byte-level BPE),
- a SentencePiece `tokenizer.model` (Llama-style BPE with byte fallback, T5-style Unigram), read with
  the small protobuf reader in `sentencepiece_model.py` (no `sentencepiece`/`protobuf` needed).
"""

from __future__ import annotations

import os
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram, WordPiece

from .sentencepiece_model import CONTROL, USER_DEFINED, read_sentencepiece_model


def read_wordpiece_vocab(path: str) -> str:
    """Check a `vocab.txt` exists; the Rust WordPiece model reads it (one token per line, id = line)."""
    if not os.path.isfile(path):
        raise OSError(f"WordPiece vocabulary file not found: {path}")
    return path


def wordpiece_tokenizer(
    vocab: str | dict[str, int],
    *,
    unk_token: str,
    cls_token: str,
    sep_token: str,
    do_lower_case: bool = True,
    strip_accents: bool | None = None,
    tokenize_chinese_chars: bool = True,
) -> Tokenizer:
    """A BERT tokenizer: BertNormalizer + BertPreTokenizer + WordPiece, `[CLS] A [SEP] B [SEP]`."""
    tokenizer = Tokenizer(WordPiece(vocab, unk_token=unk_token))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case,
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    cls_id = tokenizer.token_to_id(cls_token)
    sep_id = tokenizer.token_to_id(sep_token)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[
            (cls_token, 2 if cls_id is None else cls_id),
            (sep_token, 3 if sep_id is None else sep_id),
        ],
    )
    return tokenizer


def read_bpe_files(kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """The `(vocab.json, merges.txt)` paths from constructor arguments, or `None` when absent."""
    vocab, merges = kwargs.get("vocab_file"), kwargs.get("merges_file")
    if not vocab and not merges:
        return None
    missing = [
        name
        for name, path in (("vocab.json", vocab), ("merges.txt", merges))
        if not path or not os.path.isfile(path)
    ]
    if missing:
        raise OSError(f"Byte-level BPE needs both vocab.json and merges.txt; missing: {missing}")
    return vocab, merges


def byte_level_bpe_tokenizer(
    vocab_file: str,
    merges_file: str,
    *,
    add_prefix_space: bool = False,
    roberta: tuple[str, str, bool] | None = None,
) -> Tokenizer:
    """GPT-2 style byte-level BPE; with `roberta=(cls, sep, trim_offsets)`, RoBERTa's post-processor."""
    tokenizer = Tokenizer(
        BPE(
            vocab_file,
            merges_file,
            dropout=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    if roberta is not None:
        cls_token, sep_token, trim_offsets = roberta
        tokenizer.post_processor = processors.RobertaProcessing(
            (sep_token, tokenizer.token_to_id(sep_token)),
            (cls_token, tokenizer.token_to_id(cls_token)),
            trim_offsets=trim_offsets,
            add_prefix_space=add_prefix_space,
        )
    return tokenizer


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


def sentencepiece_added_tokens(path: str) -> list[AddedToken]:
    """Control pieces (special) and user-defined pieces (not special) of a `.model`, as added tokens."""
    pieces = read_sentencepiece_model(path).pieces
    return [
        AddedToken(p.piece, normalized=False, special=p.type == CONTROL)
        for p in pieces
        if p.type in (CONTROL, USER_DEFINED)
    ]


def llama_sentencepiece_tokenizer(
    path: str, *, add_prefix_space: bool | None = None, legacy: bool = False
) -> Tokenizer:
    """Llama style: BPE with byte fallback over the `.model`'s pieces, Metaspace, no normalizer."""
    model = read_sentencepiece_model(path)
    vocab = {piece.piece: i for i, piece in enumerate(model.pieces)}
    tokenizer = Tokenizer(
        BPE(vocab=vocab, merges=merges_from_vocab(vocab), fuse_unk=True, byte_fallback=True, dropout=None)
    )
    add_prefix_space = True if add_prefix_space is None else add_prefix_space
    scheme = ("always" if legacy else "first") if add_prefix_space else "never"
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer


def t5_sentencepiece_tokenizer(path: str, *, eos_token: str = "</s>") -> Tokenizer:
    """T5 style: Unigram over the `.model`'s pieces and scores, its precompiled normaliser, `A </s>`."""
    model = read_sentencepiece_model(path)
    tokenizer = Tokenizer(
        Unigram([(p.piece, p.score) for p in model.pieces], unk_id=max(model.unk_id, 0), byte_fallback=False)
    )
    if model.precompiled_charsmap:
        tokenizer.normalizer = normalizers.Precompiled(model.precompiled_charsmap)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    eos_id = tokenizer.token_to_id(eos_token)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=["$A", eos_token],
        pair=["$A", eos_token, "$B", eos_token],
        special_tokens=[(eos_token, 0 if eos_id is None else eos_id)],
    )
    return tokenizer

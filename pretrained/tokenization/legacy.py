"""Build a Rust `tokenizers.Tokenizer` from legacy vocabulary files, as transformers 5 does.

- `vocab.txt` (BERT WordPiece, with its normaliser options),
- `vocab.json` + `merges.txt` (GPT-2 / RoBERTa byte-level BPE),
- a SentencePiece `tokenizer.model` (Llama-style BPE with byte fallback, T5-style Unigram), read with
  the small protobuf reader in `sentencepiece_model.py` (no `sentencepiece`/`protobuf` needed).
"""

from __future__ import annotations

import os
from typing import Any

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram, WordPiece

from .sentencepiece_model import read_sentencepiece_model


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


def _merges_from_vocab(vocab: dict[str, int]) -> list[tuple[str, str]]:
    # SentencePiece BPE stores no merges: every split of a piece into two pieces is a merge, ranked by
    # the merged piece's id, then by the ids of its parts.
    merges = []
    for piece, piece_id in vocab.items():
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                merges.append((left, right, piece_id, vocab[left], vocab[right]))
    merges.sort(key=lambda m: (m[2], m[3], m[4]))
    return [(left, right) for left, right, *_ in merges]


def sentencepiece_tokenizer(path: str, kwargs: dict[str, Any], style: str) -> Tokenizer:
    """Build from a SentencePiece `.model`; `style` is `"llama"` (BPE) or `"t5"` (Unigram).

    Sets the family's default special tokens and `add_bos_token` / `extra_special_tokens` in `kwargs`
    where the model file defines them.
    """
    model = read_sentencepiece_model(path)
    pieces = model.pieces
    if style == "llama":
        vocab = {piece.piece: i for i, piece in enumerate(pieces)}
        tokenizer = Tokenizer(
            BPE(
                vocab=vocab,
                merges=_merges_from_vocab(vocab),
                fuse_unk=True,
                byte_fallback=True,
                dropout=None,
                unk_token=pieces[model.unk_id].piece if model.unk_id >= 0 else None,
            )
        )
        add_prefix_space = kwargs.get("add_prefix_space")
        add_prefix_space = True if add_prefix_space is None else add_prefix_space
        tokenizer.normalizer = None
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="first" if add_prefix_space else "never", split=False
        )
        steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
        if add_prefix_space:
            steps.append(decoders.Strip(content=" ", left=1))
        tokenizer.decoder = decoders.Sequence(steps)
    elif style == "t5":
        tokenizer = Tokenizer(
            Unigram(
                [(p.piece, p.score) for p in pieces],
                unk_id=model.unk_id if model.unk_id >= 0 else None,
                byte_fallback=False,
            )
        )
        steps = []
        if model.precompiled_charsmap:
            steps.append(normalizers.Precompiled(model.precompiled_charsmap))
        steps.append(normalizers.Replace(Regex(" {2,}"), " "))
        tokenizer.normalizer = normalizers.Sequence(steps)
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="always", split=True
        )
        tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
        eos = str(kwargs.get("eos_token") or "</s>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single=["$A", eos],
            pair=["$A", eos, "$B", eos],
            special_tokens=[(eos, tokenizer.token_to_id(eos) or 0)],
        )
    else:
        raise ValueError(f"Unknown SentencePiece style {style!r}; expected 'llama' or 't5'.")
    # Control pieces (<s>, </s>, ...) are special; user-defined pieces are plain added tokens.
    from tokenizers import AddedToken

    added = [AddedToken(p.piece, normalized=False, special=p.type == 3) for p in pieces if p.type in (3, 4)]
    if added:
        tokenizer.add_tokens(added)
    return tokenizer

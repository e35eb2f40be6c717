"""Parity with transformers: ids, masks, offsets, overflow windows, tensors and decoded text."""

from __future__ import annotations

import copy
import itertools
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import ALL, CORPUS, PAIRS, assert_same_encoding

# (padding, truncation, max_length, stride, overflow, padding_side, pad_to_multiple_of)
SINGLE_OPTIONS = [
    (False, False, None, 0, False, None, None),
    (True, False, None, 0, False, None, None),
    (True, False, None, 0, False, "left", 8),
    ("max_length", True, 16, 0, False, None, None),
    ("max_length", "longest_first", 16, 4, True, "left", None),
    (True, True, 12, 3, True, None, 4),
    ("do_not_pad", "only_first", 10, 2, True, None, None),
    (False, True, 7, 0, False, None, None),
]
PAIR_OPTIONS = [
    (True, "longest_first", 20, 0, False, None, None),
    ("max_length", "only_second", 24, 4, True, None, None),
    ("longest", "only_first", 24, 2, True, "left", None),
    (False, "do_not_truncate", None, 0, False, None, None),
    (True, True, 18, 0, False, None, 6),
    ("max_length", "longest_first", 16, 3, True, "left", None),
]


def _call(tok, texts, pairs, options, **extra):
    padding, truncation, max_length, stride, overflow, side, multiple = options
    try:
        return tok(
            texts,
            pairs,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=overflow,
            padding_side=side,
            pad_to_multiple_of=multiple,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_length=True,
            **extra,
        )
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # errors (Rust panics included) must match too
        return error


def _compare(ours, theirs, context):
    if isinstance(theirs, BaseException) or isinstance(ours, BaseException):
        # Numbers are masked: which row of a parallel Rust batch panics first (and so the length it
        # reports) is not deterministic.
        same = type(ours) is type(theirs) and re.sub(r"\d+", "N", str(ours)) == re.sub(
            r"\d+", "N", str(theirs)
        )
        assert same, (context, ours, theirs)
        return
    assert_same_encoding(ours, theirs, context)
    for i in range(len(theirs.encodings or [])):
        assert ours.word_ids(i) == theirs.word_ids(i), context
        assert ours.sequence_ids(i) == theirs.sequence_ids(i), context
        assert ours.tokens(i) == theirs.tokens(i), context


@pytest.mark.parametrize("name", ALL)
def test_single_texts(load_pair, name):
    ours, theirs = load_pair(name)
    for options, tensors in itertools.product(SINGLE_OPTIONS, [None, "np", "pt"]):
        context = (name, options, tensors)
        _compare(
            _call(ours, CORPUS, None, options, return_tensors=tensors),
            _call(theirs, CORPUS, None, options, return_tensors=tensors),
            context,
        )
    for text in CORPUS:  # unbatched calls keep no batch axis
        _compare(
            _call(ours, text, None, SINGLE_OPTIONS[0]), _call(theirs, text, None, SINGLE_OPTIONS[0]), text
        )


@pytest.mark.parametrize("name", ALL)
def test_pairs(load_pair, name):
    ours, theirs = load_pair(name)
    texts = CORPUS[: len(PAIRS)]
    for options, tensors in itertools.product(PAIR_OPTIONS, [None, "pt"]):
        context = (name, options, tensors)
        _compare(
            _call(ours, texts, PAIRS, options, return_tensors=tensors),
            _call(theirs, texts, PAIRS, options, return_tensors=tensors),
            context,
        )
    inline = [[a, b] for a, b in zip(texts, PAIRS)]  # pairs given inside `text`, as lists or tuples
    for rows, tensors in itertools.product([inline, [tuple(x) for x in inline]], [None, "pt"]):
        _compare(
            _call(ours, rows, None, PAIR_OPTIONS[0], return_tensors=tensors),
            _call(theirs, rows, None, PAIR_OPTIONS[0], return_tensors=tensors),
            (name, "inline pairs", tensors),
        )
    _compare(
        _call(ours, "a question", "its context", PAIR_OPTIONS[1]),
        _call(theirs, "a question", "its context", PAIR_OPTIONS[1]),
        "single pair",
    )


@pytest.mark.parametrize("name", ALL)
def test_split_into_words_and_targets(load_pair, name):
    ours, theirs = load_pair(name)
    words = [text.split() for text in CORPUS]
    for tensors in (None, "pt"):
        _compare(
            _call(ours, words, None, SINGLE_OPTIONS[1], is_split_into_words=True, return_tensors=tensors),
            _call(theirs, words, None, SINGLE_OPTIONS[1], is_split_into_words=True, return_tensors=tensors),
            (name, "words", tensors),
        )
    _compare(
        ours(text=CORPUS[:3], text_target=CORPUS[3:6]),
        theirs(text=CORPUS[:3], text_target=CORPUS[3:6]),
        "targets",
    )
    _compare(
        ours(CORPUS[:3], return_token_type_ids=True, return_attention_mask=False),
        theirs(CORPUS[:3], return_token_type_ids=True, return_attention_mask=False),
        "flags",
    )


@pytest.mark.parametrize("name", ALL)
def test_decode_and_vocab(load_pair, name):
    ours, theirs = load_pair(name)
    batch = theirs(CORPUS, PAIRS + PAIRS[: len(CORPUS) - len(PAIRS)])["input_ids"]
    for skip, clean in itertools.product([False, True], [None, False, True]):
        assert ours.batch_decode(batch, skip_special_tokens=skip, clean_up_tokenization_spaces=clean) == (
            theirs.batch_decode(batch, skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
        )
    assert ours.decode(batch[0]) == theirs.decode(batch[0])
    assert ours.decode(batch[0][1]) == theirs.decode(batch[0][1])
    for text in CORPUS:
        assert ours.tokenize(text) == theirs.tokenize(text)
        assert ours.encode(text) == theirs.encode(text)
        assert ours.encode(text, "pair", truncation=True, max_length=8) == theirs.encode(
            text, "pair", truncation=True, max_length=8
        )
        tokens = theirs.tokenize(text)
        assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
        assert ours.convert_tokens_to_string(tokens) == theirs.convert_tokens_to_string(tokens)
    assert ours.convert_ids_to_tokens(batch[1], skip_special_tokens=True) == theirs.convert_ids_to_tokens(
        batch[1], skip_special_tokens=True
    )
    assert ours.convert_tokens_to_ids("definitely-not-a-token") == theirs.convert_tokens_to_ids(
        "definitely-not-a-token"
    )
    assert ours.get_vocab() == theirs.get_vocab()
    assert (len(ours), ours.vocab_size) == (len(theirs), theirs.vocab_size)
    assert ours.special_tokens_map == theirs.special_tokens_map
    assert ours.all_special_tokens == theirs.all_special_tokens
    assert ours.all_special_ids == theirs.all_special_ids
    assert ours.extra_special_tokens == theirs.extra_special_tokens
    assert ours.get_added_vocab() == theirs.get_added_vocab()
    assert ours.model_input_names == theirs.model_input_names
    assert (ours.padding_side, ours.truncation_side, ours.model_max_length) == (
        theirs.padding_side,
        theirs.truncation_side,
        theirs.model_max_length,
    )
    for attr in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{attr}_token") == getattr(theirs, f"{attr}_token")
        assert getattr(ours, f"{attr}_token_id") == getattr(theirs, f"{attr}_token_id")
    assert ours.num_special_tokens_to_add(pair=True) == theirs.num_special_tokens_to_add(pair=True)


@pytest.mark.parametrize("name", ["minilm", "gpt2", "llama_spbpe"])
def test_pad_method(load_pair, name):
    ours, theirs = load_pair(name)
    if theirs.pad_token is None:
        # Fresh copies: the session-cached pair is shared with other tests and must stay unchanged.
        ours, theirs = copy.deepcopy(ours), copy.deepcopy(theirs)
        ours.pad_token, theirs.pad_token = "<|endoftext|>", "<|endoftext|>"
    features = [dict(theirs(text, return_special_tokens_mask=True)) for text in CORPUS[:5]]
    for kwargs in (
        {},
        {"padding": "max_length", "max_length": 40, "return_tensors": "np"},
        {"pad_to_multiple_of": 8, "padding_side": "left", "return_tensors": "pt"},
        {"padding": False},
    ):
        _compare(
            ours.pad([dict(f) for f in features], **kwargs),
            theirs.pad([dict(f) for f in features], **kwargs),
            kwargs,
        )
    tensors = theirs(CORPUS[:3], return_tensors="pt", padding=True)
    _compare(
        ours.pad(dict(tensors), padding="max_length", max_length=64),
        theirs.pad(dict(tensors), padding="max_length", max_length=64),
        "tensors",
    )


def test_errors(load_pair):
    ours, theirs = load_pair("gpt2")  # gpt2 has no pad token
    bad_calls = [
        lambda t: t(CORPUS, padding=True),
        lambda t: t(CORPUS, padding="maximum"),
        lambda t: t(CORPUS, truncation="sometimes", max_length=4),
        lambda t: t(CORPUS, return_tensors="pt"),
        lambda t: t(CORPUS, return_tensors="tf"),
        lambda t: t(CORPUS, max_length=4, stride=10, return_overflowing_tokens=True),
        lambda t: t(CORPUS[:2], ["one"]),
        lambda t: t(CORPUS[:2], "not a list"),
        lambda t: t(12),
        lambda t: t(),
        lambda t: t(CORPUS[:2], CORPUS[:2], truncation="only_second", max_length=2),
    ]
    for i, call in enumerate(bad_calls):
        _compare(_call_safe(call, ours), _call_safe(call, theirs), i)
    minilm_ours, minilm_theirs = load_pair("minilm")
    for call in (
        lambda t: t(CORPUS, padding=True, truncation=True, max_length=10, pad_to_multiple_of=4),
        lambda t: t(CORPUS, padding_side="middle", padding=True),
        lambda t: t(CORPUS, padding="max_length", max_length=5, return_tensors="pt"),
    ):
        _compare(_call_safe(call, minilm_ours), _call_safe(call, minilm_theirs), "minilm")


def _call_safe(call, tok):
    try:
        return call(tok)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        return error

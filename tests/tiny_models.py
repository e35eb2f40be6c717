"""Tiny random models built and saved by transformers (the test-only oracle), shared by test files."""

import torch
import transformers as T

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)


def save_tiny(path, head="BertForMaskedLM", **overrides):
    """Save a tiny random BERT with ``head`` into ``path``; returns ``path``."""
    torch.manual_seed(0)
    getattr(T, head)(T.BertConfig(**{**TINY, **overrides})).save_pretrained(path)
    return path

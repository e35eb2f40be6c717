"""A tiny T5 and a tiny translation data set, built with transformers (the oracle) for the seq2seq tests."""

from __future__ import annotations

import torch

SOURCES = [
    "translate English to German: The house is wonderful.",
    "translate English to German: I like green tea.",
    "summarize: studies have shown that owning a dog is good for you",
    "translate English to German: Where is the station?",
    "Héllo Zürich, café naïve 日本語 😀",
    "translate English to German: Thank you very much.",
    "summarize: the quick brown fox jumps over the lazy dog again and again",
    "translate English to German: Good morning!",
]
TARGETS = [
    "Das Haus ist wunderbar.", "Ich mag grünen Tee.", "dogs are good", "Wo ist der Bahnhof?",
    "Hallo Zürich", "Vielen Dank.", "the fox jumps", "Guten Morgen!",
]


def save_tiny_t5(folder, **overrides) -> str:
    """A tiny random T5 (v1.0 layout) and a Unigram tokenizer trained on the sample, saved by transformers."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    raw = Tokenizer(models.Unigram())
    raw.pre_tokenizer = pre_tokenizers.Metaspace()
    raw.train_from_iterator(SOURCES + TARGETS, trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"))
    import json

    vocab = [tuple(v) for v in json.loads(raw.to_str())["model"]["vocab"]]
    tokenizer = transformers.T5Tokenizer(vocab=vocab, extra_ids=4)
    config = transformers.T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
        **overrides,
    )
    torch.manual_seed(0)
    transformers.T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def features(tokenizer, max_length: int = 24) -> list[dict]:
    """Tokenized (source, target) pairs with `labels`, unpadded, as the example scripts build them."""
    out = []
    for source, target in zip(SOURCES, TARGETS):
        encoded = tokenizer(source, text_target=target, max_length=max_length, truncation=True)
        out.append({k: list(v) for k, v in encoded.items()})
    return out

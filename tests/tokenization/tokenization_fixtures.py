"""Shared helpers for the tokenization tests. Tokenizer fixtures: small tokenizers trained here with `tokenizers`, wrapped and saved by transformers.

Each fixture is a folder that both libraries load; transformers is the oracle.
"""

from __future__ import annotations

import json
import os

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

TRAIN_CORPUS = [
    "Hello world, this is a small test of the tokenizer.",
    "The quick brown fox jumps over the lazy dog!",
    "Héllo wörld, café naïve résumé Ångström.",
    "日本語のテキストと中文的句子。",
    "emoji 😀🎉👍🏽 and symbols © ® ™",
    "  multiple   spaces\tand\ttabs\nand newlines  ",
    "Numbers 12345 and 3.14159, dates 2024-01-01.",
    "don't can't won't it's we're they've",
] * 30

# The parity corpus: accents, CJK, emoji, whitespace runs, empty strings, long texts, special-token strings.
CORPUS = [
    "Hello world!",
    "Héllo wörld, café naïve RÉSUMÉ.",
    "日本語のテキスト 中文的句子",
    "emoji 😀🎉👍🏽 test",
    "   leading and   inner   spaces   ",
    "tabs\tand\nnewlines\r\n",
    "",
    " ",
    "don't stop, it's fine.",
    " ".join(["a long text with many words"] * 40),
    "[CLS] [SEP] <s> </s> <pad> <|endoftext|> [MASK] <mask> inside text",
    "x",
]
PAIRS = ["second sequence", "", "日本 and café", " ".join(["pair"] * 30), "<s> special", "b"] * 2


def _save(tok, path) -> str:
    tok.save_pretrained(path)
    return str(path)


def _bpe_vocab(byte_level: bool, specials: list[str]):
    if byte_level:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(
            vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    else:
        tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials)
    tok.train_from_iterator(TRAIN_CORPUS, trainer)
    model = json.loads(tok.to_str())["model"]
    return model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def _wordpiece_vocab(lowercase: bool) -> dict[str, int]:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    tok.train_from_iterator(TRAIN_CORPUS, trainer)
    return tok.get_vocab()


def _unigram_vocab() -> list[tuple[str, float]]:
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    tok.train_from_iterator(TRAIN_CORPUS, trainer)
    return [tuple(v) for v in json.loads(tok.to_str())["model"]["vocab"]]


CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _build(name: str, root) -> str:
    import transformers

    path = root / name
    if name == "gpt2":
        vocab, merges = _bpe_vocab(True, ["<|endoftext|>"])
        tok = transformers.GPT2Tokenizer(vocab=vocab, merges=merges)
    elif name == "roberta":
        vocab, merges = _bpe_vocab(True, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        tok = transformers.RobertaTokenizer(vocab=vocab, merges=merges)
    elif name == "bytelevel_chatml":
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        raw = Tokenizer(models.BPE())
        raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        raw.decoder = decoders.ByteLevel()
        raw.post_processor = processors.ByteLevel(trim_offsets=False)
        raw.train_from_iterator(
            TRAIN_CORPUS,
            trainers.BpeTrainer(
                vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
            ),
        )
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=raw, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
        )
    elif name in ("bert_uncased", "bert_cased"):
        lower = name == "bert_uncased"
        tok = transformers.BertTokenizer(vocab=_wordpiece_vocab(lower), do_lower_case=lower)
    elif name == "t5_unigram":
        tok = transformers.T5Tokenizer(vocab=_unigram_vocab(), extra_ids=3)
    elif name == "llama_spbpe":
        vocab, merges = _bpe_vocab(False, ["<unk>", "<s>", "</s>"])
        tok = transformers.LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True)
    else:
        raise KeyError(name)
    return _save(tok, path)


TRAINED = ["gpt2", "roberta", "bytelevel_chatml", "bert_uncased", "bert_cased", "t5_unigram", "llama_spbpe"]
ALL = [*TRAINED, "minilm"]


def assert_same_encoding(ours, theirs, context=""):
    """Same keys in the same order and equal values (lists, numpy arrays or torch tensors)."""
    import numpy as np

    assert list(ours.keys()) == list(theirs.keys()), context
    for key in theirs:
        a, b = ours[key], theirs[key]
        if hasattr(b, "numpy") or isinstance(b, np.ndarray):
            assert type(a) is type(b), (context, key)
            assert tuple(a.shape) == tuple(b.shape) and a.dtype == b.dtype, (context, key)
            if b.dtype == object:  # ragged rows
                assert all((np.asarray(x) == np.asarray(y)).all() for x, y in zip(a, b)), (context, key)
            else:
                assert (np.asarray(a) == np.asarray(b)).all(), (context, key)
        else:
            assert a == b, (context, key)


os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

"""Per-family tokenizer classes: their defaults, and how each builds from legacy vocabulary files.

With a `tokenizer.json` they all behave like `PreTrainedTokenizerFast` (the file is used as written);
the class only adds the family's default special tokens, input names and padding side. As in
transformers 5, the plain names (`BertTokenizer`) and the `...Fast` names are the same class.
"""

from __future__ import annotations

from typing import Any

from tokenizers import Tokenizer

from . import legacy
from .fast import PreTrainedTokenizerFast


class BertTokenizer(PreTrainedTokenizerFast):
    """BERT WordPiece tokenizer; builds from `vocab.txt` with `do_lower_case`, `strip_accents`,
    `tokenize_chinese_chars` when there is no `tokenizer.json`."""

    vocab_files_names = {"vocab_file": "vocab.txt", "tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    saved_class_name = "BertTokenizer"
    default_special_tokens = {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any]) -> Tokenizer | None:
        vocab = kwargs.get("vocab")
        if vocab is None and kwargs.get("vocab_file"):
            vocab = legacy.read_wordpiece_vocab(kwargs["vocab_file"])
        if vocab is None:
            return None
        specials = {**cls.default_special_tokens, **{k: v for k, v in kwargs.items() if k.endswith("_token")}}
        return legacy.wordpiece_tokenizer(
            vocab,
            unk_token=str(specials["unk_token"]),
            cls_token=str(specials["cls_token"]),
            sep_token=str(specials["sep_token"]),
            do_lower_case=kwargs.get("do_lower_case", True),
            strip_accents=kwargs.get("strip_accents"),
            tokenize_chinese_chars=kwargs.get("tokenize_chinese_chars", True),
        )


class DistilBertTokenizer(BertTokenizer):
    """DistilBERT tokenizer: BERT's, without token type ids."""

    model_input_names = ["input_ids", "attention_mask"]
    saved_class_name = "DistilBertTokenizer"


class GPT2Tokenizer(PreTrainedTokenizerFast):
    """GPT-2 byte-level BPE tokenizer; builds from `vocab.json` + `merges.txt`."""

    vocab_files_names = {
        "vocab_file": "vocab.json",
        "merges_file": "merges.txt",
        "tokenizer_file": "tokenizer.json",
    }
    model_input_names = ["input_ids", "attention_mask"]
    saved_class_name = "GPT2Tokenizer"
    default_special_tokens = {
        "unk_token": "<|endoftext|>",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
    }

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any]) -> Tokenizer | None:
        vocab_merges = legacy.read_bpe_files(kwargs)
        if vocab_merges is None:
            return None
        return legacy.byte_level_bpe_tokenizer(
            *vocab_merges, add_prefix_space=kwargs.get("add_prefix_space", False)
        )


class RobertaTokenizer(PreTrainedTokenizerFast):
    """RoBERTa byte-level BPE tokenizer (`<s> A </s></s> B </s>`); builds from `vocab.json` + `merges.txt`."""

    vocab_files_names = GPT2Tokenizer.vocab_files_names
    model_input_names = ["input_ids", "attention_mask"]
    saved_class_name = "RobertaTokenizer"
    default_special_tokens = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "cls_token": "<s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask>",
    }

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any]) -> Tokenizer | None:
        vocab_merges = legacy.read_bpe_files(kwargs)
        if vocab_merges is None:
            return None
        specials = {**cls.default_special_tokens, **{k: v for k, v in kwargs.items() if k.endswith("_token")}}
        return legacy.byte_level_bpe_tokenizer(
            *vocab_merges,
            add_prefix_space=kwargs.get("add_prefix_space", False),
            roberta=(
                str(specials["cls_token"]),
                str(specials["sep_token"]),
                kwargs.get("trim_offsets", True),
            ),
        )


class LlamaTokenizer(PreTrainedTokenizerFast):
    """Llama SentencePiece-BPE tokenizer (byte fallback); builds from a SentencePiece `tokenizer.model`."""

    vocab_files_names = {"vocab_file": "tokenizer.model", "tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]
    padding_side = "left"
    saved_class_name = "LlamaTokenizer"
    default_special_tokens = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}

    def __init__(self, *args: Any, **kwargs: Any):
        _add_sentencepiece_specials(kwargs, extra_ids=0)
        super().__init__(*args, **kwargs)

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any]) -> Tokenizer | None:
        if not kwargs.get("vocab_file"):
            return None
        return legacy.llama_sentencepiece_tokenizer(
            kwargs["vocab_file"],
            add_prefix_space=kwargs.get("add_prefix_space"),
            legacy=kwargs.get("legacy", False),
        )


class T5Tokenizer(PreTrainedTokenizerFast):
    """T5 SentencePiece-Unigram tokenizer (`A </s>`, `<extra_id_*>` sentinels); builds from `tokenizer.model`.

    Args:
        extra_ids: Number of `<extra_id_N>` sentinel tokens added when the files list none.
    """

    vocab_files_names = {"vocab_file": "tokenizer.model", "tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]
    saved_class_name = "T5Tokenizer"
    default_special_tokens = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

    def __init__(self, *args: Any, extra_ids: int = 100, **kwargs: Any):
        _add_sentencepiece_specials(kwargs, extra_ids=extra_ids)
        super().__init__(*args, extra_ids=extra_ids, **kwargs)

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any]) -> Tokenizer | None:
        if not kwargs.get("vocab_file"):
            return None
        return legacy.t5_sentencepiece_tokenizer(
            kwargs["vocab_file"], eos_token=str(kwargs.get("eos_token") or "</s>")
        )


def _add_sentencepiece_specials(kwargs: dict[str, Any], extra_ids: int) -> None:
    # As in transformers: with no extra special tokens configured, a `.model`'s control and user-defined
    # pieces become them, followed by `extra_ids` `<extra_id_N>` sentinels (T5).
    if kwargs.get("extra_special_tokens") is not None or kwargs.get("additional_special_tokens") is not None:
        return
    extra: list[Any] = []
    vocab_file = kwargs.get("vocab_file")
    if not kwargs.get("tokenizer_file") and kwargs.get("tokenizer_object") is None and vocab_file:
        extra = legacy.sentencepiece_added_tokens(vocab_file)
    if extra_ids and not any("<extra_id_" in str(t) for t in extra):
        extra += [f"<extra_id_{i}>" for i in range(extra_ids)]
    if extra:
        kwargs["extra_special_tokens"] = extra


# transformers 5 names: the plain names are the tokenizers-backed classes, "...Fast" are aliases.
BertTokenizerFast = BertTokenizer
DistilBertTokenizerFast = DistilBertTokenizer
GPT2TokenizerFast = GPT2Tokenizer
RobertaTokenizerFast = RobertaTokenizer
LlamaTokenizerFast = LlamaTokenizer
T5TokenizerFast = T5Tokenizer

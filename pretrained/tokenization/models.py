"""Per-family tokenizer classes: defaults, how each builds its Rust tokenizer, and its post-processor.

As in transformers 5, a family class rebuilds its tokenizer from the vocabulary (of a `tokenizer.json`
or of legacy files) with the family's normaliser, pre-tokenizer and decoder, and keeps the
`tokenizer.json`'s post-processor, padding and truncation unless the family sets its own
post-processor (BERT, RoBERTa, T5). A `tokenizer.json` whose model is not the family's (or a
byte-level file declared as Llama) is used as written. The plain names (`BertTokenizer`) and the
`...Fast` names are the same class.
"""

from __future__ import annotations

import re
from typing import Any

from tokenizers import AddedToken, Tokenizer, processors

from . import builders
from .fast import PreTrainedTokenizerFast


def _special(kwargs: dict[str, Any], defaults: dict[str, str], name: str) -> str:
    value = kwargs.get(name)
    return str(value if value is not None else defaults[name])


class BertTokenizer(PreTrainedTokenizerFast):
    """BERT WordPiece tokenizer (`[CLS] A [SEP] B [SEP]`).

    Args:
        do_lower_case: Lowercase the input.
        strip_accents: Strip accents (default: same as `do_lower_case`).
        tokenize_chinese_chars: Split CJK characters into separate words.
    """

    vocab_files_names = {"vocab_file": "vocab.txt", "tokenizer_file": "tokenizer.json"}
    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    saved_class_name = "BertTokenizer"
    rebuild_model_type = "WordPiece"
    default_special_tokens = {
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any], parts: dict[str, Any] | None = None) -> Tokenizer | None:
        vocab = parts["vocab"] if parts else kwargs.get("vocab_file")
        if vocab is None:
            return None
        return builders.wordpiece_tokenizer(
            vocab,
            unk_token=_special(kwargs, cls.default_special_tokens, "unk_token"),
            do_lower_case=kwargs.get("do_lower_case", True),
            strip_accents=kwargs.get("strip_accents"),
            tokenize_chinese_chars=kwargs.get("tokenize_chinese_chars", True),
        )

    def _set_family_post_processor(self) -> None:
        cls_token, sep_token = str(self.cls_token), str(self.sep_token)
        cls_id = self.cls_token_id if self.cls_token_id is not None else 2
        sep_id = self.sep_token_id if self.sep_token_id is not None else 3
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{cls_token}:0 $A:0 {sep_token}:0",
            pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
            special_tokens=[(cls_token, cls_id), (sep_token, sep_id)],
        )


class DistilBertTokenizer(BertTokenizer):
    """DistilBERT tokenizer: BERT's, without token type ids."""

    model_input_names = ["input_ids", "attention_mask"]
    saved_class_name = "DistilBertTokenizer"


class GPT2Tokenizer(PreTrainedTokenizerFast):
    """GPT-2 byte-level BPE tokenizer; builds from `vocab.json` + `merges.txt` too.

    Args:
        add_prefix_space: Add a space before the first word, so it is tokenized like any other.
    """

    vocab_files_names = {
        "vocab_file": "vocab.json",
        "merges_file": "merges.txt",
        "tokenizer_file": "tokenizer.json",
    }
    saved_class_name = "GPT2Tokenizer"
    rebuild_model_type = "BPE"
    default_special_tokens = {
        "unk_token": "<|endoftext|>",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
    }

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any], parts: dict[str, Any] | None = None) -> Tokenizer | None:
        if parts:
            vocab, merges = parts["vocab"], parts["merges"] or []
        elif kwargs.get("vocab_file") or kwargs.get("merges_file"):
            vocab, merges = builders.read_bpe_files(
                kwargs.get("vocab_file") or "", kwargs.get("merges_file") or ""
            )
        else:
            return None
        return builders.byte_level_bpe_tokenizer(
            vocab, merges, add_prefix_space=kwargs.get("add_prefix_space", False)
        )


class RobertaTokenizer(GPT2Tokenizer):
    """RoBERTa byte-level BPE tokenizer (`<s> A </s></s> B </s>`).

    Args:
        add_prefix_space: Add a space before the first word.
        trim_offsets: Leave the leading space out of the offsets.
    """

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

    def _set_family_post_processor(self) -> None:
        self._tokenizer.post_processor = processors.RobertaProcessing(
            (str(self.sep_token), self.sep_token_id),
            (str(self.cls_token), self.cls_token_id),
            trim_offsets=self.init_kwargs.get("trim_offsets", True),
            add_prefix_space=self.init_kwargs.get("add_prefix_space", False),
        )


class LlamaTokenizer(PreTrainedTokenizerFast):
    """Llama SentencePiece-BPE tokenizer (byte fallback); builds from a SentencePiece `tokenizer.model` too.

    Args:
        add_prefix_space: Prefix the text with "▁" (default True).
        legacy: Also prefix the text that follows special tokens (the old SentencePiece behaviour).
    """

    vocab_files_names = {"vocab_file": "tokenizer.model", "tokenizer_file": "tokenizer.json"}
    padding_side = "left"
    saved_class_name = "LlamaTokenizer"
    rebuild_model_type = "BPE"
    default_special_tokens = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"}

    def __init__(self, *args: Any, **kwargs: Any):
        _add_sentencepiece_specials(kwargs, extra_ids=0)
        super().__init__(*args, **kwargs)

    @classmethod
    def _backend_from_tokenizer_json(cls, path: str, kwargs: dict[str, Any]) -> Tokenizer:
        parts = builders.tokenizer_json_parts(path)
        if parts["byte_level"]:  # Llama-3 style files are byte-level BPE: transformers keeps them as written
            return Tokenizer.from_file(path)
        return cls._rebuilt(path, parts, kwargs)

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any], parts: dict[str, Any] | None = None) -> Tokenizer | None:
        if parts:
            vocab, merges = parts["vocab"], parts["merges"] or []
        elif kwargs.get("vocab_file"):
            vocab = builders.sentencepiece_parts(kwargs["vocab_file"])["vocab"]
            merges = builders.merges_from_vocab(vocab)
        else:
            return None
        return builders.llama_tokenizer(
            vocab, merges, add_prefix_space=kwargs.get("add_prefix_space"), legacy=kwargs.get("legacy", False)
        )


class T5Tokenizer(PreTrainedTokenizerFast):
    """T5 SentencePiece-Unigram tokenizer (`A </s>`, `<extra_id_*>` sentinels); builds from `tokenizer.model` too.

    Args:
        extra_ids: Number of `<extra_id_N>` sentinel tokens added when the files list none.
    """

    vocab_files_names = {"vocab_file": "spiece.model", "tokenizer_file": "tokenizer.json"}
    # Folders converted by other tools name the SentencePiece model tokenizer.model.
    vocab_file_alternatives = {"vocab_file": ("tokenizer.model",)}
    saved_class_name = "T5Tokenizer"
    rebuild_model_type = "Unigram"
    default_special_tokens = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

    def __init__(self, *args: Any, extra_ids: int = 100, **kwargs: Any):
        _add_sentencepiece_specials(kwargs, extra_ids=extra_ids)
        super().__init__(*args, extra_ids=extra_ids, **kwargs)

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any], parts: dict[str, Any] | None = None) -> Tokenizer | None:
        if not parts and kwargs.get("vocab_file"):
            parts = builders.sentencepiece_parts(kwargs["vocab_file"])
            # As transformers converts a `.model`: the sentinels follow the pieces, the last one first
            # (so `<extra_id_0>` has the highest id, as in the original T5 vocabularies).
            extra_ids = kwargs.get("extra_ids", 100)
            parts["vocab"] = parts["scores"] + [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]
        if not parts:
            return None
        return builders.t5_tokenizer(parts["vocab"], precompiled_charsmap=parts["precompiled_charsmap"])

    def _set_family_post_processor(self) -> None:
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=["$A", "</s>"],
            pair=["$A", "</s>", "$B", "</s>"],
            special_tokens=[("</s>", self.eos_token_id)],
        )

    def get_sentinel_tokens(self) -> list[str]:
        """The `<extra_id_N>` sentinel tokens (in no particular order, as in transformers)."""
        return list({str(t) for t in self.additional_special_tokens if re.fullmatch(r"<extra_id_\d+>", str(t))})

    def get_sentinel_token_ids(self) -> list[int]:
        """The ids of :meth:`get_sentinel_tokens`."""
        return [self.convert_tokens_to_ids(token) for token in self.get_sentinel_tokens()]


# Language codes of the mBART-25 checkpoints (fairseq's list, in its order).
FAIRSEQ_LANGUAGE_CODES = [
    "ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN", "hi_IN", "it_IT", "ja_XX",
    "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP", "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN",
    "zh_CN",
]


class MBartTokenizer(PreTrainedTokenizerFast):
    """mBART SentencePiece-Unigram tokenizer with language codes: source texts end `</s> src_lang`, targets
    (``text_target=``) `</s> tgt_lang`.

    Args:
        src_lang: Language code of the source texts (default `en_XX`).
        tgt_lang: Language code of the targets (default: `src_lang`).
    """

    vocab_files_names = {"vocab_file": "sentencepiece.bpe.model", "tokenizer_file": "tokenizer.json"}
    saved_class_name = "MBartTokenizer"
    rebuild_model_type = "Unigram"
    default_special_tokens = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                              "unk_token": "<unk>", "pad_token": "<pad>"}

    def __init__(self, *args: Any, src_lang: str | None = None, tgt_lang: str | None = None, **kwargs: Any):
        _add_sentencepiece_specials(kwargs, extra_ids=0)  # a .model's control pieces, when building from one
        mask = kwargs.get("mask_token", "<mask>")
        # The mask token swallows the space before it, as in fairseq.
        kwargs["mask_token"] = AddedToken(mask, lstrip=True, rstrip=False) if isinstance(mask, str) else mask
        extra = kwargs.pop("extra_special_tokens", None) or kwargs.pop("additional_special_tokens", None) or []
        codes = list(FAIRSEQ_LANGUAGE_CODES)
        kwargs["extra_special_tokens"] = codes + [t for t in extra if str(t) not in codes]
        self._src_lang = src_lang if src_lang is not None else "en_XX"
        self.tgt_lang = tgt_lang
        super().__init__(*args, src_lang=src_lang, tgt_lang=tgt_lang, **kwargs)
        self.lang_code_to_id = {code: self.convert_tokens_to_ids(code) for code in FAIRSEQ_LANGUAGE_CODES}

    @classmethod
    def _build_backend(cls, kwargs: dict[str, Any], parts: dict[str, Any] | None = None) -> Tokenizer | None:
        if parts:
            return builders.mbart_tokenizer(parts["vocab"])
        if not kwargs.get("vocab_file"):
            return None
        # fairseq's layout over a SentencePiece model, as transformers converts one: its four specials,
        # the pieces after SentencePiece's own three, the language codes, the mask.
        names = [_special(kwargs, cls.default_special_tokens, key)
                 for key in ("bos_token", "pad_token", "eos_token", "unk_token")]
        scores = builders.sentencepiece_parts(kwargs["vocab_file"])["scores"]
        mask = str(kwargs.get("mask_token") or "<mask>")
        vocab = [(name, 0.0) for name in names] + scores[3:] + [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES]
        return builders.mbart_tokenizer(vocab + [(mask, 0.0)])

    @property
    def src_lang(self) -> str:
        return self._src_lang

    @src_lang.setter
    def src_lang(self, value: str) -> None:
        self._src_lang = value
        self._set_language(value)

    def _set_family_post_processor(self) -> None:
        self._set_language(self._src_lang)

    def _set_language(self, code: str) -> None:
        # `A </s> code` (pairs: `A B </s> code`), the fairseq layout.
        key = (code, str(self.eos_token), self._tokenizer.post_processor is not None)
        if getattr(self, "_language_layout", None) == key:
            return  # (every call switches to the input mode: keep that cheap)
        code_id = self.convert_tokens_to_ids(code)
        if code_id is None or code_id == self.unk_token_id:
            raise ValueError(f"{code!r} is not a language code of this tokenizer")
        self._language_layout = key
        self.cur_lang_code = code_id
        self.prefix_tokens, self.suffix_tokens = [], [self.eos_token_id, code_id]
        eos = str(self.eos_token)
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=["$A", eos, code], pair=["$A", "$B", eos, code],
            special_tokens=[(eos, self.eos_token_id), (code, code_id)],
        )

    def _switch_to_input_mode(self) -> None:
        self._set_language(self._src_lang)

    def _switch_to_target_mode(self) -> None:
        if self.tgt_lang is None:
            self.tgt_lang = self._src_lang
        self._set_language(self.tgt_lang)

    def set_src_lang_special_tokens(self, src_lang: str) -> None:
        """Encode texts as `src_lang` sources."""
        self._set_language(src_lang)

    def set_tgt_lang_special_tokens(self, lang: str) -> None:
        """Encode texts as `lang` targets."""
        self._set_language(lang)

    def _build_translation_inputs(self, raw_inputs: Any, return_tensors: str | None, src_lang: str | None,
                                  tgt_lang: str | None, **extra_kwargs: Any) -> Any:
        """Inputs of the translation pipeline: the source encoded as `src_lang`, and the `tgt_lang` code as
        `forced_bos_token_id` for generation."""
        if src_lang is None or tgt_lang is None:
            raise ValueError("Translation requires a `src_lang` and a `tgt_lang` for this model")
        self.src_lang = src_lang
        inputs = self(raw_inputs, add_special_tokens=True, return_tensors=return_tensors, **extra_kwargs)
        inputs["forced_bos_token_id"] = self.convert_tokens_to_ids(tgt_lang)
        return inputs


class BartTokenizer(RobertaTokenizer):
    """BART byte-level BPE tokenizer: RoBERTa's (`<s> A </s></s> B </s>`)."""


class CLIPTokenizer(PreTrainedTokenizerFast):
    """CLIP byte-level BPE tokenizer (lowercasing, ``</w>`` word ends, ``<|startoftext|> A <|endoftext|>``).

    Loaded from a `tokenizer.json` as written (transformers writes CLIP's normaliser, pre-tokenizer and
    post-processor into it); decoding turns the ``</w>`` word ends back into spaces.
    """

    saved_class_name = "CLIPTokenizer"
    default_special_tokens = {
        "unk_token": "<|endoftext|>",
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }

    def _decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        text = super()._decode(token_ids, skip_special_tokens=skip_special_tokens, **kwargs)
        suffix = getattr(self._tokenizer.model, "end_of_word_suffix", None) or "</w>"
        return text.replace(suffix, " ").strip()


def _add_sentencepiece_specials(kwargs: dict[str, Any], extra_ids: int) -> None:
    # As in transformers: with no extra special tokens configured, a `.model`'s control and user-defined
    # pieces become them, followed by `extra_ids` `<extra_id_N>` sentinels (T5).
    if kwargs.get("extra_special_tokens") is not None or kwargs.get("additional_special_tokens") is not None:
        return
    extra: list[Any] = []
    vocab_file = kwargs.get("vocab_file")
    if not kwargs.get("tokenizer_file") and kwargs.get("tokenizer_object") is None and vocab_file:
        extra = builders.sentencepiece_parts(vocab_file)["added_tokens"]
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
CLIPTokenizerFast = CLIPTokenizer
MT5Tokenizer = MT5TokenizerFast = T5Tokenizer
MBartTokenizerFast = MBartTokenizer
BartTokenizerFast = BartTokenizer

"""`MarianTokenizer`: MarianMT's two SentencePiece models (source and target) over one `vocab.json`.

The SentencePiece library segments the text (`source.spm` for inputs, `target.spm` for `text_target=`),
exactly as transformers' slow tokenizer does; the pieces then go through a Rust word-level tokenizer
over `vocab.json`, which maps them to ids, truncates, pads and adds `</s>`. A leading language code
(`>>fr<<`) is kept as one token. Needs the `sentencepiece` package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

from tokenizers import Tokenizer, processors
from tokenizers.models import WordLevel

from ..utils.io import atomic_path, atomic_write_text, output_folder
from .batch_encoding import BatchEncoding
from .fast import PreTrainedTokenizerFast

SPIECE_UNDERLINE = "▁"


def _load_spm(path: str, options: dict[str, Any]) -> Any:
    try:
        import sentencepiece
    except ImportError:
        raise ImportError(
            "MarianTokenizer needs the `sentencepiece` package to read source.spm / target.spm: "
            "pip install sentencepiece (or pretrained[sentencepiece])"
        ) from None
    if not os.path.isfile(path):
        raise OSError(f"SentencePiece model not found: {path}")
    model = sentencepiece.SentencePieceProcessor(**options)
    model.Load(path)
    return model


def _load_vocab(path: str, what: str) -> dict[str, int]:
    if not path or not os.path.isfile(path):
        raise OSError(f"{what} file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class MarianTokenizer(PreTrainedTokenizerFast):
    """MarianMT tokenizer: SentencePiece source / target models, ids from `vocab.json`, `A </s>`.

    Args:
        source_spm: SentencePiece model of the source language (`source.spm`).
        target_spm: SentencePiece model of the target language (`target.spm`), used for targets.
        vocab: `vocab.json` (piece -> id), shared by source and target unless `separate_vocabs`.
        target_vocab_file: `target_vocab.json`, the targets' ids when `separate_vocabs`.
        source_lang / target_lang: Recorded in the config (as transformers does).
        sp_model_kwargs: Passed to `sentencepiece.SentencePieceProcessor` (sampling options).
        separate_vocabs: Targets have their own vocabulary.
    """

    vocab_files_names = {
        "source_spm": "source.spm",
        "target_spm": "target.spm",
        "vocab": "vocab.json",
        "target_vocab_file": "target_vocab.json",
    }
    saved_class_name = "MarianTokenizer"

    def __init__(
        self,
        source_spm: str | None = None,
        target_spm: str | None = None,
        vocab: str | None = None,
        target_vocab_file: str | None = None,
        source_lang: str | None = None,
        target_lang: str | None = None,
        unk_token: str = "<unk>",
        eos_token: str = "</s>",
        pad_token: str = "<pad>",
        model_max_length: int = 512,
        sp_model_kwargs: dict[str, Any] | None = None,
        separate_vocabs: bool = False,
        **kwargs: Any,
    ) -> None:
        if source_spm is None or target_spm is None or vocab is None:
            raise ValueError("MarianTokenizer needs source_spm, target_spm and vocab (source.spm, target.spm, "
                             "vocab.json)")
        self.sp_model_kwargs = dict(sp_model_kwargs or {})
        self.separate_vocabs = separate_vocabs
        self.encoder = _load_vocab(vocab, "vocab.json")
        if str(unk_token) not in self.encoder:
            raise KeyError(f"{unk_token} token must be in the vocab ({vocab})")
        self.target_encoder = _load_vocab(target_vocab_file, "target_vocab.json") if separate_vocabs \
            else self.encoder
        self.supported_language_codes = [] if separate_vocabs else [
            k for k in self.encoder if k.startswith(">>") and k.endswith("<<")]
        self.source_lang, self.target_lang = source_lang, target_lang
        self.spm_files = [source_spm, target_spm]
        self.spm_source = _load_spm(source_spm, self.sp_model_kwargs)
        self.spm_target = _load_spm(target_spm, self.sp_model_kwargs)
        self.current_spm = self.spm_source
        self._decode_use_source_tokenizer = False
        self._models = {"source": WordLevel(self.encoder, unk_token=str(unk_token)),
                        "target": WordLevel(self.target_encoder, unk_token=str(unk_token))}
        self.vocab_file = vocab
        # transformers' Marian is a Python tokenizer: its saved config names the backend "custom".
        kwargs.setdefault("backend", "custom")
        super().__init__(
            tokenizer_object=Tokenizer(WordLevel(self.encoder, unk_token=str(unk_token))),
            source_lang=source_lang, target_lang=target_lang, unk_token=unk_token, eos_token=eos_token,
            pad_token=pad_token, model_max_length=model_max_length, sp_model_kwargs=self.sp_model_kwargs,
            target_vocab_file=target_vocab_file, separate_vocabs=separate_vocabs, **kwargs,
        )

    def _set_family_post_processor(self) -> None:
        eos = str(self.eos_token)
        self._tokenizer.post_processor = processors.TemplateProcessing(
            single=["$A", eos], pair=["$A", "$B", eos], special_tokens=[(eos, self.eos_token_id)]
        )

    # -- source / target ----------------------------------------------------------------------------

    def _switch_to_input_mode(self) -> None:
        self.current_spm = self.spm_source
        if self.separate_vocabs:
            self._tokenizer.model = self._models["source"]

    def _switch_to_target_mode(self) -> None:
        self.current_spm = self.spm_target
        if self.separate_vocabs:
            self._tokenizer.model = self._models["target"]

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def get_src_vocab(self) -> dict[str, int]:
        return dict(self.encoder)

    def get_tgt_vocab(self) -> dict[str, int]:
        return dict(self.target_encoder)

    # -- encoding: SentencePiece pieces, then the word-level Rust tokenizer ---------------------------

    def normalize(self, x: str) -> str:
        """Moses punctuation normalisation of `x` (unchanged without the `sacremoses` package). Encoding
        does not apply it, as in transformers; programs call it themselves."""
        if not x:
            return ""
        try:
            from sacremoses import MosesPunctNormalizer
        except ImportError:
            return x
        return MosesPunctNormalizer(self.source_lang).normalize(x)

    def remove_language_code(self, text: str) -> tuple[list[str], str]:
        """A leading `>>xx<<` language code, split from the text it starts."""
        if text.startswith(">>") and (end := text.find("<<")) != -1:
            return [text[: end + 2]], text[end + 2 :]
        return [], text

    def _tokenize(self, text: str) -> list[str]:
        code, text = self.remove_language_code(text)
        return code + self.current_spm.encode(text, out_type=str)

    def _pieces(self, text: str, split_special_tokens: bool) -> list[str]:
        # As transformers' slow tokenizers: added tokens are cut out first (honouring their lstrip /
        # rstrip), the text between them is segmented.
        if split_special_tokens or not self.added_tokens_encoder:
            return self._tokenize(text)
        added = sorted(self.added_tokens_encoder, key=len, reverse=True)
        parts = [p for p in re.split("(" + "|".join(map(re.escape, added)) + ")", text)]
        tokens = dict(self.added_tokens_decoder.items())
        for i, part in enumerate(parts):
            token = tokens.get(self.added_tokens_encoder.get(part, -1))
            if i % 2 and token is not None:
                if getattr(token, "rstrip", False) and i + 1 < len(parts):
                    parts[i + 1] = parts[i + 1].lstrip()
                if getattr(token, "lstrip", False) and i > 0:
                    parts[i - 1] = parts[i - 1].rstrip()
        pieces: list[str] = []
        for i, part in enumerate(parts):
            if i % 2:
                pieces.append(part)
            elif part:
                pieces.extend(self._tokenize(part))
        return pieces

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False,
                 **kwargs: Any) -> list[str]:
        """The pieces (and added tokens) of `text`, with its pair's."""
        split = kwargs.get("split_special_tokens", self.split_special_tokens)
        pieces = self._pieces(text, split)
        if pair is not None:
            pieces += self._pieces(pair, split)
        if add_special_tokens:
            pieces.append(str(self.eos_token))
        return pieces

    def _encode_plus(self, text: Any, text_pair: Any = None, is_split_into_words: bool = False,
                     split_special_tokens: bool | None = None, **kwargs: Any) -> BatchEncoding:
        if is_split_into_words:
            raise NotImplementedError("MarianTokenizer does not take pre-split words (is_split_into_words=True)")
        if kwargs.get("return_offsets_mapping"):
            raise NotImplementedError("return_offset_mapping is not available with MarianTokenizer, whose "
                                      "SentencePiece segmentation keeps no offsets (as in transformers)")
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens

        def pieces(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, str):
                return self._pieces(value, split)
            return [self._pieces(v, split) for v in value]

        return super()._encode_plus(pieces(text), pieces(text_pair), is_split_into_words=True,
                                    split_special_tokens=split, **kwargs)

    # -- decoding ------------------------------------------------------------------------------------

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Pieces back to text with the target model (the source one with `use_source_tokenizer`); special
        tokens are written as they are."""
        model = self.spm_source if self._decode_use_source_tokenizer else self.spm_target
        special = set(self.all_special_tokens)
        out, run = "", []
        for token in tokens:
            if token in special:
                out += model.decode_pieces(run) + token + " "
                run = []
            else:
                run.append(token)
        out += model.decode_pieces(run)
        return out.replace(SPIECE_UNDERLINE, " ").strip()

    def _decode(self, token_ids: Any, skip_special_tokens: bool = False,
                clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> str:
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        self._decode_use_source_tokenizer = kwargs.pop("use_source_tokenizer", False)
        try:
            skip = set(self.all_special_ids) if skip_special_tokens else set()
            model = self.spm_source if self._decode_use_source_tokenizer else self.spm_target
            tokens = []
            for i in map(int, token_ids):
                if i in skip:
                    continue
                # ids the vocabulary lacks fall back to the SentencePiece model, as in transformers
                token = self._tokenizer.id_to_token(i) or model.IdToPiece(i) or str(self.unk_token)
                tokens.append(token)
            text = self.convert_tokens_to_string(tokens)
        finally:
            self._decode_use_source_tokenizer = False
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    # -- saving --------------------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike, legacy_format: bool | None = None,
                        filename_prefix: str | None = None, push_to_hub: bool = False,
                        **kwargs: Any) -> tuple[str, ...]:
        """Write `tokenizer_config.json`, `vocab.json` (+ `target_vocab.json`), `source.spm` and
        `target.spm` (no `tokenizer.json`: the segmentation is SentencePiece's)."""
        output_folder(save_directory, push_to_hub, not_a_folder=ValueError)
        prefix = f"{filename_prefix}-" if filename_prefix else ""

        def path(name: str) -> str:
            return os.path.join(save_directory, prefix + name)

        written = [path("tokenizer_config.json"), path("vocab.json")]
        config = self._config_for_saving()
        # No tokenizer.json holds the added tokens here, so they go in the config, as transformers' Python
        # tokenizers write them (and read them back through `added_tokens_decoder`).
        config["added_tokens_decoder"] = {
            str(index): {"content": token.content, "lstrip": token.lstrip, "normalized": token.normalized,
                         "rstrip": token.rstrip, "single_word": token.single_word, "special": token.special}
            for index, token in sorted(self.added_tokens_decoder.items())}
        atomic_write_text(written[0], json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        # ASCII-escaped ("\u2581"), byte for byte as transformers writes the vocabularies
        atomic_write_text(written[1], json.dumps(self.encoder, indent=2))
        if self.separate_vocabs:
            written.append(path("target_vocab.json"))
            atomic_write_text(written[-1], json.dumps(self.target_encoder, indent=2))
        for name, source, model in zip(("source.spm", "target.spm"), self.spm_files,
                                       (self.spm_source, self.spm_target)):
            target = path(name)
            if os.path.abspath(source) != os.path.abspath(target):
                with atomic_path(target) as tmp:
                    if os.path.isfile(source):
                        shutil.copyfile(source, tmp)
                    else:
                        with open(tmp, "wb") as f:
                            f.write(model.serialized_model_proto())
            written.append(target)
        return tuple(written)


MarianTokenizerFast = MarianTokenizer

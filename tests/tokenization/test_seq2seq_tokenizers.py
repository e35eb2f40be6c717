"""The sequence-to-sequence tokenizers against transformers (and SentencePiece itself): T5 / mT5 from a
SentencePiece model or a tokenizer.json, BART, mBART language codes, targets (`text_target=`,
`as_target_tokenizer`).

The SentencePiece models are trained here with the `sentencepiece` trainer. transformers needs `protobuf`
(not installed) to read a `.model`, so for those the oracle is SentencePiece's own segmentation and
transformers' class built from the pieces the model holds.
"""

from __future__ import annotations

import io
import json
import os
import sys

import pytest

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

sys.path.insert(0, os.path.dirname(__file__))
from tokenization_fixtures import assert_same_encoding  # noqa: E402

from pretrained import AutoTokenizer  # noqa: E402

TRAIN = """The quick brown fox jumps over the lazy dog. Ünïcödé àccents: café, naïve, résumé, Zürich, São Paulo.
Der schnelle braune Fuchs springt über den faulen Hund. El rápido zorro marrón salta sobre el perro perezoso.
日本語のテキストも少し含めます。中文文本也在这里。한국어 문장도 있습니다. Привет, как дела? Γειά σου κόσμε.
Emoji time 😀🎉👍 and numbers 12345 67.89 — dashes – and “quotes”. translate English to German: hello world
summarize: studies have shown that owning a dog is good for you. The house is wonderful. Das Haus ist wunderbar.
Ｆｕｌｌｗｉｄｔｈ letters and ﬁ ligatures are normalised by NFKC.""".splitlines()

SAMPLE = [
    "translate English to German: The house is wonderful.",
    "Héllo Zürich, São Paulo café naïve RÉSUMÉ!",
    "日本語のテキスト 中文文本 한국어",
    "emoji 😀🎉 👍🏽 test",
    "Ｆｕｌｌｗｉｄｔｈ ﬁ and   extra   spaces ",
    "The <extra_id_0> walks in <extra_id_1> park </s>",
    "",
]
TARGETS = ["Das Haus ist wunderbar.", "<extra_id_0> cute dog <extra_id_1> the", "中文 😀", "x", "", "über", "z"]


def _train(path, **options) -> spm.SentencePieceProcessor:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAIN * 3), model_writer=model, vocab_size=160, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2, **options,
    )
    path.write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path))


def _compare(ours, theirs, texts=SAMPLE, targets=TARGETS):
    for text, target in zip(texts, targets):
        assert ours(text).input_ids == theirs(text).input_ids, text
        assert_same_encoding(ours(text, text_target=target), theirs(text, text_target=target), text)
        assert_same_encoding(ours(text, text, text_target=target, text_pair_target=target),
                             theirs(text, text, text_target=target, text_pair_target=target), text)
        ids = theirs(text, text_target=target)["labels"]
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == theirs.decode(ids, skip_special_tokens=skip), ids
    batch = dict(padding=True, truncation=True, max_length=12, return_tensors="pt")
    assert_same_encoding(ours(texts, text_target=targets, **batch), theirs(texts, text_target=targets, **batch))


@pytest.fixture(scope="module")
def t5_spiece(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5_spiece")
    sp = _train(folder / "spiece.model", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    return folder, sp


def test_t5_from_spiece_model_matches_sentencepiece(t5_spiece):
    folder, sp = t5_spiece
    (folder / "config.json").write_text(json.dumps({"model_type": "t5"}))
    ours = AutoTokenizer.from_pretrained(folder)
    assert type(ours).__name__ == "T5Tokenizer" and len(ours) == sp.get_piece_size() + 100
    for text in SAMPLE:
        if "<extra_id" not in text and "</s>" not in text:
            assert ours(text).input_ids == [*sp.encode(text), 1], text  # SentencePiece's ids, then </s>
            if sp.unk_id() not in sp.encode(text):  # (SentencePiece writes an unknown piece as " ⁇ ")
                assert ours.decode(ours(text).input_ids, skip_special_tokens=True) == sp.decode(sp.encode(text))
    assert ours.convert_tokens_to_ids("<extra_id_0>") == sp.get_piece_size() + 99  # sentinels count down
    assert sorted(ours.get_sentinel_token_ids()) == list(range(sp.get_piece_size(), sp.get_piece_size() + 100))


def test_t5_from_spiece_model_matches_transformers(t5_spiece):
    from tokenizers import AddedToken

    from pretrained.tokenization.sentencepiece_model import read_sentencepiece_model

    folder, sp = t5_spiece
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    ours = AutoTokenizer.from_pretrained(folder)
    charsmap = read_sentencepiece_model(str(folder / "spiece.model")).precompiled_charsmap
    theirs = transformers.T5Tokenizer(
        # what transformers' T5 converter makes of a .model: the pieces, then the sentinels last one first
        vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
        + [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)],
        _spm_precompiled_charsmap=charsmap,
        # and of the control pieces
        additional_special_tokens=[AddedToken("<pad>", normalized=False, special=True),
                                   AddedToken("</s>", normalized=False, special=True)],
    )
    _compare(ours, theirs)


@pytest.mark.parametrize("model_type", ["t5", "mt5"])
def test_t5_tokenizer_json_saved_by_transformers(t5_spiece, tmp_path, model_type):
    from pretrained.tokenization.sentencepiece_model import read_sentencepiece_model

    folder, sp = t5_spiece
    charsmap = read_sentencepiece_model(str(folder / "spiece.model")).precompiled_charsmap
    made = transformers.T5Tokenizer(
        vocab=[(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())],
        _spm_precompiled_charsmap=charsmap, extra_ids=10,
    )
    made.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ours = AutoTokenizer.from_pretrained(tmp_path)
    _compare(ours, theirs)
    # the transformers 4 spelling of targets
    with pytest.warns(FutureWarning, match="as_target_tokenizer"), ours.as_target_tokenizer():
        assert ours(TARGETS[0]).input_ids == theirs(text_target=TARGETS[0]).input_ids


def test_bart_byte_level_bpe(tokenizer_dirs, tmp_path):
    import shutil

    shutil.copytree(tokenizer_dirs("roberta"), tmp_path, dirs_exist_ok=True)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "BartTokenizer"}))
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    ours = AutoTokenizer.from_pretrained(tmp_path)
    assert type(ours).__name__ == "BartTokenizer"
    _compare(ours, theirs)


@pytest.fixture(scope="module")
def mbart_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mbart")
    sp = _train(folder / "sentencepiece.bpe.model", unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    # fairseq's layout: <s> <pad> </s> <unk>, the pieces, the language codes, <mask>
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())]
    from pretrained.tokenization.models import FAIRSEQ_LANGUAGE_CODES

    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *pieces,
             *[(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES], ("<mask>", 0.0)]
    made = transformers.MBartTokenizer(vocab=vocab, src_lang="en_XX", tgt_lang="ro_RO")
    made.save_pretrained(folder)
    return folder


def test_mbart_language_codes(mbart_folder):
    theirs = transformers.AutoTokenizer.from_pretrained(mbart_folder)
    ours = AutoTokenizer.from_pretrained(mbart_folder)
    assert type(ours).__name__ == "MBartTokenizer" and ours.src_lang == "en_XX" and ours.tgt_lang == "ro_RO"
    text = SAMPLE[0]
    encoded = ours(text, text_target=TARGETS[0])
    assert encoded.input_ids[-2:] == [ours.eos_token_id, ours.convert_tokens_to_ids("en_XX")]
    assert encoded["labels"][-2:] == [ours.eos_token_id, ours.convert_tokens_to_ids("ro_RO")]
    assert ours.lang_code_to_id == theirs.lang_code_to_id
    _compare(ours, theirs, SAMPLE[:5], TARGETS[:5])
    for tok in (ours, theirs):
        tok.src_lang = "de_DE"
        tok.tgt_lang = "zh_CN"
    _compare(ours, theirs, SAMPLE[:5], TARGETS[:5])
    assert ours(text).input_ids[-1] == ours.convert_tokens_to_ids("de_DE")
    with pytest.warns(FutureWarning), ours.as_target_tokenizer():
        assert ours(text).input_ids[-1] == ours.convert_tokens_to_ids("zh_CN")
    assert ours(text).input_ids[-1] == ours.convert_tokens_to_ids("de_DE")  # back in source mode
    assert ours("a <mask> b").input_ids == theirs("a <mask> b").input_ids
    inputs = ours._build_translation_inputs(text, None, src_lang="en_XX", tgt_lang="ro_RO")
    assert inputs["forced_bos_token_id"] == ours.convert_tokens_to_ids("ro_RO")
    with pytest.raises(ValueError, match="not a language code"):
        ours.src_lang = "xx_YY"


def test_mbart_from_sentencepiece_model(tmp_path):
    from tokenizers import AddedToken

    from pretrained.tokenization.models import FAIRSEQ_LANGUAGE_CODES

    sp = _train(tmp_path / "sentencepiece.bpe.model", unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "MBartTokenizer", "src_lang": "ro_RO", "tgt_lang": "en_XX"}))
    ours = AutoTokenizer.from_pretrained(tmp_path)
    # what transformers' mBART converter makes of the .model (it needs protobuf to read one)
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())]
    vocab += [(code, 0.0) for code in FAIRSEQ_LANGUAGE_CODES] + [("<mask>", 0.0)]
    theirs = transformers.MBartTokenizer(
        vocab=vocab, src_lang="ro_RO", tgt_lang="en_XX",
        additional_special_tokens=[AddedToken("<s>", normalized=False, special=True),
                                   AddedToken("</s>", normalized=False, special=True)],
    )
    assert ours.src_lang == "ro_RO" and len(ours) == len(theirs)
    _compare(ours, theirs, SAMPLE[:5], TARGETS[:5])


def test_mbart_save_round_trip(mbart_folder, tmp_path):
    ours = AutoTokenizer.from_pretrained(mbart_folder, src_lang="ro_RO", tgt_lang="en_XX")
    ours.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert again.src_lang == theirs.src_lang == "ro_RO"
    _compare(again, theirs, SAMPLE[:5], TARGETS[:5])


# -- Marian: two SentencePiece models and one vocab.json ------------------------------------------------

GERMAN = [line for line in TRAIN if "Der " in line or "Das " in line] + TARGETS[:1] + [
    "Ich mag grünen Tee. Wo ist der Bahnhof? Vielen Dank, guten Morgen!", "Straße, Größe, Äpfel, öffnen, über"]


@pytest.fixture(scope="module")
def marian_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("marian")
    sources = [_train_on(TRAIN, folder / "source.spm"), _train_on(GERMAN * 4, folder / "target.spm", 60)]
    pieces = [sp.id_to_piece(i) for sp in sources for i in range(3, sp.get_piece_size())]
    vocab = {"</s>": 0, "<unk>": 1}
    for piece in [*pieces, ">>de<<", ">>fr<<"]:
        vocab.setdefault(piece, len(vocab))
    vocab["<pad>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "MarianTokenizer", "source_lang": "en", "target_lang": "de"}))
    return folder


def _train_on(lines, path, size=160):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return spm.SentencePieceProcessor(model_file=str(path))


MARIAN_SAMPLE = [*SAMPLE[:5], ">>de<< The house is wonderful.", "a </s> inside", ""]
MARIAN_TARGETS = ["Das Haus ist wunderbar.", "Ich mag grünen Tee.", "Straße über", "", "Größe </s>", "x",
                  "Guten Morgen!", "z"]


def test_marian_matches_transformers(marian_folder, tmp_path):
    theirs = transformers.AutoTokenizer.from_pretrained(marian_folder)
    ours = AutoTokenizer.from_pretrained(marian_folder)
    assert type(theirs).__name__ == type(ours).__name__ == "MarianTokenizer"
    for text, target in zip(MARIAN_SAMPLE, MARIAN_TARGETS):
        assert ours.tokenize(text) == theirs.tokenize(text), text
        assert_same_encoding(ours(text, text_target=target), theirs(text, text_target=target), text)
        ids = ours(text, text_target=target)
        for skip in (False, True):
            assert ours.decode(ids["labels"], skip_special_tokens=skip) == \
                theirs.decode(ids["labels"], skip_special_tokens=skip)
            assert ours.decode(ids["input_ids"], skip_special_tokens=skip, use_source_tokenizer=True) == \
                theirs.decode(ids["input_ids"], skip_special_tokens=skip, use_source_tokenizer=True)
    batch = dict(padding=True, truncation=True, max_length=10, return_tensors="pt")
    assert_same_encoding(ours(MARIAN_SAMPLE, text_target=MARIAN_TARGETS, **batch),
                         theirs(MARIAN_SAMPLE, text_target=MARIAN_TARGETS, **batch))
    assert ours(MARIAN_SAMPLE[1], text_target=MARIAN_TARGETS[2]).labels != ours(MARIAN_TARGETS[2]).input_ids
    with pytest.warns(FutureWarning), ours.as_target_tokenizer():
        assert ours(MARIAN_TARGETS[2]).input_ids == theirs(text_target=MARIAN_TARGETS[2]).input_ids
    assert ours.supported_language_codes == theirs.supported_language_codes
    assert ours.vocab_size == theirs.vocab_size and ours.pad_token_id == theirs.pad_token_id

    ours.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"source.spm", "target.spm", "vocab.json",
                                                     "tokenizer_config.json"}
    assert not (tmp_path / "tokenizer.json").exists()
    again, theirs_again = AutoTokenizer.from_pretrained(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert_same_encoding(again(MARIAN_SAMPLE, text_target=MARIAN_TARGETS),
                         theirs_again(MARIAN_SAMPLE, text_target=MARIAN_TARGETS))


def test_marian_saved_config_matches_transformers(marian_folder, tmp_path):
    # run_translation.py saves the tokenizer beside the model: the config, added tokens included (there is no
    # tokenizer.json to hold them), is what transformers writes, less its loading facts
    AutoTokenizer.from_pretrained(marian_folder).save_pretrained(tmp_path / "ours")
    transformers.AutoTokenizer.from_pretrained(marian_folder).save_pretrained(tmp_path / "theirs")
    ours, theirs = (json.loads((tmp_path / name / "tokenizer_config.json").read_text()) for name in ("ours", "theirs"))
    for key in ("is_local", "local_files_only"):
        theirs.pop(key, None)
    assert ours["added_tokens_decoder"]["0"] == {"content": "</s>", "lstrip": False, "normalized": False,
                                                 "rstrip": False, "single_word": False, "special": True}
    assert ours == theirs
    assert (tmp_path / "ours" / "vocab.json").read_bytes() == (tmp_path / "theirs" / "vocab.json").read_bytes()
    again = AutoTokenizer.from_pretrained(tmp_path / "ours")
    assert again.added_tokens_decoder == AutoTokenizer.from_pretrained(marian_folder).added_tokens_decoder

"""summarization / translation / text2text-generation (transformers 4.57's formats, pinned here since 5.24
removed them; contents checked against our own generate) and zero-shot classification with a BART-MNLI-style
model against transformers' zero-shot pipeline, on tiny random BART models and a byte-level BPE tokenizer."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from pipeline_fixtures import TEXTS, assert_close
from seq2seq_models import save_tiny_seq2seq
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

import pretrained as P
from pretrained.pipelines.text2text_generation import (
    SummarizationPipeline,
    Text2TextGenerationPipeline,
    TranslationPipeline,
)

CORPUS = ["The quick brown fox jumps over the lazy dog.", "Paris is the capital of France.",
          "I love this movie, it was great.", "An awful, boring film.", "How old are you?"] * 20
SHORT = dict(max_new_tokens=8)


def _bart_tokenizer(path):
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # BART's ids 0-4
    raw.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    import json

    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = T.RobertaTokenizer(vocab=model["vocab"], merges=merges)
    tokenizer.save_pretrained(path)
    return len(tokenizer)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq_pipes")
    vocab = _bart_tokenizer(root / "tok")
    out = {}
    params = {"translation_en_to_fr": {"prefix": "translate: ", "num_beams": 2},
              "summarization": {"min_length": 3, "no_repeat_ngram_size": 2}}
    for name, head, extra in (("lm", None, {"task_specific_params": params}),
                              ("nli", "BartForSequenceClassification",
                               {"id2label": {0: "contradiction", 1: "neutral", 2: "entailment"},
                                "label2id": {"contradiction": 0, "neutral": 1, "entailment": 2}})):
        folder = root / name
        save_tiny_seq2seq(folder, "bart", head=head, vocab_size=vocab, **extra)
        _bart_tokenizer(folder)
        out[name] = folder
    return out


def _expected(folder, texts, **generate_kwargs):
    """What our generate gives for ``texts`` one at a time, decoded as the pipelines decode."""
    model = P.AutoModelForSeq2SeqLM.from_pretrained(folder)
    tokenizer = P.AutoTokenizer.from_pretrained(folder)
    results = []
    for text in texts:
        ids = model.generate(**tokenizer(text, return_tensors="pt"), **generate_kwargs)
        results.append([tokenizer.decode(row, skip_special_tokens=True) for row in ids])
    return results


def test_summarization_formats(folders):
    summarizer = P.pipeline("summarization", model=folders["lm"])
    assert isinstance(summarizer, SummarizationPipeline)
    # defaults: the pipeline's num_beams=4 / max_new_tokens=256 under the task's own parameters
    config = summarizer.generation_config
    assert (config.num_beams, config.max_new_tokens, config.min_length, config.no_repeat_ngram_size) == (4, 256, 3, 2)
    (want,) = _expected(folders["lm"], [TEXTS[0]], num_beams=4, min_length=3, no_repeat_ngram_size=2, **SHORT)
    out = summarizer(TEXTS[0], **SHORT)
    assert out == [{"summary_text": want[0]}]
    # a list of texts gives one record per text; batching changes nothing
    wants = _expected(folders["lm"], TEXTS[:3], num_beams=4, min_length=3, no_repeat_ngram_size=2, **SHORT)
    for batch_size in (1, 2):
        assert summarizer(TEXTS[:3], batch_size=batch_size, **SHORT) == [{"summary_text": w[0]} for w in wants]
    # several sequences per text: lists of records
    out = summarizer(TEXTS[:2], num_return_sequences=2, **SHORT)
    assert [len(r) for r in out] == [2, 2] and all(set(x) == {"summary_text"} for r in out for x in r)
    # token ids instead of text
    ids = summarizer(TEXTS[0], return_tensors=True, **SHORT)
    assert list(ids[0]) == ["summary_token_ids"] and isinstance(ids[0]["summary_token_ids"], torch.Tensor)
    assert ids[0]["summary_token_ids"][0].item() == 2  # BART's decoder starts from </s>


def test_translation_reads_languages_and_task_parameters(folders):
    translator = P.pipeline("translation_en_to_fr", model=folders["lm"])
    assert isinstance(translator, TranslationPipeline) and translator.task == "translation_en_to_fr"
    assert translator.prefix == "translate: " and translator.generation_config.num_beams == 2
    assert translator._preprocess_params == {"src_lang": "en", "tgt_lang": "fr"}
    (want,) = _expected(folders["lm"], ["translate: " + TEXTS[1]], num_beams=2, **SHORT)
    assert translator(TEXTS[1], **SHORT) == [{"translation_text": want[0]}]
    # a bare "translation" takes the checkpoint's translation_xx_to_yy settings
    assert P.pipeline("translation", model=folders["lm"]).task == "translation_en_to_fr"


def test_text2text_generation_and_task_inference(folders):
    generator = P.pipeline(model=folders["lm"])  # BartForConditionalGeneration -> text2text-generation
    assert type(generator) is Text2TextGenerationPipeline
    assert generator.generation_config.max_new_tokens == 256 and generator.generation_config.num_beams == 4
    wants = _expected(folders["lm"], TEXTS[:2], num_beams=1, **SHORT)
    out = generator(TEXTS[:2], num_beams=1, **SHORT)
    assert out == [{"generated_text": w[0]} for w in wants]
    # a user's generation_config replaces the pipeline's
    config = P.GenerationConfig(max_new_tokens=4, num_beams=1, decoder_start_token_id=2, eos_token_id=2)
    assert generator(TEXTS[0], generation_config=config) == [{"generated_text": _expected(
        folders["lm"], [TEXTS[0]], generation_config=config)[0][0]}]


def test_model_max_length_wins_over_the_pipeline_default(folders, tmp_path):
    model = P.AutoModelForSeq2SeqLM.from_pretrained(folders["lm"])
    model.generation_config.max_length = 12
    pipe = P.pipeline("text2text-generation", model=model, tokenizer=P.AutoTokenizer.from_pretrained(folders["lm"]))
    assert pipe.generation_config.max_new_tokens is None and pipe.generation_config.max_length == 12
    assert pipe("x", return_tensors=True)[0]["generated_token_ids"].shape[-1] <= 12


def test_wrong_model_is_refused(folders):
    with pytest.raises(ValueError, match="not supported for summarization"):
        P.pipeline("summarization", model=P.AutoModelForSequenceClassification.from_pretrained(folders["nli"]),
                   tokenizer=P.AutoTokenizer.from_pretrained(folders["nli"]))


@pytest.mark.parametrize("kwargs", [{"candidate_labels": ["sports", "politics", "movie"]},
                                    {"candidate_labels": ["sports", "politics"], "multi_label": True}])
def test_zero_shot_with_a_bart_mnli_style_model(folders, kwargs):
    ours = P.pipeline("zero-shot-classification", model=folders["nli"])
    theirs = T.pipeline("zero-shot-classification", model=str(folders["nli"]), device="cpu")
    assert ours.entailment_id == 2
    for batch_size in (1, 3):
        assert_close(ours(TEXTS[:3], batch_size=batch_size, **kwargs), theirs(TEXTS[:3], batch_size=batch_size,
                                                                              **kwargs), atol=1e-4)


def test_translation_tokenizer_inputs_reach_generate(folders):
    # Multilingual tokenizers (mBART, M2M100) build the inputs and name the target language's first token.
    translator = P.pipeline("translation", model=folders["lm"])
    calls = []

    def build(text, return_tensors, truncation, src_lang, tgt_lang):
        calls.append((src_lang, tgt_lang))
        return {**translator.tokenizer(text, return_tensors=return_tensors, truncation=truncation),
                "forced_bos_token_id": 7}

    translator.tokenizer._build_translation_inputs = build
    (want,) = _expected(folders["lm"], [TEXTS[0]], num_beams=1, forced_bos_token_id=7, **SHORT)
    for batch_size in (1, 2):
        out = translator([TEXTS[0], TEXTS[0]], src_lang="en_XX", tgt_lang="fr_XX", num_beams=1,
                         batch_size=batch_size, **SHORT)
        assert out == [{"translation_text": want[0]}] * 2
    assert calls[0] == ("en_XX", "fr_XX")

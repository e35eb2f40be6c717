"""token-classification (ner) parity with transformers' pipeline, every aggregation strategy."""

import pytest
import transformers as T
from pipeline_fixtures import assert_close

import pretrained as P

TEXTS = ["John Smith lives in New York", "Hello world, this is a small test of the tokenizer.",
         "Paris is the capital of France. Berlin is the capital of Germany.", "xyzzy quux", "Google"]
LONG = " ".join(TEXTS * 3)


@pytest.fixture(scope="module")
def pipes(model_dirs):
    return (P.pipeline("ner", model=model_dirs["token"]),
            T.pipeline("ner", model=model_dirs["token"], device="cpu"))


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kwargs", [{}, {"aggregation_strategy": "simple"}, {"aggregation_strategy": "first"},
                                    {"aggregation_strategy": "average"}, {"aggregation_strategy": "max"},
                                    {"ignore_labels": []}, {"ignore_labels": ["O", "B-PER"],
                                                            "aggregation_strategy": "simple"}])
def test_parity(pipes, batch_size, kwargs):
    ours, theirs = pipes
    assert_close(ours(TEXTS, batch_size=batch_size, **kwargs), theirs(TEXTS, batch_size=batch_size, **kwargs))


@pytest.mark.parametrize("strategy", ["simple", "first", "max"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_stride_windows(pipes, strategy, batch_size):
    ours, theirs = pipes
    kwargs = {"stride": 8, "aggregation_strategy": strategy, "ignore_labels": []}
    result = ours(LONG, batch_size=batch_size, **kwargs)
    assert_close(result, theirs(LONG, batch_size=batch_size, **kwargs))
    assert result[-1]["end"] > 64  # the windows reach past the model's 64-token limit
    for entity in result:
        assert LONG[entity["start"]:entity["end"]].lower().replace(" ", "") == entity["word"].replace("##", "").replace(" ", "")


def test_single_text_and_split_words(pipes):
    ours, theirs = pipes
    assert_close(ours(TEXTS[0]), theirs(TEXTS[0]))
    words = ["John", "Smith", "lives", "in", "New", "York"]
    for kwargs in ({"is_split_into_words": True}, {"is_split_into_words": True, "aggregation_strategy": "first"},
                   {"is_split_into_words": True, "delimiter": "_", "ignore_labels": []}):
        assert_close(ours(words, **kwargs), theirs(words, **kwargs))
        assert_close(ours([words, words[:3]], **kwargs), theirs([words, words[:3]], **kwargs))


def test_offsets_match_the_text(pipes):
    ours, _ = pipes
    for entity in ours(TEXTS[1], ignore_labels=[]):
        assert TEXTS[1][entity["start"]:entity["end"]].lower() == entity["word"].removeprefix("##")


def test_bad_inputs(pipes):
    ours, _ = pipes
    with pytest.raises(ValueError, match="empty list"):
        ours([])
    with pytest.raises(TypeError, match="expects text"):
        ours(42)
    with pytest.raises(TypeError, match="expects text"):
        ours(["ok", None])
    with pytest.raises(ValueError, match="aggregation_strategy"):
        ours("x", aggregation_strategy="mean")
    with pytest.raises(ValueError, match="stride"):
        ours("x", stride=4)
    with pytest.raises(ValueError, match="list of tokens"):
        ours([["a", 3]], is_split_into_words=True)
    assert ours("") == []

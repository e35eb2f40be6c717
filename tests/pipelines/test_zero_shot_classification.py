"""zero-shot-classification parity with transformers' pipeline (tiny NLI-labelled model)."""

import pytest
import transformers as T
from pipeline_fixtures import TEXTS, assert_close

import pretrained as P

LABELS = ["sports", "politics", "movie", "travel"]


@pytest.fixture(scope="module")
def pipes(model_dirs):
    return (P.pipeline("zero-shot-classification", model=model_dirs["nli"]),
            T.pipeline("zero-shot-classification", model=model_dirs["nli"], device="cpu"))


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kwargs", [{"candidate_labels": LABELS}, {"candidate_labels": LABELS, "multi_label": True},
                                    {"candidate_labels": "sports, politics", "hypothesis_template": "About {}."},
                                    {"candidate_labels": ["movie"]}])
def test_parity(pipes, batch_size, kwargs):
    ours, theirs = pipes
    assert_close(ours(TEXTS, batch_size=batch_size, **kwargs), theirs(TEXTS, batch_size=batch_size, **kwargs))
    assert_close(ours(TEXTS[0], **kwargs), theirs(TEXTS[0], **kwargs))


def test_positional_labels_and_long_text(pipes):
    ours, theirs = pipes
    long_text = " ".join(TEXTS * 4)  # longer than the model: the text is truncated, never the hypothesis
    assert_close(ours(long_text, LABELS), theirs(long_text, LABELS))


def test_entailment_id_from_label2id(pipes):
    ours, _ = pipes
    assert ours.entailment_id == 2


def test_bad_inputs(pipes):
    ours, _ = pipes
    with pytest.raises(ValueError, match="candidate_labels"):
        ours("x")
    with pytest.raises(ValueError, match="at least one label"):
        ours("x", candidate_labels=[])
    with pytest.raises(ValueError, match="not able to be formatted"):
        ours("x", candidate_labels=LABELS, hypothesis_template="no slot")
    with pytest.raises(ValueError, match="empty list"):
        ours([], candidate_labels=LABELS)
    with pytest.raises(TypeError, match="expects text"):
        ours(5, candidate_labels=LABELS)

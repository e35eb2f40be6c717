"""The encoders' multiple-choice, pre-training and next-sentence heads against transformers (test-only oracle),
in both directions, and their Auto classes."""

import os
import sys

import pytest
import torch
import transformers as T

from pretrained.models import auto, bert, distilbert

sys.path.insert(0, os.path.dirname(__file__))
from test_encoders import CONFIGS, PREFIX, TINY  # noqa: E402  (the same tiny configs as the other heads)

MODULES = {"bert": bert, "roberta": bert, "distilbert": distilbert}
CASES = [("bert", "ForMultipleChoice"), ("roberta", "ForMultipleChoice"), ("distilbert", "ForMultipleChoice"),
         ("bert", "ForPreTraining"), ("bert", "ForNextSentencePrediction")]


def _classes(arch, head):
    name = PREFIX[arch] + head
    return getattr(T, name), getattr(MODULES[arch], name)


def _inputs(arch, head):
    """Padded inputs with labels; a multiple-choice batch is 2 questions of 3 choices each."""
    g = torch.Generator().manual_seed(1)
    shape = (2, 3, 9) if head == "ForMultipleChoice" else (2, 9)
    ids = torch.randint(3, 99, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., 1, 6:] = 0  # in a multiple-choice batch, the second choice of each question
    ids[mask == 0] = 1 if arch == "roberta" else 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if arch == "bert":
        inputs["token_type_ids"] = (torch.arange(9) >= 4).long().expand(shape)
    if head == "ForPreTraining":
        labels = ids.clone()
        labels[:, ::2] = -100
        inputs.update(labels=labels, next_sentence_label=torch.tensor([0, 1]))
    else:
        inputs["labels"] = torch.tensor([2, 0]) if head == "ForMultipleChoice" else torch.tensor([1, 0])
    return inputs


def _compare(a, b, atol=1e-4):
    assert list(a.keys()) == list(b.keys())
    for key in a:
        if key in ("hidden_states", "attentions"):
            assert len(a[key]) == len(b[key])
            for x, y in zip(a[key], b[key]):
                torch.testing.assert_close(y, x, atol=atol, rtol=0)
        else:
            assert b[key].shape == a[key].shape, key
            torch.testing.assert_close(b[key], a[key], atol=1e-5 if key == "loss" else atol, rtol=0, msg=key)


@pytest.mark.parametrize(("arch", "head"), CASES)
def test_transformers_checkpoint_loads_with_same_outputs(arch, head, tmp_path):
    torch.manual_seed(0)
    T_cls, P_cls = _classes(arch, head)
    ref = T_cls(CONFIGS[arch](**TINY[arch], attn_implementation="eager")).eval()  # eager returns attentions
    ref.save_pretrained(tmp_path)
    ours, info = P_cls.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    inputs = _inputs(arch, head)
    with torch.no_grad():
        a = ref(**inputs, output_hidden_states=True, output_attentions=True)
        b = ours(**inputs, output_hidden_states=True, output_attentions=True)
        assert type(b).__name__ == type(a).__name__
        _compare(a, b)
        as_tuple = ours(**inputs, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(ref(**inputs).to_tuple())
    torch.testing.assert_close(as_tuple[1], a[list(a.keys())[1]], atol=1e-4, rtol=0)


@pytest.mark.parametrize(("arch", "head"), CASES)
def test_saved_by_pretrained_loads_in_transformers(arch, head, tmp_path):
    torch.manual_seed(0)
    T_cls, P_cls = _classes(arch, head)
    ours = P_cls(P_cls.config_class(**TINY[arch])).eval()
    ours.save_pretrained(tmp_path)
    ref, info = T_cls.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    inputs = _inputs(arch, head)
    with torch.no_grad():
        _compare(ref.eval()(**inputs), ours(**inputs))


def test_pretraining_head_ties_and_partial_labels(tmp_path):
    torch.manual_seed(0)
    model = bert.BertForPreTraining(bert.BertConfig(**TINY["bert"]))
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.cls.predictions.bias is model.cls.predictions.decoder.bias
    inputs = _inputs("bert", "ForPreTraining")
    # transformers computes the loss only when both kinds of labels are given
    assert model(**{**inputs, "next_sentence_label": None}).loss is None
    assert model(**{**inputs, "labels": None}).loss is None
    # a masked-LM checkpoint into the pre-training model: what is missing is what transformers says is missing
    T.BertForMaskedLM(T.BertConfig(**TINY["bert"])).save_pretrained(tmp_path)
    _, ref_info = T.BertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    _, info = bert.BertForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == sorted(ref_info["missing_keys"])
    assert sorted(info["unexpected_keys"]) == sorted(ref_info["unexpected_keys"])


@pytest.mark.parametrize("arch", list(TINY))
def test_multiple_choice_embeds_training_and_bad_shapes(arch, tmp_path):
    torch.manual_seed(0)
    T_cls, P_cls = _classes(arch, "ForMultipleChoice")
    config = CONFIGS[arch](**TINY[arch], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                           dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    ref = T_cls(config).eval()
    ref.save_pretrained(tmp_path)
    ours = P_cls.from_pretrained(tmp_path)
    inputs = _inputs(arch, "ForMultipleChoice")
    embeds = ref.get_input_embeddings()(inputs["input_ids"]).detach()  # (batch, choices, seq, hidden)
    by_embeds = {**inputs, "input_ids": None, "inputs_embeds": embeds}
    with torch.no_grad():
        _compare(ref(**by_embeds), ours(**by_embeds))
    # gradients flow through the folded choices like transformers' (dropout off, so the same numbers)
    ours.train()(**inputs).loss.backward()
    ref.train()(**inputs).loss.backward()
    torch.testing.assert_close(ours.classifier.weight.grad, ref.classifier.weight.grad, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"input_ids of shape \(batch, num_choices, sequence_length\)"):
        ours(input_ids=inputs["input_ids"][:, 0])
    with pytest.raises(ValueError, match="inputs_embeds of shape"):
        ours(inputs_embeds=embeds[:, 0])


@pytest.mark.parametrize("arch", list(TINY))
def test_auto_classes_dispatch(arch, tmp_path):
    config = CONFIGS[arch](**TINY[arch])
    getattr(T, PREFIX[arch] + "Model")(config).save_pretrained(tmp_path)
    expected = {
        auto.AutoModelForMultipleChoice: "ForMultipleChoice",
        auto.AutoModelForPreTraining: "ForPreTraining" if arch == "bert" else "ForMaskedLM",
        auto.AutoModelForNextSentencePrediction: "ForNextSentencePrediction" if arch == "bert" else None,
    }
    for auto_class, head in expected.items():
        reference = getattr(T, auto_class.__name__)
        if head is None:  # only BERT was pre-trained with next-sentence prediction
            with pytest.raises(ValueError, match=f"model type '{arch}' has no next sentence prediction model"):
                auto_class.from_pretrained(tmp_path)
            with pytest.raises(ValueError):
                reference.from_config(config)
            continue
        model = auto_class.from_pretrained(tmp_path)
        assert type(model).__name__ == PREFIX[arch] + head == type(reference.from_config(config)).__name__
        assert type(auto_class.from_config(model.config)) is type(model)


@pytest.mark.parametrize("arch", list(TINY))
def test_multiple_choice_dropout_rates_match(arch):
    # BERT's head honours classifier_dropout, RoBERTa's uses the hidden dropout, DistilBERT's seq_classif_dropout
    extra = {"distilbert": dict(seq_classif_dropout=0.25)}.get(arch, dict(classifier_dropout=0.3))
    T_cls, P_cls = _classes(arch, "ForMultipleChoice")
    ref, ours = T_cls(CONFIGS[arch](**TINY[arch], **extra)), P_cls(P_cls.config_class(**TINY[arch], **extra))
    assert ours.dropout.p == ref.dropout.p

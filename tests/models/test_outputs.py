"""Model output classes: same fields, order and class relations as transformers', tuple/dict views, pickling."""

import dataclasses
import pickle

import pytest
import torch
import transformers.modeling_outputs as T

import pretrained.modeling.outputs as P

NAMES = ["BaseModelOutput", "BaseModelOutputWithPooling", "BaseModelOutputWithPast", "CausalLMOutputWithPast",
         "MaskedLMOutput", "SequenceClassifierOutput", "SequenceClassifierOutputWithPast",
         "TokenClassifierOutput", "QuestionAnsweringModelOutput",
         # encoder-decoder outputs (their shared trailing fields are built by outputs._seq2seq_output)
         "Seq2SeqModelOutput", "Seq2SeqLMOutput", "Seq2SeqSequenceClassifierOutput",
         "Seq2SeqQuestionAnsweringModelOutput"]


@pytest.mark.parametrize("name", NAMES)
def test_fields_in_transformers_order(name):
    ours = [f.name for f in dataclasses.fields(getattr(P, name))]
    # transformers 5 names the cache field ``cache`` (``past_key_values`` is its deprecated alias); we keep
    # ``past_key_values``, in the same place.
    theirs = [f.name for f in dataclasses.fields(getattr(T, name))]
    assert ours == ["past_key_values" if n == "cache" else n for n in theirs]
    assert all(f.default is None for f in dataclasses.fields(getattr(P, name)))


def test_no_public_class_is_another():
    for a in NAMES:
        for b in NAMES:
            assert issubclass(getattr(P, a), getattr(P, b)) == (a == b)
        assert issubclass(getattr(P, a), P.ModelOutput)


@pytest.mark.parametrize("name", NAMES)
def test_tuple_dict_and_pickle(name):
    cls = getattr(P, name)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {n: torch.full((1,), float(i)) for i, n in enumerate(names) if i % 2}  # every other field set
    out = cls(**values)
    assert list(out.keys()) == list(values) and out.to_tuple() == tuple(values.values())
    assert out[0] is values[names[1]] and out[names[1]] is getattr(out, names[1])
    assert getattr(out, names[0]) is None
    back = pickle.loads(pickle.dumps(out))
    assert type(back) is cls and list(back.keys()) == list(values)
    assert repr(out).startswith(f"{name}(")

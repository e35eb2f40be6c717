"""Parity of the encoder family against transformers (test-only oracle), both directions."""

import pytest
import torch
import transformers as T

import pretrained as P
from pretrained.modeling import attention as attention_registry

TINY = {
    "bert": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=64, type_vocab_size=2),
    "roberta": dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=37, max_position_embeddings=64, type_vocab_size=1),
    "distilbert": dict(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64),
}
CONFIGS = {"bert": T.BertConfig, "roberta": T.RobertaConfig, "distilbert": T.DistilBertConfig}
PREFIX = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert"}
HEADS = ["Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering"]


def _inputs(arch):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 99, (2, 9), generator=g)
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    pad = 1 if arch == "roberta" else 0
    ids[1, 6:] = pad
    inputs = {"input_ids": ids, "attention_mask": mask}
    if arch == "bert":
        inputs["token_type_ids"] = torch.cat([torch.zeros(2, 4), torch.ones(2, 5)], 1).long()
    return inputs


def _compare(a, b, atol=1e-4):
    for key in a:
        if key in ("hidden_states", "attentions"):
            assert len(a[key]) == len(b[key])
            for x, y in zip(a[key], b[key]):
                torch.testing.assert_close(y, x, atol=atol, rtol=0)
        elif isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(b[key], a[key], atol=atol, rtol=0, msg=f"{key} differs")


def _labels(head, inputs, num_labels=3):
    ids = inputs["input_ids"]
    if head == "ForMaskedLM":
        labels = ids.clone()
        labels[:, ::2] = -100
        return {"labels": labels}
    if head == "ForSequenceClassification":
        return {"labels": torch.tensor([0, 2])}
    if head == "ForTokenClassification":
        return {"labels": torch.randint(0, num_labels, ids.shape, generator=torch.Generator().manual_seed(2))}
    if head == "ForQuestionAnswering":
        return {"start_positions": torch.tensor([1, 3]), "end_positions": torch.tensor([2, 30])}
    return {}


@pytest.mark.parametrize("arch", list(TINY))
@pytest.mark.parametrize("head", HEADS)
def test_transformers_checkpoint_loads_with_same_outputs(arch, head, tmp_path):
    torch.manual_seed(0)
    config = CONFIGS[arch](**TINY[arch], num_labels=3 if head != "ForQuestionAnswering" else 2)
    ref = getattr(T, PREFIX[arch] + head)(config).eval()
    ref.save_pretrained(tmp_path)
    ours, info = getattr(P, PREFIX[arch] + head).from_pretrained(tmp_path, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    assert not ours.training
    inputs = {**_inputs(arch), **_labels(head, _inputs(arch))}
    with torch.no_grad():
        a = ref(**inputs, output_hidden_states=True)
        b = ours(**inputs, output_hidden_states=True)
    _compare(a, b)
    if "loss" in a:
        torch.testing.assert_close(b.loss, a.loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", list(TINY))
def test_auto_classes_dispatch(arch, tmp_path):
    config = CONFIGS[arch](**TINY[arch], num_labels=3)
    getattr(T, PREFIX[arch] + "ForSequenceClassification")(config).save_pretrained(tmp_path)
    model = P.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert type(model).__name__ == PREFIX[arch] + "ForSequenceClassification"
    base = P.AutoModel.from_pretrained(tmp_path)
    assert type(base).__name__ == PREFIX[arch] + "Model"
    assert P.AutoConfig.from_pretrained(tmp_path).model_type == arch


@pytest.mark.parametrize("arch", list(TINY))
def test_saved_by_pretrained_loads_in_transformers(arch, tmp_path):
    torch.manual_seed(0)
    config = CONFIGS[arch](**TINY[arch])
    T_cls = getattr(T, PREFIX[arch] + "ForMaskedLM")
    T_cls(config).save_pretrained(tmp_path / "src")
    ours = getattr(P, PREFIX[arch] + "ForMaskedLM").from_pretrained(tmp_path / "src")
    ours.save_pretrained(tmp_path / "out", max_shard_size="20KB")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "model.safetensors.index.json" in files
    assert sum(f.endswith(".safetensors") for f in files) > 1
    ref, info = T_cls.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    inputs = _inputs(arch)
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs).logits, ref.eval()(**inputs).logits, atol=1e-5, rtol=0)


def test_problem_types_match_transformers(tmp_path):
    config = T.BertConfig(**TINY["bert"], num_labels=3)
    ref = T.BertForSequenceClassification(config).eval()
    ref.save_pretrained(tmp_path)
    inputs = _inputs("bert")
    cases = {
        "multi_label_classification": torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]),
        "regression": torch.tensor([[0.5, 1.0, -1.0], [0.0, 2.0, 1.0]]),
    }
    for problem, labels in cases.items():
        ours = P.BertForSequenceClassification.from_pretrained(tmp_path, problem_type=problem)
        ref.config.problem_type = problem
        with torch.no_grad():
            torch.testing.assert_close(ours(**inputs, labels=labels).loss, ref(**inputs, labels=labels).loss)
    one = T.BertForSequenceClassification(T.BertConfig(**TINY["bert"], num_labels=1)).eval()
    one.save_pretrained(tmp_path / "one")
    ours = P.AutoModelForSequenceClassification.from_pretrained(tmp_path / "one")
    labels = torch.tensor([0.3, -1.2])
    with torch.no_grad():
        torch.testing.assert_close(ours(**inputs, labels=labels).loss, one(**inputs, labels=labels).loss)
    assert ours.config.problem_type == "regression"


def test_attentions_and_tuple_outputs(tmp_path):
    torch.manual_seed(0)
    ref = T.BertModel(T.BertConfig(**TINY["bert"])).eval()
    ref.save_pretrained(tmp_path)
    ours = P.BertModel.from_pretrained(tmp_path)
    inputs = _inputs("bert")
    with torch.no_grad():
        a = ref(**inputs, output_attentions=True)
        b = ours(**inputs, output_attentions=True)
        t = ours(**inputs, return_dict=False)
    for x, y in zip(a.attentions, b.attentions):
        torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
    assert isinstance(t, tuple) and len(t) == 2
    torch.testing.assert_close(t[0], b[0])
    torch.testing.assert_close(b["pooler_output"], b.pooler_output)


def test_base_checkpoint_into_head_and_head_into_base(tmp_path):
    torch.manual_seed(0)
    config = T.BertConfig(**TINY["bert"], num_labels=3)
    T.BertModel(config).save_pretrained(tmp_path / "base")
    head, info = P.BertForSequenceClassification.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert not info["unexpected_keys"]
    assert head.classifier.weight.abs().sum() > 0 and not head.classifier.weight.is_meta
    torch.testing.assert_close(head.classifier.bias, torch.zeros(3))  # _init_weights ran on the new head
    T.BertForTokenClassification(config).save_pretrained(tmp_path / "head")
    base, info = P.BertModel.from_pretrained(tmp_path / "head", output_loading_info=True)
    assert info["unexpected_keys"] == ["classifier.bias", "classifier.weight"] or sorted(
        info["unexpected_keys"]) == ["classifier.bias", "classifier.weight"]
    assert "pooler.dense.weight" in info["missing_keys"]


def test_gradient_checkpointing_gives_same_gradients(tmp_path):
    torch.manual_seed(0)
    T.BertForSequenceClassification(T.BertConfig(**TINY["bert"], hidden_dropout_prob=0.0,
                                                 attention_probs_dropout_prob=0.0)).save_pretrained(tmp_path)
    grads = []
    for enable in (False, True):
        model = P.AutoModelForSequenceClassification.from_pretrained(tmp_path).train()
        if enable:
            model.gradient_checkpointing_enable()
        model(**_inputs("bert"), labels=torch.tensor([0, 1])).loss.backward()
        grads.append(model.bert.encoder.layer[0].attention.self.query.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("arch", list(TINY))
def test_eager_attention_matches_sdpa(arch, tmp_path, monkeypatch):
    torch.manual_seed(0)
    getattr(T, PREFIX[arch] + "Model")(CONFIGS[arch](**TINY[arch])).save_pretrained(tmp_path)
    model = getattr(P, PREFIX[arch] + "Model").from_pretrained(tmp_path)
    calls = []
    for name, fn in list(attention_registry.ATTENTION_FUNCTIONS.items()):
        def counted(*args, _name=name, _fn=fn, **kwargs):
            calls.append(_name)
            return _fn(*args, **kwargs)

        monkeypatch.setitem(attention_registry.ATTENTION_FUNCTIONS, name, counted)
    inputs = _inputs(arch)  # row 1 is padded, so the mask path is exercised
    with torch.no_grad():
        sdpa = model(**inputs, output_hidden_states=True)
        assert set(calls) == {"sdpa"}
        calls.clear()
        model.config._attn_implementation = "eager"  # read at each call, as set_attn_implementation sets it
        eager = model(**inputs, output_hidden_states=True)
        assert set(calls) == {"eager"} and len(calls) == model.config.num_hidden_layers
        for x, y in zip(sdpa.hidden_states, eager.hidden_states):
            torch.testing.assert_close(y, x, atol=1e-5, rtol=0)
        model.config._attn_implementation = "flash_attention_9"
        with pytest.raises(ValueError, match="flash_attention_9"):
            model(**inputs)

"""dtype, device_map, variants, saving (sharding, tying, stale shards, atomicity)."""

import json

import pytest
import torch
import transformers as T
from safetensors import safe_open
from tiny_models import TINY

import pretrained as P
from pretrained.loading import save as save_mod


def test_dtype_auto_and_explicit(saved, tmp_path):
    assert P.BertForMaskedLM.from_pretrained(saved).dtype == torch.float32
    half = P.BertForMaskedLM.from_pretrained(saved, dtype=torch.float16)
    assert {p.dtype for p in half.parameters()} == {torch.float16}
    assert half.bert.embeddings.position_ids.dtype == torch.int64  # integer buffers untouched
    legacy = P.BertForMaskedLM.from_pretrained(saved, torch_dtype="bfloat16")
    assert legacy.dtype == torch.bfloat16
    legacy.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    # "auto" reads the dtype back from the config of a bf16 save
    assert P.BertForMaskedLM.from_pretrained(tmp_path).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        P.BertForMaskedLM.from_pretrained(saved, dtype="float17")


def test_auto_dtype_from_checkpoint_when_config_has_none(saved, tmp_path):
    model = P.BertForMaskedLM.from_pretrained(saved, dtype=torch.float16)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["dtype"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert P.BertForMaskedLM.from_pretrained(tmp_path).dtype == torch.float16


def test_device_map_forms(saved):
    for device_map in ("cpu", torch.device("cpu"), {"": "cpu"}, "auto",
                       {"bert.embeddings": "cpu", "bert.encoder": "cpu", "cls": "cpu"}):
        model = P.BertForMaskedLM.from_pretrained(saved, device_map=device_map)
        assert {p.device.type for p in model.parameters()} == {"cpu"}
        assert model.hf_device_map
    with pytest.raises(ValueError, match="does not cover"):
        P.BertForMaskedLM.from_pretrained(saved, device_map={"bert.embeddings": "cpu"})
    with pytest.raises(ValueError, match="disk"):
        P.BertForMaskedLM.from_pretrained(saved, device_map={"": "disk"})


def test_auto_device_map_respects_max_memory(saved):
    with pytest.raises(ValueError, match="does not fit"):
        P.BertForMaskedLM.from_pretrained(saved, device_map="auto", max_memory={"cpu": "1KB"})


def test_variant(saved, tmp_path):
    model = P.BertForMaskedLM.from_pretrained(saved)
    model.save_pretrained(tmp_path, variant="fp16")
    assert (tmp_path / "model.fp16.safetensors").exists() and not (tmp_path / "model.safetensors").exists()
    with pytest.raises(OSError, match="No model weights"):
        P.BertForMaskedLM.from_pretrained(tmp_path)
    again = P.BertForMaskedLM.from_pretrained(tmp_path, variant="fp16")
    torch.testing.assert_close(again.cls.predictions.bias, model.cls.predictions.bias)


def test_tied_weights_saved_once(saved, tmp_path):
    model = P.BertForMaskedLM.from_pretrained(saved)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "bert.embeddings.word_embeddings.weight" in keys
    assert "cls.predictions.decoder.weight" not in keys
    assert len({"cls.predictions.bias", "cls.predictions.decoder.bias"} & keys) == 1


def test_untied_embeddings_kept_separate(tmp_path):
    torch.manual_seed(0)
    T.BertForMaskedLM(T.BertConfig(**TINY, tie_word_embeddings=False)).save_pretrained(tmp_path)
    model = P.BertForMaskedLM.from_pretrained(tmp_path)
    assert model.cls.predictions.decoder.weight is not model.bert.embeddings.word_embeddings.weight
    ref = T.BertForMaskedLM.from_pretrained(tmp_path)
    torch.testing.assert_close(model.cls.predictions.decoder.weight, ref.cls.predictions.decoder.weight)


def test_resave_removes_stale_shards(saved, tmp_path):
    model = P.BertForMaskedLM.from_pretrained(saved)
    model.save_pretrained(tmp_path, max_shard_size="10KB")
    many = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    model.save_pretrained(tmp_path, max_shard_size="40KB")
    fewer = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert 1 < len(fewer) < len(many)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(fewer)
    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("model-*")) and not (tmp_path / "model.safetensors.index.json").exists()
    assert (tmp_path / "model.safetensors").exists()
    P.BertForMaskedLM.from_pretrained(tmp_path)


def test_crash_while_saving_keeps_previous_save(saved, tmp_path, monkeypatch):
    model = P.BertForMaskedLM.from_pretrained(saved)
    model.save_pretrained(tmp_path, max_shard_size="10KB")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls = {"n": 0}
    real = save_mod._write

    def flaky(part, path, safe, metadata):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real(part, path, safe, metadata)

    monkeypatch.setattr(save_mod, "_write", flaky)
    with torch.no_grad():
        model.cls.predictions.bias.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        model.save_pretrained(tmp_path, max_shard_size="20KB")
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert set(after) == set(before)
    # The previous save still loads, complete and unchanged.
    _, info = P.BertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]


def test_missing_weights_are_initialised_not_meta(saved, tmp_path):
    model, info = P.BertForSequenceClassification.from_pretrained(saved, num_labels=4, output_loading_info=True)
    assert set(info["missing_keys"]) >= {"classifier.weight", "classifier.bias", "bert.pooler.dense.weight"}
    assert not any(p.is_meta for p in model.parameters())
    assert not any(b.is_meta for b in model.buffers())
    assert model.config.num_labels == 4 and model.classifier.out_features == 4


def test_from_config_and_save_roundtrip(tmp_path):
    config = P.BertConfig(**TINY)
    torch.manual_seed(0)
    model = P.AutoModelForMaskedLM.from_config(config)
    assert model.bert.encoder.layer[0].attention.self.query.weight.detach().std().item() == pytest.approx(0.02, rel=0.2)
    model.save_pretrained(tmp_path)
    ref = T.BertForMaskedLM.from_pretrained(tmp_path)
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(ids).logits, ref.eval()(ids).logits)


def test_state_dict_argument(saved):
    ref = P.BertForMaskedLM.from_pretrained(saved)
    sd = {k: v.clone() + 1 for k, v in ref.state_dict().items() if v.is_floating_point()}
    model = P.BertForMaskedLM.from_pretrained(saved, state_dict=sd)
    torch.testing.assert_close(model.cls.predictions.bias, ref.cls.predictions.bias + 1)

"""Damaged configs and checkpoints of the wrong dtype give a clear error before anything is allocated."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import pretrained as P
from pretrained.loading import hooks, plan


def _with_config(saved, tmp_path, **values):
    path = tmp_path / "ckpt"
    shutil.copytree(saved, path)
    config = json.loads((path / "config.json").read_text())
    config.update(values)
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.mark.parametrize(("field", "value", "match"), [
    ("hidden_size", "768", r"hidden_size in .*config\.json must be an integer, got '768' \(str\)"),
    ("num_hidden_layers", -1, r"num_hidden_layers in .*config\.json must be a non-negative integer.*got -1"),
    ("vocab_size", 10**12, r"vocab_size in .*config\.json must be a positive integer of at most .*got 10{12}"),
    ("num_attention_heads", 0, r"num_attention_heads .*positive integer.*got 0"),
    ("intermediate_size", 37.5, r"intermediate_size .*must be an integer, got 37\.5 \(float\)"),
    ("hidden_size", True, r"hidden_size .*must be an integer, got True \(bool\)"),
])  # fmt: skip
@pytest.mark.parametrize("loader", ["AutoModel", "BertModel"])
def test_bad_size_fields_named(saved, tmp_path, field, value, match, loader):
    path = _with_config(saved, tmp_path, **{field: value})
    with pytest.raises(ValueError, match=match):
        getattr(P, loader).from_pretrained(path)


def test_zero_layers_allowed_and_overrides_checked(saved, tmp_path):
    path = _with_config(saved, tmp_path, num_hidden_layers=0)
    assert len(P.BertModel.from_pretrained(path).encoder.layer) == 0
    with pytest.raises(ValueError, match="num_hidden_layers .*got -2"):
        P.BertModel.from_pretrained(saved, num_hidden_layers=-2)
    config = P.BertConfig.from_pretrained(saved)
    config.hidden_size = "32"
    with pytest.raises(ValueError, match="hidden_size in .*config.json must be an integer"):
        P.BertModel.from_pretrained(saved, config=config)


def test_check_sizes_names_the_source():
    P.BertConfig().check_sizes()
    with pytest.raises(ValueError, match=r"^n_layer in here\.json must be"):
        P.GPT2Config(n_layer=-1).check_sizes("here.json")
    with pytest.raises(ValueError, match=r"^dim must be an integer"):
        P.DistilBertConfig(dim="x").check_sizes()


def _with_int8_weight(saved, tmp_path, key="embeddings.word_embeddings.weight"):
    path = tmp_path / "ckpt"
    shutil.copytree(saved, path)
    tensors = load_file(path / "model.safetensors")
    full = next(k for k in tensors if k.endswith(key))
    tensors[full] = tensors[full].round().to(torch.int8)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    return path, full


def test_integer_tensor_into_float_parameter_refused(saved, tmp_path):
    path, key = _with_int8_weight(saved, tmp_path)
    with pytest.raises(TypeError, match=rf"{key}.*model\.safetensors is torch\.int8.*torch\.float32"):
        P.BertModel.from_pretrained(path)
    state = load_file(path / "model.safetensors")
    with pytest.raises(TypeError, match="in the state_dict given is torch.int8"):
        P.BertModel.from_pretrained(saved, state_dict=state)


def test_float_casts_still_allowed(saved):
    model = P.BertModel.from_pretrained(saved, dtype=torch.bfloat16)
    assert model.embeddings.word_embeddings.weight.dtype == torch.bfloat16


class _ClaimsInt8(hooks.WeightHook):
    """A stand-in quantizer: reads int8 weights back as floats."""

    def claims_dtype(self, name, dtype):
        return dtype == torch.int8

    def __call__(self, name, tensor, model):
        return tensor.float() if tensor.dtype == torch.int8 else tensor


def test_a_quantizer_may_claim_other_dtypes(saved, tmp_path, monkeypatch):
    path, _ = _with_int8_weight(saved, tmp_path)
    monkeypatch.setitem(hooks.QUANTIZERS, "int8-test", lambda config, model_config: _ClaimsInt8())
    model = P.BertModel.from_pretrained(path, quantization_config={"quant_method": "int8-test"})
    reference = load_file(path / "model.safetensors")
    key = next(k for k in reference if k.endswith("word_embeddings.weight"))
    assert torch.equal(model.embeddings.word_embeddings.weight, reference[key].float())




def test_weights_larger_than_memory_refused_before_allocating(saved, tmp_path, monkeypatch):
    # Every tensor is of a plausible size, together they need more than the device has (1 GiB here):
    # refused with the total and the largest tensor named, before any weight is allocated.
    assert plan._capacity(torch.device("cpu")) > 2**30
    monkeypatch.setattr(plan, "_capacity", lambda device: 2**30)
    path = _with_config(saved, tmp_path, hidden_size=1024, intermediate_size=4096, num_attention_heads=4,
                        num_hidden_layers=24)
    with pytest.raises(ValueError, match=r"BertModel built from .* needs 1\.1 GiB for its weights on cpu, "
                                         r"which has 1\.0 GiB \(largest: .* of shape \[(4096, 1024|1024, 4096)\]"):
        P.BertModel.from_pretrained(path)
    with pytest.raises(RuntimeError, match="size mismatch"):  # 0.9 GiB fits: loading goes on to the weights
        P.BertModel.from_pretrained(path, num_hidden_layers=20)

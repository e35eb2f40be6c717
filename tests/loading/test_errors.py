"""Every way a checkpoint can be wrong gives a clear error that names the problem."""

import json
import pickle
import shutil

import pytest
import torch
import transformers as T
from safetensors.torch import load_file, save_file

import pretrained as P


def _copy(saved, tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(saved, dst)
    return dst


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(OSError, match="config.json"):
        P.AutoModel.from_pretrained(str(tmp_path / "nope"))


def test_missing_config_names_the_file(tmp_path):
    with pytest.raises(OSError, match=r"does not contain a file named 'config.json'"):
        P.AutoModel.from_pretrained(tmp_path)


def test_repo_id_not_in_cache_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match=r"config.json.*no-such-org/no-such-model|no-such-org/no-such-model.*config"):
        P.AutoConfig.from_pretrained("no-such-org/no-such-model", cache_dir=tmp_path)


def test_no_weights(saved, tmp_path):
    path = _copy(saved, tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(OSError, match=r"No model weights found.*model\.safetensors.*pytorch_model\.bin"):
        P.BertForMaskedLM.from_pretrained(path)


def test_corrupt_safetensors(saved, tmp_path):
    path = _copy(saved, tmp_path)
    (path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(OSError, match="model.safetensors"):
        P.BertForMaskedLM.from_pretrained(path)


def test_truncated_safetensors(saved, tmp_path):
    path = _copy(saved, tmp_path)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(OSError, match="truncated"):
        P.BertForMaskedLM.from_pretrained(path)


def test_missing_shard(saved, tmp_path):
    model = P.BertForMaskedLM.from_pretrained(saved)
    model.save_pretrained(tmp_path, max_shard_size="10KB")
    shards = sorted(tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 2
    shards[1].unlink()
    with pytest.raises(OSError, match=f"Shard '{shards[1].name}'.*missing"):
        P.BertForMaskedLM.from_pretrained(tmp_path)


def test_bad_index(saved, tmp_path):
    path = _copy(saved, tmp_path)
    (path / "model.safetensors").unlink()
    (path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(OSError, match="not a valid checkpoint index"):
        P.BertForMaskedLM.from_pretrained(path)


def test_shape_mismatch_and_ignore(saved, tmp_path):
    with pytest.raises(RuntimeError, match=r"size mismatch for bert\.embeddings\.word_embeddings\.weight.*\[99, 32\]"):
        P.BertForMaskedLM.from_pretrained(saved, vocab_size=120)
    model, info = P.BertForMaskedLM.from_pretrained(saved, vocab_size=120, ignore_mismatched_sizes=True,
                                                    output_loading_info=True)
    names = {k for k, _, _ in info["mismatched_keys"]}
    assert "bert.embeddings.word_embeddings.weight" in names
    assert model.bert.embeddings.word_embeddings.weight.shape == (120, 32)
    assert torch.isfinite(model.bert.embeddings.word_embeddings.weight).all()
    # tied decoder follows the re-initialised embeddings
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "not-a-model"}))
    with pytest.raises(ValueError, match=r"Unrecognized model_type 'not-a-model'.*bert.*distilbert"):
        P.AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="not-a-model"):
        P.AutoModel.from_pretrained(tmp_path)


def test_model_without_head(saved):
    with pytest.raises(ValueError, match="causal lm"):
        P.AutoModelForCausalLM.from_pretrained(saved)


def test_unknown_kwarg(saved):
    with pytest.raises(TypeError, match="not_an_option"):
        P.BertModel.from_pretrained(saved, not_an_option=3)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    state = load_file(path / "model.safetensors")
    (path / "model.safetensors").unlink()
    with open(path / "pytorch_model.bin", "wb") as f:
        pickle.dump({**state, "evil": _Evil()}, f)
    with pytest.raises(OSError, match=r"pytorch_model.bin.*refused.*weights_only=False"):
        P.BertForMaskedLM.from_pretrained(path)


def test_pytorch_bin_loads(saved, tmp_path):
    ref = T.BertForMaskedLM.from_pretrained(saved)
    shutil.copy(saved / "config.json", tmp_path / "config.json")
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")  # the legacy format, tied copies included
    model = P.BertForMaskedLM.from_pretrained(tmp_path)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits)
    with pytest.raises(OSError, match="use_safetensors=True"):
        P.BertForMaskedLM.from_pretrained(tmp_path, use_safetensors=True)


def test_legacy_gamma_beta_names(saved, tmp_path):
    path = _copy(saved, tmp_path)
    state = load_file(path / "model.safetensors")
    renamed = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for k, v in state.items()}
    assert any(k.endswith("gamma") for k in renamed)
    save_file(renamed, path / "model.safetensors", metadata={"format": "pt"})
    _, info = P.BertForMaskedLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []


def test_remote_code_is_never_run(saved, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "custom-thing", "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}))
    (tmp_path / "modeling_custom.py").write_text("raise SystemExit('remote code ran')\n")
    with pytest.raises(ValueError, match="never executes code"):
        P.AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    with pytest.warns(UserWarning, match="trust_remote_code is ignored"):
        P.BertModel.from_pretrained(saved, trust_remote_code=True)

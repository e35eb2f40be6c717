"""Repo ids from the local Hugging Face cache, subfolders, and the hook chain's extension points."""

import shutil

import pytest
import torch
import transformers as T
from tiny_models import save_tiny

import pretrained as P
from pretrained.loading import hooks


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("bert"), "BertForSequenceClassification")


def _fake_cache(saved, cache, repo="acme/tiny-bert", revision="0123456789abcdef0123456789abcdef01234567"):
    # The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / revision
    shutil.copytree(saved, snapshot)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(revision)
    return repo


def test_repo_id_from_cache_offline(saved, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = _fake_cache(saved, tmp_path)
    model = P.AutoModelForSequenceClassification.from_pretrained(repo, cache_dir=tmp_path)
    ref = T.BertForSequenceClassification.from_pretrained(saved).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits)
    with pytest.raises(OSError, match="acme/other"):
        P.AutoModel.from_pretrained("acme/other", cache_dir=tmp_path)


def test_local_files_only_never_downloads(saved, tmp_path):
    with pytest.raises(OSError, match="Downloads are disabled"):
        P.AutoModel.from_pretrained("acme/not-cached", cache_dir=tmp_path, local_files_only=True)


def test_subfolder(saved, tmp_path):
    shutil.copytree(saved, tmp_path / "inner")
    model = P.AutoModelForSequenceClassification.from_pretrained(tmp_path, subfolder="inner")
    assert model.config.hidden_size == 32
    with pytest.raises(OSError, match="inner2/config.json"):
        P.AutoModel.from_pretrained(tmp_path, subfolder="inner2")


class _ScaleQuantizer(hooks.WeightHook):
    """A stand-in quantizer: halves every Linear weight and records what it saw."""

    def __init__(self, quantization_config, model_config):
        self.seen, self.before, self.after = [], False, False

    def before_load(self, model):
        self.before = True

    def __call__(self, name, tensor, model):
        self.seen.append(name)
        return tensor * 0.5 if name.endswith("query.weight") else tensor

    def after_load(self, model):
        self.after = True
        model.quantizer = self


def test_quantizer_extension_point(saved, monkeypatch):
    monkeypatch.setitem(hooks.QUANTIZERS, "halve", _ScaleQuantizer)
    ref = P.BertForSequenceClassification.from_pretrained(saved)
    model = P.BertForSequenceClassification.from_pretrained(saved, quantization_config={"quant_method": "halve"})
    q = model.quantizer
    assert q.before and q.after and "bert.encoder.layer.0.attention.self.query.weight" in q.seen
    w = model.bert.encoder.layer[0].attention.self.query.weight
    torch.testing.assert_close(w, ref.bert.encoder.layer[0].attention.self.query.weight * 0.5)
    with pytest.raises(ValueError, match="Quantization method 'nope' is not supported"):
        P.BertModel.from_pretrained(saved, quantization_config={"quant_method": "nope"})


def test_tensor_parallel_extension_point(saved, monkeypatch):
    with pytest.raises(ValueError, match="Tensor parallelism"):
        P.BertModel.from_pretrained(saved, tp_plan="auto")

    class Slice(hooks.WeightHook):
        def target_shape(self, name, shape):
            return shape

        def __call__(self, name, tensor, model):
            return tensor.clone()

    monkeypatch.setitem(hooks.TENSOR_PARALLEL, "default", lambda model, plan, mesh, **sizes: Slice())
    P.BertModel.from_pretrained(saved, tp_plan="auto")

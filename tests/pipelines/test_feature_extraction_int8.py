"""feature-extraction with torchao's int8 dynamic config: pretrained's pipeline (its linears on the VNNI route
of pretrained.inference.int8_dynamic) against transformers' pipeline with the same config."""

import pytest
import torch
import transformers as T
from pipeline_fixtures import TEXTS, assert_close

import pretrained as P
from pretrained.inference import int8_dynamic

torchao_quant = pytest.importorskip("torchao.quantization")


def _config(lib):
    return lib.TorchAoConfig(torchao_quant.Int8DynamicActivationInt8WeightConfig())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_parity_with_transformers(model_dirs, monkeypatch, dtype):
    path = model_dirs["base"]
    ours = P.pipeline("feature-extraction", model=path, dtype=dtype, model_kwargs={"quantization_config": _config(P)})
    theirs = T.pipeline("feature-extraction", model=path, dtype=dtype, device="cpu",
                        model_kwargs={"quantization_config": _config(T)})
    calls = []
    real = int8_dynamic.int8_dynamic_linear
    monkeypatch.setattr(int8_dynamic, "int8_dynamic_linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    # fp32: the same operations as torchao's layer; bf16: one bf16 rounding step at most
    atol = 1e-5 if dtype == torch.float32 else 2e-2
    single = ours(TEXTS[2], return_tensors=True)
    torch.testing.assert_close(single.float(), theirs(TEXTS[2], return_tensors=True).float(), atol=atol, rtol=0)
    if dtype == torch.float32:
        # batched: attention over padded keys differs from unpadded in the last float bit, and a value on
        # an int8 rounding boundary may then round the other way (one step of max|x| / 127.5)
        assert_close(ours(TEXTS, batch_size=4), theirs(TEXTS, batch_size=1), atol=2e-3)
    assert bool(calls) == (int8_dynamic.load_kernels() is not None)


def test_text_classification_takes_the_route_too(model_dirs, monkeypatch):
    # every pipeline's forward enters the mode when its model holds int8-dynamic weights (Pipeline's context)
    path = model_dirs["sequence"]
    ours = P.pipeline("text-classification", model=path, model_kwargs={"quantization_config": _config(P)})
    theirs = T.pipeline("text-classification", model=path, device="cpu",
                        model_kwargs={"quantization_config": _config(T)})
    calls = []
    real = int8_dynamic.int8_dynamic_linear
    monkeypatch.setattr(int8_dynamic, "int8_dynamic_linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    got, want = ours(TEXTS[2], top_k=None), theirs(TEXTS[2], top_k=None)
    assert [d["label"] for d in got] == [d["label"] for d in want]
    torch.testing.assert_close([d["score"] for d in got], [d["score"] for d in want], atol=1e-5, rtol=0)
    assert bool(calls) == (int8_dynamic.load_kernels() is not None)

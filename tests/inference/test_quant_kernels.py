"""The int8 / int4 weight-only kernels against dequantize-then-matmul in float64, eager and compiled."""

import pytest
import torch
from torch import nn

from pretrained.inference import hugepages, packed_memory
from pretrained.inference import quant_kernels as Q
from pretrained.quantizers.int4_linear import AWQLinear, GPTQLinear, Int8WeightOnlyLinear

HAVE_KERNELS = Q.load_kernels() is not None
ROUTES = ["cpp", "reduction", "dequant"]


def int4_tensors(k=256, n=96, group_size=128, scale_dtype=torch.float16, seed=0):
    g = torch.Generator().manual_seed(seed)
    qweight = torch.randint(-(2**31), 2**31 - 1, (k // 8, n), dtype=torch.int32, generator=g)
    zeros = torch.randint(0, 16, (k // group_size, n), dtype=torch.uint8, generator=g)
    scales = (torch.rand(k // group_size, n, generator=g) * 0.01).to(scale_dtype)
    return qweight, zeros, scales


def int4_reference(x, qweight, zeros, scales, group_size, bias):
    k8, n = qweight.shape
    q = torch.stack([(qweight >> (4 * j)) & 15 for j in range(8)], 1).reshape(k8 * 8, n).double()  # (in, out)
    g = torch.arange(k8 * 8) // group_size
    w = (q - zeros.double()[g]) * scales.double()[g]
    return (x.double() @ w + bias.double()).float()


@pytest.mark.skipif(not HAVE_KERNELS, reason="needs AVX-512 and a C++ compiler")
def test_kernels_are_built_and_registered():
    assert hasattr(torch.ops.pretrained, "int4_rows_linear") and hasattr(torch.ops.pretrained, "int8_rows_linear")


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("rows", [1, 2, 3, 7, 8, 13, 32])
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.float32])
def test_int4_routes_match_reference(route, rows, scale_dtype):
    qweight, zeros, scales = int4_tensors(n=112, group_size=64, scale_dtype=scale_dtype)  # 7 tiles of 16
    bias = torch.randn(112)
    x = torch.randn(rows, 256)
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, 64, bias, route=route)
    torch.testing.assert_close(out, int4_reference(x, qweight, zeros, scales, 64, bias), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("rows", [1, 2, 5, 8, 9, 32])
def test_int8_routes_match_reference(route, rows):
    g = torch.Generator().manual_seed(0)
    weight = torch.randint(-127, 128, (75, 128), dtype=torch.int8, generator=g)  # odd number of outputs
    scale, bias, x = torch.rand(75, generator=g) * 0.01, torch.randn(75, generator=g), torch.randn(rows, 128, generator=g)
    with torch.no_grad():
        out = Q.int8_linear(x, weight, scale, bias, route=route)
    ref = ((x.double() @ weight.double().t()) * scale.double() + bias.double()).float()
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not HAVE_KERNELS, reason="needs AVX-512 and a C++ compiler")
def test_int8_kernel_reads_a_strided_scale():
    g = torch.Generator().manual_seed(1)
    weight = torch.randint(-127, 128, (75, 128), dtype=torch.int8, generator=g)
    scale, x = (torch.rand(150, generator=g) * 0.01)[::2], torch.randn(2, 128, generator=g)
    torch.manual_seed(0)
    junk = [torch.full((75,), float("nan")) for _ in range(8)]  # reuse any freed block with NaNs
    del junk
    ref = ((x.double() @ weight.double().t()) * scale.double()).float()
    torch.testing.assert_close(Q.int8_rows_cpp(x, weight, scale, None), ref, atol=1e-5, rtol=1e-5)


def test_bf16_inputs_and_autograd_take_the_dequantize_route():
    qweight, zeros, scales = int4_tensors()
    bias = torch.zeros(96)
    x = torch.randn(2, 256)
    ref = int4_reference(x, qweight, zeros, scales, 128, bias)
    out = Q.int4_linear(x.bfloat16(), qweight, zeros, scales, 128, bias)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.02)
    x.requires_grad_(True)
    out = Q.int4_linear(x, qweight, zeros, scales, 128, bias)
    out.sum().backward()
    assert x.grad is not None


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = GPTQLinear.from_linear(nn.Linear(128, 256), group_size=64)
        self.b = Int8WeightOnlyLinear.from_linear(nn.Linear(256, 128))
        self.c = AWQLinear.from_linear(nn.Linear(128, 64, bias=False), group_size=128)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("route", ["cpp", "reduction"])
def test_compiled_matches_eager_dequantized(route):
    model = TwoLayers().eval()
    for m in model.modules():
        if hasattr(m, "kernel"):
            m.kernel = route
    plain = nn.Sequential(model.a.dequantize(), nn.ReLU(), model.b.dequantize(), nn.ReLU(), model.c.dequantize())
    x1, x4 = torch.randn(1, 128), torch.randn(4, 128)
    with torch.no_grad():
        model(x1)  # builds the kernel caches (and the kernels) before tracing
        compiled = torch.compile(model, fullgraph=True, dynamic=False)
        for x in (x1, x4):
            torch.testing.assert_close(compiled(x), plain(x), atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not Q.vnni_ready(), reason="needs AVX-512 VNNI")
@pytest.mark.parametrize("rows", [1, 3, 8, 11])
def test_vnni_routes_equal_the_product_with_int8_activations(rows):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 256, generator=g)
    xq = Q.quantize_activations(x)
    qweight, zeros, scales = int4_tensors(n=112, group_size=64)
    bias = torch.randn(112, generator=g)
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, 64, bias, route="vnni")
        torch.testing.assert_close(out, int4_reference(xq, qweight, zeros, scales, 64, bias), atol=1e-5, rtol=1e-5)
        # and within activation rounding of the exact product
        exact = int4_reference(x, qweight, zeros, scales, 64, bias)
        assert (out - exact).abs().max() < 0.05 * exact.abs().max()
        weight = torch.randint(-127, 128, (80, 256), dtype=torch.int8, generator=g)
        scale = torch.rand(80, generator=g) * 0.01
        out = Q.int8_linear(x, weight, scale, bias[:80], route="vnni")
        ref = ((xq.double() @ weight.double().t()) * scale.double() + bias[:80].double()).float()
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not Q.vnni_ready(), reason="needs AVX-512 VNNI")
def test_vnni_compiled():
    model = TwoLayers().eval()
    for m in model.modules():
        if hasattr(m, "kernel"):
            m.kernel = "vnni"
    x = torch.randn(3, 128)
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, fullgraph=True, dynamic=False)(x)
    torch.testing.assert_close(compiled, eager, atol=1e-6, rtol=1e-6)


@pytest.mark.slow  # builds a torch C++ extension the first time on a machine (minutes)
@pytest.mark.skipif(not HAVE_KERNELS, reason="needs AVX-512 and a C++ compiler")
def test_torch_extension_ops_in_compiled_graphs():
    if not Q.load_torch_ops():
        pytest.skip("the torch C++ extension did not build (no torch headers or compiler)")
    g = torch.Generator().manual_seed(0)
    x, bias = torch.randn(3, 256, generator=g), torch.randn(112, generator=g)
    qweight, zeros, scales = int4_tensors(n=112, group_size=64)
    ops = torch.ops.pretrained_quant
    # the extension's operators against the same kernels called through ctypes: the same bits
    int4_args = (qweight.data_ptr(), zeros.data_ptr(), scales.data_ptr(), 0)
    int4_ctypes = Q._rows_call("int4", x, 112, int4_args, bias, (64,))
    torch.testing.assert_close(ops.int4_rows_linear(x, qweight, zeros, scales, 64, bias), int4_ctypes, atol=0, rtol=0)
    weight = torch.randint(-127, 128, (80, 256), dtype=torch.int8, generator=g)
    scale = torch.rand(80, generator=g)
    int8_ctypes = Q._rows_call("int8", x, 80, (weight.data_ptr(), scale.data_ptr()), None, ())
    torch.testing.assert_close(ops.int8_rows_linear(x, weight, scale, None), int8_ctypes, atol=0, rtol=0)
    # once built, eager calls take the operators too (and a non-contiguous scale)
    assert Q._built.get("ext_ops")
    strided = torch.rand(160, generator=g)[::2]
    packed = strided.contiguous()  # held: ctypes gets its address
    torch.testing.assert_close(Q.int8_rows_cpp(x, weight, strided, None),
                               Q._rows_call("int8", x, 80, (weight.data_ptr(), packed.data_ptr()), None, ()),
                               atol=0, rtol=0)  # fmt: skip
    torch.testing.assert_close(Q.int4_rows_cpp(x, qweight, zeros, scales, 64, bias), int4_ctypes, atol=0, rtol=0)
    test_compiled_matches_eager_dequantized("cpp")  # now through the extension's operators


@pytest.mark.skipif(not hugepages.SUPPORTED, reason="needs transparent huge pages (Linux)")
def test_packed_weights_move_into_shared_huge_pages_in_build_order(monkeypatch):
    monkeypatch.setattr(packed_memory, "_chunks", {})  # fresh chunks: the layers below share them
    model = TwoLayers().eval()
    buffers = {name: (b, b.clone()) for name, b in model.named_buffers()}
    with torch.no_grad():
        expected = nn.Sequential(model.a.dequantize(), nn.ReLU(), model.b.dequantize(), nn.ReLU(),
                                 model.c.dequantize())(torch.ones(1, 128))  # fmt: skip
        with torch.inference_mode():
            out = model(torch.ones(1, 128))  # builds the caches, in forward order
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    for name, (buffer, before) in buffers.items():  # same objects, same values
        assert dict(model.named_buffers())[name] is buffer and torch.equal(buffer, before)
    # the kernels' weights: in huge pages, one after the other, and plain tensors (trainable code may use them)
    a, b = model.a._kernel_cache["qweight"], model.b._kernel_cache["weight"]
    assert a is model.a.qweight and b is model.b.weight
    assert all(hugepages.in_huge_pages(t) for t in (a, b, model.c._kernel_cache["qweight"]))
    c = model.c._kernel_cache["qweight"]
    assert a.dtype == c.dtype and c.data_ptr() - a.data_ptr() == -(-a.numel() * 4 // 64) * 64  # one int32 run
    assert a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr()  # int8 weights: a chunk of their own
    assert not a.is_inference()
    assert packed_memory.held_bytes(b) == (b.data_ptr(), b.numel())


@pytest.mark.skipif(not hugepages.SUPPORTED, reason="needs transparent huge pages (Linux)")
def test_packed_memory_hands_out_aligned_consecutive_slots(monkeypatch):
    monkeypatch.setattr(packed_memory, "_chunks", {})  # fresh chunks: the slots below are their first
    a = packed_memory.empty((3, 5), torch.int8)
    b = packed_memory.place(torch.arange(12, dtype=torch.int8).view(3, 4))
    assert a.shape == (3, 5) and a.is_contiguous() and hugepages.in_huge_pages(a)
    assert torch.equal(b, torch.arange(12, dtype=torch.int8).view(3, 4)) and b.data_ptr() % packed_memory.ALIGN == 0
    assert b.data_ptr() - a.data_ptr() == packed_memory.ALIGN  # 15 bytes, rounded up to one cache line
    f = packed_memory.place(torch.ones(3))  # another dtype: another chunk (torch.save needs one dtype a storage)
    assert f.untyped_storage().data_ptr() != a.untyped_storage().data_ptr() and f.data_ptr() % packed_memory.ALIGN == 0
    big = packed_memory.empty((packed_memory.CHUNK,), torch.uint8)  # too big to share: a region of its own
    assert hugepages.in_huge_pages(big) and big.untyped_storage().nbytes() >= packed_memory.CHUNK
    assert packed_memory.held_bytes(a) == (a.data_ptr(), 15)
    plain = torch.zeros(4)
    assert packed_memory.held_bytes(plain[1:]) == (plain.untyped_storage().data_ptr(), 16)


def test_state_dict_saves_after_the_layers_moved_into_packed_memory(tmp_path):
    """Packed chunks hold one dtype each, so ``torch.save`` takes the state dict of a model whose int8 weights,
    int32 words and fp32 scales were moved there by a first forward (it refuses one storage seen as two types)."""
    model = TwoLayers().eval()
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model(torch.ones(1, 128))  # builds the caches: buffers move into packed memory
    torch.save(model.state_dict(), tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt")
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], v) for k, v in expected.items())

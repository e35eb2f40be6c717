"""The int4 kernels over the shapes a checkpoint brings (group sizes, widths that leave narrow tiles, row counts
past one pass, asymmetric zero points, act-order), and the int4 layers' kernel cache in compiled steps."""

import os
import sys

import pytest
import torch
from torch import nn

from pretrained.inference import quant_kernels as Q
from pretrained.quantizers import int4_formats as formats
from pretrained.quantizers.int4_linear import AWQLinear, GPTQLinear

sys.path.insert(0, os.path.dirname(__file__))  # the weight maker and float64 reference of the kernel tests
from test_quant_kernels import int4_reference, int4_tensors  # noqa: E402

HAVE_KERNELS = Q.load_kernels() is not None
needs_kernels = pytest.mark.skipif(not HAVE_KERNELS, reason="needs AVX-512 and a C++ compiler")


@needs_kernels
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("n", [16, 48, 80, 272])  # tiles of 64 outputs and the 16-wide ones left over
@pytest.mark.parametrize("rows", [1, 9])  # 9: a second pass over the weights (8 rows per pass)
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.float32])
def test_exact_kernel_over_widths_groups_and_rows(group_size, n, rows, scale_dtype):
    qweight, zeros, scales = int4_tensors(k=384, n=n, group_size=group_size, scale_dtype=scale_dtype, seed=n)
    bias = torch.randn(n)
    x = torch.randn(rows, 384)
    assert zeros.min() < 8 < zeros.max()  # asymmetric: zero points other than the symmetric 8
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, group_size, bias, route="cpp")
        no_bias = Q.int4_linear(x, qweight, zeros, scales, group_size, None, route="cpp")
    ref = int4_reference(x, qweight, zeros, scales, group_size, bias)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(no_bias, ref - bias, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not Q.vnni_ready(), reason="needs AVX-512 VNNI")
@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("n", [16, 80, 272])
@pytest.mark.parametrize("rows", [1, 9])
def test_vnni_kernel_over_widths_groups_and_rows(group_size, n, rows):
    qweight, zeros, scales = int4_tensors(k=384, n=n, group_size=group_size, seed=n + 1)
    bias = torch.randn(n)
    x = torch.randn(rows, 384)
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, group_size, bias, route="vnni")
    ref = int4_reference(Q.quantize_activations(x), qweight, zeros, scales, group_size, bias)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@needs_kernels
@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("sym", [True, False])
def test_act_order_gptq_layer_runs_the_kernel_on_sorted_inputs(group_size, sym):
    torch.manual_seed(group_size)
    linear = nn.Linear(256, 80)
    perm = torch.randperm(256)
    layer = GPTQLinear.from_linear(linear, 4, group_size, desc_act=True, sym=sym, desc_act_perm=perm).eval()
    assert not torch.equal(layer.g_idx, formats.default_g_idx(256, group_size).to(layer.g_idx))
    x = torch.randn(3, 256)
    with torch.no_grad():
        out = layer(x)
        ref = nn.functional.linear(
            x.double(), layer.dequantized_weight().double(), layer.bias.double()
        ).float()
    assert layer.__dict__["_kernel_cache"]["perm"] is not None and layer.__dict__["_kernel_cache"]["fast"]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def _stack(make):
    torch.manual_seed(0)
    return nn.Sequential(make(nn.Linear(128, 96)), nn.ReLU(), make(nn.Linear(96, 64))).eval()


@needs_kernels
@pytest.mark.parametrize(
    "make",
    [lambda lin: GPTQLinear.from_linear(lin, 4, 32), lambda lin: AWQLinear.from_linear(lin, 4, 32)],
    ids=["gptq", "awq"],
)
def test_compiled_step_sees_replaced_and_reloaded_buffers(make):
    """Compiled steps take the kernel cache as it is (no per-buffer identity guards); replacing a buffer,
    loading a state dict in place or ``.to()`` must still reach them."""
    model, other = _stack(make), _stack(make)
    with torch.no_grad():
        for layer in other:
            if hasattr(layer, "scales"):
                layer.scales.mul_(1.5)
    x = torch.randn(1, 128)
    with torch.no_grad():
        model(x)  # builds the caches before tracing, as a decode step's first call does
        compiled = torch.compile(model, fullgraph=True, dynamic=False)
        torch.testing.assert_close(compiled(x), model(x), atol=0, rtol=0)
        model.load_state_dict(other.state_dict())  # in place: same buffer objects, new values
        torch.testing.assert_close(compiled(x), other(x), atol=1e-5, rtol=1e-5)
        model[0].scales = model[0].scales * 2  # a new buffer object
        expected = model(x)
        assert not torch.allclose(expected, other(x))
        torch.testing.assert_close(compiled(x), expected, atol=1e-5, rtol=1e-5)
        model.to(torch.float32)  # new buffer objects for the float ones
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)

"""The exact int4 kernel on VNNI CPUs: activations split into three signed 8-bit digits per (row, group),
integer dot products. Its error against a float64 reference must stay that of the fp32-FMA kernel (route
``"cpp_float"``), on adversarial inputs too, and greedy tokens must not change."""

import os
import sys

import pytest
import torch

from pretrained.inference import quant_kernels as Q
from pretrained.quantizers.int4_linear import GPTQLinear, replace_linears

sys.path.insert(0, os.path.dirname(__file__))  # the weight maker of the kernel tests
from test_quant_kernels import int4_tensors  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from tiny_models import tiny_decode_llama  # noqa: E402

pytestmark = pytest.mark.skipif(Q.load_kernels() is None or not Q.vnni_ready(), reason="needs AVX-512 VNNI")

EPS = 2.0**-24


def weights_f64(qweight, zeros, scales, group_size):
    k8, n = qweight.shape
    q = torch.stack([(qweight >> (4 * j)) & 15 for j in range(8)], 1).reshape(k8 * 8, n).double()  # (in, out)
    g = torch.arange(k8 * 8) // group_size
    return (q - zeros.double()[g]) * scales.double()[g]


def digit_round(x, group_size, digits):
    """``x`` as the kernel multiplies it with ``digits`` balanced base-256 digits per element: per (row,
    group) a power-of-two step putting the group's max|x| just under the largest such value."""
    top = 127 * sum(256**i for i in range(digits))  # the largest value the digits hold
    xg = x.double().reshape(x.shape[0], -1, group_size)
    amax = xg.abs().amax(-1, keepdim=True)
    e = 8 * digits - 1 - torch.frexp(amax)[1].double()
    e = torch.where(torch.round(torch.ldexp(amax, e)) > top, e - 1, e).clamp(max=127)
    return (torch.round(torch.ldexp(xg, e)) * torch.exp2(-e)).reshape(x.shape)  # round: nearest even


def adversarial_rows(kind, rows, k, group_size, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g)
    if kind == "range":  # each element its own magnitude, 1e-20 .. 1e20
        x = x * torch.pow(10.0, torch.empty(rows, k).uniform_(-20, 20, generator=g))
    elif kind == "spike":  # one huge element per group among small ones
        xg = x.view(rows, -1, group_size)
        xg[:, :, 3] = 1e6
    elif kind == "tiny":  # near fp32's smallest normals, and subnormals
        x = x * 1e-30
        x[:, ::7] = 1e-41
    elif kind == "zeros":  # zero groups, a zero row, signed zeros
        x[:, :group_size] = 0.0
        x[0] = -0.0
    elif kind == "negative":
        x = -x.abs() - 1
    elif kind == "edges":  # maxima just under a power of two (the step halves) and exact powers of two
        x = torch.where(
            torch.rand(rows, k, generator=g) < 0.5, torch.full_like(x, 1 - 2**-24), torch.exp2(x.round())
        )
        x = x * torch.sign(torch.randn(rows, k, generator=g))
    return x


def group_size_of_sum(x, w, group_size):
    """sum over groups of max|x| in the group times sum |w| there: the size both kernels' rounding follows
    (the digit kernel's steps follow each group's max; the fp32 kernel sums x q and z sum x per group and
    subtracts them, which cancels as much)."""
    xmax = x.double().abs().reshape(x.shape[0], -1, group_size).amax(-1)  # (rows, groups)
    wsum = w.abs().reshape(-1, group_size, w.shape[1]).sum(1)  # (groups, out)
    return xmax @ wsum


def errors(x, qweight, zeros, scales, group_size, bias):
    """Max over outputs of |out - ref| / (group_size_of_sum + |b|) for the digit and the fp32 kernel."""
    w = weights_f64(qweight, zeros, scales, group_size)
    ref = x.double() @ w + bias.double()
    size = group_size_of_sum(x, w, group_size) + bias.double().abs()
    with torch.no_grad():
        digits = Q.int4_linear(x, qweight, zeros, scales, group_size, bias, route="cpp").double()
        fp32 = Q.int4_linear(x, qweight, zeros, scales, group_size, bias, route="cpp_float").double()
    return ((digits - ref).abs() / size).nan_to_num().max().item(), (
        (fp32 - ref).abs() / size
    ).nan_to_num().max().item()


@pytest.mark.parametrize("kind", ["normal", "range", "spike", "tiny", "zeros", "negative", "edges"])
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 8, 9])
@pytest.mark.parametrize("group_size", [32, 128])
@pytest.mark.parametrize("scale_dtype", [torch.float16, torch.float32])
@pytest.mark.parametrize("sym", [True, False])
def test_digit_kernel_error_is_fp32_kernel_error(kind, rows, group_size, scale_dtype, sym):
    k, n = 384, 80  # 3 groups of 128, 12 of 32; 5 tiles of 16 outputs
    qweight, zeros, scales = int4_tensors(k=k, n=n, group_size=group_size, scale_dtype=scale_dtype, seed=rows)
    if sym:
        zeros.fill_(8)
    bias = torch.zeros(n) if kind == "tiny" else torch.randn(n)  # (a bias would hide a tiny sum's errors)
    x = adversarial_rows(kind, rows, k, group_size, seed=rows + group_size)
    digits, fp32 = errors(x, qweight, zeros, scales, group_size, bias)
    # within a few fp32 roundings of the sum's size, and within a small multiple of the fp32 kernel's error
    assert digits <= 4 * EPS and digits <= max(2 * fp32, EPS), (digits, fp32)


@pytest.mark.parametrize("rows", [1, 4, 8])
@pytest.mark.parametrize("group_size", [16, 64, 128])
def test_digit_kernel_multiplies_the_digit_rounded_activations(rows, group_size):
    """The kernel's sums are exact integers: its output is the float64 product of the digit-rounded
    activations, up to the fp32 rounding of a few sums (far below the rounding of the inputs itself)."""
    qweight, zeros, scales = int4_tensors(
        k=512, n=48, group_size=group_size, scale_dtype=torch.float32, seed=3
    )
    w = weights_f64(qweight, zeros, scales, group_size)
    x = adversarial_rows("range", rows, 512, group_size, seed=rows)
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, group_size, None, route="cpp").double()
    size = x.double().abs() @ w.abs()
    assert ((out - digit_round(x, group_size, 3) @ w).abs() / size).max() <= 4 * EPS


def test_two_digits_are_not_enough():
    """Two digits (15-bit activations per group) err far above fp32 rounding; three stay within it."""
    qweight, zeros, scales = int4_tensors(k=768, n=64, group_size=128, seed=7)
    w = weights_f64(qweight, zeros, scales, 128)
    x = torch.randn(4, 768)
    ref, size = x.double() @ w, group_size_of_sum(x, w, 128)
    err = {d: ((digit_round(x, 128, d) @ w - ref).abs() / size).max().item() for d in (2, 3)}
    _, fp32 = errors(x, qweight, zeros, scales, 128, torch.zeros(64))
    assert err[3] <= max(2 * fp32, EPS) and err[2] > max(50 * fp32, 16 * EPS), (err, fp32)


@pytest.mark.parametrize("group_size", [8, 24])  # not a multiple of 16: the fp32 kernel
def test_other_group_sizes_take_the_fp32_kernel(group_size):
    qweight, zeros, scales = int4_tensors(k=48 * 4, n=32, group_size=group_size, seed=1)
    x = torch.randn(2, 48 * 4)
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, group_size, None, route="cpp")
        fp32 = Q.int4_linear(x, qweight, zeros, scales, group_size, None, route="cpp_float")
    assert torch.equal(out, fp32)


def test_non_finite_inputs_give_the_fp32_kernels_result():
    qweight, zeros, scales = int4_tensors(k=256, n=32, group_size=128, seed=2)
    x = torch.randn(3, 256)
    x[0, 5], x[1, 200], x[2, 7] = float("inf"), float("nan"), -float("inf")
    with torch.no_grad():
        out = Q.int4_linear(x, qweight, zeros, scales, 128, None, route="cpp")
        fp32 = Q.int4_linear(x, qweight, zeros, scales, 128, None, route="cpp_float")
    torch.testing.assert_close(out, fp32, equal_nan=True)


def test_greedy_tokens_equal_the_fp32_kernel_and_dequantized():
    model = tiny_decode_llama(hidden_size=128, intermediate_size=256)
    replace_linears(model, lambda lin: GPTQLinear.from_linear(lin, 4, 32))
    ids = torch.randint(1, 96, (2, 5), generator=torch.Generator().manual_seed(1))
    tokens = {}
    for kernel in ("auto", "cpp_float", "dequant"):
        for m in model.modules():
            if isinstance(m, GPTQLinear):
                m.kernel = kernel
        tokens[kernel] = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(tokens["auto"], tokens["cpp_float"]) and torch.equal(tokens["auto"], tokens["dequant"])


@pytest.mark.slow  # builds a torch C++ extension the first time on a machine (minutes)
def test_extension_operators_give_the_ctypes_kernels_bits():
    if not Q.load_torch_ops():
        pytest.skip("the torch C++ extension did not build (no torch headers or compiler)")
    qweight, zeros, scales = int4_tensors(k=256, n=112, group_size=64, scale_dtype=torch.float32, seed=4)
    x, bias = torch.randn(3, 256), torch.randn(112)
    args = (qweight.data_ptr(), zeros.data_ptr(), scales.data_ptr(), 1)
    ops = torch.ops.pretrained_quant
    for op, key in ((ops.int4_rows_linear, "int4"), (ops.int4_rows_linear_float, "int4_float")):
        expected = Q._rows_call(key, x, 112, args, bias, (64,))
        torch.testing.assert_close(op(x, qweight, zeros, scales, 64, bias), expected, atol=0, rtol=0)
    model = torch.nn.Sequential(GPTQLinear.from_linear(torch.nn.Linear(256, 112), 4, 64)).eval()
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, fullgraph=True, dynamic=False)(x)
        model[0].kernel = "cpp_float"
        torch._dynamo.reset()
        compiled_fp32 = torch.compile(model, fullgraph=True, dynamic=False)(x)
        eager_fp32 = model(x)
    torch.testing.assert_close(compiled, eager, atol=0, rtol=0)  # the same operator, eager and compiled
    torch.testing.assert_close(compiled_fp32, eager_fp32, atol=0, rtol=0)

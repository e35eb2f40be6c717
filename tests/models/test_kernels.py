"""`modeling.kernels.linear`: oneDNN for 4-32 fp32 rows at inference, F.linear otherwise, same numbers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pretrained.modeling import kernels


@pytest.mark.parametrize("rows", [1, 3, 4, 8, 32, 33])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_matches_f_linear(rows, bias):
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 1, 96, generator=g)
    w = torch.randn(kernels.MIN_WEIGHT // 96 + 1, 96, generator=g)  # big enough for oneDNN
    b = torch.randn(w.shape[0], generator=g) if bias else None
    with torch.no_grad():
        got = kernels.linear(x, w, b)
    assert got.shape == (rows, 1, w.shape[0])
    torch.testing.assert_close(got, F.linear(x, w, b), atol=1e-4, rtol=1e-5)


def test_linear_keeps_autograd_and_other_dtypes():
    x = torch.randn(8, 16, requires_grad=True)
    w = torch.randn(4, 16, requires_grad=True)
    kernels.linear(x, w).sum().backward()  # the grad-enabled path is F.linear
    assert x.grad is not None and w.grad is not None
    with torch.no_grad():
        out = kernels.linear(x.double(), w.double())
    assert out.dtype == torch.float64


def test_apply_linear_respects_hooks_and_subclasses():
    layer = nn.Linear(16, 4)
    seen = []
    layer.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    with torch.no_grad():
        kernels.apply_linear(layer, torch.randn(8, 16))
    assert seen == [torch.Size([8, 4])]  # a hooked layer is called as a module
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, a, out: seen.append("global"))
    try:
        with torch.no_grad():
            kernels.apply_linear(nn.Linear(16, 4), torch.randn(8, 16))
    finally:
        handle.remove()
    assert seen[-1] == "global"

    class Scaled(nn.Linear):  # e.g. a LoRA or quantized replacement: its own forward must run
        def forward(self, x):
            return 2 * super().forward(x)

    scaled = Scaled(16, 4)
    x = torch.randn(8, 16)
    with torch.no_grad():
        torch.testing.assert_close(kernels.apply_linear(scaled, x), 2 * F.linear(x, scaled.weight, scaled.bias))


@pytest.mark.parametrize("rows", [1, 4, 5, 8])
def test_small_rows_kernel_matches_f_linear(rows):
    """The AVX-512 kernel used inside compiled graphs (skipped where it cannot be built)."""
    if kernels.load_small_rows_kernel() is None:
        pytest.skip("no AVX-512 or no C++ toolchain")
    g = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 1, 96, generator=g)
    w = torch.randn(301, 96, generator=g)  # an odd number of weight rows
    b = torch.randn(301, generator=g)
    for bias in (None, b):
        got = kernels._small_rows_linear(x, w, bias)
        assert got.shape == (rows, 1, 301)
        torch.testing.assert_close(got, F.linear(x, w, bias), atol=1e-4, rtol=1e-5)
    # K not a multiple of 16, or too many rows: oneDNN instead, same numbers
    x = torch.randn(rows + 8, 40, generator=g)
    torch.testing.assert_close(kernels._small_rows_linear(x, w[:, :40], None), F.linear(x, w[:, :40]), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("bias", [False, True])
def test_one_row_reduction_in_graphs_matches_f_linear(bias, monkeypatch):
    """Inside graphs compiled by inductor, one row is a multiply + sum over the input features (traced
    here with the eager backend, which runs the same traced ops)."""
    monkeypatch.setitem(kernels._ops, "reduce_one_row", True)
    import torch._inductor.inductor_prims  # noqa: F401  (what prepare_compiled_linear imports)

    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(1, 1, 48, generator=g), torch.randn(40, 48, generator=g)
    b = torch.randn(40, generator=g) if bias else None
    torch._dynamo.reset()
    fn = torch.compile(lambda x: kernels.linear(torch.relu(x), w, b), backend="eager", fullgraph=True)
    with torch.no_grad():
        got = fn(x)
    assert got.shape == (1, 1, 40)
    torch.testing.assert_close(got, F.linear(torch.relu(x), w, b), atol=1e-5, rtol=1e-5)


def test_prepare_compiled_linear_reduces_for_inductor_only():
    try:
        kernels.prepare_compiled_linear("aot_eager")  # another backend would materialise x * weight
        assert not kernels._ops["reduce_one_row"]
        kernels.prepare_compiled_linear()
        assert kernels._ops["reduce_one_row"]
    finally:
        kernels._ops.pop("reduce_one_row", None)

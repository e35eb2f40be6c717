"""Which kernel runs a linear layer at inference on the CPU, for decode steps of a few rows.

``F.linear`` (MKL) streams the weights at full memory bandwidth for 1-2 rows, but from 3-4 rows on it
switches from its matrix-vector kernel to a packing GEMM that reads them at half that rate. So, for
fp32 weights too big for the caches (4 MB or more) and 4-32 rows:

- eagerly, oneDNN's matmul on the plain weight (1.1-1.3x faster than MKL there; it costs ~40 us more
  per call, hence the size limit);
- inside compiled graphs (``torch.compile``, where inductor is loaded and compiling anyway), a custom op
  that runs a small AVX-512 kernel for up to 8 rows, built once with inductor's C++ toolchain, which
  reads each weight row once for all rows (4 rows: 1.35x faster than MKL), else oneDNN.

And for one row inside graphs compiled by inductor, the product is written as a multiply and a sum
over the input features, which inductor fuses into one vectorised, threaded reduction that streams the
weights at the memory bandwidth (1.2x faster than MKL's matrix-vector kernel, which it would otherwise
call, and nothing to call back into Python for).

All compute the same fp32 products as MKL, summed in another order. ``benchmarks/small_rows_gemm.py``
compares the three; ``benchmarks/generation.py`` measures decoding.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _module

SMALL_ROWS = range(4, 33)
MIN_WEIGHT = 1 << 20  # elements (4 MB in fp32)
KERNEL_MAX_ROWS = 8

# Output columns are split across OpenMP threads (inductor builds it against torch's OpenMP runtime).
KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
// y[r, n] = sum_k x[r, k] * w[n, k] (+ b[n]), R <= 8 rows, K % 16 == 0: two weight rows at a time,
// each read once for all R input rows (kept in L1).
template <int R>
static void rows_gemm(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                      float* __restrict y, int64_t N, int64_t K) {
  const int64_t pairs = N / 2;
  #pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t n = 2 * p;
    const float* w0 = w + n * K;
    const float* w1 = w0 + K;
    __m512 a0[R], a1[R];
    for (int r = 0; r < R; ++r) { a0[r] = _mm512_setzero_ps(); a1[r] = _mm512_setzero_ps(); }
    for (int64_t k = 0; k < K; k += 16) {
      __m512 v0 = _mm512_loadu_ps(w0 + k), v1 = _mm512_loadu_ps(w1 + k);
      for (int r = 0; r < R; ++r) {
        __m512 xv = _mm512_loadu_ps(x + r * K + k);
        a0[r] = _mm512_fmadd_ps(v0, xv, a0[r]);
        a1[r] = _mm512_fmadd_ps(v1, xv, a1[r]);
      }
    }
    for (int r = 0; r < R; ++r) {
      y[r * N + n] = _mm512_reduce_add_ps(a0[r]) + (b ? b[n] : 0.f);
      y[r * N + n + 1] = _mm512_reduce_add_ps(a1[r]) + (b ? b[n + 1] : 0.f);
    }
  }
  if (N % 2) {
    const int64_t n = N - 1;
    for (int r = 0; r < R; ++r) {
      __m512 a = _mm512_setzero_ps();
      for (int64_t k = 0; k < K; k += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(w + n * K + k), _mm512_loadu_ps(x + r * K + k), a);
      y[r * N + n] = _mm512_reduce_add_ps(a) + (b ? b[n] : 0.f);
    }
  }
}
extern "C" void small_rows_linear(const float* x, const float* w, const float* b, float* y,
                                  int64_t R, int64_t N, int64_t K) {
  switch (R) {
    case 1: rows_gemm<1>(x, w, b, y, N, K); break;
    case 2: rows_gemm<2>(x, w, b, y, N, K); break;
    case 3: rows_gemm<3>(x, w, b, y, N, K); break;
    case 4: rows_gemm<4>(x, w, b, y, N, K); break;
    case 5: rows_gemm<5>(x, w, b, y, N, K); break;
    case 6: rows_gemm<6>(x, w, b, y, N, K); break;
    case 7: rows_gemm<7>(x, w, b, y, N, K); break;
    case 8: rows_gemm<8>(x, w, b, y, N, K); break;
  }
}
"""

# "onednn": bool, "kernel": ctypes function or None, "op": the custom op, "reduce_one_row": bool
_ops: dict[str, Any] = {}


def _onednn_available() -> bool:
    if "onednn" not in _ops:
        _ops["onednn"] = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    return _ops["onednn"]


def load_small_rows_kernel() -> Any:
    """The compiled kernel (a ctypes function), or ``None`` without AVX-512 or a working C++ toolchain."""
    if "kernel" not in _ops:
        _ops["kernel"] = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            try:
                from torch._inductor.codecache import CppCodeCache

                fn = CppCodeCache.load(KERNEL_SOURCE, extra_flags=("-mavx512f", "-mfma", "-O3")).small_rows_linear
                fn.restype = None
                fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3
                _ops["kernel"] = fn
            except Exception:  # noqa: BLE001 - no compiler, an old torch...: the other kernels remain
                pass
    return _ops["kernel"]


def _small_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    fn = _ops.get("kernel")
    rows, k = x.numel() // x.shape[-1], x.shape[-1]
    if fn is not None and rows <= KERNEL_MAX_ROWS and k % 16 == 0 and weight.is_contiguous():
        x = x.contiguous()
        bias = None if bias is None else bias.contiguous()
        out = x.new_empty((*x.shape[:-1], weight.shape[0]))
        fn(x.data_ptr(), weight.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr(),
           rows, weight.shape[0], k)  # fmt: skip
        return out
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def prepare_compiled_linear(backend: Any = "inductor") -> None:
    """Build the kernel and register the small-rows linear as an opaque custom op, so that graphs
    compiled from now on call it (inductor cannot lower oneDNN's op on a plain weight, nor our kernel).
    Called before compiling (``generate`` does): tracing cannot run the build. ``backend`` is the one
    ``torch.compile`` will use: only inductor fuses the one-row multiply and sum (any other would
    materialise a weight-sized product). The choice holds for the process until the next call: a graph
    traced later with another backend, without calling this again, still gets the multiply-and-sum
    forms (correct, but slower and larger there)."""
    _ops["reduce_one_row"] = backend == "inductor"
    if backend == "inductor":
        importlib.import_module("torch._inductor.inductor_prims")  # registers the op linear() uses
    if "op" not in _ops and _onednn_available():
        load_small_rows_kernel()

        @torch.library.custom_op("pretrained::small_rows_linear", mutates_args=())
        def small_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            return _small_rows_linear(x, weight, bias)

        @small_rows_linear.register_fake
        def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
            return x.new_empty((*x.shape[:-1], weight.shape[0]))

        _ops["op"] = torch.ops.pretrained.small_rows_linear


def fuse_as_reductions(x: torch.Tensor) -> bool:
    """Whether ops on ``x`` are being traced for inductor on the CPU, in fp32, outside autograd, after
    :func:`prepare_compiled_linear`: there, products written as a multiply and a sum become loops of
    the compiled step instead of calls to library kernels."""
    return (
        bool(_ops.get("reduce_one_row"))
        and torch.compiler.is_compiling()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_grad_enabled()
    )


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, with small fp32 batches on the CPU outside autograd sent to a faster kernel."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32 or torch.is_grad_enabled():
        return F.linear(x, weight, bias)
    rows = x.numel() // x.shape[-1]
    if rows == 1 and fuse_as_reductions(x):
        x = torch.ops.prims.inductor_force_stride_order(x, x.stride())
        out = (x.unsqueeze(-2) * weight).sum(-1)
        return out if bias is None else out + bias
    if rows in SMALL_ROWS and weight.numel() >= MIN_WEIGHT and _onednn_available():
        if not torch.compiler.is_compiling():
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
        op = _ops.get("op")
        if op is not None:  # (a graph compiled without prepare_compiled_linear keeps MKL)
            return op(x, weight, bias)
    return F.linear(x, weight, bias)


def apply_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``, with a plain ``nn.Linear`` (no hooks, its own or global) going through :func:`linear`."""
    if (
        type(layer) is nn.Linear
        and not (layer._forward_hooks or layer._forward_pre_hooks)
        and not (_module._global_forward_hooks or _module._global_forward_pre_hooks)
    ):
        return linear(x, layer.weight, layer.bias)
    return layer(x)

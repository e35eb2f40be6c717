"""Kernels for inference steps of few rows on the CPU, which :class:`~pretrained.inference.routing.DecodeKernels`
sends ``F.linear`` calls to.

``F.linear`` (MKL) streams the weights at full memory bandwidth for 1-2 rows, but from 3-4 rows on it
switches from its matrix-vector kernel to a packing GEMM that reads them at about half that rate. So, for
fp32 weights too big for the caches (``MIN_WEIGHT`` elements or more) and ``SMALL_ROWS`` rows:

- eagerly, oneDNN's matmul on the plain weight (it costs more per call than MKL, hence the size limit);
- inside compiled graphs, an opaque custom op that runs a small AVX-512 kernel for up to 8 rows, built
  once with inductor's C++ toolchain, which reads each weight row once for all rows; else oneDNN.

For one row inside graphs compiled by inductor, the product is written as a multiply and a sum over the
input features (:func:`one_row_linear`), which inductor fuses into one vectorised, threaded reduction of
the step instead of a library call.

All compute the same products as MKL, summed in another order. ``benchmarks/small_rows_gemm.py``
compares the kernels; ``benchmarks/generation.py`` measures decoding.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

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

# What was built or probed once per process: "onednn" (bool), "kernel" (ctypes function or None),
# "op" (the registered custom op or None).
_built: dict[str, Any] = {}


def onednn_available() -> bool:
    if "onednn" not in _built:
        _built["onednn"] = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    return _built["onednn"]


def load_small_rows_kernel() -> Any:
    """The compiled kernel (a ctypes function), or ``None`` without AVX-512 or a working C++ toolchain."""
    if "kernel" not in _built:
        _built["kernel"] = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            try:
                from torch._inductor.codecache import CppCodeCache

                fn = CppCodeCache.load(KERNEL_SOURCE, extra_flags=("-mavx512f", "-mfma", "-O3")).small_rows_linear
                fn.restype = None
                fn.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 3
                _built["kernel"] = fn
            except Exception:  # noqa: BLE001 - no compiler, an old torch...: the other kernels remain
                pass
    return _built["kernel"]


def _small_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    fn = _built.get("kernel")
    rows, k = x.numel() // x.shape[-1], x.shape[-1]
    if fn is not None and rows <= KERNEL_MAX_ROWS and k % 16 == 0 and weight.is_contiguous():
        x = x.contiguous()
        bias = None if bias is None else bias.contiguous()
        out = x.new_empty((*x.shape[:-1], weight.shape[0]))
        fn(x.data_ptr(), weight.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr(),
           rows, weight.shape[0], k)  # fmt: skip
        return out
    return onednn_linear(x, weight, bias)


def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` through oneDNN's matmul on the plain (unpacked) weight."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def small_rows_op(build: bool = True) -> Any:
    """The custom op ``pretrained::small_rows_linear`` (built and registered on first use), which compiled
    graphs call as an opaque kernel: inductor can lower neither oneDNN's op on a plain weight nor ours.
    ``None`` without oneDNN, or when not built yet and ``build`` is false (as while tracing: tracing
    cannot run the build)."""
    if "op" not in _built and build:
        _built["op"] = None
        if onednn_available():
            load_small_rows_kernel()

            @torch.library.custom_op("pretrained::small_rows_linear", mutates_args=())
            def small_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
                return _small_rows_linear(x, weight, bias)

            @small_rows_linear.register_fake
            def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
                return x.new_empty((*x.shape[:-1], weight.shape[0]))

            _built["op"] = torch.ops.pretrained.small_rows_linear
    return _built.get("op")


def one_row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` of one row as a multiply and a sum, for graphs compiled by inductor.

    The input is realised first (``inductor_force_stride_order``): otherwise inductor inlines everything
    that produced it (residual stream, norm) into the loop over every weight row."""
    x = torch.ops.prims.inductor_force_stride_order(x, x.stride())
    out = (x.unsqueeze(-2) * weight).sum(-1)
    return out if bias is None else out + bias

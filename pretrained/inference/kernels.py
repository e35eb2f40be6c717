"""Kernels for inference steps of few rows on the CPU, which :class:`~pretrained.inference.routing.DecodeKernels`
sends ``F.linear`` calls to.

A decode step at small batch reads every weight once, so its speed is the rate at which the weights are
streamed from memory. ``F.linear`` (MKL) does not reach it on few rows: its matrix-vector kernel (1-2 rows)
read fp32 weights too big for the caches at 10-20 GB/s on the 2-core AMD EPYC this was tuned on, where
the kernel below reads them at 20-40 GB/s, and from 3-4 rows on MKL switches to a packing GEMM that is
slower still. So, for fp32 weights:

- ``KERNEL_ROWS`` rows (1-8) against weights of ``MIN_KERNEL_WEIGHT`` elements or more: a small
  AVX-512 kernel that reads each weight row once for all rows, called through ctypes when eager (a few
  microseconds per call) and as an opaque custom op inside compiled graphs (4-8 rows there: see below);
- ``LIBRARY_ROWS`` rows (4-32) against weights of ``MIN_WEIGHT`` elements or more that the kernel does
  not take (more than 8 rows, or no kernel): oneDNN's matmul on the plain weight (it costs more per call
  than MKL, hence the larger size limit).

For one row inside graphs compiled by inductor, the product is written as a multiply and a sum over the
input features (:func:`one_row_linear`), which inductor fuses into one vectorised, threaded reduction of
the step instead of a library call; 2-3 rows keep MKL there (a compiled graph calls the custom op back
through Python, which costs more than it saves at so few rows).

The kernel is compiled once per machine with the system's C++ compiler and kept in a cache folder
(:func:`kernel_cache_dir`), so a process loads it in milliseconds; without a compiler it is built with
inductor's toolchain, and without that the library kernels above serve every call. All compute the same
products as MKL, summed in another order. ``benchmarks/small_rows_gemm.py`` compares the kernels;
``benchmarks/generation.py`` measures decoding.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch

from pretrained.utils.native import kernel_cache_dir, load_library  # noqa: F401 - kernel_cache_dir: public here too

KERNEL_MAX_ROWS = 8
KERNEL_ROWS = range(1, KERNEL_MAX_ROWS + 1)
LIBRARY_ROWS = range(4, 33)
# Rows some kernel here serves (generate() routes the linears of steps of this many rows).
SMALL_ROWS = range(1, 33)
MIN_WEIGHT = 1 << 20  # elements (4 MB in fp32): oneDNN's size limit
MIN_KERNEL_WEIGHT = 1 << 16  # elements (256 KB in fp32): the kernel's
_FLAGS = ("-O3", "-mavx512f", "-mavx512dq", "-mfma")

# y[r, n] = sum_k x[r, k] w[n, k] (+ b[n]). Output columns are split in contiguous ranges across as many
# OpenMP threads as torch uses in the calling thread (the build links the OpenMP runtime torch has loaded, so
# they share its threads; a thread that torch never set up would otherwise take every core).
KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
// Dot products of R input rows with NB consecutive weight rows, each weight row read once for all R rows,
// with KU independent accumulators along k per product; any K (the last vector is masked).
template <int R, int NB, int KU>
static inline void dot_block(const float* __restrict x, const float* __restrict w, int64_t K, __m512 (&s)[R][NB]) {
  __m512 acc[R][NB][KU];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j)
      for (int u = 0; u < KU; ++u) acc[r][j][u] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 * KU <= K; k += 16 * KU) {
    // Ask for the weights 8 KB ahead into L2 (prefetches never fault, past the end too): the hardware
    // prefetchers alone left the streams 5-50% slower, most with several weight rows per pass.
    for (int j = 0; j < NB; ++j) _mm_prefetch((const char*)(w + j * K + k + 2048), _MM_HINT_T1);
    for (int u = 0; u < KU; ++u) {
      __m512 v[NB];
      for (int j = 0; j < NB; ++j) v[j] = _mm512_loadu_ps(w + j * K + k + 16 * u);
      for (int r = 0; r < R; ++r) {
        const __m512 xv = _mm512_loadu_ps(x + r * K + k + 16 * u);
        for (int j = 0; j < NB; ++j) acc[r][j][u] = _mm512_fmadd_ps(v[j], xv, acc[r][j][u]);
      }
    }
  }
  for (; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
    __m512 v[NB];
    for (int j = 0; j < NB; ++j) v[j] = _mm512_maskz_loadu_ps(m, w + j * K + k);
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * K + k);
      for (int j = 0; j < NB; ++j) acc[r][j][0] = _mm512_fmadd_ps(v[j], xv, acc[r][j][0]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) {
      __m512 t = acc[r][j][0];
      for (int u = 1; u < KU; ++u) t = _mm512_add_ps(t, acc[r][j][u]);
      s[r][j] = t;
    }
}
template <int R, int NB, int KU>
static void rows_gemm(const float* __restrict x, const float* __restrict w, const float* __restrict b,
                      float* __restrict y, int64_t N, int64_t K, int threads) {
  const int64_t blocks = N / NB;
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t p = 0; p < blocks + N % NB; ++p) {
    if (p < blocks) {
      const int64_t n = p * NB;
      __m512 s[R][NB];
      dot_block<R, NB, KU>(x, w + n * K, K, s);
      for (int r = 0; r < R; ++r)
        for (int j = 0; j < NB; ++j) y[r * N + n + j] = _mm512_reduce_add_ps(s[r][j]) + (b ? b[n + j] : 0.f);
    } else {  // the last N % NB weight rows
      const int64_t n = blocks * NB + (p - blocks);
      __m512 s[R][1];
      dot_block<R, 1, 1>(x, w + n * K, K, s);
      for (int r = 0; r < R; ++r) y[r * N + n] = _mm512_reduce_add_ps(s[r][0]) + (b ? b[n] : 0.f);
    }
  }
}
// @DISPATCH@
"""
# What was built or probed once per process: "onednn" (bool), "kernel" (ctypes function or None),
# "op" (the registered custom op or None).
_built: dict[str, Any] = {}


def onednn_available() -> bool:
    if "onednn" not in _built:
        _built["onednn"] = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    return _built["onednn"]


def _dispatch_source() -> str:
    """The ``small_rows_linear`` entry point: the pass shape per number of rows (see ``_pass_shape``)."""
    cases = []
    for rows in KERNEL_ROWS:
        cases.append(f"    case {rows}: {_pass_shape(rows)}; break;")
    return (
        'extern "C" void small_rows_linear(const float* x, const float* w, const float* b, float* y,\n'
        "                                  int64_t R, int64_t N, int64_t K, int64_t threads) {\n"
        "  switch (R) {\n" + "\n".join(cases) + "\n  }\n}\n"
    )


def _pass_shape(rows: int) -> str:
    # While the input rows fit well in L1 (16 KB), one weight row per pass reads the weights strictly in
    # order, which streamed fastest (1.5-3x two or four interleaved rows, one thread), with up to four
    # accumulators per product to hide the FMA latency; wider inputs read four (two from 5 rows: the
    # accumulators must stay in the 32 vector registers) weight rows per pass, so each input vector loaded
    # from L1/L2 serves them all.
    unroll = max(1, min(4, 16 // rows))
    block = 4 if rows <= 4 else 2
    return (f"if ({rows} * K <= 4096) rows_gemm<{rows}, 1, {unroll}>(x, w, b, y, N, K, threads); "
            f"else rows_gemm<{rows}, {block}, 1>(x, w, b, y, N, K, threads)")


def load_small_rows_kernel() -> Any:
    """The compiled kernel (a ctypes function), or ``None`` without AVX-512 or a working C++ toolchain."""
    if "kernel" not in _built:
        fn = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            source = KERNEL_SOURCE.replace("// @DISPATCH@", _dispatch_source())
            signature = (None, [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 4)
            lib = load_library("small_rows_linear", source, _FLAGS, {"small_rows_linear": signature},
                               inductor_fallback=True)  # fmt: skip
            fn = None if lib is None else lib.small_rows_linear
        _built["kernel"] = fn
    return _built["kernel"]


def kernel_ready() -> bool:
    """Whether the kernel is built (cheap: for per-call checks)."""
    return _built.get("kernel") is not None


def kernel_takes(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether the built kernel computes ``F.linear(x, weight, bias)`` (fp32 CPU tensors): 1-8 rows, a
    contiguous weight of matching width and a bias of one value per output (else ``F.linear``'s error)."""
    return (_built.get("kernel") is not None and weight.dim() == 2 and x.dim() > 0
            and 0 < x.numel() <= KERNEL_MAX_ROWS * x.shape[-1] and weight.shape[1] == x.shape[-1]
            and weight.is_contiguous() and (bias is None or tuple(bias.shape) == (weight.shape[0],)))  # fmt: skip


def kernel_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear`` through the kernel, for what :func:`kernel_takes`."""
    x = x.contiguous()
    if bias is not None:
        bias = bias.contiguous()
    out = x.new_empty((*x.shape[:-1], weight.shape[0]))
    _built["kernel"](x.data_ptr(), weight.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr(),
                     x.numel() // x.shape[-1], weight.shape[0], x.shape[-1], torch.get_num_threads())  # fmt: skip
    return out


def _small_rows_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if kernel_takes(x, weight, bias):
        return kernel_linear(x, weight, bias)
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

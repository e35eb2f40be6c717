"""Weight-only int8 and int4 linear kernels for the CPU, for inference steps of few rows (decoding).

Decoding reads every weight once per step, so its speed is memory bandwidth over the bytes of the weights:
fewer bytes per weight is the only way up. These kernels read the packed integers (and the scales) once per
step for all rows, and never write a dequantized weight to memory:

- int8 weight-only: ``weight`` int8 ``(out, in)`` with one fp32 scale per output:
  ``y = (x @ weight.T) * scale + bias``.
- int4, GPTQ's word layout: ``qweight`` int32 ``(in / 8, out)`` (input features ``8p .. 8p+7`` of output
  ``n`` in word ``[p, n]``, lowest nibble first), contiguous groups of ``group_size`` input features, zero
  points as uint8 ``(groups, out)`` and scales fp16 or fp32 ``(groups, out)``:
  ``y[n] = sum_g scale[g, n] * (sum_{k in g} x[k] q[k, n] - zero[g, n] * sum_{k in g} x[k])``.
  Callers with other layouts (AWQ, act-order) bring their weights to this one
  (:mod:`pretrained.quantizers.int4_linear` does).

Routes, chosen per call by ``route``:

- ``"cpp"``: a small AVX-512 C++ kernel, built once per process with inductor's C++ toolchain
  (:func:`load_kernels`) and called through ctypes when eager, or through the custom ops
  ``pretrained::int8_rows_linear`` / ``pretrained::int4_rows_linear`` inside compiled graphs (inductor
  cannot see into them, so they are opaque calls). Those ops have Python bodies, so a compiled step
  calls back into Python once per linear; :func:`load_torch_ops` builds the same kernels as a torch C++
  extension (``pretrained_quant::...``, minutes on first use, then cached) that compiled graphs call directly. The products are computed in fp32 (the int8 / int4 values
  converted exactly), so results equal dequantize-then-matmul up to summation order.
- ``"vnni"`` (opt-in, CPUs with AVX-512 VNNI): the activations are rounded per row to int8 (steps of
  ``max|x| / 127``) and multiplied with integer dot products (``vpdpbusd``: 64 byte products per
  instruction against 16 float products per FMA), which pays where the exact kernels run out of compute
  (several rows against int4 words). It changes results as dynamic activation quantization does
  (:func:`quantize_activations` gives the rounded input it computes with); elsewhere it falls back to ``"cpp"``.
- ``"reduction"``: the same sums written in PyTorch (unpack, multiply, sum) for inductor to fuse into one
  loop over the packed weights; eagerly this materialises the unpacked weight and is slow.
- ``"dequant"``: dequantize to fp32 and call ``F.linear`` (the route for many rows: prefill).

``"auto"`` takes ``"cpp"`` for ``SMALL_ROWS`` rows when the kernel is built and the shapes fit, else
``"dequant"``. ``benchmarks/quantization.py`` measures the routes.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
import torch.nn.functional as F

SMALL_ROWS = 32  # up to this many rows take the kernels; more dequantize and use a GEMM
KERNEL_ROWS = 8  # the C++ kernels handle this many rows per pass over the weights
ROUTES = ("auto", "cpp", "vnni", "reduction", "dequant")

KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include <cstring>

// ---- int8 weight-only: y[r, n] = s[n] * sum_k x[r, k] w[n, k] + b[n]; K % 16 == 0 ----
// NB weight rows at a time share each load of x (more rows: the loads of x, not the FMAs, would bound the
// loop); U independent accumulators per pair hide the FMA latency when there are few rows.
template <int R>
static void int8_rows(const float* __restrict x, const int8_t* __restrict w, const float* __restrict s,
                      const float* __restrict b, float* __restrict y, int64_t N, int64_t K) {
  constexpr int U = R == 1 ? 4 : (R == 2 ? 2 : 1);
  constexpr int NB = R == 1 ? 1 : (R <= 4 ? 4 : 3);
  const int64_t blocks = (N + NB - 1) / NB;
  #pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t n0 = blk * NB;
    const int nb = N - n0 < NB ? (int)(N - n0) : NB;
    const int8_t* wr[NB];
    for (int m = 0; m < NB; ++m) wr[m] = w + (n0 + (m < nb ? m : 0)) * K;  // past the end: reread row n0
    __m512 acc[NB][R][U];
    for (int m = 0; m < NB; ++m) for (int r = 0; r < R; ++r) for (int u = 0; u < U; ++u) acc[m][r][u] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16 * U) {
      for (int u = 0; u < U && k + 16 * u < K; ++u) {
        __m512 wv[NB];
        for (int m = 0; m < NB; ++m)
          wv[m] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(wr[m] + k + 16 * u))));
        for (int r = 0; r < R; ++r) {
          __m512 xv = _mm512_loadu_ps(x + r * K + k + 16 * u);
          for (int m = 0; m < NB; ++m) acc[m][r][u] = _mm512_fmadd_ps(wv[m], xv, acc[m][r][u]);
        }
      }
    }
    for (int m = 0; m < nb; ++m) {
      const int64_t n = n0 + m;
      for (int r = 0; r < R; ++r) {
        __m512 a = acc[m][r][0];
        for (int u = 1; u < U; ++u) a = _mm512_add_ps(a, acc[m][r][u]);
        y[r * N + n] = _mm512_reduce_add_ps(a) * s[n] + (b ? b[n] : 0.f);
      }
    }
  }
}

extern "C" void int8_rows_linear(const float* x, const int8_t* w, const float* s, const float* b, float* y,
                                 int64_t R, int64_t N, int64_t K) {
  for (int64_t r0 = 0; r0 < R; r0 += 8) {
    const int64_t rr = R - r0 < 8 ? R - r0 : 8;
    const float* xr = x + r0 * K;
    float* yr = y + r0 * N;
    switch (rr) {
      case 1: int8_rows<1>(xr, w, s, b, yr, N, K); break;
      case 2: int8_rows<2>(xr, w, s, b, yr, N, K); break;
      case 3: int8_rows<3>(xr, w, s, b, yr, N, K); break;
      case 4: int8_rows<4>(xr, w, s, b, yr, N, K); break;
      case 5: int8_rows<5>(xr, w, s, b, yr, N, K); break;
      case 6: int8_rows<6>(xr, w, s, b, yr, N, K); break;
      case 7: int8_rows<7>(xr, w, s, b, yr, N, K); break;
      default: int8_rows<8>(xr, w, s, b, yr, N, K); break;
    }
  }
}

// ---- int4, GPTQ word layout: qw (K/8, N) int32, z (G, N) uint8, s (G, N) fp16 or fp32 ----
// One tile = T*16 outputs, one group: the group's sums, scaled, are added to y (which starts as the bias).
// Each thread owns a contiguous range of tiles and walks the groups in order, so it streams through a
// contiguous span of every word row (the words of a group are adjacent rows) instead of hopping rows.
template <int R, int T>
static inline void int4_tile(const float* __restrict x, const float* __restrict xsum, const int32_t* __restrict qw,
                             const uint8_t* __restrict z, const void* __restrict s, bool s32,
                             float* __restrict y, int64_t n0, int64_t N, int64_t K, int64_t gs, int64_t g) {
  const int64_t G = K / gs;
  __m512i masks[8];
  for (int j = 0; j < 8; ++j) masks[j] = _mm512_set1_epi32((int32_t)(0xFu << (4 * j)));
  // even and odd nibbles feed separate accumulators: with few rows, one chain of 8 dependent FMAs per
  // word would bound the loop by FMA latency
  constexpr int A = R <= 2 ? 2 : 1;
  __m512 acc[A][R][T];
  for (int a = 0; a < A; ++a) for (int r = 0; r < R; ++r) for (int t = 0; t < T; ++t) acc[a][r][t] = _mm512_setzero_ps();
  for (int64_t p = g * gs / 8; p < (g + 1) * gs / 8; ++p) {
    __m512i wv[T];
    for (int t = 0; t < T; ++t) wv[t] = _mm512_loadu_si512((const void*)(qw + p * N + n0 + 16 * t));
    for (int j = 0; j < 8; ++j) {
      for (int t = 0; t < T; ++t) {
        // nibble j masked in place is q * 16^j, exact as an unsigned-to-float conversion; x was
        // scaled by 16^-j, so the product is the same float as q * x, one shift cheaper
        __m512 wf = _mm512_cvtepu32_ps(_mm512_and_si512(wv[t], masks[j]));
        for (int r = 0; r < R; ++r)
          acc[j % A][r][t] = _mm512_fmadd_ps(wf, _mm512_set1_ps(x[r * K + 8 * p + j]), acc[j % A][r][t]);
      }
    }
  }
  if (A == 2)
    for (int r = 0; r < R; ++r) for (int t = 0; t < T; ++t) acc[0][r][t] = _mm512_add_ps(acc[0][r][t], acc[A - 1][r][t]);
  for (int t = 0; t < T; ++t) {
    const int64_t o = g * N + n0 + 16 * t;
    __m512 sv = s32 ? _mm512_loadu_ps((const float*)s + o)
                    : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)((const uint16_t*)s + o)));
    __m512 zv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(z + o))));
    for (int r = 0; r < R; ++r) {
      float* yp = y + r * N + n0 + 16 * t;
      __m512 d = _mm512_fnmadd_ps(zv, _mm512_set1_ps(xsum[r * G + g]), acc[0][r][t]);
      _mm512_storeu_ps(yp, _mm512_fmadd_ps(sv, d, _mm512_loadu_ps(yp)));
    }
  }
}

// Runs tile(i, g) for every tile i and group g: each thread a contiguous range of tiles, groups in order.
template <typename F>
static void over_tiles(int64_t tiles, int64_t G, const F& tile) {
  #pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t per = (tiles + nt - 1) / nt, i0 = id * per, i1 = i0 + per < tiles ? i0 + per : tiles;
    for (int64_t g = 0; g < G; ++g)
      for (int64_t i = i0; i < i1; ++i) tile(i, g);
  }
}

static void init_bias(float* y, const float* b, int64_t R, int64_t N) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t n = 0; n < N; ++n) y[r * N + n] = b ? b[n] : 0.f;
}

template <int R, int T>
static void int4_rows(const float* x, const float* xsum, const int32_t* qw, const uint8_t* z, const void* s,
                      bool s32, const float* b, float* y, int64_t N, int64_t K, int64_t gs) {
  const int64_t wide = N / (16 * T), narrow = (N - wide * 16 * T) / 16;
  init_bias(y, b, R, N);
  over_tiles(wide + narrow, K / gs, [&](int64_t i, int64_t g) {
    if (i < wide) int4_tile<R, T>(x, xsum, qw, z, s, s32, y, i * 16 * T, N, K, gs, g);
    else int4_tile<R, 1>(x, xsum, qw, z, s, s32, y, wide * 16 * T + (i - wide) * 16, N, K, gs, g);
  });
}

extern "C" void int4_rows_linear(const float* x, const int32_t* qw, const uint8_t* z, const void* s, int64_t s32,
                                 const float* b, float* y, int64_t R, int64_t N, int64_t K, int64_t gs) {
  const int64_t G = K / gs;
  float* xsum = new float[R * G];
  float* xs = new float[R * K];  // x[k] * 16^-(k % 8): see int4_tile
  for (int64_t r = 0; r < R; ++r)
    for (int64_t g = 0; g < G; ++g) {
      float acc = 0.f;
      for (int64_t k = g * gs; k < (g + 1) * gs; ++k) {
        acc += x[r * K + k];
        xs[r * K + k] = x[r * K + k] * (1.0f / (float)(1u << (4 * (k % 8))));
      }
      xsum[r * G + g] = acc;
    }
  x = xs;
  for (int64_t r0 = 0; r0 < R; r0 += 8) {
    const int64_t rr = R - r0 < 8 ? R - r0 : 8;
    const float* xr = x + r0 * K;
    const float* xg = xsum + r0 * G;
    float* yr = y + r0 * N;
    const bool f32 = s32 != 0;
    switch (rr) {
      case 1: int4_rows<1, 4>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      case 2: int4_rows<2, 4>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      case 3: int4_rows<3, 2>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      case 4: int4_rows<4, 2>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      case 5: int4_rows<5, 1>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      case 6: int4_rows<6, 1>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      case 7: int4_rows<7, 1>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
      default: int4_rows<8, 1>(xr, xg, qw, z, s, f32, b, yr, N, K, gs); break;
    }
  }
  delete[] xsum;
  delete[] xs;
}

// ---- VNNI routes: activations rounded to int8 per row (scale max|x| / 127), integer dot products ----
#define VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

// x (R, K) fp32 -> q (R, K) int8 and per-row scales; returns nothing, K % 16 == 0
VNNI static void quantize_rows(const float* x, int8_t* q, float* sx, int64_t R, int64_t K) {
  for (int64_t r = 0; r < R; ++r) {
    __m512 m = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + r * K + k)));
    const float amax = _mm512_reduce_max_ps(m);
    const float inv = amax > 0.f ? 127.0f / amax : 0.f;
    sx[r] = amax > 0.f ? amax / 127.0f : 0.f;
    const __m512 iv = _mm512_set1_ps(inv);
    for (int64_t k = 0; k < K; k += 16) {
      __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + r * K + k), iv));  // nearest even
      _mm_storeu_si128((__m128i*)(q + r * K + k), _mm512_cvtsepi32_epi8(v));
    }
  }
}

// int8 weights: y[r, n] = sx[r] * s[n] * sum_k q[r, k] w[n, k] + b[n]. vpdpbusd multiplies unsigned by
// signed bytes, so the activations are shifted to q + 128 and 128 * wsum[n] taken off again.
template <int R>
VNNI static void int8_rows_vnni(const uint8_t* __restrict xu, const float* __restrict sx, const int8_t* __restrict w,
                                const int32_t* __restrict wsum, const float* __restrict s, const float* __restrict b,
                                float* __restrict y, int64_t N, int64_t K) {
  constexpr int U = R == 1 ? 4 : (R == 2 ? 2 : 1);  // independent accumulators per row (latency)
  #pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int8_t* wr = w + n * K;
    __m512i acc[R][U];
    for (int r = 0; r < R; ++r) for (int u = 0; u < U; ++u) acc[r][u] = _mm512_setzero_si512();
    int64_t k = 0;
    for (; k + 64 * U <= K; k += 64 * U)
      for (int u = 0; u < U; ++u) {
        __m512i wv = _mm512_loadu_si512((const void*)(wr + k + 64 * u));
        for (int r = 0; r < R; ++r)
          acc[r][u] = _mm512_dpbusd_epi32(acc[r][u], _mm512_loadu_si512((const void*)(xu + r * K + k + 64 * u)), wv);
      }
    for (; k < K; k += 64) {
      __m512i wv = _mm512_loadu_si512((const void*)(wr + k));
      for (int r = 0; r < R; ++r)
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], _mm512_loadu_si512((const void*)(xu + r * K + k)), wv);
    }
    for (int r = 0; r < R; ++r) {
      __m512i a = acc[r][0];
      for (int u = 1; u < U; ++u) a = _mm512_add_epi32(a, acc[r][u]);
      const int32_t dot = _mm512_reduce_add_epi32(a) - 128 * wsum[n];
      y[r * N + n] = sx[r] * s[n] * (float)dot + (b ? b[n] : 0.f);
    }
  }
}

extern "C" VNNI void int8_rows_linear_vnni(const float* x, const int8_t* w, const int32_t* wsum, const float* s,
                                           const float* b, float* y, int64_t R, int64_t N, int64_t K) {
  int8_t* q = new int8_t[R * K];
  float* sx = new float[R];
  quantize_rows(x, q, sx, R, K);
  uint8_t* xu = (uint8_t*)q;
  for (int64_t i = 0; i < R * K; ++i) xu[i] = (uint8_t)(q[i] + 128);
  for (int64_t r0 = 0; r0 < R; r0 += 8) {
    const int64_t rr = R - r0 < 8 ? R - r0 : 8;
    const uint8_t* xr = xu + r0 * K;
    switch (rr) {
      case 1: int8_rows_vnni<1>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      case 2: int8_rows_vnni<2>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      case 3: int8_rows_vnni<3>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      case 4: int8_rows_vnni<4>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      case 5: int8_rows_vnni<5>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      case 6: int8_rows_vnni<6>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      case 7: int8_rows_vnni<7>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
      default: int8_rows_vnni<8>(xr, sx + r0, w, wsum, s, b, y + r0 * N, N, K); break;
    }
  }
  delete[] q;
  delete[] sx;
}

// int4 words (GPTQ layout): the low nibbles of a word's bytes are inputs 8p + 0, 2, 4, 6 and the high ones
// 8p + 1, 3, 5, 7, so each meets a 4-byte broadcast of those activations (xe, xo) in one vpdpbusd (the
// weights 0..15 are the unsigned operand). Integer sums per group, then (sum - zero * xsum) * scale.
template <int R, int T>
VNNI static inline void int4_tile_vnni(const int32_t* __restrict xe, const int32_t* __restrict xo,
                                       const int32_t* __restrict xsum, const float* __restrict sx,
                                       const int32_t* __restrict qw, const uint8_t* __restrict z,
                                       const void* __restrict s, bool s32, float* __restrict y, int64_t n0,
                                       int64_t N, int64_t K, int64_t gs, int64_t g) {
  const int64_t G = K / gs, P = K / 8;
  const __m512i lo = _mm512_set1_epi32(0x0F0F0F0F);
  __m512i acc[R][T];
  for (int r = 0; r < R; ++r) for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
  for (int64_t p = g * gs / 8; p < (g + 1) * gs / 8; ++p) {
    for (int t = 0; t < T; ++t) {
      __m512i wv = _mm512_loadu_si512((const void*)(qw + p * N + n0 + 16 * t));
      __m512i we = _mm512_and_si512(wv, lo), wo = _mm512_and_si512(_mm512_srli_epi32(wv, 4), lo);
      for (int r = 0; r < R; ++r) {
        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], we, _mm512_set1_epi32(xe[r * P + p]));
        acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], wo, _mm512_set1_epi32(xo[r * P + p]));
      }
    }
  }
  for (int t = 0; t < T; ++t) {
    const int64_t o = g * N + n0 + 16 * t;
    __m512 sv = s32 ? _mm512_loadu_ps((const float*)s + o)
                    : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)((const uint16_t*)s + o)));
    __m512i zv = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(z + o)));
    for (int r = 0; r < R; ++r) {
      float* yp = y + r * N + n0 + 16 * t;
      __m512i d = _mm512_sub_epi32(acc[r][t], _mm512_mullo_epi32(zv, _mm512_set1_epi32(xsum[r * G + g])));
      __m512 scale = _mm512_mul_ps(sv, _mm512_set1_ps(sx[r]));
      _mm512_storeu_ps(yp, _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(d), _mm512_loadu_ps(yp)));
    }
  }
}

template <int R, int T>
VNNI static void int4_rows_vnni(const int32_t* xe, const int32_t* xo, const int32_t* xsum, const float* sx,
                                const int32_t* qw, const uint8_t* z, const void* s, bool s32, const float* b,
                                float* y, int64_t N, int64_t K, int64_t gs) {
  const int64_t wide = N / (16 * T), narrow = (N - wide * 16 * T) / 16;
  init_bias(y, b, R, N);
  over_tiles(wide + narrow, K / gs, [&](int64_t i, int64_t g) {
    if (i < wide) int4_tile_vnni<R, T>(xe, xo, xsum, sx, qw, z, s, s32, y, i * 16 * T, N, K, gs, g);
    else int4_tile_vnni<R, 1>(xe, xo, xsum, sx, qw, z, s, s32, y, wide * 16 * T + (i - wide) * 16, N, K, gs, g);
  });
}

extern "C" VNNI void int4_rows_linear_vnni(const float* x, const int32_t* qw, const uint8_t* z, const void* s,
                                           int64_t s32, const float* b, float* y, int64_t R, int64_t N, int64_t K,
                                           int64_t gs) {
  const int64_t G = K / gs, P = K / 8;
  int8_t* q = new int8_t[R * K];
  float* sx = new float[R];
  int32_t* xe = new int32_t[R * P];
  int32_t* xo = new int32_t[R * P];
  int32_t* xsum = new int32_t[R * G];
  quantize_rows(x, q, sx, R, K);
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t p = 0; p < P; ++p) {
      const uint8_t* v = (const uint8_t*)(q + r * K + 8 * p);
      xe[r * P + p] = (int32_t)(v[0] | (v[2] << 8) | (v[4] << 16) | ((uint32_t)v[6] << 24));
      xo[r * P + p] = (int32_t)(v[1] | (v[3] << 8) | (v[5] << 16) | ((uint32_t)v[7] << 24));
    }
    for (int64_t g = 0; g < G; ++g) {
      int32_t acc = 0;
      for (int64_t k = g * gs; k < (g + 1) * gs; ++k) acc += q[r * K + k];
      xsum[r * G + g] = acc;
    }
  }
  for (int64_t r0 = 0; r0 < R; r0 += 8) {
    const int64_t rr = R - r0 < 8 ? R - r0 : 8;
    const int32_t *e = xe + r0 * P, *o = xo + r0 * P, *xs = xsum + r0 * G;
    const float* sr = sx + r0;
    float* yr = y + r0 * N;
    const bool f32 = s32 != 0;
    switch (rr) {
      case 1: int4_rows_vnni<1, 4>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      case 2: int4_rows_vnni<2, 4>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      case 3: int4_rows_vnni<3, 2>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      case 4: int4_rows_vnni<4, 2>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      case 5: int4_rows_vnni<5, 2>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      case 6: int4_rows_vnni<6, 2>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      case 7: int4_rows_vnni<7, 1>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
      default: int4_rows_vnni<8, 1>(e, o, xs, sr, qw, z, s, f32, b, yr, N, K, gs); break;
    }
  }
  delete[] q; delete[] sx; delete[] xe; delete[] xo; delete[] xsum;
}
"""

# The same kernels as torch operators (``pretrained_quant::...``), for :func:`load_torch_ops`: compiled
# graphs then call them from C++ with no Python in between.
EXTENSION_SOURCE = r"""
#include <torch/library.h>
#include <ATen/ATen.h>

static std::vector<int64_t> out_shape(const at::Tensor& x, int64_t n) {
  auto s = x.sizes().vec();
  s.back() = n;
  return s;
}
static const float* opt_ptr(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }
static at::Tensor opt_contig(const std::optional<at::Tensor>& t) { return t.has_value() ? t->contiguous() : at::Tensor(); }

static at::Tensor op_int8(const at::Tensor& x, const at::Tensor& w, const at::Tensor& s,
                          const std::optional<at::Tensor>& b) {
  at::Tensor xc = x.contiguous(), bc = opt_contig(b);
  const int64_t K = x.size(-1), N = w.size(0), R = x.numel() / K;
  at::Tensor out = at::empty(out_shape(x, N), x.options());
  int8_rows_linear(xc.data_ptr<float>(), w.data_ptr<int8_t>(), s.data_ptr<float>(), opt_ptr(bc),
                   out.data_ptr<float>(), R, N, K);
  return out;
}
static at::Tensor op_int8_vnni(const at::Tensor& x, const at::Tensor& w, const at::Tensor& ws, const at::Tensor& s,
                               const std::optional<at::Tensor>& b) {
  at::Tensor xc = x.contiguous(), bc = opt_contig(b);
  const int64_t K = x.size(-1), N = w.size(0), R = x.numel() / K;
  at::Tensor out = at::empty(out_shape(x, N), x.options());
  int8_rows_linear_vnni(xc.data_ptr<float>(), w.data_ptr<int8_t>(), ws.data_ptr<int32_t>(), s.data_ptr<float>(),
                        opt_ptr(bc), out.data_ptr<float>(), R, N, K);
  return out;
}
template <bool V>
static at::Tensor op_int4(const at::Tensor& x, const at::Tensor& qw, const at::Tensor& z, const at::Tensor& s,
                          int64_t gs, const std::optional<at::Tensor>& b) {
  at::Tensor xc = x.contiguous(), bc = opt_contig(b);
  const int64_t K = x.size(-1), N = qw.size(1), R = x.numel() / K;
  at::Tensor out = at::empty(out_shape(x, N), x.options());
  auto fn = V ? int4_rows_linear_vnni : int4_rows_linear;
  fn(xc.data_ptr<float>(), qw.data_ptr<int32_t>(), z.data_ptr<uint8_t>(), s.data_ptr(),
     s.scalar_type() == at::kFloat ? 1 : 0, opt_ptr(bc), out.data_ptr<float>(), R, N, K, gs);
  return out;
}

TORCH_LIBRARY(pretrained_quant, m) {
  m.def("int8_rows_linear(Tensor x, Tensor weight, Tensor scale, Tensor? bias) -> Tensor");
  m.def("int4_rows_linear(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, Tensor? bias) -> Tensor");
  m.def("int8_rows_linear_vnni(Tensor x, Tensor weight, Tensor weight_sums, Tensor scale, Tensor? bias) -> Tensor");
  m.def("int4_rows_linear_vnni(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, Tensor? bias) -> Tensor");
}
TORCH_LIBRARY_IMPL(pretrained_quant, CPU, m) {
  m.impl("int8_rows_linear", &op_int8);
  m.impl("int4_rows_linear", &op_int4<false>);
  m.impl("int8_rows_linear_vnni", &op_int8_vnni);
  m.impl("int4_rows_linear_vnni", &op_int4<true>);
}
"""

# What was built once per process: "kernels" (dict of ctypes functions, or None), "ops" (bool: the
# ``pretrained::`` ops with Python bodies), "ext" (bool: the ``pretrained_quant::`` C++ operators).
_built: dict[str, Any] = {}


def load_kernels() -> dict[str, Any] | None:
    """Build the C++ kernels once (a few seconds) and return their ctypes functions, or ``None`` without
    AVX-512 or a working C++ toolchain. Must run before ``torch.compile`` traces a step that should use them."""
    if "kernels" not in _built:
        _built["kernels"] = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            try:
                from torch._inductor.codecache import CppCodeCache

                # the VNNI functions carry their own target attribute: the rest runs on any AVX-512 CPU
                lib = CppCodeCache.load(KERNEL_SOURCE, extra_flags=("-mavx512f", "-mavx512bw", "-mfma", "-O3"))
                int4_args = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 4
                signatures = {"int8": ("int8_rows_linear", [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 3),
                              "int4": ("int4_rows_linear", int4_args)}  # fmt: skip
                if _cpu_has_vnni():
                    signatures["int8_vnni"] = ("int8_rows_linear_vnni", [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 3)
                    signatures["int4_vnni"] = ("int4_rows_linear_vnni", int4_args)
                found = {}
                for key, (symbol, argtypes) in signatures.items():
                    fn = getattr(lib, symbol)
                    fn.restype, fn.argtypes = None, argtypes
                    found[key] = fn
                _built["kernels"] = found
            except Exception:  # noqa: BLE001 - no compiler, an old torch...: the PyTorch routes remain
                pass
        _register_ops()
    return _built["kernels"]


def load_torch_ops(verbose: bool = False) -> bool:
    """Build the kernels as a torch C++ extension (``torch.utils.cpp_extension.load_inline``: minutes the
    first time on a machine, then cached) and use its operators inside compiled graphs, where the default
    ops call back into Python for every linear of every step. Returns whether they are in use. Call it
    before ``torch.compile`` traces a step."""
    if "ext" not in _built:
        _built["ext"] = False
        if load_kernels() is not None:
            try:
                from torch.utils.cpp_extension import load_inline

                flags = ["-O3", "-mavx512f", "-mavx512bw", "-mfma", "-fopenmp"]
                load_inline("pretrained_quant_kernels", cpp_sources=[KERNEL_SOURCE + EXTENSION_SOURCE],
                            is_python_module=False, extra_cflags=flags, extra_ldflags=["-fopenmp"],
                            verbose=verbose)  # fmt: skip
                _register_fakes("pretrained_quant")
                _built["ext"] = True
            except Exception:  # noqa: BLE001 - no headers, no compiler...: the Python-bodied ops remain
                if verbose:
                    raise
    return _built["ext"]


def _ops() -> Any:
    """The operators compiled graphs call: the C++ extension's when built, else ours with Python bodies."""
    return torch.ops.pretrained_quant if _built.get("ext") else torch.ops.pretrained


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _cpu_has_vnni() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " avx512_vnni" in line for line in f)
    except OSError:
        return False


def vnni_ready() -> bool:
    """Whether the VNNI kernels are built (the CPU has AVX-512 VNNI)."""
    return "int8_vnni" in (_built.get("kernels") or {})


def kernels_ready() -> bool:
    """Whether the C++ kernels are built (cheap: for per-call checks)."""
    return _built.get("kernels") is not None


def int8_weights_fit(weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether the C++ int8 kernel takes these weights (for fp32 CPU inputs)."""
    return (weight.device.type == "cpu" and weight.dtype == torch.int8 and weight.is_contiguous()
            and weight.shape[1] % 16 == 0 and scale.dtype == torch.float32 and scale.is_contiguous()
            and (bias is None or (bias.dtype == torch.float32 and bias.is_contiguous())))  # fmt: skip


def int4_weights_fit(qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                     bias: torch.Tensor | None) -> bool:  # fmt: skip
    """Whether the C++ int4 kernel takes these weights (for fp32 CPU inputs)."""
    k, n = qweight.shape[0] * 8, qweight.shape[1]
    return (qweight.device.type == "cpu" and qweight.dtype == torch.int32 and qweight.is_contiguous()
            and zeros.dtype == torch.uint8 and zeros.is_contiguous()
            and scales.dtype in (torch.float16, torch.float32) and scales.is_contiguous()
            and n % 16 == 0 and group_size % 8 == 0 and k % group_size == 0
            and (bias is None or (bias.dtype == torch.float32 and bias.is_contiguous())))  # fmt: skip


def _x_fits(x: torch.Tensor, k: int) -> bool:
    return x.dtype == torch.float32 and x.device.type == "cpu" and x.shape[-1] == k


def int8_rows_cpp(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The C++ int8 kernel, eagerly, for callers that checked :func:`kernels_ready` and the shapes."""
    fn = _built["kernels"]["int8"]
    x = x.contiguous()
    bias = None if bias is None else bias.contiguous()
    out = x.new_empty((*x.shape[:-1], weight.shape[0]))
    fn(x.data_ptr(), weight.data_ptr(), scale.contiguous().data_ptr(), _ptr(bias), out.data_ptr(),
       x.numel() // x.shape[-1], weight.shape[0], x.shape[-1])  # fmt: skip
    return out


def int4_rows_cpp(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
              bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The C++ int4 kernel, eagerly, for callers that checked :func:`kernels_ready` and the shapes."""
    fn = _built["kernels"]["int4"]
    x = x.contiguous()
    bias = None if bias is None else bias.contiguous()
    out = x.new_empty((*x.shape[:-1], qweight.shape[1]))
    fn(x.data_ptr(), qweight.data_ptr(), zeros.data_ptr(), scales.data_ptr(), int(scales.dtype == torch.float32),
       _ptr(bias), out.data_ptr(), x.numel() // x.shape[-1], qweight.shape[1], x.shape[-1], group_size)  # fmt: skip
    return out


def int8_rows_vnni(x: torch.Tensor, weight: torch.Tensor, weight_sums: torch.Tensor, scale: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The VNNI int8 kernel (activations rounded to int8 per row), eagerly; ``weight_sums`` is
    ``weight.sum(1)`` as int32. For callers that checked :func:`vnni_ready` and the shapes (in % 64)."""
    fn = _built["kernels"]["int8_vnni"]
    x = x.contiguous()
    bias = None if bias is None else bias.contiguous()
    out = x.new_empty((*x.shape[:-1], weight.shape[0]))
    fn(x.data_ptr(), weight.data_ptr(), weight_sums.data_ptr(), scale.contiguous().data_ptr(), _ptr(bias),
       out.data_ptr(), x.numel() // x.shape[-1], weight.shape[0], x.shape[-1])  # fmt: skip
    return out


def int4_rows_vnni(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor,
                   group_size: int, bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The VNNI int4 kernel (activations rounded to int8 per row), eagerly; as :func:`int4_rows_cpp`."""
    fn = _built["kernels"]["int4_vnni"]
    x = x.contiguous()
    bias = None if bias is None else bias.contiguous()
    out = x.new_empty((*x.shape[:-1], qweight.shape[1]))
    fn(x.data_ptr(), qweight.data_ptr(), zeros.data_ptr(), scales.data_ptr(), int(scales.dtype == torch.float32),
       _ptr(bias), out.data_ptr(), x.numel() // x.shape[-1], qweight.shape[1], x.shape[-1], group_size)  # fmt: skip
    return out


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """What the VNNI routes multiply by: ``x`` rounded per row to int8 steps of ``max|x| / 127`` (returned
    dequantized, fp32), for references and accuracy checks."""
    x = x.float()
    amax = x.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    step = torch.where(amax > 0, amax / 127.0, torch.zeros_like(amax))
    return torch.round(x * inv).clamp(-128, 127) * step


def _register_ops() -> None:
    """Register the custom ops compiled graphs call; their CPU bodies are the ctypes kernels.

    Registered through ``torch.library.Library`` rather than ``custom_op``: the dispatcher then calls the
    body directly, without ``custom_op``'s Python wrapping, which costs more per call than a small
    decode-step matrix-vector product."""
    if "ops" in _built or _built.get("kernels") is None:
        _built.setdefault("ops", False)
        return
    lib = torch.library.Library("pretrained", "FRAGMENT")
    lib.define("int8_rows_linear(Tensor x, Tensor weight, Tensor scale, Tensor? bias) -> Tensor")
    lib.define("int4_rows_linear(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, "
               "Tensor? bias) -> Tensor")  # fmt: skip
    lib.impl("int8_rows_linear", int8_rows_cpp, "CPU")
    lib.impl("int4_rows_linear", int4_rows_cpp, "CPU")
    lib.define("int8_rows_linear_vnni(Tensor x, Tensor weight, Tensor weight_sums, Tensor scale, Tensor? bias) -> Tensor")
    lib.define("int4_rows_linear_vnni(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, "
               "Tensor? bias) -> Tensor")  # fmt: skip
    if vnni_ready():
        lib.impl("int8_rows_linear_vnni", int8_rows_vnni, "CPU")
        lib.impl("int4_rows_linear_vnni", int4_rows_vnni, "CPU")

    _register_fakes("pretrained", lib)
    _built["library"] = lib  # the registrations live as long as this object
    _built["ops"] = True


def _register_fakes(namespace: str, lib: Any = None) -> None:
    """Output shapes of the ops, for tracing."""

    def int8_fake(x, weight, *rest):
        return x.new_empty((*x.shape[:-1], weight.shape[0]))

    def int4_fake(x, qweight, zeros, scales, group_size, bias):
        return x.new_empty((*x.shape[:-1], qweight.shape[1]))

    for name, fake in (("int8_rows_linear", int8_fake), ("int8_rows_linear_vnni", int8_fake),
                       ("int4_rows_linear", int4_fake), ("int4_rows_linear_vnni", int4_fake)):  # fmt: skip
        torch.library.register_fake(f"{namespace}::{name}", fake, lib=lib)


def _choose(route: str, rows: int, fits: bool, vnni_fits: bool = True) -> str:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if route == "auto":
        route = "cpp" if rows <= SMALL_ROWS else "dequant"
    if route == "vnni":
        # opt-in (it changes results: activations in int8); without VNNI, the exact kernel
        if fits and vnni_fits and vnni_ready() and _built.get("ops") and not torch.is_grad_enabled():
            return "vnni"
        route = "cpp"
    if route == "cpp":
        compiling = torch.compiler.is_compiling()
        built = _built.get("ops") if compiling else (_built.get("kernels") or (load_kernels() is not None))
        if not (fits and built and not torch.is_grad_enabled()):
            route = "dequant"
    return route


def int8_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                route: str = "auto", weight_sums: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``x @ (weight * scale[:, None]).T + bias`` for int8 ``weight`` ``(out, in)`` and fp32 ``scale`` ``(out,)``,
    computed in fp32 and returned in ``x``'s dtype (route ``"vnni"``: ``x`` rounded to int8 first, see
    :func:`quantize_activations`; ``weight_sums``, int32 ``weight.sum(1)``, saves a pass over the weight)."""
    rows = x.numel() // x.shape[-1]
    fits = _x_fits(x, weight.shape[1]) and int8_weights_fit(weight, scale, bias)
    route = _choose(route, rows, fits, vnni_fits=weight.shape[1] % 64 == 0)
    if route == "vnni":
        if weight_sums is None:
            weight_sums = weight.sum(1, dtype=torch.int32)
        if torch.compiler.is_compiling():
            return _ops().int8_rows_linear_vnni(x, weight, weight_sums, scale, bias)
        return int8_rows_vnni(x, weight, weight_sums, scale, bias)
    if route == "cpp":
        if torch.compiler.is_compiling():
            return _ops().int8_rows_linear(x, weight, scale, bias)
        return int8_rows_cpp(x, weight, scale, bias)
    xf = x.float()
    if route == "reduction":
        xf = torch.ops.prims.inductor_force_stride_order(xf, xf.stride()) if torch.compiler.is_compiling() else xf
        out = (xf.unsqueeze(-2) * weight.float()).sum(-1) * scale
    else:
        out = F.linear(xf, weight.float()) * scale
    return (out if bias is None else out + bias.float()).to(x.dtype)


def int4_dequantize(qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int) -> torch.Tensor:
    """The fp32 weight ``(out, in)`` of GPTQ-layout words with contiguous groups."""
    k8, n = qweight.shape
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=qweight.device)
    q = (qweight.unsqueeze(1) >> shifts.view(1, 8, 1)) & 0xF  # (in/8, 8, out)
    q = q.reshape(-1, group_size, n).float()  # (groups, group_size, out)
    w = (q - zeros.float().unsqueeze(1)) * scales.float().unsqueeze(1)
    return w.reshape(k8 * 8, n).t()


def int4_linear(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                bias: torch.Tensor | None = None, route: str = "auto") -> torch.Tensor:  # fmt: skip
    """``x @ W.T + bias`` for the int4 weight ``W = (q - zeros) * scales`` in GPTQ's word layout with contiguous
    groups (see the module docstring), computed in fp32 and returned in ``x``'s dtype (route ``"vnni"``: ``x``
    rounded to int8 first, see :func:`quantize_activations`)."""
    rows = x.numel() // x.shape[-1]
    fits = _x_fits(x, qweight.shape[0] * 8) and int4_weights_fit(qweight, zeros, scales, group_size, bias)
    route = _choose(route, rows, fits)
    if route == "vnni":
        if torch.compiler.is_compiling():
            return _ops().int4_rows_linear_vnni(x, qweight, zeros, scales, group_size, bias)
        return int4_rows_vnni(x, qweight, zeros, scales, group_size, bias)
    if route == "cpp":
        if torch.compiler.is_compiling():
            return _ops().int4_rows_linear(x, qweight, zeros, scales, group_size, bias)
        return int4_rows_cpp(x, qweight, zeros, scales, group_size, bias)
    xf = x.float()
    if route == "reduction":
        if torch.compiler.is_compiling():
            xf = torch.ops.prims.inductor_force_stride_order(xf, xf.stride())
        k8, n = qweight.shape
        groups = k8 * 8 // group_size
        shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=qweight.device)
        q = ((qweight.unsqueeze(1) >> shifts.view(1, 8, 1)) & 0xF).reshape(groups, group_size, n)
        xg = xf.reshape(-1, groups, group_size)  # (rows, groups, group_size)
        acc = (xg.unsqueeze(-1) * q.float()).sum(-2)  # (rows, groups, out): integer sums per group
        out = (scales.float() * (acc - zeros.float() * xg.sum(-1, keepdim=True))).sum(-2)
        out = out.reshape(*x.shape[:-1], n)
    else:
        out = F.linear(xf, int4_dequantize(qweight, zeros, scales, group_size))
    return (out if bias is None else out + bias.float()).to(x.dtype)

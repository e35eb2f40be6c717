"""The C++ sources of :mod:`pretrained.inference.quant_kernels`: the AVX-512 kernels (built once per machine
by ``pretrained.utils.native.load_library`` and called through ctypes) and their registration as torch operators (the same kernels built
as a torch C++ extension, called from compiled graphs with no Python in between).

Layouts and routes are described in :mod:`pretrained.inference.quant_kernels`.
"""

KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include <cstring>
#include <cmath>

// Bytes ahead of the weights being read that the int8 kernels ask the L2 cache for. Their conversions
// (int8 -> int32 -> float) leave the loads sparse enough that the hardware prefetchers alone keep too
// little in flight: single-threaded here, 8-16 KB ahead read 24 GB/s from huge pages against 10 without
// (19 at 4 KB, no gain at 1-2 KB or into L1), about what the loop does on weights already in cache. Past
// a layer's end lies the next layer's weights (packed memory keeps them in step order); prefetches
// never fault.
#define PREFETCH 8192

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
      if ((k & 63) == 0)
        for (int m = 0; m < NB; ++m) _mm_prefetch((const char*)(wr[m] + k + PREFETCH), _MM_HINT_T1);
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

#define INT4_AHEAD (gs / 8)

// A group's scales (fp16 or fp32 storage) and uint8 zero points of the 16 columns at offset o.
static inline __m512 group_scales(const void* s, bool s32, int64_t o) {
  return s32 ? _mm512_loadu_ps((const float*)s + o)
             : _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)((const uint16_t*)s + o)));
}
static inline __m512i group_zeros(const uint8_t* z, int64_t o) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(z + o)));
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
    for (int t = 0; t < T; ++t) {
      _mm_prefetch((const char*)(qw + (p + INT4_AHEAD) * N + n0 + 16 * t), _MM_HINT_T1);
      wv[t] = _mm512_loadu_si512((const void*)(qw + p * N + n0 + 16 * t));
    }
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
    __m512 sv = group_scales(s, s32, o);
    __m512 zv = _mm512_cvtepi32_ps(group_zeros(z, o));
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

// The fp32 route (CPUs without VNNI, and group sizes the digit route does not take).
extern "C" void int4_rows_linear_float(const float* x, const int32_t* qw, const uint8_t* z, const void* s,
                                       int64_t s32, const float* b, float* y, int64_t R, int64_t N, int64_t K,
                                       int64_t gs) {
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
        _mm_prefetch((const char*)(wr + k + 64 * u + PREFETCH), _MM_HINT_T1);
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
      _mm_prefetch((const char*)(qw + (p + INT4_AHEAD) * N + n0 + 16 * t), _MM_HINT_T1);
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
    __m512 sv = group_scales(s, s32, o);
    __m512i zv = group_zeros(z, o);
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

// ---- int4, exact on the integer dot-product unit: each activation as three signed 8-bit digits ----
// Per (row, group) a power of two 2^e brings the group's largest |x| into [2^22, 8355711] (8355711 =
// 127 * (1 + 256 + 65536), the most three balanced digits hold) and v = round(x * 2^e) (nearest even):
// the largest element keeps all its 24 bits but the last at most, and every element is off by at most
// 2^-(e+1), a fraction 2^-23 of the group's max: the size of the fp32 kernel's own rounding of one
// product sum of that group. v = d0 + 256 d1 + 65536 d2 with each digit in [-128, 127]; vpdpbusd
// multiplies the weights' nibbles (the unsigned operand, 0..15) by one digit plane (the signed one).
// Bounds, per output lane and group of gs inputs, with q the nibbles and z the zero point:
//   S_i = sum_k q_k d_ik: |S_i| <= 15 * 128 * gs, every partial sum too, exact in int32;
//   D_i = S_i - z * sum_k d_ik = sum_k (q_k - z) d_ik: |D_i| <= 1920 gs (|q - z| <= 15);
//   D1 * 256 + D0 fits int32 for gs <= 4096 (1920 * 257 * 4096 < 2^31), D2 converts to float exactly
//   (< 2^24); sum_k (q_k - z) v_k = D2 * 65536 + (D1 * 256 + D0) in fp32: two roundings, then * 2^-e
//   (a power of two, exact). Two digits (15-bit v) would make each activation's error 2^-16 of its
//   group's max, far above fp32 rounding (tests/inference/test_quant_int4_digits.py measures it).
#define DIGITS_MAX_GS 4096

// x (R, K) -> digit planes xd (R, 3, K) int8, each run of 8 inputs in the order 0, 2, 4, 6, 1, 3, 5, 7 (a
// word's low nibbles, then its high ones); digit sums vs (R, G, 3); 2^-e per (row, group) pw (R, G).
// gs % 16 == 0. Returns false, writing nothing useful, when some x is not finite.
VNNI static bool split_digits(const float* x, int8_t* xd, int32_t* vs, float* pw, int64_t R, int64_t K,
                              int64_t gs) {
  const int64_t G = K / gs;
  const __m128i order = _mm_setr_epi8(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t g = 0; g < G; ++g) {
      const float* xg = x + r * K + g * gs;
      __m512 m = _mm512_setzero_ps();
      __mmask16 nan = 0;
      for (int64_t k = 0; k < gs; k += 16) {
        const __m512 v = _mm512_loadu_ps(xg + k);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        m = _mm512_max_ps(m, _mm512_abs_ps(v));
      }
      const float amax = _mm512_reduce_max_ps(m);
      if (nan || !(amax <= 3.4028235e38f)) return false;
      int ex;
      std::frexp(amax, &ex);  // amax = f * 2^ex, f in [0.5, 1); 0 gives ex = 0
      int e = 23 - ex;
      if (std::nearbyint(std::ldexp((double)amax, e)) > 8355711.0) --e;
      // 2^e stays a float and 2^-e an exact (subnormal) one: groups whose |x| are all below 2^-104
      // keep steps of 2^-127, near fp32's own subnormal spacing (2^-149)
      if (e > 127) e = 127;
      const __m512 up = _mm512_set1_ps(std::ldexp(1.0f, e));
      pw[r * G + g] = std::ldexp(1.0f, -e);
      __m512i sum[3] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int64_t k = 0; k < gs; k += 16) {
        const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xg + k), up));
        __m512i d[3];
        d[0] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24);  // the low byte, signed
        const __m512i t = _mm512_srai_epi32(_mm512_sub_epi32(v, d[0]), 8);
        d[1] = _mm512_srai_epi32(_mm512_slli_epi32(t, 24), 24);
        d[2] = _mm512_srai_epi32(_mm512_sub_epi32(t, d[1]), 8);
        for (int i = 0; i < 3; ++i) {
          sum[i] = _mm512_add_epi32(sum[i], d[i]);
          _mm_storeu_si128((__m128i*)(xd + (r * 3 + i) * K + g * gs + k),
                           _mm_shuffle_epi8(_mm512_cvtepi32_epi8(d[i]), order));
        }
      }
      for (int i = 0; i < 3; ++i) vs[(r * G + g) * 3 + i] = _mm512_reduce_add_epi32(sum[i]);
    }
  return true;
}

// As int4_tile_vnni, with three digit planes (xd as int32: (R, 3, K / 8, 2), a word's even inputs then
// its odd ones) into three integer sums per output, combined per group as described above.
template <int R, int T>
VNNI static inline void int4_tile_digits(const int32_t* __restrict xd, const int32_t* __restrict vs,
                                         const float* __restrict pw, const int32_t* __restrict qw,
                                         const uint8_t* __restrict z, const void* __restrict s, bool s32,
                                         float* __restrict y, int64_t n0, int64_t N, int64_t K, int64_t gs,
                                         int64_t g) {
  const int64_t G = K / gs, P = K / 8;
  const __m512i lo = _mm512_set1_epi32(0x0F0F0F0F);
  __m512i acc[3][R][T];
  for (int i = 0; i < 3; ++i) for (int r = 0; r < R; ++r) for (int t = 0; t < T; ++t) acc[i][r][t] = _mm512_setzero_si512();
  for (int64_t p = g * gs / 8; p < (g + 1) * gs / 8; ++p) {
    for (int t = 0; t < T; ++t) {
      _mm_prefetch((const char*)(qw + (p + INT4_AHEAD) * N + n0 + 16 * t), _MM_HINT_T1);
      __m512i wv = _mm512_loadu_si512((const void*)(qw + p * N + n0 + 16 * t));
      __m512i we = _mm512_and_si512(wv, lo), wo = _mm512_and_si512(_mm512_srli_epi32(wv, 4), lo);
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < 3; ++i) {
          const int32_t* d = xd + ((r * 3 + i) * P + p) * 2;
          acc[i][r][t] = _mm512_dpbusd_epi32(acc[i][r][t], we, _mm512_set1_epi32(d[0]));
          acc[i][r][t] = _mm512_dpbusd_epi32(acc[i][r][t], wo, _mm512_set1_epi32(d[1]));
        }
    }
  }
  for (int t = 0; t < T; ++t) {
    const int64_t o = g * N + n0 + 16 * t;
    __m512 sv = group_scales(s, s32, o);
    __m512i zv = group_zeros(z, o);
    for (int r = 0; r < R; ++r) {
      const int32_t* v = vs + (r * G + g) * 3;
      __m512i d[3];
      for (int i = 0; i < 3; ++i) d[i] = _mm512_sub_epi32(acc[i][r][t], _mm512_mullo_epi32(zv, _mm512_set1_epi32(v[i])));
      const __m512i low = _mm512_add_epi32(_mm512_slli_epi32(d[1], 8), d[0]);
      __m512 f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d[2]), _mm512_set1_ps(65536.f), _mm512_cvtepi32_ps(low));
      f = _mm512_mul_ps(f, _mm512_set1_ps(pw[r * G + g]));
      float* yp = y + r * N + n0 + 16 * t;
      _mm512_storeu_ps(yp, _mm512_fmadd_ps(sv, f, _mm512_loadu_ps(yp)));
    }
  }
}

// Rows in blocks of at most RB over one tile: 3 * RB * T accumulators must stay in registers (GCC spills
// the accumulator array past about 12 vectors here); a second block rereads the tile's words from L1.
template <int R, int T, int RB>
VNNI static inline void int4_tile_digit_rows(const int32_t* xd, const int32_t* vs, const float* pw,
                                             const int32_t* qw, const uint8_t* z, const void* s, bool s32, float* y,
                                             int64_t n0, int64_t N, int64_t K, int64_t gs, int64_t g) {
  if constexpr (R <= RB) {
    int4_tile_digits<R, T>(xd, vs, pw, qw, z, s, s32, y, n0, N, K, gs, g);
  } else {
    int4_tile_digits<RB, T>(xd, vs, pw, qw, z, s, s32, y, n0, N, K, gs, g);
    const int64_t G = K / gs;
    int4_tile_digit_rows<R - RB, T, RB>(xd + RB * 3 * K / 4, vs + RB * G * 3, pw + RB * G, qw, z, s, s32,
                                        y + RB * N, n0, N, K, gs, g);
  }
}

template <int R, int T, int RB>
VNNI static void int4_rows_digits(const int32_t* xd, const int32_t* vs, const float* pw, const int32_t* qw,
                                  const uint8_t* z, const void* s, bool s32, const float* b, float* y, int64_t N,
                                  int64_t K, int64_t gs) {
  const int64_t wide = N / (16 * T), narrow = (N - wide * 16 * T) / 16;
  init_bias(y, b, R, N);
  over_tiles(wide + narrow, K / gs, [&](int64_t i, int64_t g) {
    if (i < wide) int4_tile_digit_rows<R, T, RB>(xd, vs, pw, qw, z, s, s32, y, i * 16 * T, N, K, gs, g);
    else int4_tile_digit_rows<R, 1, RB>(xd, vs, pw, qw, z, s, s32, y, wide * 16 * T + (i - wide) * 16, N, K, gs, g);
  });
}

// Returns false (y untouched) when some x is not finite: the fp32 kernel then gives IEEE's infinities/NaNs.
VNNI static bool int4_digits(const float* x, const int32_t* qw, const uint8_t* z, const void* s, int64_t s32,
                             const float* b, float* y, int64_t R, int64_t N, int64_t K, int64_t gs) {
  const int64_t G = K / gs, P = K / 8;
  int8_t* xd = new int8_t[R * 3 * K];
  int32_t* vs = new int32_t[R * G * 3];
  float* pw = new float[R * G];
  const bool ok = split_digits(x, xd, vs, pw, R, K, gs);
  for (int64_t r0 = 0; ok && r0 < R; r0 += 8) {
    const int64_t rr = R - r0 < 8 ? R - r0 : 8;
    const int32_t* d = (const int32_t*)xd + r0 * 3 * P * 2;
    const int32_t* v = vs + r0 * G * 3;
    const float* w = pw + r0 * G;
    float* yr = y + r0 * N;
    const bool f32 = s32 != 0;
    switch (rr) {
      case 1: int4_rows_digits<1, 4, 1>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      case 2: int4_rows_digits<2, 2, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      case 3: int4_rows_digits<3, 1, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      case 4: int4_rows_digits<4, 1, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      case 5: int4_rows_digits<5, 1, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      case 6: int4_rows_digits<6, 1, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      case 7: int4_rows_digits<7, 1, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
      default: int4_rows_digits<8, 1, 4>(d, v, w, qw, z, s, f32, b, yr, N, K, gs); break;
    }
  }
  delete[] xd; delete[] vs; delete[] pw;
  return ok;
}

// The exact int4 route: the digit kernel where the CPU has VNNI and the group size fits, else fp32.
extern "C" void int4_rows_linear(const float* x, const int32_t* qw, const uint8_t* z, const void* s, int64_t s32,
                                 const float* b, float* y, int64_t R, int64_t N, int64_t K, int64_t gs) {
  static const bool vnni = __builtin_cpu_supports("avx512vnni");
  if (vnni && gs % 16 == 0 && gs <= DIGITS_MAX_GS && int4_digits(x, qw, z, s, s32, b, y, R, N, K, gs)) return;
  int4_rows_linear_float(x, qw, z, s, s32, b, y, R, N, K, gs);
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
  at::Tensor xc = x.contiguous(), sc = s.contiguous(), bc = opt_contig(b);
  const int64_t K = x.size(-1), N = w.size(0), R = x.numel() / K;
  at::Tensor out = at::empty(out_shape(x, N), x.options());
  int8_rows_linear(xc.data_ptr<float>(), w.data_ptr<int8_t>(), sc.data_ptr<float>(), opt_ptr(bc),
                   out.data_ptr<float>(), R, N, K);
  return out;
}
static at::Tensor op_int8_vnni(const at::Tensor& x, const at::Tensor& w, const at::Tensor& ws, const at::Tensor& s,
                               const std::optional<at::Tensor>& b) {
  at::Tensor xc = x.contiguous(), sc = s.contiguous(), bc = opt_contig(b);
  const int64_t K = x.size(-1), N = w.size(0), R = x.numel() / K;
  at::Tensor out = at::empty(out_shape(x, N), x.options());
  int8_rows_linear_vnni(xc.data_ptr<float>(), w.data_ptr<int8_t>(), ws.data_ptr<int32_t>(), sc.data_ptr<float>(),
                        opt_ptr(bc), out.data_ptr<float>(), R, N, K);
  return out;
}
// V: 0 the exact route (digits on VNNI CPUs), 1 the int8-activation VNNI route, 2 the fp32 kernel
template <int V>
static at::Tensor op_int4(const at::Tensor& x, const at::Tensor& qw, const at::Tensor& z, const at::Tensor& s,
                          int64_t gs, const std::optional<at::Tensor>& b) {
  at::Tensor xc = x.contiguous(), bc = opt_contig(b);
  const int64_t K = x.size(-1), N = qw.size(1), R = x.numel() / K;
  at::Tensor out = at::empty(out_shape(x, N), x.options());
  auto fn = V == 1 ? int4_rows_linear_vnni : (V == 2 ? int4_rows_linear_float : int4_rows_linear);
  fn(xc.data_ptr<float>(), qw.data_ptr<int32_t>(), z.data_ptr<uint8_t>(), s.data_ptr(),
     s.scalar_type() == at::kFloat ? 1 : 0, opt_ptr(bc), out.data_ptr<float>(), R, N, K, gs);
  return out;
}

TORCH_LIBRARY(pretrained_quant, m) {
  m.def("int8_rows_linear(Tensor x, Tensor weight, Tensor scale, Tensor? bias) -> Tensor");
  m.def("int4_rows_linear(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, Tensor? bias) -> Tensor");
  m.def("int8_rows_linear_vnni(Tensor x, Tensor weight, Tensor weight_sums, Tensor scale, Tensor? bias) -> Tensor");
  m.def("int4_rows_linear_vnni(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, Tensor? bias) -> Tensor");
  m.def("int4_rows_linear_float(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, Tensor? bias) -> Tensor");
}
TORCH_LIBRARY_IMPL(pretrained_quant, CPU, m) {
  m.impl("int8_rows_linear", &op_int8);
  m.impl("int4_rows_linear", &op_int4<0>);
  m.impl("int8_rows_linear_vnni", &op_int8_vnni);
  m.impl("int4_rows_linear_vnni", &op_int4<1>);
  m.impl("int4_rows_linear_float", &op_int4<2>);
}
"""

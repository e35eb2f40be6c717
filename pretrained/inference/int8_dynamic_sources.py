"""The C++ source of :mod:`pretrained.inference.int8_dynamic`: the two passes around the integer matrix
product (rounding the activations to int8 per row; scaling the int32 sums back to floats) and the
self-attention kernel, AVX-512, built once per machine by ``pretrained.utils.native.load_library`` and called
through ctypes.

Both passes reproduce torchao's ``Int8DynamicActivationInt8WeightConfig`` arithmetic operation for
operation (see the module docstring of ``int8_dynamic``): the integer sums are exact, and every float
operation is the one torchao does, in the same order, so fp32 results match torchao's to the last bit.
"""

from pretrained.inference.simd_source import AVX512_HELPERS

KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <vector>

// bfloat16 rounding (to nearest, ties to even) of float lanes, kept as float bit patterns.
static inline __m512i bf16_round_bits(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  return _mm512_and_si512(u, _mm512_set1_epi32((int)0xffff0000u));
}

static inline float bf16_round(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

""" + AVX512_HELPERS + r"""

static inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
static inline __m512 load16(const uint16_t* p, __mmask16 m) {
  __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

// Row m of x (M x K, fp32 or bf16 bits) -> q[m] = round(x * (1 / s)) + 128 as uint8 (the int8 value
// shifted for vpdpbusd's unsigned operand), s = max|x[m]| / 127.5 (rounded to bf16 first for bf16
// input, as torchao computes it in the input's dtype), at least eps.
template <typename T>
static void quantize_rows(const T* x, uint8_t* q, float* scales, int64_t M, int64_t K, float eps, bool bf16,
                          int threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t m = 0; m < M; ++m) {
    const T* xr = x + m * K;
    const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    __m512 mx = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) mx = _mm512_max_ps(mx, _mm512_and_ps(load16(xr + k, tail_mask(K - k)), absmask));
    float s = _mm512_reduce_max_ps(mx) / 127.5f;
    if (bf16) s = bf16_round(s);
    if (s < eps) s = eps;
    scales[m] = s;
    const __m512 inv = _mm512_set1_ps(1.0f / s);
    const __m512 lo = _mm512_set1_ps(-128.f), hi = _mm512_set1_ps(127.f), shift = _mm512_set1_ps(128.f);
    uint8_t* qr = q + m * K;
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 msk = tail_mask(K - k);
      __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(load16(xr + k, msk), inv),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm512_add_ps(_mm512_min_ps(_mm512_max_ps(v, lo), hi), shift);
      _mm_mask_storeu_epi8(qr + k, msk, _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(v)));
    }
  }
}

extern "C" void int8_quantize_rows_f32(const float* x, uint8_t* q, float* s, int64_t M, int64_t K, float eps,
                                       int threads) {
  quantize_rows(x, q, s, M, K, eps, false, threads);
}

extern "C" void int8_quantize_rows_bf16(const uint16_t* x, uint8_t* q, float* s, int64_t M, int64_t K, float eps,
                                        int threads) {
  quantize_rows(x, q, s, M, K, eps, true, threads);
}

// y[m, n] = float(acc[m, n] - shift[n]) * xs[m] * ws[n] + b[n], with shift[n] = 128 * sum_k w[n, k] (the
// uint8 offset of the activations). bf16 output: the row-scaled product is rounded to bf16 before the
// weight scale, and the result once more, as torchao does.
extern "C" void int8_scale_rows(const int32_t* acc, const int32_t* shift, const float* xs, const float* ws,
                                const float* b, void* y, int64_t M, int64_t N, int bf16_out, int threads) {
  #pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t m = 0; m < M; ++m) {
    const int32_t* ar = acc + m * N;
    const __m512 xv = _mm512_set1_ps(xs[m]);
    for (int64_t n = 0; n < N; n += 16) {
      const __mmask16 msk = tail_mask(N - n);
      __m512i a = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(msk, ar + n), _mm512_maskz_loadu_epi32(msk, shift + n));
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(a), xv);
      if (bf16_out) v = _mm512_castsi512_ps(bf16_round_bits(v));
      v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(msk, ws + n));
      if (b) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(msk, b + n));
      if (bf16_out) {
        __m512i u = _mm512_srli_epi32(bf16_round_bits(v), 16);
        _mm256_mask_storeu_epi16((uint16_t*)y + m * N + n, msk, _mm512_cvtepi32_epi16(u));
      } else {
        _mm512_mask_storeu_ps((float*)y + m * N + n, msk, v);
      }
    }
  }
}

static inline __m512 exp512(__m512 x) {
  // exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2]; degree-6 polynomial (rel. error ~2e-7)
  const __m512 lo = _mm512_set1_ps(-80.0f);  // keeps results normal (denormals are slow)
  x = _mm512_max_ps(x, lo);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

static inline float to_f(float v) { return v; }
static inline float to_f(uint16_t v) {
  uint32_t u = (uint32_t)v << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// acc[r] = sum over k < n of a[r * lda + k] * b[k * ldb .. k * ldb + 15]: R rows of a against a 16-column
// panel of b, R independent FMA chains sharing each load of b (the scores and the weighted V both take it).
template <int R>
static inline void rows_times_panel(__m512 (&acc)[R], const float* a, int64_t lda, const float* b, int64_t ldb,
                                    int64_t n) {
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < n; ++k) {
    const __m512 bv = _mm512_loadu_ps(b + k * ldb);
    for (int r = 0; r < R; ++r) acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(a[r * lda + k]), bv, acc[r]);
  }
}

// Self-attention of one sequence length: q, k, v (B, H, S, D) with strides (sb, sh, ss, 1) each, D % 16 == 0;
// out (B, S, H, D) contiguous; keys j of batch b attended where mask[b * S + j] != 0 (all when mask is null).
// Per (batch, head): K transposed and V in fp32 scratch (L1/L2-sized), then 4 query rows at a time (four
// independent FMA chains share each load of K and V): scores, softmax (exp by polynomial), weighted V.
template <typename T>
static void attend(const T* q, const T* k, const T* v, int64_t qsb, int64_t qsh, int64_t qss, int64_t ksb, int64_t ksh,
                   int64_t kss, int64_t vsb, int64_t vsh, int64_t vss, const uint8_t* mask, T* out, int64_t B,
                   int64_t H, int64_t S, int64_t D, float scale, int threads) {
  const int64_t SP = (S + 15) / 16 * 16;
  #pragma omp parallel num_threads(threads)
  {
    std::vector<float> kt(D * SP), vf(S * D), qf(4 * D), sc(4 * SP);
    #pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const T* kb = k + b * ksb + h * ksh;
      const T* vb = v + b * vsb + h * vsh;
      const T* qb = q + b * qsb + h * qsh;
      for (int64_t j = 0; j < S; ++j)
        for (int64_t d = 0; d < D; ++d) { kt[d * SP + j] = to_f(kb[j * kss + d]); vf[j * D + d] = to_f(vb[j * vss + d]); }
      for (int64_t d = 0; d < D; ++d) for (int64_t j = S; j < SP; ++j) kt[d * SP + j] = 0.f;
      constexpr int R = 4;  // query rows at a time: independent FMA chains, one load of K / V for all
      for (int64_t i0 = 0; i0 < S; i0 += R) {
        const int rr = S - i0 < R ? (int)(S - i0) : R;
        for (int r = 0; r < R; ++r)
          for (int64_t d = 0; d < D; ++d) qf[r * D + d] = r < rr ? to_f(qb[(i0 + r) * qss + d]) * scale : 0.f;
        __m512 mx[R];
        for (int r = 0; r < R; ++r) mx[r] = _mm512_set1_ps(-INFINITY);
        for (int64_t j = 0; j < SP; j += 16) {
          __m512 acc[R];
          rows_times_panel(acc, qf.data(), D, kt.data() + j, SP, D);  // scores of keys j .. j + 15
          __mmask16 keep = S - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (S - j)) - 1);
          if (mask) keep &= _mm_cmpneq_epi8_mask(_mm_maskz_loadu_epi8(keep, mask + b * S + j), _mm_setzero_si128());
          for (int r = 0; r < R; ++r) {
            acc[r] = _mm512_mask_blend_ps(keep, _mm512_set1_ps(-INFINITY), acc[r]);
            _mm512_storeu_ps(&sc[r * SP + j], acc[r]);
            mx[r] = _mm512_max_ps(mx[r], acc[r]);
          }
        }
        float inv[R];
        for (int r = 0; r < R; ++r) {
          const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx[r]));
          __m512 sum = _mm512_setzero_ps();
          for (int64_t j = 0; j < SP; j += 16) {
            __m512 s = _mm512_loadu_ps(&sc[r * SP + j]);
            __m512 e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ),
                                           exp512(_mm512_sub_ps(s, m)));
            _mm512_storeu_ps(&sc[r * SP + j], e);
            sum = _mm512_add_ps(sum, e);
          }
          inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
        }
        for (int64_t d0 = 0; d0 < D; d0 += 16) {
          __m512 acc[R];
          rows_times_panel(acc, sc.data(), SP, vf.data() + d0, D, S);  // weighted V, columns d0 .. d0 + 15
          for (int r = 0; r < rr; ++r) {
            __m512 o16 = _mm512_mul_ps(acc[r], _mm512_set1_ps(inv[r]));
            T* o = out + ((b * S + i0 + r) * H + h) * D + d0;
            if constexpr (sizeof(T) == 4) {
              _mm512_storeu_ps((float*)o, o16);
            } else {
              __m512i u = _mm512_srli_epi32(bf16_round_bits(o16), 16);
              _mm256_storeu_si256((__m256i*)o, _mm512_cvtepi32_epi16(u));
            }
          }
        }
      }
    }
  }
}

extern "C" void int8_attend_f32(const float* q, const float* k, const float* v, int64_t qsb, int64_t qsh, int64_t qss,
                           int64_t ksb, int64_t ksh, int64_t kss, int64_t vsb, int64_t vsh, int64_t vss,
                           const uint8_t* mask, float* out, int64_t B, int64_t H, int64_t S, int64_t D, float scale,
                           int threads) {
  attend(q, k, v, qsb, qsh, qss, ksb, ksh, kss, vsb, vsh, vss, mask, out, B, H, S, D, scale, threads);
}
extern "C" void int8_attend_bf16(const uint16_t* q, const uint16_t* k, const uint16_t* v, int64_t qsb, int64_t qsh, int64_t qss,
                            int64_t ksb, int64_t ksh, int64_t kss, int64_t vsb, int64_t vsh, int64_t vss,
                            const uint8_t* mask, uint16_t* out, int64_t B, int64_t H, int64_t S, int64_t D, float scale,
                            int threads) {
  attend(q, k, v, qsb, qsh, qss, ksb, ksh, kss, vsb, vsh, vss, mask, out, B, H, S, D, scale, threads);
}
"""

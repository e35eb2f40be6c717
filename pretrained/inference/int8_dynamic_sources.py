"""The C++ source of :mod:`pretrained.inference.int8_dynamic`: the two passes around the integer matrix
product (rounding the activations to int8 per row; scaling the int32 sums back to floats), AVX-512, built
with inductor's C++ toolchain and called through ctypes.

Both passes reproduce torchao's ``Int8DynamicActivationInt8WeightConfig`` arithmetic operation for
operation (see the module docstring of ``int8_dynamic``), so results match torchao's own layers up to the
order of float additions, which here there are none of: they match to the last bit but for the int32 to
float conversion of very large sums, done the same way on both sides.
"""

KERNEL_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include <cstring>

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

static inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

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
"""

"""C++ source of the unmasked many-query attention kernel (:mod:`pretrained.inference.encoder_attention`).

Built with ``-ffp-contract=off`` like the other kernels; the products and sums are fused multiply-adds
written out (``_mm512_fmadd_ps``), so only the order of summation differs from PyTorch's kernels.
"""

from pretrained.inference.simd_source import AVX512_HELPERS

ENCODER_ATTENTION_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

""" + AVX512_HELPERS + r"""
constexpr int QB = 24;    // query rows per block (a multiple of every value-pass tile height below)
constexpr int SR = 8;     // score tile: 8 query rows x 48 key columns (24 accumulators)
constexpr int SC = 48;

// scores[r][c0 .. c0 + 48) = sum_k q[r][k] kt[k][c0 ..] for 8 rows of the (scaled) query block
static inline void score_tile(const float* qp, int64_t D, const float* kt, int64_t ld, float* p, int64_t lp) {
  __m512 acc[SR][3];
  #pragma GCC unroll 8
  for (int r = 0; r < SR; ++r) {
    acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); acc[r][2] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < D; ++k) {
    const float* row = kt + k * ld;
    const __m512 b0 = _mm512_loadu_ps(row), b1 = _mm512_loadu_ps(row + 16), b2 = _mm512_loadu_ps(row + 32);
    #pragma GCC unroll 8
    for (int r = 0; r < SR; ++r) {
      const __m512 a = _mm512_set1_ps(qp[r * D + k]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
      acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < SR; ++r) {
    _mm512_storeu_ps(p + r * lp, acc[r][0]);
    _mm512_storeu_ps(p + r * lp + 16, acc[r][1]);
    _mm512_storeu_ps(p + r * lp + 32, acc[r][2]);
  }
}

// out rows (R of them, NC * 16 columns) = sum_t p[r][t] v[t] over t < S, times inv[r]
template <int R, int NC>
static inline void value_tile(const float* p, int64_t lp, const float* v, int64_t v_s, int64_t S, const float* inv,
                              float* out, int64_t o_s, int64_t rows) {
  __m512 acc[R][NC];
  #pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    #pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t t = 0; t < S; ++t) {
    const float* vt = v + t * v_s;
    __m512 b[NC];
    #pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) b[c] = _mm512_loadu_ps(vt + 16 * c);
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(p[r * lp + t]);
      #pragma GCC unroll 8
      for (int c = 0; c < NC; ++c) acc[r][c] = _mm512_fmadd_ps(a, b[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R && r < rows; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
    #pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) _mm512_storeu_ps(out + r * o_s + 16 * c, _mm512_mul_ps(acc[r][c], scale));
  }
}

template <int NC>
static void attend_item(const float* q, int64_t q_s, const float* k, int64_t k_s, const float* v, int64_t v_s,
                        float* out, int64_t o_s, int64_t S, float scale, float* kt, float* p, float* qp) {
  constexpr int64_t D = 16 * NC;
  constexpr int RV = NC >= 8 ? 3 : NC >= 5 ? 4 : NC >= 4 ? 6 : 8;  // value tile rows: at most 24 accumulators
  const int64_t Sp = (S + SC - 1) / SC * SC;
  const int64_t lp = Sp + 16;  // row stride of the score block (not a multiple of 4 KB pages apart)
  for (int64_t t = 0; t < S; ++t)
    for (int64_t i = 0; i < D; ++i) kt[i * Sp + t] = k[t * k_s + i];
  for (int64_t i = 0; i < D; ++i)
    for (int64_t t = S; t < Sp; ++t) kt[i * Sp + t] = 0.0f;
  float inv[QB];
  for (int64_t r0 = 0; r0 < S; r0 += QB) {
    const int64_t rows = S - r0 < QB ? S - r0 : QB;
    for (int64_t r = 0; r < QB; ++r)
      for (int64_t i = 0; i < D; ++i) qp[r * D + i] = r < rows ? q[(r0 + r) * q_s + i] * scale : 0.0f;
    for (int64_t r = 0; r < rows; r += SR)
      for (int64_t c = 0; c < Sp; c += SC) score_tile(qp + r * D, D, kt + c, Sp, p + r * lp + c, lp);
    for (int64_t r = 0; r < rows; ++r) {
      float* pr = p + r * lp;
      __m512 most = _mm512_set1_ps(-INFINITY);
      int64_t t = 0;
      for (; t + 16 <= S; t += 16) most = _mm512_max_ps(most, _mm512_loadu_ps(pr + t));
      const __mmask16 tail = (__mmask16)((1u << (S - t)) - 1);
      most = _mm512_mask_max_ps(most, tail, most, _mm512_maskz_loadu_ps(tail, pr + t));
      const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(most));
      __m512 total = _mm512_setzero_ps();
      for (t = 0; t + 16 <= S; t += 16) {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(pr + t), top));
        _mm512_storeu_ps(pr + t, e);
        total = _mm512_add_ps(total, e);
      }
      if (tail) {
        const __m512 e = _mm512_maskz_mov_ps(tail, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, pr + t), top)));
        _mm512_mask_storeu_ps(pr + t, tail, e);
        total = _mm512_add_ps(total, e);
      }
      inv[r] = 1.0f / _mm512_reduce_add_ps(total);
    }
    for (int64_t r = 0; r < rows; r += RV)
      value_tile<RV, NC>(p + r * lp, lp, v, v_s, S, inv + r, out + (r0 + r) * o_s, o_s, rows - r);
  }
}

// softmax(q k^T * scale) v for B x H items of S queries and S keys / values of D values each (no mask);
// q / k / v / out rows at the given (batch, head, position) strides, the last dimension contiguous.
// D must be a multiple of 16 up to 128. Returns 0, or -1 for a head size it does not serve.
extern "C" int64_t encoder_attention(const float* q, const float* k, const float* v, float* out, const int64_t* strides,
                                     int64_t B, int64_t H, int64_t S, int64_t D, float scale, int64_t threads) {
  if (D % 16 || D > 128 || D <= 0) return -1;
  const int64_t q_b = strides[0], q_h = strides[1], q_s = strides[2];
  const int64_t k_b = strides[3], k_h = strides[4], k_s = strides[5];
  const int64_t v_b = strides[6], v_h = strides[7], v_s = strides[8];
  const int64_t o_b = strides[9], o_h = strides[10], o_s = strides[11];
  const int64_t Sp = (S + SC - 1) / SC * SC;
  #pragma omp parallel num_threads(threads)
  {
    std::vector<float> kt(D * Sp), p(QB * (Sp + 16)), qp(QB * D);
    #pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < B * H; ++item) {
      const int64_t b = item / H, h = item % H;
      const float* qi = q + b * q_b + h * q_h;
      const float* ki = k + b * k_b + h * k_h;
      const float* vi = v + b * v_b + h * v_h;
      float* oi = out + b * o_b + h * o_h;
      switch (D / 16) {
        case 1: attend_item<1>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        case 2: attend_item<2>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        case 3: attend_item<3>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        case 4: attend_item<4>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        case 5: attend_item<5>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        case 6: attend_item<6>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        case 7: attend_item<7>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
        default: attend_item<8>(qi, q_s, ki, k_s, vi, v_s, oi, o_s, S, scale, kt.data(), p.data(), qp.data()); break;
      }
    }
  }
  return 0;
}
"""

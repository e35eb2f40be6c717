"""C++ source of the fused fp32 operations of eager decode steps (:mod:`pretrained.inference.decode_ops`).

Built with ``-ffp-contract=off``: every product and sum is rounded as PyTorch's own kernels round it
(the RMSNorm and rotary formulas), so only summation orders differ.
"""

from pretrained.inference.simd_source import AVX512_HELPERS

DECODE_OPS_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <cmath>
#include <cstdint>
#include <vector>

""" + AVX512_HELPERS + r"""
static inline float sum_squares(const float* x, int64_t n) {
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int u = 0; u < 4; ++u) {
      const __m512 v = _mm512_loadu_ps(x + i + 16 * u);
      acc[u] = _mm512_add_ps(acc[u], _mm512_mul_ps(v, v));
    }
  for (; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    acc[0] = _mm512_add_ps(acc[0], _mm512_mul_ps(v, v));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// y[r] = (x[r] * rsqrt(mean(x[r]^2) + eps)) * w, as torch's rms_norm rounds it; with `add`, x[r] is first
// replaced by x[r] + add[r], which is also written to `sum` (the residual stream of the next block).
extern "C" void rms_norm_rows(const float* x, int64_t x_row, const float* add, int64_t add_row, float* sum,
                              const float* w, float* y, int64_t R, int64_t N, float eps) {
  for (int64_t r = 0; r < R; ++r) {
    const float* xr = x + r * x_row;
    if (add) {
      const float* ar = add + r * add_row;
      float* sr = sum + r * N;
      for (int64_t i = 0; i < N; i += 16) {
        const __mmask16 m = tail_mask(N - i);
        _mm512_mask_storeu_ps(sr + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, xr + i),
                                                       _mm512_maskz_loadu_ps(m, ar + i)));
      }
      xr = sr;
    }
    const float mean = sum_squares(xr, N) / (float)N;
    const __m512 scale = _mm512_set1_ps(1.0f / std::sqrt(mean + eps));
    float* yr = y + r * N;
    for (int64_t i = 0; i < N; i += 16) {
      const __mmask16 m = tail_mask(N - i);
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + i), scale);
      _mm512_mask_storeu_ps(yr + i, m, w ? _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)) : v);
    }
  }
}

// y[r] = silu(gate[r]) * up[r], silu(g) = g / (1 + e^-g): the gated MLP's middle.
extern "C" void silu_mul_rows(const float* gate, int64_t gate_row, const float* up, int64_t up_row, float* y,
                              int64_t R, int64_t N) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < N; i += 16) {
      const __mmask16 m = tail_mask(N - i);
      const __m512 g = _mm512_maskz_loadu_ps(m, gate + r * gate_row + i);
      const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
      _mm512_mask_storeu_ps(y + r * N + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + r * up_row + i)));
    }
}

// x * cos + roll(x, D / 2) * signed_sin (the sign of rotate_half folded into the table), as
// pretrained.modeling.rotary.apply_rotary_tables rounds it.
static inline void rotate(const float* x, const float* c, const float* s, float* out, int64_t D) {
  const int64_t half = D / 2;
  for (int64_t i = 0; i < D; ++i) {
    const float a = x[i] * c[i];
    const float b = x[i < half ? i + half : i - half] * s[i];
    out[i] = a + b;
  }
}

// Attention of G query heads (rows of D values, one after another at `qs`) to slots [0, kv_len) of one
// key/value head (slot t at keys / values + t * c_seq), skipping slots whose boolean mask entry is false; the
// G output rows go one after another to `out`. `scores` holds G * kv_len floats.
static void attend_item(const float* qs, int64_t G, const float* keys, const float* values, int64_t c_seq,
                        int64_t kv_len, const bool* mr, float scale, float* out, int64_t D, float* scores) {
  std::vector<float> top(G, -INFINITY);
  for (int64_t t = 0; t < kv_len; ++t) {
    const float* kt = keys + t * c_seq;
    for (int64_t j = 0; j < G; ++j) {
      float score = -INFINITY;
      if (!mr || mr[t]) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < D; i += 16) {
          const __mmask16 m = tail_mask(D - i);
          acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, qs + j * D + i), _mm512_maskz_loadu_ps(m, kt + i), acc);
        }
        score = _mm512_reduce_add_ps(acc) * scale;
        if (score > top[j]) top[j] = score;
      }
      scores[j * kv_len + t] = score;
    }
  }
  for (int64_t j = 0; j < G; ++j) {
    float* sj = scores + j * kv_len;
    const __m512 most = _mm512_set1_ps(top[j]);
    __m512 total = _mm512_setzero_ps();
    for (int64_t t = 0; t < kv_len; t += 16) {
      const __mmask16 m = tail_mask(kv_len - t);
      const __m512 st = _mm512_maskz_loadu_ps(m, sj + t);
      // masked slots (score -inf) weigh exactly 0
      const __mmask16 live = m & _mm512_cmp_ps_mask(st, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
      const __m512 e = _mm512_maskz_mov_ps(live, exp16(_mm512_sub_ps(st, most)));
      _mm512_mask_storeu_ps(sj + t, m, e);
      total = _mm512_add_ps(total, e);
    }
    // every slot masked out: zeros, as SDPA gives
    const float sum = _mm512_reduce_add_ps(total);
    const __m512 inv = _mm512_set1_ps(sum > 0.0f ? 1.0f / sum : 0.0f);
    float* oj = out + j * D;
    // The weighted sum of values, 128 columns at a time so each value row is read once (each output
    // element still sums the slots in order).
    for (int64_t i0 = 0; i0 < D; i0 += 128) {
      __m512 acc[8];
      #pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) acc[c] = _mm512_setzero_ps();
      for (int64_t t = 0; t < kv_len; ++t) {
        const __m512 w = _mm512_set1_ps(sj[t]);
        const float* vt = values + t * c_seq + i0;
        #pragma GCC unroll 8
        for (int c = 0; c < 8; ++c)
          if (i0 + 16 * c < D)
            acc[c] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(tail_mask(D - i0 - 16 * c), vt + 16 * c), acc[c]);
      }
      #pragma GCC unroll 8
      for (int c = 0; c < 8; ++c)
        if (i0 + 16 * c < D)
          _mm512_mask_storeu_ps(oj + i0 + 16 * c, tail_mask(D - i0 - 16 * c), _mm512_mul_ps(acc[c], inv));
    }
  }
}

// One decode step of attention for each of B rows with one new token: the new key (rotated) and value go
// into cache slot `pos` of the (batch, kv_heads, seq, D) buffers, then each of the H query heads (rotated)
// attends to slots [0, kv_len) of its key/value head (H / KVH queries per head), skipping slots whose
// boolean mask entry is false. q / k / v are rows of heads * D values (row strides given), out rows of H * D.
extern "C" void decode_attention(const float* q, int64_t q_row, const float* k, int64_t k_row, const float* v,
                                 int64_t v_row, const float* cos, const float* sin, int64_t table_row,
                                 float* kc, float* vc, int64_t c_batch, int64_t c_head, int64_t c_seq,
                                 int64_t pos, int64_t kv_len, const bool* mask, int64_t mask_row, float* out,
                                 int64_t B, int64_t H, int64_t KVH, int64_t D, float scale, int64_t threads) {
  const int64_t G = H / KVH;
  const int64_t items = B * KVH;
  // Threads only once the keys are long enough to pay for waking them.
  const bool parallel = threads > 1 && items * kv_len * D >= (1 << 16);
  #pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / KVH, g = item % KVH;
    const float* c = cos + b * table_row;
    const float* s = sin + b * table_row;
    float* keys = kc + b * c_batch + g * c_head;
    float* values = vc + b * c_batch + g * c_head;
    rotate(k + b * k_row + g * D, c, s, keys + pos * c_seq, D);
    for (int64_t i = 0; i < D; ++i) values[pos * c_seq + i] = v[b * v_row + g * D + i];
    std::vector<float> qr(G * D), scores(G * kv_len);
    for (int64_t j = 0; j < G; ++j) rotate(q + b * q_row + (g * G + j) * D, c, s, qr.data() + j * D, D);
    attend_item(qr.data(), G, keys, values, c_seq, kv_len, mask ? mask + b * mask_row : nullptr, scale,
                out + b * H * D + g * G * D, D, scores.data());
  }
}

// One query per row against keys / values already cached (an encoder-decoder model's cross-attention in its
// decode steps): rows of H * D query values (row stride q_row), (batch, kv_heads, seq, D) key and value
// buffers with the strides given, slots [0, kv_len) attended, a boolean mask row per batch row (or none);
// out rows of H * D.
extern "C" void cached_attention(const float* q, int64_t q_row, const float* kc, const float* vc, int64_t c_batch,
                                 int64_t c_head, int64_t c_seq, int64_t kv_len, const bool* mask, int64_t mask_row,
                                 float* out, int64_t B, int64_t H, int64_t KVH, int64_t D, float scale,
                                 int64_t threads) {
  const int64_t G = H / KVH;
  const int64_t items = B * KVH;
  const bool parallel = threads > 1 && items * kv_len * D >= (1 << 16);
  #pragma omp parallel for schedule(static) num_threads(threads) if (parallel)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t b = item / KVH, g = item % KVH;
    std::vector<float> scores(G * kv_len);
    attend_item(q + b * q_row + g * G * D, G, kc + b * c_batch + g * c_head, vc + b * c_batch + g * c_head, c_seq,
                kv_len, mask ? mask + b * mask_row : nullptr, scale, out + b * H * D + g * G * D, D, scores.data());
  }
}
// A whole pre-norm Llama block for one new token per row, in one call: the linears go to the kernels whose
// entry points the caller hands over (the fp32 small-rows kernel or the int8 weight-only one).
typedef void (*fp32_linear_fn)(const float* x, const float* w, const float* b, float* y, int64_t R, int64_t N,
                               int64_t K, int64_t threads);
typedef void (*int8_linear_fn)(const float* x, const int8_t* w, const float* scale, const float* b, float* y,
                               int64_t R, int64_t N, int64_t K);
struct Linear {  // y = x w^T (* scale) + bias, N outputs of K inputs; kind 0: fp32 kernel, 1: int8 kernel
  void* fn; int64_t kind; const void* w; const float* scale; const float* bias; int64_t n, k;
};
struct Block {
  const float* norm_1; const float* norm_2; double eps_1, eps_2, scale;
  int64_t hidden, heads, kv_heads, head_dim, inter;
  int64_t qkv_calls;  // 1: qkv[0] computes q | k | v side by side; 3: one call each
  int64_t gate_up_calls;  // 1: gate_up[0] computes gate | up; 2: one call each
  Linear qkv[3], o, gate_up[2], down;
};
static inline void run_linear(const Linear& l, const float* x, float* y, int64_t R, int64_t threads) {
  if (l.kind == 0) ((fp32_linear_fn)l.fn)(x, (const float*)l.w, l.bias, y, R, l.n, l.k, threads);
  else ((int8_linear_fn)l.fn)(x, (const int8_t*)l.w, l.scale, l.bias, y, R, l.n, l.k);
}
// x, y: (R, hidden); scratch: block_scratch(...) floats.
extern "C" int64_t block_scratch(const Block* b, int64_t R) {
  const int64_t q = b->heads * b->head_dim, kv = b->kv_heads * b->head_dim;
  return R * (4 * b->hidden + (q + 2 * kv) + q + 3 * b->inter);
}
extern "C" void block_step(const Block* b, const float* x, float* y, float* scratch, const float* cos,
                           const float* sin, int64_t table_row, float* kc, float* vc, int64_t c_batch,
                           int64_t c_head, int64_t c_seq, int64_t pos, const bool* mask, int64_t mask_row,
                           int64_t R, int64_t threads) {
  const int64_t H = b->hidden, D = b->head_dim, q_n = b->heads * D, kv_n = b->kv_heads * D, I = b->inter;
  float* normed = scratch;              // R * H
  float* qkv = normed + R * H;          // R * (q_n + 2 kv_n)
  float* attended = qkv + R * (q_n + 2 * kv_n);  // R * q_n
  float* projected = attended + R * q_n;  // R * H
  float* mid = projected + R * H;       // R * H: x + attention
  float* gate_up = mid + R * H;         // R * 2I
  float* act = gate_up + R * 2 * I;     // R * I
  float* down = normed;                 // R * H (normed is free by then)
  rms_norm_rows(x, H, nullptr, 0, nullptr, b->norm_1, normed, R, H, (float)b->eps_1);
  const float *q, *k, *v;
  int64_t q_row, k_row, v_row;
  if (b->qkv_calls == 1) {
    run_linear(b->qkv[0], normed, qkv, R, threads);
    q = qkv; k = qkv + q_n; v = qkv + q_n + kv_n;
    q_row = k_row = v_row = q_n + 2 * kv_n;
  } else {
    run_linear(b->qkv[0], normed, qkv, R, threads);
    run_linear(b->qkv[1], normed, qkv + R * q_n, R, threads);
    run_linear(b->qkv[2], normed, qkv + R * (q_n + kv_n), R, threads);
    q = qkv; k = qkv + R * q_n; v = qkv + R * (q_n + kv_n);
    q_row = q_n; k_row = v_row = kv_n;
  }
  decode_attention(q, q_row, k, k_row, v, v_row, cos, sin, table_row, kc, vc, c_batch, c_head, c_seq, pos, pos + 1,
                   mask, mask_row, attended, R, b->heads, b->kv_heads, D, (float)b->scale, threads);
  run_linear(b->o, attended, projected, R, threads);
  rms_norm_rows(x, H, projected, H, mid, b->norm_2, normed, R, H, (float)b->eps_2);
  if (b->gate_up_calls == 1) {
    run_linear(b->gate_up[0], normed, gate_up, R, threads);
    silu_mul_rows(gate_up, 2 * I, gate_up + I, 2 * I, act, R, I);
  } else {
    run_linear(b->gate_up[0], normed, gate_up, R, threads);
    run_linear(b->gate_up[1], normed, gate_up + R * I, R, threads);
    silu_mul_rows(gate_up, I, gate_up + R * I, I, act, R, I);
  }
  run_linear(b->down, act, down, R, threads);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t i = 0; i < H; i += 16) {
      const __mmask16 m = tail_mask(H - i);
      _mm512_mask_storeu_ps(y + r * H + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, mid + r * H + i),
                                                            _mm512_maskz_loadu_ps(m, down + r * H + i)));
    }
}
"""

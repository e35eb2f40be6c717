"""Pillow's separable resampling of 8-bit images, compiled here and fused with the crop and the pixel table.

Pillow resizes an 8-bit image in two passes, one along each axis. Each output sample is a fixed-point
weighted sum of the input samples under the filter: the weights are computed in double precision from the
full input and output sizes, rounded to integers with 22 fractional bits, and the sum (started at one
half) is shifted back and clamped to 0-255, so the result is exact integer arithmetic. The loop below does
the same arithmetic, so its pixels are Pillow's, and adds what Pillow cannot: it computes only the output
rows and columns a centre crop keeps; it reads a PIL image's pixels in place (the Arrow export, no
``tobytes`` copy); it writes each finished row straight through a
:class:`~pretrained.processing.image_transforms.PixelTable` into the channels-first float result (no resized
image, no crop copy); and a caller may give each thread a share of the output rows with no hand-off between
the passes, since a thread computes the first pass for the input rows its own rows need.

Whether it agrees with the installed Pillow is checked once per process on random images for every filter
and both pass orders (:func:`agrees_with_pillow`); the processors use it only then. Built once per machine
by ``pretrained.utils.native.load_library`` like the pixel loop; ``PRETRAINED_RESAMPLE_KERNEL=0`` turns it
off.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

import numpy as np

from pretrained.utils.native import load_library

# -ffp-contract=off: the weights must be rounded exactly as Pillow's plain C computes them (no fused
# multiply-adds). The hot integer loops get an AVX2 copy chosen at load time where the CPU has it.
_FLAGS = ("-O3", "-ffp-contract=off")

_SOURCE = r"""
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#define AVX2 __attribute__((target("avx2")))
#else
#define HAVE_AVX2_PATH 0
#endif

namespace {

const int kBits = 22;  // fractional bits of the fixed-point weights, as Pillow's 8-bit path uses
const int32_t kHalf = 1 << (kBits - 1);

double box(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
double triangle(double x) { x = x < 0.0 ? -x : x; return x < 1.0 ? 1.0 - x : 0.0; }
double hamming(double x) {
  x = x < 0.0 ? -x : x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54 + 0.46 * std::cos(x));
}
double cubic(double x) {  // Keys' cubic with a = -0.5
  const double a = -0.5;
  x = x < 0.0 ? -x : x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}
double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

// One axis: for each kept output position, the first input position and the fixed-point weights.
struct Axis {
  int taps = 0;                 // weights stored per output position (zero-padded)
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

// Weights of outputs [begin, end) of a resize from `in_size` to `out_size` (filter numbers as Pillow's).
bool make_axis(Axis& axis, int in_size, int out_size, int filter, int begin, int end) {
  double (*fn)(double);
  double support;
  switch (filter) {
    case 1: fn = lanczos; support = 3.0; break;
    case 2: fn = triangle; support = 1.0; break;
    case 3: fn = cubic; support = 2.0; break;
    case 4: fn = box; support = 0.5; break;
    case 5: fn = hamming; support = 1.0; break;
    default: return false;
  }
  double scale = (double)(float)in_size / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  support = support * filterscale;
  int taps = (int)std::ceil(support) * 2 + 1;
  int n = end - begin;
  axis.taps = taps;
  axis.first.assign(n, 0);
  axis.count.assign(n, 0);
  axis.weights.assign((size_t)n * taps, 0);
  std::vector<double> w(taps);
  for (int i = 0; i < n; ++i) {
    int xx = begin + i;
    double center = (xx + 0.5) * scale;
    double inv = 1.0 / filterscale;
    int lo = (int)(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = (int)(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    hi -= lo;
    double total = 0.0;
    for (int x = 0; x < hi; ++x) {
      w[x] = fn((x + lo - center + 0.5) * inv);
      total += w[x];
    }
    for (int x = 0; x < hi; ++x) {
      double v = total != 0.0 ? w[x] / total : w[x];
      axis.weights[(size_t)i * taps + x] =
          v < 0 ? (int32_t)(-0.5 + v * (1 << kBits)) : (int32_t)(0.5 + v * (1 << kBits));
    }
    axis.first[i] = lo;
    axis.count[i] = hi;
  }
  return true;
}

inline uint8_t clip8(int32_t s) {
  s >>= kBits;
  return (uint8_t)(s < 0 ? 0 : (s > 255 ? 255 : s));
}

// Horizontal pass over one row: `n` output pixels of `P` bytes from `src` (pixels `P` bytes apart).
template <int P>
void horizontal_row(const uint8_t* src, const Axis& ax, uint8_t* dst) {
  const int n = (int)ax.first.size(), taps = ax.taps;
  for (int i = 0; i < n; ++i) {
    const uint8_t* p = src + (size_t)ax.first[i] * P;
    const int32_t* k = &ax.weights[(size_t)i * taps];
    const int m = ax.count[i];
    int32_t s[P];
    for (int c = 0; c < P; ++c) s[c] = kHalf;
    for (int t = 0; t < m; ++t)
      for (int c = 0; c < P; ++c) s[c] += (int32_t)p[t * P + c] * k[t];
    for (int c = 0; c < P; ++c) dst[i * P + c] = clip8(s[c]);
  }
}

// Vertical pass for one output row: `bytes` samples, each a weighted sum over `m` rows `stride` apart.
void vertical_row_plain(const uint8_t* src, int64_t stride, const int32_t* k, int m, int bytes, int32_t* acc,
                      uint8_t* dst) {
  for (int j = 0; j < bytes; ++j) acc[j] = kHalf;
  for (int t = 0; t < m; ++t) {
    const uint8_t* row = src + t * stride;
    const int32_t w = k[t];
    for (int j = 0; j < bytes; ++j) acc[j] += (int32_t)row[j] * w;
  }
  for (int j = 0; j < bytes; ++j) dst[j] = clip8(acc[j]);
}

#if HAVE_AVX2_PATH
// The same sums with AVX2 integer lanes (exact: the products and sums fit in 32 bits, as in the scalar loop).
// Horizontal, 4-byte pixels: two taps per step, one pixel's four bytes per 128-bit half.
AVX2 void horizontal_row4_avx2(const uint8_t* src, const Axis& ax, uint8_t* dst) {
  const int n = (int)ax.first.size(), taps = ax.taps;
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  for (int i = 0; i < n; ++i) {
    const uint8_t* p = src + (size_t)ax.first[i] * 4;
    const int32_t* k = &ax.weights[(size_t)i * taps];
    const int m = ax.count[i];
    __m256i acc = _mm256_setzero_si256();
    int t = 0;
    for (; t + 2 <= m; t += 2) {
      __m256i px = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(p + 4 * t)));
      __m128i pair_w = _mm_loadl_epi64((const __m128i*)(k + t));
      __m256i w = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(pair_w), spread);
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(px, w));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    if (t < m) {
      int32_t v;
      std::memcpy(&v, p + 4 * t, 4);
      s = _mm_add_epi32(s, _mm_mullo_epi32(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(v)), _mm_set1_epi32(k[t])));
    }
    s = _mm_srai_epi32(_mm_add_epi32(s, _mm_set1_epi32(kHalf)), kBits);
    int32_t packed = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(s, s), s));  // clamps to 0-255
    std::memcpy(dst + 4 * i, &packed, 4);
  }
}

// Horizontal, 3-byte pixels: as above, each pair of pixels spread into two 4-lane halves by a byte shuffle.
// The 8-byte load reads two bytes past the pair, so it is used only while a further pixel follows in the row.
AVX2 void horizontal_row3_avx2(const uint8_t* src, const Axis& ax, int in_width, uint8_t* dst) {
  const int n = (int)ax.first.size(), taps = ax.taps;
  const __m256i spread = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
  const __m128i unpack = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  for (int i = 0; i < n; ++i) {
    const int first = ax.first[i];
    const uint8_t* p = src + (size_t)first * 3;
    const int32_t* k = &ax.weights[(size_t)i * taps];
    const int m = ax.count[i];
    __m256i acc = _mm256_setzero_si256();
    int t = 0;
    for (; t + 2 <= m && first + t + 2 < in_width; t += 2) {
      __m128i pair = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i*)(p + 3 * t)), unpack);
      __m128i pair_w = _mm_loadl_epi64((const __m128i*)(k + t));
      __m256i w = _mm256_permutevar8x32_epi32(_mm256_castsi128_si256(pair_w), spread);
      acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(pair), w));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    for (; t < m; ++t) {
      const uint8_t* q = p + 3 * t;
      s = _mm_add_epi32(s, _mm_mullo_epi32(_mm_setr_epi32(q[0], q[1], q[2], 0), _mm_set1_epi32(k[t])));
    }
    s = _mm_srai_epi32(_mm_add_epi32(s, _mm_set1_epi32(kHalf)), kBits);
    int32_t packed = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(s, s), s));  // clamps to 0-255
    std::memcpy(dst + 3 * i, &packed, 3);
  }
}

// Vertical: 16 bytes of the row per step, the taps' sums kept in registers.
AVX2 void vertical_row_avx2(const uint8_t* src, int64_t stride, const int32_t* k, int m, int bytes,
                            uint8_t* dst) {
  const __m256i half = _mm256_set1_epi32(kHalf);
  int j = 0;
  for (; j + 16 <= bytes; j += 16) {
    __m256i lo = half, hi = half;
    const uint8_t* p = src + j;
    for (int t = 0; t < m; ++t, p += stride) {
      __m128i b = _mm_loadu_si128((const __m128i*)p);
      __m256i w = _mm256_set1_epi32(k[t]);
      lo = _mm256_add_epi32(lo, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), w));
      hi = _mm256_add_epi32(hi, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), w));
    }
    lo = _mm256_srai_epi32(lo, kBits);
    hi = _mm256_srai_epi32(hi, kBits);
    __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);  // 16 int16 in order
    __m128i bytes16 = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
    _mm_storeu_si128((__m128i*)(dst + j), bytes16);
  }
  for (; j < bytes; ++j) {
    int32_t s = kHalf;
    for (int t = 0; t < m; ++t) s += (int32_t)src[t * stride + j] * k[t];
    dst[j] = clip8(s);
  }
}
const bool kHasAvx2 = __builtin_cpu_supports("avx2");
bool use_avx2 = kHasAvx2;  // resample_simd(0) turns the AVX2 loops off (to test the plain ones)
#endif

void table_row(const uint8_t* row, int cols, int pixel, int channels, const float* table, float* out,
               int64_t plane) {
  for (int c = 0; c < channels; ++c) {
    const float* t = table + 256 * c;
    float* o = out + c * plane;
    const uint8_t* r = row + c;
    for (int x = 0; x < cols; ++x) o[x] = t[r[x * pixel]];
  }
}

void vertical_row(const uint8_t* src, int64_t stride, const int32_t* k, int m, int bytes, int32_t* acc,
                  uint8_t* dst) {
#if HAVE_AVX2_PATH
  if (use_avx2) return vertical_row_avx2(src, stride, k, m, bytes, dst);
#endif
  vertical_row_plain(src, stride, k, m, bytes, acc, dst);
}

struct Plan {
  int in_w, in_h, out_w, out_h, crop_x, crop_y, crop_w, crop_h;
  bool need_h, need_v, vertical_first;
  Axis cols, rows;  // weights of the kept output columns and rows
};

void horizontal(const uint8_t* src, int pixel, const Axis& ax, int in_width, uint8_t* dst) {
  switch (pixel) {
    case 1: horizontal_row<1>(src, ax, dst); break;
    case 3:
#if HAVE_AVX2_PATH
      if (use_avx2) { horizontal_row3_avx2(src, ax, in_width, dst); break; }
#endif
      horizontal_row<3>(src, ax, dst);
      break;
    default:
#if HAVE_AVX2_PATH
      if (use_avx2) { horizontal_row4_avx2(src, ax, dst); break; }
#endif
      horizontal_row<4>(src, ax, dst);
      break;
  }
}

}  // namespace

extern "C" {

// A plan for resizing `in_w` x `in_h` to `out_w` x `out_h` and keeping the window at (crop_x, crop_y) of
// crop_w x crop_h (inside the resized image); `vertical_first` orders the passes as the Pillow being
// matched does. NULL for an unknown filter.
void* resample_plan(int in_w, int in_h, int out_w, int out_h, int filter, int crop_x, int crop_y, int crop_w,
                    int crop_h, int vertical_first) {
  Plan* plan = new Plan();
  plan->in_w = in_w; plan->in_h = in_h; plan->out_w = out_w; plan->out_h = out_h;
  plan->crop_x = crop_x; plan->crop_y = crop_y; plan->crop_w = crop_w; plan->crop_h = crop_h;
  plan->need_h = out_w != in_w;
  plan->need_v = out_h != in_h;
  plan->vertical_first = plan->need_h && plan->need_v && vertical_first;
  bool ok = true;
  if (plan->need_h) ok = ok && make_axis(plan->cols, in_w, out_w, filter, crop_x, crop_x + crop_w);
  if (plan->need_v) ok = ok && make_axis(plan->rows, in_h, out_h, filter, crop_y, crop_y + crop_h);
  if (!ok) { delete plan; return nullptr; }
  return plan;
}

void resample_free(void* plan) { delete (Plan*)plan; }

// Whether the AVX2 loops run (where the CPU has them); returns whether they now do.
int resample_simd(int on) {
#if HAVE_AVX2_PATH
  use_avx2 = on && kHasAvx2;
  return use_avx2;
#else
  return 0;
#endif
}

// Kept rows [row_begin, row_end) (counted from the crop's top) of the planned resize of `src` (rows
// `src_row` bytes apart, pixels `pixel` bytes apart, the first `channels` bytes of each pixel used), each
// finished row looked up in `table` (channels x 256 floats) into `out` (channel planes `out_plane`, rows
// `out_row` floats apart, the kept row `row_begin` at `out`).
void resample_run(const void* plan_ptr, const uint8_t* src, int64_t src_row, int pixel, int channels,
                  const float* table, float* out, int64_t out_plane, int64_t out_row, int row_begin,
                  int row_end) {
  const Plan& p = *(const Plan*)plan_ptr;
  if (row_end <= row_begin) return;
  const int cw = p.crop_w;
  std::vector<uint8_t> line((size_t)cw * pixel);
  float* dst = out;
  if (p.vertical_first) {
    // Columns the horizontal pass reads, then per output row: vertical pass over them, horizontal pass.
    const int c0 = p.cols.first[0];
    const int c1 = p.cols.first[cw - 1] + p.cols.count[cw - 1];
    const int span = (c1 - c0) * pixel;
    std::vector<uint8_t> mid(span);
    std::vector<int32_t> acc(span);
    Axis shifted = p.cols;
    for (int& f : shifted.first) f -= c0;
    for (int r = row_begin; r < row_end; ++r, dst += out_row) {
      vertical_row(src + p.rows.first[r] * src_row + (int64_t)c0 * pixel, src_row,
                   &p.rows.weights[(size_t)r * p.rows.taps], p.rows.count[r], span, acc.data(), mid.data());
      horizontal(mid.data(), pixel, shifted, c1 - c0, line.data());
      table_row(line.data(), cw, pixel, channels, table, dst, out_plane);
    }
    return;
  }
  // Horizontal pass first: the input rows these output rows read (all of them for a horizontal-only resize).
  const int y0 = p.need_v ? p.rows.first[row_begin] : p.crop_y + row_begin;
  const int y1 = p.need_v ? p.rows.first[row_end - 1] + p.rows.count[row_end - 1] : p.crop_y + row_end;
  const uint8_t* mid = src + (int64_t)y0 * src_row + (int64_t)p.crop_x * pixel;
  int64_t mid_row = src_row;
  std::vector<uint8_t> buffer;
  if (p.need_h) {
    mid_row = (int64_t)cw * pixel;
    buffer.resize((size_t)(y1 - y0) * mid_row);
    for (int y = y0; y < y1; ++y)
      horizontal(src + (int64_t)y * src_row, pixel, p.cols, p.in_w,
                 buffer.data() + (size_t)(y - y0) * mid_row);
    mid = buffer.data();
  }
  std::vector<int32_t> acc(p.need_v ? (size_t)cw * pixel : 0);
  for (int r = row_begin; r < row_end; ++r, dst += out_row) {
    const uint8_t* row;
    if (p.need_v) {
      vertical_row(mid + (int64_t)(p.rows.first[r] - y0) * mid_row, mid_row,
                   &p.rows.weights[(size_t)r * p.rows.taps], p.rows.count[r], cw * pixel, acc.data(),
                   line.data());
      row = line.data();
    } else {
      row = mid + (int64_t)(p.crop_y + r - y0) * mid_row;
    }
    table_row(row, cw, pixel, channels, table, dst, out_plane);
  }
}

}  // extern "C"
"""

_lock = threading.Lock()
_LOADED: list[Any] = []  # [library] once built, [None] when it cannot be (or does not agree with Pillow)


def _library() -> Any:
    if _LOADED:
        return _LOADED[0]
    with _lock:
        if not _LOADED:
            lib = None
            if os.environ.get("PRETRAINED_RESAMPLE_KERNEL", "1") != "0":
                i32, i64, ptr = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
                signatures = {"resample_plan": (ptr, [i32] * 10), "resample_free": (None, [ptr]),
                              "resample_simd": (i32, [i32]),
                              "resample_run": (None, [ptr, ptr, i64, i32, i32, ptr, ptr, i64, i64, i32, i32])}
                lib = load_library("pillow_resample", _SOURCE, _FLAGS, signatures, openmp=False)
            _LOADED.append(lib)
    return _LOADED[0]


class Plan:
    """One planned resize (input size, output size, filter, kept window); runs on any thread, any share of
    the kept rows."""

    def __init__(
        self,
        lib: Any,
        in_size: tuple[int, int],
        out_size: tuple[int, int],
        resample: int,
        window: tuple[int, int, int, int],
        vertical_first: bool,
    ) -> None:
        left, top, width, height = window
        if (
            min(*in_size, *out_size, width, height) <= 0
            or left < 0
            or top < 0
            or left + width > out_size[0]
            or top + height > out_size[1]
        ):
            raise ValueError(f"cannot plan {in_size} -> {out_size} keeping {window}")
        self._lib = lib
        self.in_size, self.window = tuple(in_size), tuple(window)
        self._ptr = lib.resample_plan(
            in_size[0], in_size[1], out_size[0], out_size[1], int(resample), *window, int(vertical_first)
        )
        if not self._ptr:
            raise ValueError(f"no resampling filter {resample}")

    def __del__(self) -> None:
        if getattr(self, "_ptr", None):
            self._lib.resample_free(self._ptr)
            self._ptr = None

    def run(self, pixels: Pixels, table: np.ndarray, out: np.ndarray, rows: tuple[int, int]) -> None:
        """Kept rows ``rows`` (from the window's top) into ``out``, a ``(C, rows, width)`` float32 view whose
        rows are contiguous, through ``table`` (``(C, 256)`` float32, C-contiguous).

        Raises:
            ValueError: pixels, table, rows or ``out`` that do not fit the plan (the loop would write or read
                out of bounds).
        """
        channels, count = pixels.channels, rows[1] - rows[0]
        if (
            (pixels.width, pixels.height) != self.in_size
            or not 0 <= rows[0] <= rows[1] <= self.window[3]
            or out.dtype != np.float32
            or out.shape != (channels, count, self.window[2])
            or (count and out.strides[2] != 4)
            or min(out.strides) < 0
            or not out.flags.writeable
            or table.dtype != np.float32
            or table.shape != (channels, 256)
            or not table.flags.c_contiguous
        ):
            raise ValueError("pixels, table, rows or output that do not fit this plan")
        self._lib.resample_run(
            self._ptr,
            pixels.address,
            pixels.row_bytes,
            pixels.pixel_bytes,
            pixels.channels,
            table.ctypes.data,
            out.ctypes.data,
            out.strides[0] // 4,
            out.strides[1] // 4,
            rows[0],
            rows[1],
        )


class _ArrowArray(ctypes.Structure):
    pass


_ArrowArray._fields_ = [  # the Arrow C data interface's ArrowArray
    ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))), ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
]  # fmt: skip
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
# bytes per pixel of Pillow's own storage, and channels used, for the modes the loop takes
_PIL_LAYOUT = {"RGB": (4, 3), "L": (1, 1)}


class Pixels:
    """An 8-bit image's pixels where they lie: address, bytes per row and per pixel, channels, size; holds
    what owns the memory."""

    def __init__(
        self,
        owner: Any,
        address: int,
        row_bytes: int,
        pixel_bytes: int,
        channels: int,
        width: int,
        height: int,
    ) -> None:
        self.owner, self.address, self.row_bytes = owner, address, row_bytes
        self.pixel_bytes, self.channels, self.width, self.height = pixel_bytes, channels, width, height


def pil_pixels(image: Any) -> Pixels | None:
    """A loaded RGB or L PIL image's pixels, read in place through its Arrow export (Pillow 11.2+), else
    from a ``numpy`` copy; ``None`` for other modes."""
    layout = _PIL_LAYOUT.get(image.mode)
    if layout is None:
        return None
    pixel, channels = layout
    width, height = image.size
    image.load()
    export = getattr(image, "__arrow_c_array__", None)
    if export is not None and width * height > 0:
        try:
            capsules = export()
        except (ValueError, OSError):  # a large image stored in several blocks
            capsules = None
        if capsules is not None:
            array = _ArrowArray.from_address(_capsule_pointer(capsules[1], b"arrow_array"))
            data = array.children[0].contents if pixel > 1 else array
            if (
                array.offset == 0
                and data.offset == 0
                and array.length == width * height
                and data.length == width * height * pixel
                and data.n_buffers == 2
                and data.buffers[1]
            ):
                return Pixels(capsules, data.buffers[1], width * pixel, pixel, channels, width, height)
    return array_pixels(np.asarray(image))


def array_pixels(array: np.ndarray) -> Pixels | None:
    """A channels-last uint8 array's pixels (``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, pixels packed);
    ``None`` for other arrays."""
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        return None
    if array.ndim == 2:
        array = array[:, :, None]
    height, width, channels = array.shape
    if (
        channels not in (1, 3)
        or (channels > 1 and array.strides[2] != 1)
        or array.strides[1] != channels
        or array.strides[0] < 0
        or width * height == 0
    ):
        return None
    return Pixels(array, array.ctypes.data, array.strides[0], channels, channels, width, height)


def available() -> bool:
    """Whether the loop can be used in this process: built, and agreeing with the installed Pillow."""
    return _library() is not None and agrees_with_pillow()


_PLANS: dict[tuple[Any, ...], Plan] = {}
_MAX_PLANS = 64  # images of a data set often share a few sizes; the weights are then computed once


def plan(
    in_size: tuple[int, int],
    out_size: tuple[int, int],
    resample: int,
    window: tuple[int, int, int, int] | None = None,
) -> Plan | None:
    """A :class:`Plan` for resizing ``in_size`` to ``out_size`` (both ``(width, height)``) with Pillow's
    filter ``resample`` (1-5), keeping ``window`` (``(left, top, width, height)`` inside the output; all of
    it by default); ``None`` when the loop is unavailable or does not agree with this Pillow, or for sizes
    and windows it cannot plan."""
    if int(resample) not in (1, 2, 3, 4, 5) or not available():
        return None
    window = tuple(window or (0, 0, out_size[0], out_size[1]))
    key = (tuple(in_size), tuple(out_size), int(resample), window)
    found = _PLANS.get(key)
    if found is None:
        from pretrained.processing.image_transforms import pillow_vertical_first

        order = pillow_vertical_first(in_size[0], in_size[1], out_size[0], out_size[1])
        try:
            found = Plan(_library(), in_size, out_size, resample, window, order)
        except ValueError:  # an empty size, or a window outside the output
            return None
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = found
    return found


_AGREES: list[bool] = []


def agrees_with_pillow() -> bool:
    """Whether the loop gives the installed Pillow's pixels: every filter, both pass orders, one-pass
    resizes, enlarging and shrinking, crops, for RGB and L images (checked once per process)."""
    if not _AGREES:
        _AGREES.append(_library() is not None and _check())
    return _AGREES[0]


def _check() -> bool:
    from PIL import Image

    from pretrained.processing.image_transforms import pillow_vertical_first

    lib = _library()
    rng = np.random.default_rng(0)
    for mode, channels in (("RGB", 3), ("L", 1)):
        pixels = rng.integers(0, 256, (61, 47, channels), dtype=np.uint8)
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
        table = np.tile(np.arange(256, dtype=np.float32), (channels, 1))
        # (40, 47) and (40, 46) sit on either side of Pillow 13's rule for which pass runs first
        for size in (
            (23, 19),
            (40, 8),
            (90, 30),
            (30, 90),
            (47, 20),
            (20, 61),
            (47, 61),
            (150, 13),
            (40, 47),
            (40, 46),
        ):
            for resample in (1, 2, 3, 4, 5):
                expected = np.asarray(image.resize(size, resample)).reshape(size[1], size[0], channels)
                window = (size[0] // 4, size[1] // 3, size[0] - size[0] // 4 - 1, size[1] - size[1] // 3)
                left, top, width, height = window
                crop = np.moveaxis(expected[top : top + height, left : left + width], -1, 0).astype(
                    np.float32
                )
                for source in (pil_pixels(image), array_pixels(pixels)):
                    out = np.full((channels, height, width), -1, dtype=np.float32)
                    done = Plan(
                        lib, image.size, size, resample, window, pillow_vertical_first(*image.size, *size)
                    )
                    done.run(source, table, out[:, : height // 2], (0, height // 2))
                    done.run(source, table, out[:, height // 2 :], (height // 2, height))
                    if not np.array_equal(out, crop):
                        return False
    return True

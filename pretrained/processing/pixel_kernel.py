"""A small compiled loop that rescales and normalises uint8 pixels through a
:class:`~pretrained.processing.image_transforms.PixelTable`'s table, from channels-last to channels-first.

numpy needs four passes for that (a casting transpose, then multiply, subtract and divide in place), each
holding the GIL for part of its time; on a (224, 112, 3) strip written into a column slice of the result
they take ~115 us on one thread and 3-4 times that when the two threads of a split resize normalise their
strips at the same time. The loop below reads each pixel once, looks its value up in the table (the table
holds the reference arithmetic's bits, so the result is bit-identical) and writes the float: ~28 us per
strip, and ctypes releases the GIL for the call, so the threads do not wait on each other.

It is compiled once per machine with the system's C++ compiler by ``pretrained.utils.native.build_library``,
as the inference kernels are, into the same cache folder (``$PRETRAINED_KERNEL_CACHE``, else
``~/.cache/pretrained/kernels``). Without a compiler, or when
``PRETRAINED_PIXEL_KERNEL=0``, :func:`table_into` returns ``False`` and the caller uses numpy.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Any

import numpy as np

from pretrained.utils.native import load_library

# Plain -O3 (no -march): the library may be kept in a home folder shared by machines with other CPUs, and a
# table lookup per value does not vectorise much anyway.
_FLAGS = ("-O3",)

_SOURCE = r"""
#include <cstdint>
// out[c][y][x] = table[c][in[y][x][c]] for a (rows, cols, channels) uint8 view whose pixels are
// `channels` bytes apart and whose rows are `in_row` bytes apart, into a float view whose channel planes
// are `out_plane` and rows `out_row` floats apart (its columns contiguous).
extern "C" void table_hwc_to_chw(const uint8_t* in, int64_t rows, int64_t cols, int64_t channels,
                                 int64_t in_row, const float* table, float* out, int64_t out_plane,
                                 int64_t out_row) {
  if (channels == 3) {  // RGB: one pass over each row, writing the three planes together
    const float* t0 = table;
    const float* t1 = table + 256;
    const float* t2 = table + 512;
    for (int64_t y = 0; y < rows; ++y) {
      const uint8_t* src = in + y * in_row;
      float* d0 = out + y * out_row;
      float* d1 = d0 + out_plane;
      float* d2 = d1 + out_plane;
      for (int64_t x = 0; x < cols; ++x) {
        d0[x] = t0[src[3 * x]];
        d1[x] = t1[src[3 * x + 1]];
        d2[x] = t2[src[3 * x + 2]];
      }
    }
    return;
  }
  for (int64_t c = 0; c < channels; ++c) {
    const float* t = table + 256 * c;
    for (int64_t y = 0; y < rows; ++y) {
      const uint8_t* src = in + y * in_row + c;
      float* dst = out + c * out_plane + y * out_row;
      for (int64_t x = 0; x < cols; ++x) dst[x] = t[src[x * channels]];
    }
  }
}
"""

_lock = threading.Lock()
_LOADED: list[Any] = []  # [function] once built, [None] when it cannot be


def _function() -> Any:
    """The compiled loop, built on first use; ``None`` when it cannot be built or is turned off."""
    if _LOADED:
        return _LOADED[0]
    with _lock:
        if not _LOADED:
            lib = None  # without it numpy does the same work, slower
            if os.environ.get("PRETRAINED_PIXEL_KERNEL", "1") != "0":
                i64, ptr = ctypes.c_int64, ctypes.c_void_p
                signature = (None, [ptr, i64, i64, i64, i64, ptr, ptr, i64, i64])
                lib = load_library("pixel_table", _SOURCE, _FLAGS, {"table_hwc_to_chw": signature}, openmp=False)
            _LOADED.append(None if lib is None else lib.table_hwc_to_chw)
    return _LOADED[0]


def available() -> bool:
    """Whether the compiled loop can be used in this process (building it on first call)."""
    return _function() is not None


def table_into(image: np.ndarray, table: np.ndarray, out: np.ndarray) -> bool:
    """``out[c, y, x] = table[c, image[y, x, c]]`` for a ``(H, W, C)`` uint8 ``image`` and a ``(C, H, W)``
    float32 ``out`` through the compiled loop; ``False`` (nothing written) where it does not apply: no
    library, or layouts it does not take (pixels not packed in a row, ``out`` rows not contiguous)."""
    fn = _function()
    if fn is None:
        return False
    rows, cols, channels = image.shape
    if (image.dtype != np.uint8 or out.dtype != np.float32 or out.shape != (channels, rows, cols)
            or table.dtype != np.float32 or table.shape != (channels, 256) or not table.flags.c_contiguous):
        return False
    if rows == 0 or cols == 0 or channels == 0:
        return True
    if (image.strides[2] != 1 or image.strides[1] != channels or image.strides[0] < 0
            or out.strides[2] != 4 or out.strides[0] % 4 or out.strides[1] % 4
            or out.strides[0] < 0 or out.strides[1] < 0 or not out.flags.writeable):
        return False
    fn(image.ctypes.data, rows, cols, channels, image.strides[0], table.ctypes.data, out.ctypes.data,
       out.strides[0] // 4, out.strides[1] // 4)
    return True

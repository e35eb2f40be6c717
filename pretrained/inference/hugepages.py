"""CPU weights in transparent huge pages (2 MB), for decoding.

A decode step at batch 1 streams every weight once per token, so its speed is the rate at which the
cores read the weights. Weights in ordinary 4 KB pages (a safetensors file mapping, or a ``malloc``)
read slower than the same bytes in 2 MB pages (fewer TLB misses; hardware prefetchers stop at 4 KB
page boundaries). Compiled decode steps read them measurably faster there (``benchmarks/generation.py``);
eager steps would gain too, but the loaded weights view the checkpoint's private file mapping, which
cannot be collapsed in place, and copying them would re-point the user's parameters behind their back, so
only :class:`~pretrained.inference.compiled.CompiledDecoder` (an explicit transform) moves them.

Linux only: elsewhere (or for tensors under 2 MB) :func:`empty` is ``torch.empty``. The memory comes
from an anonymous private ``mmap`` advised with ``MADV_HUGEPAGE`` before it is touched, so the kernel
backs it with huge pages where it can (``/sys/kernel/mm/transparent_hugepage/enabled`` set to
``madvise`` or ``always``); it is released when the last tensor viewing it is freed. Whether the kernel
found free 2 MB pages at the moment of the first touch depends on the machine's memory fragmentation, so
weights copied in are also collapsed synchronously (``MADV_COLLAPSE``, Linux 6.1+; :func:`collapse`), and
:func:`huge_page_bytes` reads back from ``/proc/self/smaps`` how much of the memory really is in huge pages.
"""

from __future__ import annotations

import bisect
import contextlib
import ctypes
import mmap
import os
import weakref
from typing import Any

import torch
from torch import nn

HUGE_PAGE = 2 << 20
SUPPORTED = hasattr(mmap, "MADV_HUGEPAGE")
MADV_COLLAPSE = 25  # <linux/mman.h>; Python's mmap module does not name it before 3.14

# Start addresses (sorted) and end addresses of the live regions this module mapped.
_starts: list[int] = []
_ends: dict[int, int] = {}
# model -> the data pointers of its tensors after the last move_weights (to skip the work next time)
_done: weakref.WeakKeyDictionary[torch.nn.Module, list[int]] = weakref.WeakKeyDictionary()


def _forget(start: int) -> None:
    i = bisect.bisect_left(_starts, start)
    if i < len(_starts) and _starts[i] == start:
        del _starts[i]
    _ends.pop(start, None)


def empty(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor, in huge pages when it is 2 MB or more and the OS allows it."""
    numel = 1
    for n in shape:
        numel *= n
    nbytes = numel * dtype.itemsize
    if not SUPPORTED or nbytes < HUGE_PAGE:
        return torch.empty(shape, dtype=dtype)
    region = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(OSError):  # a kernel without transparent huge pages: ordinary pages
        region.madvise(mmap.MADV_HUGEPAGE)
    whole = torch.frombuffer(region, dtype=torch.uint8)  # holds ``region`` until the storage is freed
    base = whole.data_ptr()
    offset = -base % HUGE_PAGE  # start on a 2 MB boundary: a huge page cannot straddle the start
    start = base + offset
    bisect.insort(_starts, start)
    _ends[start] = start + nbytes
    weakref.finalize(region, _forget, start)
    return whole[offset : offset + nbytes].view(dtype).view(shape)


def in_huge_pages(tensor: torch.Tensor) -> bool:
    """Whether ``tensor``'s memory lies in a region made by :func:`empty`."""
    ptr = tensor.data_ptr()
    i = bisect.bisect_right(_starts, ptr) - 1
    return i >= 0 and ptr < _ends[_starts[i]]


def placed(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is in huge pages already, or too small to gain from them."""
    return tensor.numel() * tensor.element_size() < HUGE_PAGE or in_huge_pages(tensor)


def collapse(tensor: torch.Tensor) -> bool:
    """Ask the kernel to back the 2 MB pages that ``tensor`` covers with huge pages now, moving its
    contents if needed (``MADV_COLLAPSE``). Faulting memory in gives huge pages only while free ones are
    at hand; this compacts memory synchronously instead. Returns whether the call succeeded (``False``
    before Linux 6.1, without transparent huge pages, or outside a region made by :func:`empty`)."""
    if not SUPPORTED or not in_huge_pages(tensor):
        return False
    start = tensor.data_ptr() - tensor.data_ptr() % HUGE_PAGE
    end = tensor.data_ptr() + tensor.numel() * tensor.element_size()
    libc = _libc()
    if libc is None:
        return False
    return libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), MADV_COLLAPSE) == 0


def _libc() -> Any:
    if "libc" not in _cache:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.madvise.restype = ctypes.c_int
            _cache["libc"] = libc
        except (OSError, AttributeError):
            _cache["libc"] = None
    return _cache["libc"]


_cache: dict[str, Any] = {}


def huge_page_bytes(tensors: list[torch.Tensor]) -> tuple[int, int]:
    """``(in huge pages, total)``: bytes of the regions made by :func:`empty` that hold ``tensors``, and how
    many of them the kernel backs with huge pages (``AnonHugePages`` of their mappings in
    ``/proc/self/smaps``; ``(0, total)`` where that file cannot be read)."""
    regions = {}
    for t in tensors:
        if in_huge_pages(t):
            start = _starts[bisect.bisect_right(_starts, t.data_ptr()) - 1]
            regions[start] = _ends[start]
    total = sum(end - start for start, end in regions.items())
    huge = 0
    try:
        with open(f"/proc/{os.getpid()}/smaps") as f:
            vma = None
            for line in f:
                head = line.split(maxsplit=1)[0]
                if not head.endswith(":"):  # a mapping's first line: "start-end perms ..."
                    lo, hi = (int(a, 16) for a in head.split("-"))
                    vma = sum(min(e, hi) - max(s, lo) for s, e in regions.items() if s < hi and e > lo)
                elif head == "AnonHugePages:" and vma:
                    # A mapping may hold several regions (the kernel merges neighbours): count at most ours.
                    huge += min(int(line.split()[1]) * 1024, vma)
    except OSError:
        return 0, total
    return huge, total


def _file_mappings() -> list[tuple[int, int]]:
    """Address ranges of this process mapped from files (``/proc/self/maps``), sorted."""
    ranges = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    start, end = fields[0].split("-")
                    ranges.append((int(start, 16), int(end, 16)))
    except OSError:
        pass
    return sorted(ranges)


def _in(ranges: list[tuple[int, int]], ptr: int) -> bool:
    i = bisect.bisect_right(ranges, (ptr, float("inf"))) - 1
    return i >= 0 and ptr < ranges[i][1]


def move_weights(model: torch.nn.Module) -> int:
    """Copy ``model``'s CPU parameters and buffers of 2 MB or more into huge pages, and the smaller
    ones that still view a checkpoint file into ordinary memory, so that the file mapping is released
    and its pages do not count twice in the process's memory. ``.data`` is re-pointed: names, objects
    and tied weights are kept. Returns the bytes copied; a no-op where huge pages are not supported."""
    if not SUPPORTED:
        return 0
    tensors: list[Any] = [*model.parameters(), *model.buffers()]
    if _done.get(model) == [t.data_ptr() for t in tensors]:
        return 0  # nothing changed since the last call
    files = _file_mappings()
    moved = 0
    # Plain tensors even when called under inference_mode, so training later still works.
    with torch.inference_mode(False), torch.no_grad():
        for t in tensors:
            if t.device.type != "cpu" or type(t) not in (torch.Tensor, nn.Parameter):
                continue
            nbytes = t.numel() * t.element_size()
            if not placed(t) and t.is_contiguous():
                copy = empty(t.shape, t.dtype)
            elif nbytes and _in(files, t.data_ptr()):
                copy = torch.empty_like(t, memory_format=torch.preserve_format)
            else:
                continue
            copy.copy_(t)
            collapse(copy)
            t.data = copy
            moved += nbytes
    _done[model] = [t.data_ptr() for t in tensors]
    return moved


def pack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Copy ``tensors`` (CPU, one dtype, equal sizes past the first dimension) side by side along the first
    dimension into one new tensor (in huge pages when 2 MB or more) and re-point each one's ``.data`` at its
    slice, so one read of the result reads them all. Objects, names, values and ``requires_grad`` are kept;
    the packed tensor lives as long as any of them views it. Returns the packed tensor."""
    rest, dtype = tuple(tensors[0].shape[1:]), tensors[0].dtype
    if any(tuple(t.shape[1:]) != rest or t.dtype != dtype or t.device.type != "cpu" for t in tensors):
        raise ValueError(f"pack needs CPU tensors of one dtype and equal trailing sizes, got "
                         f"{[(tuple(t.shape), t.dtype, t.device.type) for t in tensors]}")  # fmt: skip
    # Plain tensors even when called under inference_mode, so training later still works.
    with torch.inference_mode(False), torch.no_grad():
        packed = empty((sum(t.shape[0] for t in tensors), *rest), dtype)
        start = 0
        for t in tensors:
            end = start + t.shape[0]
            packed[start:end].copy_(t)
            start = end
        collapse(packed)
        start = 0
        for t in tensors:
            end = start + t.shape[0]
            t.data = packed[start:end]
            start = end
    return packed

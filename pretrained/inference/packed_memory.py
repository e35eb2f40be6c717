"""Memory for the packed weights of quantized layers: consecutive, in transparent huge pages.

A quantized decode step streams every packed weight once per token, and at 1 or 4 bits per weight the
layers of a ~100M model are each under 2 MB, so :func:`pretrained.inference.hugepages.empty` (which gives
huge pages only from 2 MB up) would leave all of them in 4 KB pages. Read from 4 KB pages the int8 kernel
streamed about a third of what it streams from huge pages in single-thread tests here (the hardware
prefetchers stop at every 4 KB boundary, and every page costs a TLB miss). So the layers take their kernel tensors from
shared chunks of huge-page memory, handed out in the order the layers build them (the order of the
first forward: the order a step reads them), and a step reads one long run of memory.

Each dtype has chunks of its own: ``torch.save`` refuses a state dict in which two tensors view one
storage as different types, so a chunk holds one dtype (the int8 weights of consecutive layers, their fp32
scales, ... each form their own run). A chunk is freed when the last tensor viewing it is; a layer that
rebuilds its tensors (after ``.to()`` or a replaced buffer) leaves its old slot unused until then.
``torch.save`` and ``copy.deepcopy`` of a single tensor copy its whole storage, here the chunk, hence chunks
of a few MB.
"""

from __future__ import annotations

import math
import threading

import torch

from pretrained.inference import hugepages

ENABLED = True  # False: layers keep their tensors where loading put them (for measuring what this gains)
# Bytes per shared chunk (tensors over a quarter of it get a region of their own). Small enough that the
# unused tail, and what ``torch.save`` or ``deepcopy`` of one tensor copies (the whole chunk: its storage),
# stay small; large enough to hold several layers of a small model.
CHUNK = 8 << 20
ALIGN = 64  # a cache line: each tensor starts on one, as the kernels' vector loads prefer

_lock = threading.Lock()
_chunks: dict[torch.dtype, tuple[torch.Tensor, int]] = {}  # dtype -> (its current chunk, next free byte)


def empty(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised contiguous CPU tensor placed right after the previous one of its dtype, in huge pages
    where the OS allows (elsewhere ordinary memory)."""
    numel = 1
    for n in shape:
        numel *= n
    nbytes = numel * dtype.itemsize
    if not hugepages.SUPPORTED or nbytes == 0:
        return torch.empty(shape, dtype=dtype)
    if nbytes > CHUNK // 4:
        return hugepages.empty(shape, dtype)
    with _lock:
        buffer, offset = _chunks.get(dtype, (None, 0))
        if buffer is None or offset + numel > buffer.numel():
            buffer, offset = hugepages.empty((CHUNK // dtype.itemsize,), dtype), 0
        _chunks[dtype] = buffer, offset + -(-nbytes // ALIGN) * ALIGN // dtype.itemsize
    return buffer[offset : offset + numel].view(shape)


def place(tensor: torch.Tensor) -> torch.Tensor:
    """A copy of ``tensor`` in packed memory (contiguous); ``tensor`` itself when it is not a CPU tensor."""
    if tensor.device.type != "cpu":
        return tensor
    with torch.inference_mode(False):  # a plain tensor even when built during an inference-mode step
        out = empty(tensor.shape, tensor.dtype)
        out.copy_(tensor)
    return out


def move_buffer(module: torch.nn.Module, name: str) -> torch.Tensor:
    """Move ``module``'s buffer ``name`` into packed memory, keeping the buffer object (its ``.data`` is
    re-pointed, as :func:`pretrained.inference.hugepages.move_weights` does); returns it."""
    buffer = module._buffers[name]
    if buffer is not None and buffer.device.type == "cpu" and type(buffer) is torch.Tensor:
        with torch.inference_mode(False), torch.no_grad():
            buffer.data = place(buffer.contiguous())
    return buffer


def pack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Copy ``tensors`` (CPU, one dtype, equal sizes past the first dimension) one after another along the
    first dimension into one new packed tensor, and re-point each one's ``.data`` at its rows, as
    :func:`pretrained.inference.hugepages.pack` does (objects, names and values kept), but from the shared
    chunks: a fused group of small quantized layers is read as one run of memory. Returns the packed tensor."""
    return pack_run([tensors])[0]


def pack_run(groups: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """:func:`pack` for several groups at once, all in one new allocation, one group after another (each
    starting on a cache line): the tensors a step reads one after another become one run of memory, so the
    kernels' prefetches past one group's end fetch the next group's start. All tensors of one dtype. Returns
    each group's packed tensor (views of the run)."""
    dtype = groups[0][0].dtype
    shapes = []
    for tensors in groups:
        rest = tuple(tensors[0].shape[1:])
        if any(tuple(t.shape[1:]) != rest or t.dtype != dtype or t.device.type != "cpu" for t in tensors):
            raise ValueError(f"pack needs CPU tensors of one dtype and equal trailing sizes, got "
                             f"{[(tuple(t.shape), t.dtype, t.device.type) for t in tensors]}")  # fmt: skip
        shapes.append((sum(t.shape[0] for t in tensors), *rest))
    sizes = [math.prod(shape) for shape in shapes]
    step = ALIGN // dtype.itemsize
    starts = [0]
    for numel in sizes:
        starts.append(starts[-1] + -(-numel // step) * step)
    with torch.inference_mode(False), torch.no_grad():  # plain tensors even under inference_mode
        run = empty((starts[-1],), dtype) if ENABLED else torch.empty(starts[-1], dtype=dtype)
        packed = []
        for tensors, shape, start, numel in zip(groups, shapes, starts, sizes):
            whole = run[start : start + numel].view(shape)
            row = 0
            for t in tensors:
                rows = whole[row : row + t.shape[0]]
                rows.copy_(t)
                t.data = rows
                row += t.shape[0]
            packed.append(whole)
    return packed


def holds(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` already sits in placed memory: huge-page regions, or a view into a larger storage
    (a packed group's rows, see :func:`pack`), which moving it would tear out of its group."""
    if tensor.device.type != "cpu":
        return False
    if hugepages.SUPPORTED and hugepages.in_huge_pages(tensor):
        return True
    return tensor.untyped_storage().nbytes() > tensor.numel() * tensor.element_size()


def held_bytes(tensor: torch.Tensor) -> tuple[int, int]:
    """``(key, bytes)`` of the memory ``tensor`` holds, for footprints: its whole storage, except in huge-page
    regions, which tensors share (the chunks above), where only its own bytes count. Equal keys: the
    same memory."""
    if tensor.device.type == "cpu" and hugepages.in_huge_pages(tensor):
        return tensor.data_ptr(), tensor.numel() * tensor.element_size()
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes()

"""Find a checkpoint's weight files and read tensors from them lazily.

Precedence follows transformers: ``model.safetensors``, then the sharded
``model.safetensors.index.json``, then ``pytorch_model.bin`` (+ index), read with
``weights_only=True`` so no pickled code can run.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pretrained.hub import cached_file

SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PT_WEIGHTS = "pytorch_model.bin"
PT_INDEX = "pytorch_model.bin.index.json"
# safetensors' dtype names, as a file's header gives them.
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                      "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I8": torch.int8,
                      "U8": torch.uint8, "BOOL": torch.bool}


def with_variant(name: str, variant: str | None) -> str:
    """``model.safetensors`` + ``fp16`` → ``model.fp16.safetensors`` (index files too)."""
    if not variant:
        return name
    stem, _, ext = name.partition(".")
    return f"{stem}.{variant}.{ext}"


@dataclass
class Checkpoint:
    """The weight files of one checkpoint."""

    files: list[str]
    safetensors: bool
    index_file: str | None = None
    weight_map: dict[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def find_checkpoint(
    path_or_repo_id: str | os.PathLike,
    *,
    variant: str | None = None,
    use_safetensors: bool | None = None,
    **hub: Any,
) -> Checkpoint:
    """Locate the weights of a checkpoint folder or cached repo id.

    Raises:
        OSError: no weight file (naming the candidates and where they were searched), a bad
            index, or a shard listed in the index that is not there.
    """
    candidates = []
    if use_safetensors is not False:
        candidates += [(with_variant(SAFE_WEIGHTS, variant), True, False),
                       (with_variant(SAFE_INDEX, variant), True, True)]
    if not use_safetensors:
        candidates += [(with_variant(PT_WEIGHTS, variant), False, False),
                       (with_variant(PT_INDEX, variant), False, True)]
    for name, safe, sharded in candidates:
        path = cached_file(path_or_repo_id, name, raise_if_missing=False, **hub)
        if path is None:
            continue
        if not sharded:
            return Checkpoint([path], safe)
        return _from_index(path_or_repo_id, path, safe, hub)
    names = ", ".join(c[0] for c in candidates)
    where = f"the folder {path_or_repo_id}" if Path(path_or_repo_id).is_dir() else (
        f"{str(path_or_repo_id)!r} (local folder or Hugging Face cache)")
    if hub.get("subfolder"):
        where += f", subfolder {hub['subfolder']!r}"
    hint = " (use_safetensors=True excludes pytorch_model.bin)" if use_safetensors else ""
    raise OSError(f"No model weights found in {where}: looked for {names}{hint}.")


def _from_index(path_or_repo_id: Any, index_path: str, safe: bool, hub: dict[str, Any]) -> Checkpoint:
    try:
        with open(index_path, encoding="utf-8") as f:
            index = json.load(f)
        weight_map = dict(index["weight_map"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise OSError(f"{index_path} is not a valid checkpoint index ({type(e).__name__}: {e}).") from None
    files = []
    for shard in dict.fromkeys(weight_map.values()):  # ordered, unique
        # Shards sit next to the index (same subfolder), wherever that is.
        local = Path(index_path).parent / shard
        if local.is_file():
            files.append(str(local))
            continue
        found = cached_file(path_or_repo_id, shard, raise_if_missing=False, **hub)
        if found is None:
            raise OSError(f"Shard {shard!r} listed in {index_path} is missing; the checkpoint is incomplete.")
        files.append(found)
    return Checkpoint(files, safe, index_path, weight_map, index.get("metadata") or {})


class LazyTensor:
    """A tensor in a checkpoint file, read only when asked (whole or as a slice)."""

    __slots__ = ("name", "file", "_handle", "_tensor")

    def __init__(self, name: str, file: str, handle: Any = None, tensor: torch.Tensor | None = None):
        self.name, self.file, self._handle, self._tensor = name, file, handle, tensor

    @property
    def shape(self) -> tuple[int, ...]:
        if self._tensor is not None:
            return tuple(self._tensor.shape)
        return tuple(self._handle.get_slice(self.name).get_shape())

    @property
    def dtype(self) -> torch.dtype | None:
        """The stored dtype, read from the file header (``None`` for a type torch has no name for here)."""
        if self._tensor is not None:
            return self._tensor.dtype
        return SAFETENSORS_DTYPES.get(self._handle.get_slice(self.name).get_dtype())

    def load(self) -> torch.Tensor:
        if self._tensor is not None:
            return self._tensor
        try:
            return self._handle.get_tensor(self.name)
        except Exception as e:  # safetensors raises its own error type for bad data
            raise OSError(f"Could not read tensor {self.name!r} from {self.file}: {e}") from None

    def release(self, tensor: torch.Tensor) -> None:
        """Drop from this process's resident memory the pages of ``tensor`` (as :meth:`load` returned it)
        that map the checkpoint file; they stay in the OS page cache and are read back if touched again.

        The loader calls it once a hook has made its own copy (a quantizer, a dtype cast), so a load that
        converts every weight does not keep the whole file resident on top of the converted model. A
        tensor that is not a view of the file is left alone.
        """
        if self._handle is None or tensor.device.type != "cpu" or tensor.numel() == 0:
            return
        start = tensor.data_ptr()
        stop = start + tensor.numel() * tensor.element_size()
        if not _file_mapped(self.file, start, stop):
            return
        page = _PAGE_SIZE
        first, last = -(-start // page) * page, stop // page * page  # whole pages inside the tensor only
        if last > first:
            _madvise_dontneed(first, last - first)

    def load_slice(self, dim: int, start: int, stop: int) -> torch.Tensor:
        """Read only ``[start:stop]`` along ``dim`` (what a tensor-parallel shard needs) into new memory.

        From a safetensors file the bytes are read with ``pread``, not through the file's memory map: mapped
        pages, once touched, count in this process's resident memory until the file is closed, so slicing
        through the map would hold as much memory as the whole tensor."""
        if self._tensor is not None:
            return self._tensor.narrow(dim, start, stop - start)
        try:
            return read_safetensors_slice(self.file, self.name, dim, start, stop)
        except (OSError, ValueError, KeyError) as e:
            raise OSError(f"Could not read [{start}:{stop}] of dimension {dim} of tensor {self.name!r} from "
                          f"{self.file}: {e}") from None


@functools.lru_cache(maxsize=16)
def _safetensors_header(file: str, size: int, mtime_ns: int) -> tuple[dict[str, Any], int]:
    """A safetensors file's header (tensor name → dtype, shape, byte offsets) and where its data starts."""
    with open(file, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        if length <= 0 or length > size - 8:
            raise ValueError(f"header length {length} does not fit a file of {size} bytes")
        return json.loads(f.read(length)), 8 + length


def read_safetensors_slice(file: str, name: str, dim: int, start: int, stop: int) -> torch.Tensor:
    """``tensor[..., start:stop, ...]`` (``dim``) of tensor ``name`` in a safetensors file, read with ``pread``
    straight into the result: one read per contiguous run of bytes."""
    stat = os.stat(file)
    header, data_start = _safetensors_header(file, stat.st_size, stat.st_mtime_ns)
    entry = header[name]
    dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError(f"dtype {entry['dtype']} cannot be read as a torch tensor")
    shape = list(entry["shape"])
    if not 0 <= start <= stop <= shape[dim]:
        raise ValueError(f"[{start}:{stop}] is outside dimension {dim} of shape {shape}")
    out = torch.empty([*shape[:dim], stop - start, *shape[dim + 1 :]], dtype=dtype)
    step = out.element_size()
    for size in shape[dim + 1 :]:
        step *= size  # bytes per index along dim
    outer = 1
    for size in shape[:dim]:
        outer *= size
    run, stride = (stop - start) * step, shape[dim] * step
    offset = data_start + entry["data_offsets"][0] + start * step
    buffer = memoryview(out.view(-1).view(torch.uint8).numpy()) if out.numel() else memoryview(b"")
    with open(file, "rb", buffering=0) as f:
        fd = f.fileno()
        for block in range(outer if run else 0):
            view = buffer[block * run : (block + 1) * run]
            done = 0
            while done < run:  # pread may return less than asked
                got = os.preadv(fd, [view[done:]], offset + block * stride + done)
                if got <= 0:
                    raise OSError("the file ended before the tensor's bytes")
                done += got
    return out


def iter_checkpoint(checkpoint: Checkpoint, *, weights_only: bool = True) -> Iterator[LazyTensor]:
    """Yield every tensor of the checkpoint lazily, one file open at a time."""
    for file in checkpoint.files:
        if checkpoint.safetensors:
            yield from _iter_safetensors(file)
        else:
            for name, tensor in load_torch_file(file, weights_only=weights_only).items():
                yield LazyTensor(name, file, tensor=tensor)


def _iter_safetensors(file: str) -> Iterator[LazyTensor]:
    from safetensors import safe_open

    try:
        handle = safe_open(file, framework="pt")
    except Exception as e:
        raise OSError(f"{file} is not a valid safetensors file (corrupt or truncated?): {e}") from None
    with handle:
        metadata = handle.metadata() or {}
        if metadata.get("format", "pt") not in ("pt", "np", "flax", "tf", "mlx"):
            raise OSError(f"{file} has unknown format {metadata.get('format')!r} in its metadata.")
        for name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
            yield LazyTensor(name, file, handle)


def load_torch_file(file: str, *, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """Read a ``pytorch_model.bin`` state dict; pickled code is refused unless ``weights_only=False``."""
    import pickle

    try:
        try:
            state = torch.load(file, map_location="cpu", weights_only=weights_only, mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):
                raise
            # Files from the legacy (pre-zip) serializer cannot be memory-mapped.
            state = torch.load(file, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as e:
        raise OSError(
            f"{file} contains pickled objects that are not plain tensors, and loading it could run arbitrary "
            f"code. It was refused. If you trust this file, pass weights_only=False. ({e})"
        ) from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise OSError(f"{file} is not a valid PyTorch checkpoint (corrupt or truncated?): {e}") from None
    if not isinstance(state, dict):
        raise OSError(f"{file} does not hold a state dict (found {type(state).__name__}).")
    return state


# --- giving back the pages of mapped files -------------------------------------------------------------
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MAPS: dict[str, list[tuple[int, int]]] = {}  # file -> its mapped address ranges, as last read


def _file_mapped(file: str, start: int, stop: int) -> bool:
    """Whether ``[start, stop)`` lies inside a mapping of ``file`` (read from ``/proc/self/maps``)."""
    path = os.path.realpath(file)
    for attempt in range(2):
        if attempt or path not in _MAPS:
            _MAPS[path] = _mapped_ranges(path)
        if any(low <= start and stop <= high for low, high in _MAPS[path]):
            return True
    return False


def _mapped_ranges(path: str) -> list[tuple[int, int]]:
    ranges = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].rstrip("\n") == path:
                    low, high = fields[0].split("-")
                    ranges.append((int(low, 16), int(high, 16)))
    except OSError:  # not Linux: nothing is given back
        return []
    return ranges


def _madvise_dontneed(address: int, length: int) -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # no madvise: the pages stay
        ctypes.CDLL(None, use_errno=True).madvise(ctypes.c_void_p(address), ctypes.c_size_t(length), 4)  # DONTNEED

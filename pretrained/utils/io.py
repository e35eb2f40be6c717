"""Reading JSON files with clear errors, and atomic file writes: a crash leaves either the old file or
the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any


def _umask() -> int:
    """The process umask, read without changing it where the system allows (``os.umask`` can only be
    read by setting it, which races with other threads creating files)."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The file gets the mode a plain ``open(path, "w")`` would give (``0o666`` less the umask), not the
    ``0o600`` of a temporary file, so saved folders stay readable by whoever the user shares them with.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            # Set once written: some writers (safetensors) replace the file rather than reuse it.
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def jsonable(value: Any) -> Any:
    """``value`` as ``json.dumps`` takes it: containers element-wise (keys as strings), enums by value, torch
    objects (dtypes) by name without ``torch.``, NaN as ``None`` (JSON has no NaN)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if type(value).__module__ == "torch":
        return str(value).removeprefix("torch.")
    return value


def read_json_object(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``path``; ``OSError`` naming the file when it is not valid JSON or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise OSError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise OSError(f"{path} must hold a JSON object, not {type(data).__name__}.")
    return data


def output_folder(save_directory: str | os.PathLike, push_to_hub: bool = False, *,
                  not_a_folder: type[Exception] = AssertionError) -> Path:
    """The folder a ``save_pretrained`` writes into, created when missing.

    Raises:
        NotImplementedError: ``push_to_hub`` (the upload is left to ``huggingface_hub``).
        not_a_folder: ``save_directory`` is a file (the exception type transformers raises for that class).
    """
    if push_to_hub:
        raise NotImplementedError("push_to_hub is not supported yet; upload the folder with huggingface_hub.")
    directory = Path(save_directory)
    if directory.is_file():
        raise not_a_folder(f"Provided path ({save_directory}) should be a directory, not a file")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def replace_folder(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished folder ``source`` to ``target``; an older ``target`` is moved aside first and
    removed only after, so the name never points at half of one."""
    if os.path.exists(target):
        old = f"{os.fspath(target)}.old-{os.getpid()}"
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)


def read_optional_json(path_or_id: str | os.PathLike, filename: str, hub: dict[str, Any]) -> dict[str, Any]:
    """The JSON object ``filename`` of a local folder or a repo in the Hugging Face cache (``hub``: the
    download options), or ``{}`` when it is missing or the path cannot be searched; the loader that asked
    reports an unusable path with its own message."""
    from pretrained.hub import cached_file

    if os.path.isfile(path_or_id):
        return {}
    try:
        file = cached_file(path_or_id, filename, raise_if_missing=False, **hub)
    except OSError:
        return {}
    return read_json_object(file) if file else {}

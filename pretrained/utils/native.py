"""Small C++ libraries built on the user's machine: compiled once with the system's compiler, kept in a cache
folder under a name that hashes the source, flags and compiler, and loaded with ctypes.

Used by the inference kernels (``pretrained.inference.kernels``, ``quant_kernels``, ``int8_dynamic``,
``decode_ops``, ``encoder_attention``) and by the image processors' loops (``pretrained.processing.pixel_kernel``,
``resample_kernel``); it lives here, below both, so each layer may use it.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


def kernel_cache_dir() -> Path:
    """Where compiled kernels are kept: ``$PRETRAINED_KERNEL_CACHE``, else ``pretrained/kernels`` in
    ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    folder = os.environ.get("PRETRAINED_KERNEL_CACHE")
    if folder:
        return Path(folder)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pretrained" / "kernels"


def build_library(name: str, source: str, flags: tuple[str, ...], openmp: bool = True) -> ctypes.CDLL:
    """Compile C++ ``source`` with GCC into a shared library (once per machine: it is kept in
    :func:`kernel_cache_dir` under a name that hashes the source, flags and compiler) and load it.

    With ``openmp``, OpenMP comes from ``libgomp.so.1``, the runtime torch has already loaded (the loader
    reuses it), so the kernels share torch's threads. Raises ``OSError`` (no compiler, a failed build, an
    unwritable cache)."""
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise OSError("no C++ compiler (g++) on PATH")
    compiler = os.path.realpath(compiler)
    flags = (*flags, "-fopenmp") if openmp else tuple(flags)
    key = hashlib.sha256("\0".join((source, *flags, compiler)).encode()).hexdigest()[:20]
    folder = kernel_cache_dir()
    path = folder / f"{name}-{key}.so"
    with _lock:
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            work = tempfile.mkdtemp(prefix=f".{name}.", dir=folder)
            try:
                cpp, lib = os.path.join(work, f"{name}.cpp"), os.path.join(work, f"{name}.so")
                with open(cpp, "w", encoding="utf-8") as f:
                    f.write(source)
                done = subprocess.run([compiler, *flags, "-shared", "-fPIC", cpp, "-o", lib],
                                      capture_output=True, text=True)  # fmt: skip
                if done.returncode != 0:
                    raise OSError(f"building {name} with {compiler} failed:\n{done.stderr[-2000:]}")
                os.replace(lib, path)  # atomic: another process sees the whole library or none
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return ctypes.CDLL(str(path))


def load_library(name: str, source: str, flags: tuple[str, ...], signatures: dict[str, tuple[Any, list[Any]]],
                 openmp: bool = True, inductor_fallback: bool = False) -> ctypes.CDLL | None:  # fmt: skip
    """:func:`build_library`, then each listed symbol's ``(restype, argtypes)`` set; ``None`` where the library
    cannot be built (the callers' slower paths then remain). ``inductor_fallback``: where GCC is not found or
    fails, try torch inductor's C++ toolchain, which knows more compilers (seconds to load per process; for
    callers that already import torch)."""
    try:
        lib = build_library(name, source, flags, openmp)
    except OSError:
        lib = None
    if lib is None and inductor_fallback:
        try:
            from torch._inductor.codecache import CppCodeCache

            lib = CppCodeCache.load(source, extra_flags=flags)
        except Exception:  # noqa: BLE001 - no compiler, an old torch...
            lib = None
    if lib is None:
        return None
    for symbol, (restype, argtypes) in signatures.items():
        fn = getattr(lib, symbol)
        fn.restype, fn.argtypes = restype, argtypes
    return lib

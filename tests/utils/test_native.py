"""utils.native: C++ libraries compiled once per machine into the kernel cache and loaded with ctypes."""

import shutil

import pytest

from pretrained.inference import kernels
from pretrained.utils import native


def test_build_library_caches_by_source(tmp_path, monkeypatch):
    """Kernels are compiled once per machine into the cache folder; later loads reuse the file; a failed build
    says why."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setenv("PRETRAINED_KERNEL_CACHE", str(tmp_path / "cache"))
    source = 'extern "C" int answer() { return 42; }\n'
    assert native.build_library("probe", source, ("-O1",)).answer() == 42
    (built,) = (tmp_path / "cache").glob("probe-*.so")
    stamp = built.stat().st_mtime_ns
    assert native.build_library("probe", source, ("-O1",)).answer() == 42
    assert built.stat().st_mtime_ns == stamp and len(list((tmp_path / "cache").iterdir())) == 1
    native.build_library("probe", source.replace("42", "43"), ("-O1",))  # another source: another file
    assert len(list((tmp_path / "cache").glob("probe-*.so"))) == 2
    with pytest.raises(OSError, match="building broken"):
        native.build_library("broken", "this is not C++", ())
    assert not list((tmp_path / "cache").glob("broken*"))  # nothing half-built left behind
    assert kernels.load_library is native.load_library  # the inference kernels build through it


def test_every_library_builds_with_the_system_compiler(tmp_path, monkeypatch):
    """Each C++ library of the package compiles with GCC and its own flags (compiling needs no AVX-512 CPU).
    Their loaders fall back to inductor's toolchain, whose ``-march=native`` would hide a missing flag here."""
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    from pretrained.inference import (
        decode_ops,
        decode_ops_source,
        encoder_attention,
        encoder_attention_source,
        int8_dynamic,
        int8_dynamic_sources,
        quant_kernel_sources,
        quant_kernels,
    )
    from pretrained.processing import pixel_kernel, resample_kernel

    monkeypatch.setenv("PRETRAINED_KERNEL_CACHE", str(tmp_path / "cache"))
    libraries = [
        ("small_rows_linear", kernels.KERNEL_SOURCE.replace("// @DISPATCH@", kernels._dispatch_source()),
         kernels._FLAGS, True),
        ("quant_kernels", quant_kernel_sources.KERNEL_SOURCE, quant_kernels._FLAGS, True),
        ("int8_dynamic", int8_dynamic_sources.KERNEL_SOURCE, int8_dynamic._FLAGS, True),
        ("decode_ops", decode_ops_source.DECODE_OPS_SOURCE, decode_ops._FLAGS, True),
        ("encoder_attention", encoder_attention_source.ENCODER_ATTENTION_SOURCE, encoder_attention._FLAGS, True),
        ("pixel_table", pixel_kernel._SOURCE, pixel_kernel._FLAGS, False),
        ("pillow_resample", resample_kernel._SOURCE, resample_kernel._FLAGS, False),
    ]  # fmt: skip
    for name, source, flags, openmp in libraries:
        native.build_library(name, source, flags, openmp)  # raises OSError with the compiler's message
    assert len(list((tmp_path / "cache").glob("*.so"))) == len(libraries)

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
    assert kernels.build_library is native.build_library  # the inference kernels build through it

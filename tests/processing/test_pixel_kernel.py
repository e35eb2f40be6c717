"""The compiled pixel-table loop gives the same bits as numpy's rescale/normalise, and falls back cleanly."""

import shutil

import numpy as np
import pytest

from pretrained.processing import pixel_kernel
from pretrained.processing.image_transforms import PixelTable
from pretrained.utils import native

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="no C++ compiler")


def _numpy_apply(table: PixelTable, image: np.ndarray, out: np.ndarray, monkeypatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(pixel_kernel, "_LOADED", [None])
        table.apply_into(image, out)


@needs_compiler
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("mean,std", [(0.5, 0.5), ([0.485, 0.456, 0.406, 0.3], [0.229, 0.224, 0.225, 0.2])])
def test_kernel_matches_numpy_bits(channels, mean, std, monkeypatch):
    assert pixel_kernel.available()
    rng = np.random.default_rng(channels)
    mean = mean if np.isscalar(mean) else mean[:channels]
    std = std if np.isscalar(std) else std[:channels]
    table = PixelTable(channels, True, 1 / 255, True, mean, std)
    piece = rng.integers(0, 256, (37, 29 * 2, channels), dtype=np.uint8)
    image = piece[3:30, 5:34]  # a view inside a larger strip, as split_resize's finish hands it
    full = np.full((1, channels, 41, 53), 7.0, dtype=np.float32)
    expected = full.copy()
    _numpy_apply(table, image, expected[0, :, 4:31, 11:40], monkeypatch)
    table.apply_into(image, full[0, :, 4:31, 11:40])  # the compiled loop
    assert np.array_equal(full.view(np.uint32), expected.view(np.uint32))  # outside the slice untouched too


@needs_compiler
def test_kernel_matches_table_path_without_arithmetic(monkeypatch):
    # rescale only: PixelTable keeps exact arithmetic steps or its gather; both must agree with the loop
    rng = np.random.default_rng(1)
    for table in (PixelTable(3, True, 1 / 255, False, None, None), PixelTable(3, False, 1.0, True, 3, 7)):
        image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        ours, expected = np.empty((3, 16, 16), np.float32), np.empty((3, 16, 16), np.float32)
        _numpy_apply(table, image, expected, monkeypatch)
        assert pixel_kernel.table_into(image, table.table, ours)
        assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32))


@needs_compiler
def test_layouts_it_does_not_take_fall_back():
    table = PixelTable(3, True, 1 / 255, True, 0.5, 0.5).table
    image = np.zeros((4, 6, 3), np.uint8)
    assert not pixel_kernel.table_into(image, table, np.empty((3, 6, 4), np.float32).transpose(0, 2, 1))
    assert not pixel_kernel.table_into(image[:, ::2], table, np.empty((3, 4, 3), np.float32))
    assert not pixel_kernel.table_into(image.astype(np.float32), table, np.empty((3, 4, 6), np.float32))
    assert not pixel_kernel.table_into(image, table, np.empty((3, 4, 6), np.float64))
    assert not pixel_kernel.table_into(image, table[:2], np.empty((3, 4, 6), np.float32))


def test_without_compiler_numpy_does_the_work(monkeypatch):
    monkeypatch.setattr(pixel_kernel, "_LOADED", [])
    monkeypatch.setattr(native.shutil, "which", lambda name: None)  # no compiler found
    assert not pixel_kernel.available()
    table = PixelTable(3, True, 1 / 255, True, 0.5, 0.5)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    out = np.empty((3, 4, 4), np.float32)
    table.apply_into(image, out)
    expected = (image.astype(np.float64) * (1 / 255)).astype(np.float32).transpose(2, 0, 1)
    np.testing.assert_array_equal(out, (expected - np.float32(0.5)) / np.float32(0.5))


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setattr(pixel_kernel, "_LOADED", [])
    monkeypatch.setenv("PRETRAINED_PIXEL_KERNEL", "0")
    assert not pixel_kernel.available()


@pytest.mark.parametrize("kernel", [True, False])
def test_processor_matches_transformers_with_and_without_the_loop(kernel, monkeypatch):
    import torch
    import transformers
    from vision_fixtures import random_image

    import pretrained
    import pretrained.processing.image_processing as IP

    if kernel and not pixel_kernel.available():
        pytest.skip("no C++ compiler")
    monkeypatch.setattr(pixel_kernel, "_LOADED", [pixel_kernel._function() if kernel else None])
    rng = np.random.default_rng(11)
    images = [random_image(rng, mode, h, w) for mode, h, w in (("RGB", 301, 420), ("L", 400, 150),
                                                                ("RGBA", 180, 500), ("RGB", 90, 130))]
    ours, theirs = pretrained.ViTImageProcessor(image_mean=0.5, image_std=0.25), \
        transformers.ViTImageProcessorPil(image_mean=0.5, image_std=0.25)
    for threads in (2, 1):
        monkeypatch.setattr(IP, "_threads", lambda threads=threads: threads)
        for image in images:  # single images: the split path at 2 threads (strips into column slices)
            expected = theirs(image, return_tensors="pt")["pixel_values"]
            assert torch.equal(ours(image, return_tensors="pt")["pixel_values"], expected)
        rgb = [im for im in images if im.mode == "RGB"]
        assert torch.equal(ours(rgb, return_tensors="pt")["pixel_values"],
                           theirs(rgb, return_tensors="pt")["pixel_values"])

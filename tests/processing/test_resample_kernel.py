"""The compiled resampling loop (``processing/resample_kernel.py``) gives Pillow's own pixels: every filter,
both pass orders, one-pass resizes, enlarging and shrinking, kept windows and row shares, RGB and L images
read in place or from arrays; and the processors that use it stay bit-identical to transformers'."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image
from vision_fixtures import random_image

import pretrained as P
import pretrained.processing.image_processing as IP
from pretrained.processing import resample_kernel as R

pytestmark = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="no C++ compiler"
)


def identity_table(channels):
    return np.tile(np.arange(256, dtype=np.float32), (channels, 1))


def test_loop_agrees_with_this_pillow(loops):
    assert R.available() and R._check()


@pytest.fixture(params=["simd", "plain"])
def loops(request):
    """Each test runs with the AVX2 loops (where the CPU has them) and with the plain C++ ones."""
    lib = R._library()
    lib.resample_simd(int(request.param == "simd"))
    yield request.param
    lib.resample_simd(1)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_random_resizes_equal_pillow(mode, loops):
    rng = np.random.default_rng(11 if mode == "RGB" else 12)
    channels = len(mode)
    for trial in range(60):
        width, height = (int(v) for v in rng.integers(1, 500, 2))
        out_w, out_h = (int(v) for v in rng.integers(1, 300, 2))
        out_w = width if trial % 6 == 0 else out_w  # vertical pass only
        out_h = height if trial % 7 == 0 else out_h  # horizontal pass only
        if trial % 5 == 1:
            out_h = max(1, height // 4)  # height shrinks most: Pillow 13 runs the vertical pass first
        image = random_image(rng, mode, height, width)
        resample = int(rng.integers(1, 6))
        expected = np.asarray(image.resize((out_w, out_h), resample)).reshape(out_h, out_w, channels)
        left, top = int(rng.integers(0, out_w)), int(rng.integers(0, out_h))
        window = (left, top, int(rng.integers(1, out_w - left + 1)), int(rng.integers(1, out_h - top + 1)))
        plan = R.plan((width, height), (out_w, out_h), resample, window)
        rows = window[3]
        cut = int(rng.integers(0, rows + 1))
        kept = expected[top : top + rows, left : left + window[2]]
        for pixels in (R.pil_pixels(image), R.array_pixels(np.asarray(image))):
            out = np.full((channels, rows, window[2]), -1, dtype=np.float32)
            plan.run(pixels, identity_table(channels), out[:, :cut], (0, cut))  # two shares of the rows
            plan.run(pixels, identity_table(channels), out[:, cut:], (cut, rows))
            assert np.array_equal(out, np.moveaxis(kept, -1, 0)), (
                mode,
                (width, height),
                (out_w, out_h),
                resample,
            )


def test_pixels_read_in_place_or_copied():
    rng = np.random.default_rng(3)
    image = random_image(rng, "RGB", 31, 17)
    pixels = R.pil_pixels(image)
    assert (pixels.pixel_bytes, pixels.channels, pixels.row_bytes) == (4, 3, 17 * 4)  # Pillow's own storage
    assert R.pil_pixels(random_image(rng, "RGBA", 5, 5)) is None
    assert R.array_pixels(np.zeros((4, 5, 4), np.uint8)) is None
    assert R.array_pixels(np.zeros((4, 5, 3), np.float32)) is None
    assert R.array_pixels(np.zeros((3, 4, 5), np.uint8).transpose(1, 2, 0)) is None  # pixels not packed
    gray = R.array_pixels(np.zeros((4, 5), np.uint8))
    assert (gray.width, gray.height, gray.channels) == (5, 4, 1)


def test_image_in_several_blocks_is_copied(loops):
    # Pillow keeps a large image in several memory blocks, which its Arrow export refuses: numpy copies it
    core = Image.core
    old = core.get_block_size()
    core.set_block_size(4096)
    try:
        rng = np.random.default_rng(4)
        image = random_image(rng, "RGB", 90, 70)
    finally:
        core.set_block_size(old)
    pixels = R.pil_pixels(image)
    assert pixels.pixel_bytes == 3  # from the numpy copy
    out = np.empty((3, 20, 30), np.float32)
    R.plan((70, 90), (30, 20), 2).run(pixels, identity_table(3), out, (0, 20))
    assert np.array_equal(out, np.moveaxis(np.asarray(image.resize((30, 20), 2)), -1, 0))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_processors_equal_transformers(monkeypatch, threads):
    monkeypatch.setattr(IP, "_threads", lambda: threads)
    rng = np.random.default_rng(threads)
    images = [
        random_image(rng, mode, h, w)
        for mode, h, w in (
            ("RGB", 301, 420),
            ("L", 400, 150),
            ("RGB", 224, 224),
            ("RGB", 130, 700),
            ("RGB", 20, 30),
        )
    ]
    arrays = [
        rng.integers(0, 256, (61, 45, 3), dtype=np.uint8),
        rng.integers(0, 256, (3, 50, 70), dtype=np.uint8),
        rng.integers(0, 256, (40, 33, 1), dtype=np.uint8),
    ]
    pairs = [
        (P.ViTImageProcessor(), T.ViTImageProcessorPil()),
        (
            P.ViTImageProcessor(resample=3, image_mean=0.4, image_std=0.3),
            T.ViTImageProcessorPil(resample=3, image_mean=0.4, image_std=0.3),
        ),
        (P.CLIPImageProcessor(), T.CLIPImageProcessorPil()),
        (
            P.CLIPImageProcessor(size=60, crop_size={"height": 50, "width": 41}, resample=1),
            T.CLIPImageProcessorPil(size=60, crop_size={"height": 50, "width": 41}, resample=1),
        ),
    ]
    runs = []
    real = R.Plan.run
    monkeypatch.setattr(R.Plan, "run", lambda self, *a: runs.append(1) or real(self, *a))
    for ours, theirs in pairs:
        for image in images + arrays:
            try:
                expected = theirs(image, return_tensors="pt")["pixel_values"]
            except ValueError:  # three means for a one-channel image (ViT keeps L): both refuse
                with pytest.raises(ValueError):
                    ours(image, return_tensors="pt")
                continue
            assert torch.equal(ours(image, return_tensors="pt")["pixel_values"], expected)
        three = [images[0], *images[2:], *arrays[:2]]  # ViT keeps one-channel images as they are
        batch = images + arrays if isinstance(ours, P.CLIPImageProcessor) else three
        expected = theirs(batch, return_tensors="pt")["pixel_values"]
        assert torch.equal(ours(batch, return_tensors="pt")["pixel_values"], expected)
    assert runs  # the loop ran


def test_batch_with_an_image_the_loop_does_not_take(monkeypatch):
    monkeypatch.setattr(IP, "_threads", lambda: 2)
    rng = np.random.default_rng(9)
    images = [
        random_image(rng, "RGB", 100, 120),
        random_image(rng, "RGBA", 90, 80),
        random_image(rng, "RGB", 60, 70),
    ]
    # ViT keeps the RGBA image's four channels: a batch of three- and four-channel images is refused
    ours, theirs = P.ViTImageProcessor(size=32), T.ViTImageProcessorPil(size=32)
    with pytest.raises(ValueError):
        theirs(images, return_tensors="pt")
    with pytest.raises(ValueError):
        ours(images, return_tensors="pt")
    ours, theirs = P.CLIPImageProcessor(size=40, crop_size=32), T.CLIPImageProcessorPil(size=40, crop_size=32)
    assert torch.equal(
        ours(images, return_tensors="pt")["pixel_values"], theirs(images, return_tensors="pt")["pixel_values"]
    )


def test_plans_and_runs_refuse_what_does_not_fit():
    assert R.plan((10, 10), (0, 5), 2) is None
    assert R.plan((10, 10), (8, 8), 2, (4, 0, 5, 8)) is None  # the window leaves the output
    assert R.plan((10, 10), (8, 8), 0) is None  # nearest is Pillow's own path
    plan = R.plan((10, 12), (8, 6), 2, (1, 1, 5, 4))
    image = random_image(np.random.default_rng(0), "RGB", 12, 10)
    pixels, table = R.pil_pixels(image), identity_table(3)
    plan.run(pixels, table, np.empty((3, 4, 5), np.float32), (0, 4))
    bad = [
        (R.pil_pixels(random_image(np.random.default_rng(0), "RGB", 11, 10)), table, (3, 4, 5), (0, 4)),
        (pixels, identity_table(1), (3, 4, 5), (0, 4)),
        (pixels, table, (3, 4, 6), (0, 4)),
        (pixels, table, (3, 4, 5), (0, 5)),
        (pixels, table, (3, 3, 5), (0, 4)),
    ]
    for source, lookup, shape, rows in bad:
        with pytest.raises(ValueError):
            plan.run(source, lookup, np.empty(shape, np.float32), rows)

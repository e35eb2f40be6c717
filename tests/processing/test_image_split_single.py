"""A single large image processed on several threads end to end (the resize's last pass in strips, each
strip cropped, rescaled and normalised by the thread that made it) gives the general path's pixels and
transformers'; ``split_resize``'s strip callback covers the resized image exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import transformers as T
from vision_fixtures import random_image

import pretrained as P
import pretrained.processing.image_processing as IP
from pretrained.processing import image_transforms as IT
from pretrained.processing import resample_kernel as R


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_split_resize_strips_cover_pillows_resize(mode):
    rng = np.random.default_rng(7)
    with ThreadPoolExecutor(2) as pool:
        for trial in range(12):
            height, width = (int(v) for v in rng.integers(20, 300, 2))
            image = random_image(rng, mode, height, width)
            size = [(224, 224), (width, 50), (60, height), (width, height)][trial % 4]
            resample = 1 + trial % 5
            expected = np.asarray(image.resize(size, resample))
            canvas = np.full(expected.shape, -1, dtype=np.int32)
            seen = []

            def finish(piece, left, top, canvas=canvas, seen=seen):
                assert piece.mode == mode
                pixels = np.asarray(piece).astype(np.int32)
                region = canvas[top:top + piece.height, left:left + piece.width]
                assert (region == -1).all()  # every pixel is delivered once
                region[...] = pixels
                seen.append((left, top))

            parts = 2 + trial % 2
            assert IT.split_resize(image, size, resample, parts, pool.map, finish=finish) is None
            assert np.array_equal(canvas, expected), (height, width, size, resample)
            assert seen


def test_rgba_at_its_target_size_is_copied():
    # Pillow copies an image resized to its own size; a premultiplied round trip would change the pixels
    image = random_image(np.random.default_rng(3), "RGBA", 40, 30)
    out = IT.split_resize(image, (30, 40), 2, 2)
    assert out is not image and np.array_equal(np.asarray(out), np.asarray(image))


@pytest.mark.parametrize("threads", [2, 3])
def test_single_images_split_end_to_end(monkeypatch, threads):
    monkeypatch.setattr(R, "available", lambda: False)  # the Pillow path the compiled loop otherwise replaces
    rng = np.random.default_rng(threads)
    cases = [
        (dict(), dict()),
        (dict(image_mean=0.5, image_std=0.25, resample=1), dict(image_mean=0.5, image_std=0.25, resample=1)),
        (dict(do_normalize=False, size={"height": 300, "width": 60}, resample=3),
         dict(do_normalize=False, size={"height": 300, "width": 60}, resample=3)),
    ]
    clip = dict(size={"shortest_edge": 120}, crop_size={"height": 100, "width": 70})
    images = [random_image(rng, mode, h, w) for mode, h, w in
              (("RGB", 301, 420), ("L", 400, 150), ("RGBA", 180, 500), ("RGB", 224, 224), ("RGB", 130, 700))]
    pairs = [(P.ViTImageProcessor(**a), T.ViTImageProcessorPil(**b)) for a, b in cases]
    pairs.append((P.CLIPImageProcessor(**clip), T.CLIPImageProcessorPil(**clip)))
    pairs.append((P.CLIPImageProcessor(crop_size=500), T.CLIPImageProcessorPil(crop_size=500)))  # padded crop
    split_calls = []
    real = IP.BaseImageProcessor._split_single

    def spy(self, *args):
        out = real(self, *args)
        split_calls.append(out is not None)
        return out

    monkeypatch.setattr(IP.BaseImageProcessor, "_split_single", spy)
    for ours, theirs in pairs:
        for image in images:
            monkeypatch.setattr(IP, "_threads", lambda: threads)
            try:
                expected = theirs(image, return_tensors="pt")["pixel_values"]
            except ValueError:  # e.g. three means for a one-channel image: both refuse
                with pytest.raises(ValueError):
                    ours(image, return_tensors="pt")
                continue
            a = ours(image, return_tensors="pt")["pixel_values"]
            b = ours([image], return_tensors="np")["pixel_values"]
            monkeypatch.setattr(IP, "_threads", lambda: 1)
            c = ours(image, return_tensors="pt")["pixel_values"]
            assert a.shape == expected.shape and torch.equal(a, expected)
            assert torch.equal(torch.from_numpy(b), a) and torch.equal(c, a)
    assert True in split_calls and False in split_calls  # both the split path and its fallback ran


@pytest.mark.parametrize("kernel", [True, False])
def test_batches_normalise_on_threads(monkeypatch, kernel):
    monkeypatch.setattr(IP, "_threads", lambda: 2)
    if not kernel:
        monkeypatch.setattr(R, "available", lambda: False)
    rng = np.random.default_rng(5)
    images = [random_image(rng, "RGB", int(rng.integers(100, 300)), int(rng.integers(100, 300))) for _ in range(5)]
    ours, theirs = P.ViTImageProcessor(), T.ViTImageProcessorPil()
    a = ours(images, return_tensors="pt")["pixel_values"]
    assert torch.equal(a, theirs(images, return_tensors="pt")["pixel_values"])
    monkeypatch.setattr(IP, "_threads", lambda: 1)
    assert torch.equal(a, ours(images, return_tensors="pt")["pixel_values"])

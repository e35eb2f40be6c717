"""The threaded and arithmetic paths of the image processors give exactly Pillow's / transformers' values:
``split_resize`` (one resize cut into strips per pass) against ``Image.resize`` on many sizes, modes and
filters, both pass orders; ``PixelTable``'s float32 arithmetic against its lookup table; and the
processors with threads forced on (single images split, batches spread) against transformers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
import transformers as T
from PIL import Image
from vision_fixtures import random_image

import pretrained as P
import pretrained.processing.image_processing as IP
from pretrained.processing import image_transforms as IT
from pretrained.processing.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_split_resize_is_pillows_resize(mode):
    rng = np.random.default_rng({"RGB": 0, "L": 1, "RGBA": 2}[mode])
    orders = set()
    with ThreadPoolExecutor(3) as pool:
        for trial in range(40):
            height, width = (int(v) for v in rng.integers(2, 400, 2))
            image = random_image(rng, mode, height, width)
            size = (224, 224) if trial % 4 == 0 else tuple(int(v) for v in rng.integers(1, 450, 2))
            orders.add(IT.pillow_vertical_first(width, height, *size))
            for resample in (1, 2, 3, 4, 5):
                expected = np.asarray(image.resize(size, resample))
                got = IT.split_resize(image, size, resample, 2 + trial % 3, pool.map if trial % 2 else map)
                assert got.mode == mode and np.array_equal(np.asarray(got), expected), (height, width, size, resample)
    assert orders == {False, True}  # both pass orders were exercised


def test_split_resize_eligibility():
    assert IT.can_split_resize(Image.new("RGB", (300, 300)), 2)
    assert not IT.can_split_resize(Image.new("RGB", (300, 300)), 0)  # NEAREST is another code path
    assert not IT.can_split_resize(Image.new("CMYK", (300, 300)), 2)
    assert not IT.can_split_resize(Image.new("I;16", (300, 300)), 2)


@pytest.mark.parametrize("settings", [
    dict(do_rescale=True, rescale_factor=1 / 255, do_normalize=True, mean=[0.5] * 3, std=[0.5] * 3),
    dict(do_rescale=True, rescale_factor=1 / 255, do_normalize=True, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD),
    dict(do_rescale=True, rescale_factor=1 / 255, do_normalize=False, mean=None, std=None),
    dict(do_rescale=False, rescale_factor=1 / 255, do_normalize=True, mean=[0.1, 0.2, 0.3], std=[0.7, 0.8, 0.9]),
    dict(do_rescale=True, rescale_factor=0.0123, do_normalize=True, mean=[0.48, 0.45, 0.4], std=[0.27, 0.26, 0.28]),
])
def test_pixel_table_arithmetic_equals_lookup(settings):
    table = IT.PixelTable(3, settings["do_rescale"], settings["rescale_factor"], settings["do_normalize"],
                          settings["mean"], settings["std"])
    image = np.random.default_rng(0).integers(0, 256, (2, 37, 29, 3), dtype=np.uint8)
    image[0].reshape(-1, 3)[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every value in every channel
    expected = np.stack([np.stack([table.table[c][im[..., c]] for c in range(3)]) for im in image])
    assert np.array_equal(table.apply(image).view(np.uint32), expected.view(np.uint32))
    if settings["mean"] in ([0.5] * 3, OPENAI_CLIP_MEAN):
        assert table.steps is not None  # the standard settings take the arithmetic path
    table.steps = None  # the lookup path gives the same bits
    assert np.array_equal(table.apply(image).view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("threads", [2, 3])
def test_processors_with_threads_equal_transformers(monkeypatch, threads):
    monkeypatch.setattr(IP, "_threads", lambda: threads)
    rng = np.random.default_rng(threads)
    images = [random_image(rng, mode, int(rng.integers(130, 420)), int(rng.integers(130, 420)))
              for mode in ("RGB", "L", "RGBA", "RGB", "RGB")]
    vit = dict(do_convert_rgb=True)
    tall = dict(do_convert_rgb=True, resample=3, size={"height": 200, "width": 90})
    for ours, theirs in ((P.ViTImageProcessor(**vit), T.ViTImageProcessorPil(**vit)),
                         (P.CLIPImageProcessor(), T.CLIPImageProcessorPil()),
                         (P.ViTImageProcessor(**tall), T.ViTImageProcessorPil(**tall))):
        for batch in ([images[0]], [images[1]], [images[2]], images, images[:3]):  # one image: split resize
            a = ours(batch, return_tensors="pt")["pixel_values"]
            b = theirs(batch, return_tensors="pt")["pixel_values"]
            assert a.shape == b.shape and torch.equal(a, b)
        listed = ours(images[:2])["pixel_values"]  # no return_tensors: a list of arrays, as transformers
        assert isinstance(listed, list) and len(listed) == 2 and listed[0].shape[0] == 3


def test_pool_map_takes_back_items_no_worker_started():
    """With every pool worker busy, the calling thread runs all the items itself, in order, each once,
    instead of waiting for a worker (a busy machine's case); with free workers the results are the same."""
    import threading
    import time

    pool = IP._pool()
    release = threading.Event()
    blockers = [pool.submit(release.wait, 10) for _ in range(pool._max_workers)]
    time.sleep(0.05)  # every worker is now inside release.wait
    caller, seen = threading.get_ident(), []

    def work(item):
        seen.append((item, threading.get_ident()))
        return item * item

    try:
        start = time.perf_counter()
        assert IP._pool_map(work, range(5)) == [0, 1, 4, 9, 16]
        assert time.perf_counter() - start < 5  # did not wait for the busy workers
        assert seen == [(i, caller) for i in range(5)]
    finally:
        release.set()
        for blocker in blockers:
            blocker.result()
    seen.clear()
    assert IP._pool_map(work, range(5)) == [0, 1, 4, 9, 16]
    assert sorted(item for item, _ in seen) == list(range(5))
    assert IP._pool_map(work, []) == []

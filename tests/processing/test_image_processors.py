"""Image processors against transformers' Pillow processors (the test-only oracle): real JPEG / PNG files in
several modes and sizes, numpy and torch inputs, every resampling filter; outputs must be bit-identical.
Also preprocessor_config.json both ways, and load_image."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys

import numpy as np
import pytest
import torch
import transformers as T
from vision_fixtures import make_images, open_images

import pretrained as P
from pretrained.processing.image_utils import load_image


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return make_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def images(files):
    return open_images(files)


def pair(kind, **settings):
    if kind == "clip":
        return P.CLIPImageProcessor(**settings), T.CLIPImageProcessorPil(**settings)
    return P.ViTImageProcessor(**settings), T.ViTImageProcessorPil(**settings)


def assert_same(ours, theirs, inputs, **call):
    a = ours(inputs, return_tensors="pt", **call)["pixel_values"]
    b = theirs(inputs, return_tensors="pt", **call)["pixel_values"]
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b), (a - b).abs().max()


@pytest.mark.parametrize("kind, settings", [
    ("clip", {}),
    ("clip", {"size": 40, "crop_size": 32}),
    ("clip", {"size": {"shortest_edge": 20}, "crop_size": {"height": 48, "width": 30}}),  # crop pads
    ("clip", {"size": {"height": 33, "width": 47}, "do_center_crop": False}),
    ("clip", {"do_normalize": False}),
    ("clip", {"do_rescale": False}),
    ("vit", {"do_convert_rgb": True}),
    ("vit", {"do_convert_rgb": True, "size": {"shortest_edge": 24, "longest_edge": 40}}),
    ("vit", {"do_convert_rgb": True, "size": {"max_height": 30, "max_width": 50}}),
])
def test_every_mode_and_size_bit_identical(images, kind, settings):
    ours, theirs = pair(kind, **settings)
    for image in images:  # one at a time: sizes differ when there is no crop
        assert_same(ours, theirs, image)
    if settings.get("do_center_crop", kind == "clip"):
        assert_same(ours, theirs, images)  # and as one batch


@pytest.mark.parametrize("resample", [0, 1, 2, 3, 4, 5])
def test_every_resampling_filter(images, resample):
    ours, theirs = pair("vit", do_convert_rgb=True, resample=resample, size=28)
    assert_same(ours, theirs, images)


def test_modes_kept_without_rgb_conversion(images):
    # ViT does not convert: RGB files go through; a grayscale image fails in both (1 channel vs 3 means).
    ours, theirs = pair("vit")
    assert_same(ours, theirs, [im for im in images if im.mode == "RGB"])
    gray = next(im for im in images if im.mode == "L")
    with pytest.raises(ValueError, match="3"):
        theirs(gray)
    with pytest.raises(ValueError, match="image_mean must have 1 elements"):
        ours(gray)
    ours1, theirs1 = pair("vit", image_mean=[0.3], image_std=[0.2])
    assert_same(ours1, theirs1, gray)


def test_array_and_tensor_inputs():
    rng = np.random.default_rng(1)
    hwc = rng.integers(0, 256, (45, 61, 3), dtype=np.uint8)
    inputs = [
        hwc, np.ascontiguousarray(hwc.transpose(2, 0, 1)), torch.from_numpy(hwc), torch.from_numpy(hwc).permute(2, 0, 1),
        rng.random((45, 61, 3)).astype(np.float32),  # floats in [0, 1]
        hwc.astype(np.float64),  # integral floats in [0, 255]
        rng.integers(0, 256, (45, 61, 4), dtype=np.uint8),  # RGBA array: CLIP blends it onto white
        rng.integers(0, 256, (45, 61, 1), dtype=np.uint8),  # one channel: CLIP repeats it
        rng.integers(0, 256, (2, 3, 45, 61), dtype=np.uint8),  # a batch in one array
    ]
    for kind in ("clip", "vit"):
        ours, theirs = pair(kind, size=30, crop_size=24, do_convert_rgb=True)
        for x in inputs:
            assert_same(ours, theirs, x)
    ours, theirs = pair("clip", size=30, crop_size=24)
    assert_same(ours, theirs, inputs[:4])
    assert_same(ours, theirs, hwc, input_data_format="channels_last")


def test_output_formats(images):
    ours, theirs = pair("clip", size=30, crop_size=24)
    a, b = ours(images[:3]), theirs(images[:3])
    assert isinstance(a["pixel_values"], list) and len(a["pixel_values"]) == 3
    for x, y in zip(a.pixel_values, b.pixel_values, strict=True):
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and np.array_equal(x, y)
    a, b = ours(images[:2], return_tensors="np"), theirs(images[:2], return_tensors="np")
    assert isinstance(a["pixel_values"], np.ndarray) and np.array_equal(a["pixel_values"], b["pixel_values"])
    # transformers' Pillow backend ignores data_format (always channels first); pretrained honours it.
    a = ours(images[0], return_tensors="pt", data_format="channels_last")["pixel_values"]
    b = theirs(images[0], return_tensors="pt")["pixel_values"]
    assert a.shape == (1, 24, 24, 3) and torch.equal(a, b.permute(0, 2, 3, 1))
    half = ours(images[0], return_tensors="pt").to(torch.float16)
    assert half.pixel_values.dtype == torch.float16


def test_call_overrides_do_not_stick(images):
    ours, theirs = pair("clip")
    assert_same(ours, theirs, images[0], size={"shortest_edge": 40}, crop_size={"height": 40, "width": 40})
    assert ours(images[0], return_tensors="pt")["pixel_values"].shape[-1] == 224
    ours.size = theirs.size = 40  # reassigned after construction: standardised at the next call
    ours.crop_size = theirs.crop_size = (30, 36)
    assert_same(ours, theirs, images[1])


def test_saved_file_matches_transformers_both_ways(tmp_path, images):
    for kind, settings in (("clip", {"size": 64, "crop_size": 48, "do_center_crop": True}),
                           ("vit", {"resample": 3, "image_mean": [0.1, 0.2, 0.3]})):
        ours, theirs = pair(kind, **settings)
        ours.save_pretrained(tmp_path / f"ours-{kind}")
        theirs.save_pretrained(tmp_path / f"theirs-{kind}")
        ours_file = json.loads((tmp_path / f"ours-{kind}" / "preprocessor_config.json").read_text())
        theirs_file = json.loads((tmp_path / f"theirs-{kind}" / "preprocessor_config.json").read_text())
        assert ours_file == theirs_file
        loaded_by_them = T.AutoImageProcessor.from_pretrained(tmp_path / f"ours-{kind}")
        loaded_by_us = P.AutoImageProcessor.from_pretrained(tmp_path / f"theirs-{kind}")
        assert type(loaded_by_us) is type(ours)
        assert_same(loaded_by_us, loaded_by_them, [im for im in images if im.mode == "RGB"])


def test_file_is_atomic_and_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        P.ViTImageProcessor().save_pretrained(tmp_path)
    finally:
        os.umask(old)
    path = tmp_path / "preprocessor_config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["preprocessor_config.json"]  # no temporary left over


def test_from_pretrained_overrides_and_unused(tmp_path):
    T.CLIPImageProcessorPil().save_pretrained(tmp_path)
    processor, unused = P.CLIPImageProcessor.from_pretrained(tmp_path, do_normalize=False, foo=1,
                                                             return_unused_kwargs=True)
    assert processor.do_normalize is False and unused == {"foo": 1}
    assert P.AutoImageProcessor.from_pretrained(tmp_path / "preprocessor_config.json").crop_size == {
        "height": 224, "width": 224}
    # older files: feature_extractor_type, Fast / Pil class names, a size given as an int
    for name in ("CLIPFeatureExtractor", "CLIPImageProcessorFast", "CLIPImageProcessorPil"):
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(
            {"feature_extractor_type" if "Feature" in name else "image_processor_type": name, "size": 50}))
        loaded = P.AutoImageProcessor.from_pretrained(tmp_path)
        assert type(loaded) is P.CLIPImageProcessor and loaded.size == {"shortest_edge": 50}


def test_clear_errors(tmp_path, images):
    with pytest.raises(OSError, match="preprocessor_config.json"):
        P.AutoImageProcessor.from_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text('{"image_processor_type": "NoSuchImageProcessor"}')
    with pytest.raises(ValueError, match="NoSuchImageProcessor"):
        P.AutoImageProcessor.from_pretrained(tmp_path)
    processor = P.ViTImageProcessor()
    with pytest.raises(ValueError, match="unexpected argument"):
        processor(images[0], colour=True)
    with pytest.raises(ValueError, match="size"):
        P.ViTImageProcessor(size={"heigth": 3})
    with pytest.raises(ValueError, match="Invalid image type"):
        processor("not an image")
    with pytest.raises(ValueError, match="different sizes"):
        P.ViTImageProcessor(do_resize=False)([images[0], images[1]], return_tensors="pt")


def test_load_image_sources(files, tmp_path, monkeypatch):
    from PIL import Image

    rgb = load_image(str(files[0]))
    assert rgb.mode == "RGB" and load_image(files[0]).size == rgb.size
    assert np.array_equal(np.array(load_image(str(files[0]))), np.array(T.image_utils.load_image(str(files[0]))))
    cmyk = next(f for f in files if "CMYK" in f.name)
    assert np.array_equal(np.array(load_image(str(cmyk))), np.array(T.image_utils.load_image(str(cmyk))))
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    assert np.array_equal(np.array(load_image(encoded)), np.array(rgb))
    assert np.array_equal(np.array(load_image("data:image/png;base64," + encoded)), np.array(rgb))
    array = np.array(rgb)
    assert np.array_equal(np.array(load_image(array)), array)
    assert np.array_equal(np.array(load_image(torch.from_numpy(array).permute(2, 0, 1))), array)
    assert load_image(Image.fromarray(array[..., 0])).mode == "RGB"
    rotated = tmp_path / "rotated.jpg"
    exif = rgb.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    rgb.save(rotated, exif=exif)
    ours, theirs = load_image(str(rotated)), T.image_utils.load_image(str(rotated))
    assert ours.size == theirs.size == (rgb.height, rgb.width)
    assert np.array_equal(np.array(ours), np.array(theirs))
    from pretrained.processing.image_utils import load_image_to_read

    with Image.open(rotated) as opened:
        opened.load()
        assert np.array_equal(np.array(load_image_to_read(opened)), np.array(theirs))  # rotated, not skipped
    plain = Image.fromarray(np.array(rgb))
    assert load_image_to_read(plain) is plain  # nothing to change: no copy for the pipelines
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="offline"):
        load_image("https://example.com/cat.png")
    with pytest.raises(ValueError, match="Incorrect image source"):
        load_image(str(tmp_path / "missing.png"))
    with pytest.raises(TypeError, match="Incorrect format"):
        load_image(3)


def test_missing_pillow_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match="Pillow"):
        load_image("anything.png")


def test_batch_feature():
    feature = P.BatchFeature({"pixel_values": [np.zeros((3, 2, 2), np.float32)] * 2, "ids": [[1, 2], [3, 4]]},
                             tensor_type="pt")
    assert feature.pixel_values.shape == (2, 3, 2, 2) and feature["ids"].dtype == torch.int64
    moved = feature.to(torch.float16)
    assert moved["pixel_values"].dtype == torch.float16 and moved["ids"].dtype == torch.int64
    with pytest.raises(AttributeError, match="missing"):
        feature.missing  # noqa: B018
    with pytest.raises(ValueError, match="return_tensors"):
        P.BatchFeature({"x": [1]}, tensor_type="tf")


def test_threaded_batch_equals_transformers(images, monkeypatch):
    # Batches resize on a thread pool where there are 4+ cores; force it here.
    import pretrained.processing.image_processing as IP

    monkeypatch.setattr(IP, "_threads", lambda: 4)
    ours, theirs = pair("clip", size=40, crop_size=32)
    assert_same(ours, theirs, images)

"""CLIPProcessor / AutoProcessor and the CLIP tokenizer against transformers, and their files both ways."""

from __future__ import annotations

import json

import pytest
import torch
import transformers as T
from vision_fixtures import make_images, open_images, save_clip_tokenizer

import pretrained as P

TEXTS = ["This is a photo of a cat.", "a DOG", "an image of   a bird tree", "unknown words here!"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip-processor")
    tokenizer = save_clip_tokenizer(path)
    T.CLIPProcessor(image_processor=T.CLIPImageProcessorPil(size=40, crop_size=32), tokenizer=tokenizer
                    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return open_images(make_images(tmp_path_factory.mktemp("images")))


def test_clip_tokenizer_parity(folder):
    ours, theirs = P.AutoTokenizer.from_pretrained(folder), T.AutoTokenizer.from_pretrained(folder)
    assert type(ours).__name__ == "CLIPTokenizer"
    a, b = ours(TEXTS, padding=True), theirs(TEXTS, padding=True)
    assert a["input_ids"] == b["input_ids"] and a["attention_mask"] == b["attention_mask"]
    for ids in b["input_ids"]:
        assert ours.decode(ids) == theirs.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True)
    assert (ours.bos_token, ours.eos_token, ours.pad_token) == (theirs.bos_token, theirs.eos_token, theirs.pad_token)


def test_processor_call_parity(folder, images):
    ours, theirs = P.AutoProcessor.from_pretrained(folder), T.AutoProcessor.from_pretrained(folder)
    assert type(ours) is P.CLIPProcessor
    assert type(ours.image_processor) is P.CLIPImageProcessor and ours.image_processor.size == {"shortest_edge": 40}
    a = ours(text=TEXTS, images=images, return_tensors="pt", padding=True)
    b = theirs(text=TEXTS, images=images, return_tensors="pt", padding=True)
    assert set(a) == set(b) == {"input_ids", "attention_mask", "pixel_values"}
    for key in a:
        assert torch.equal(a[key], b[key]), key
    only_images = ours(images=images[0], return_tensors="pt")
    assert set(only_images) == {"pixel_values"} and torch.equal(only_images.pixel_values,
                                                              theirs(images=images[0], return_tensors="pt").pixel_values)
    assert ours(text=TEXTS[0])["input_ids"] == theirs(text=TEXTS[0])["input_ids"]
    assert ours.batch_decode(a["input_ids"], skip_special_tokens=True) == theirs.batch_decode(
        b["input_ids"], skip_special_tokens=True)
    assert ours.model_input_names == theirs.model_input_names
    with pytest.raises(ValueError, match="text or images"):
        ours()


def test_processor_files_both_ways(folder, tmp_path, images):
    ours = P.CLIPProcessor.from_pretrained(folder)
    ours.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    theirs_saved = json.loads((folder / "processor_config.json").read_text())
    assert saved == theirs_saved
    reloaded = T.AutoProcessor.from_pretrained(tmp_path)
    a = ours(text=TEXTS, images=images[:2], return_tensors="pt", padding=True)
    b = reloaded(text=TEXTS, images=images[:2], return_tensors="pt", padding=True)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the image processor alone reads processor_config.json's section
    assert P.AutoImageProcessor.from_pretrained(tmp_path).crop_size == {"height": 32, "width": 32}


def test_auto_processor_falls_back(tmp_path):
    T.ViTImageProcessorPil().save_pretrained(tmp_path / "image-only")
    assert type(P.AutoProcessor.from_pretrained(tmp_path / "image-only")) is P.ViTImageProcessor
    save_clip_tokenizer(tmp_path / "text-only")
    assert type(P.AutoProcessor.from_pretrained(tmp_path / "text-only")).__name__ == "CLIPTokenizer"


def test_processor_needs_both_parts():
    with pytest.raises(ValueError, match="tokenizer"):
        P.CLIPProcessor(image_processor=P.CLIPImageProcessor())


def test_auto_register(tmp_path):
    class MyConfig(P.PretrainedConfig):
        model_type = "my-vision-model"

    class MyImageProcessor(P.BaseImageProcessor):
        size = {"height": 8, "width": 8}
        do_resize = True
        resample = 2

    P.AutoImageProcessor.register(MyConfig, MyImageProcessor)
    with pytest.raises(ValueError, match="already registered"):
        P.AutoImageProcessor.register(MyConfig, MyImageProcessor)
    MyImageProcessor().save_pretrained(tmp_path)
    loaded = P.AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is MyImageProcessor and loaded.size == {"height": 8, "width": 8}


def test_transformers_module_paths():
    import importlib

    for path, name in (("image_processing_utils", "BaseImageProcessor"), ("image_processing_utils", "BatchFeature"),
                       ("image_utils", "load_image"), ("image_transforms", "center_crop"),
                       ("processing_utils", "ProcessorMixin"), ("feature_extraction_utils", "BatchFeature"),
                       ("feature_extraction_sequence_utils", "SequenceFeatureExtractor"),
                       ("models.auto.image_processing_auto", "AutoImageProcessor"),
                       ("models.auto.processing_auto", "AutoProcessor"), ("models.clip", "CLIPProcessor"),
                       ("models.clip", "CLIPModel"), ("models.clip.modeling_clip", "CLIPTextModel"),
                       ("models.clip.tokenization_clip", "CLIPTokenizer"), ("models.vit", "ViTImageProcessor"),
                       ("models.vit.modeling_vit", "ViTForImageClassification"),
                       ("models.whisper.feature_extraction_whisper", "WhisperFeatureExtractor"),
                       ("image_processing_backends", "PilBackend")):
        assert getattr(importlib.import_module(f"pretrained.{path}"), name) is not None, (path, name)


def test_older_layouts(tmp_path):
    # preprocessor_config.json naming the processor class (files written before processor_config.json)
    tokenizer = save_clip_tokenizer(tmp_path / "old")
    settings = T.CLIPImageProcessorPil(size=40, crop_size=32).to_dict()
    (tmp_path / "old" / "preprocessor_config.json").write_text(json.dumps({**settings,
                                                                          "processor_class": "CLIPProcessor"}))
    processor = P.AutoProcessor.from_pretrained(tmp_path / "old")
    assert type(processor) is P.CLIPProcessor and processor.image_processor.crop_size == {"height": 32, "width": 32}
    assert processor.tokenizer.eos_token_id == tokenizer.eos_token_id
    # settings without a class name: the class comes from config.json's model_type
    (tmp_path / "typeless").mkdir()
    (tmp_path / "typeless" / "preprocessor_config.json").write_text(json.dumps({"size": {"height": 16, "width": 16}}))
    (tmp_path / "typeless" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    loaded = P.AutoImageProcessor.from_pretrained(tmp_path / "typeless")
    assert type(loaded) is P.ViTImageProcessor and loaded.size == {"height": 16, "width": 16}

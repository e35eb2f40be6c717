"""The image pipelines against transformers' (test-only oracle) on tiny random ViT / CLIP checkpoints and
real image files: image-classification, zero-shot-image-classification, image-feature-extraction,
batched and unbatched; and `pretrained run image-classification` printing JSON lines."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import transformers as T
from vision_fixtures import make_images, open_images, save_tiny_clip, save_tiny_vit

import pretrained as P
from pretrained.cli import main

SCORE_TOL = 1e-5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return [str(p) for p in make_images(tmp_path_factory.mktemp("images"))]


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit")
    save_tiny_vit(path, num_labels=7)
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    save_tiny_clip(path)
    return str(path)


def assert_same(ours, theirs):
    """Same structure and labels; scores within SCORE_TOL."""
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert_same(a, b)
        return
    assert list(ours) == list(theirs)  # same keys, same order
    assert ours["label"] == theirs["label"]
    assert abs(ours["score"] - theirs["score"]) < SCORE_TOL


def test_image_classification(vit, files):
    ours, theirs = P.pipeline("image-classification", model=vit), T.pipeline("image-classification", model=vit)
    assert type(ours).__name__ == "ImageClassificationPipeline"
    assert_same(ours(files[0]), theirs(files[0]))
    assert_same(ours(files), theirs(files))
    assert_same(ours(files, top_k=3), theirs(files, top_k=3))
    assert_same(ours(files, top_k=100), theirs(files, top_k=100))  # capped at num_labels
    assert_same(ours(files[:3], function_to_apply="sigmoid"), theirs(files[:3], function_to_apply="sigmoid"))
    assert_same(ours(files, batch_size=3), theirs(files, batch_size=1))
    assert_same(ours(files, batch_size=3), theirs(files, batch_size=3))
    images = open_images([files[0], files[1]])
    assert_same(ours(images=images), theirs(images))  # transformers takes them positionally only
    array = np.array(images[0])
    assert_same(ours(array), theirs(array))
    assert_same(ours(torch.from_numpy(array)), theirs(torch.from_numpy(array)))
    assert_same(list(ours(iter(files[:4]), batch_size=2)), theirs(files[:4]))


def test_image_classification_long_sequence(tmp_path, files, monkeypatch):
    # 257 patches of head size 16: the encoder's attention runs on the many-query kernel
    from pretrained.inference import encoder_attention

    lib = encoder_attention.load()
    if lib is None:
        pytest.skip("no AVX-512 or no C++ compiler")
    save_tiny_vit(tmp_path, num_labels=7, image_size=128)
    calls = []
    real = lib.encoder_attention
    monkeypatch.setattr(lib, "encoder_attention", lambda *a: calls.append(a[5:9]) or real(*a))
    ours, theirs = P.pipeline("image-classification", model=str(tmp_path)), T.pipeline("image-classification",
                                                                                       model=str(tmp_path))  # fmt: skip
    assert_same(ours(files, batch_size=3), theirs(files, batch_size=3))
    assert (3, 2, 257, 16) in calls


def test_image_classification_errors(vit, clip, files):
    pipe = P.pipeline("image-classification", model=vit)
    with pytest.raises(ValueError, match="top_k"):
        pipe(files[0], top_k=0)
    with pytest.raises(ValueError, match="empty list"):
        pipe([])
    with pytest.raises(ValueError, match="not supported for image-classification"):
        P.pipeline("image-classification", model=P.CLIPModel.from_pretrained(clip),
                   image_processor=P.AutoImageProcessor.from_pretrained(clip))


def test_zero_shot_image_classification(clip, files):
    ours = P.pipeline("zero-shot-image-classification", model=clip)
    theirs = T.pipeline("zero-shot-image-classification", model=clip)
    labels = ["cat", "dog", "car", "bird"]
    assert_same(ours(files[0], candidate_labels=labels), theirs(files[0], candidate_labels=labels))
    assert_same(ours(files, candidate_labels=labels), theirs(files, candidate_labels=labels))
    template = "an image of a {}."
    assert_same(ours(files, candidate_labels=labels, hypothesis_template=template),
                theirs(files, candidate_labels=labels, hypothesis_template=template))
    assert_same(ours(files, candidate_labels=labels, batch_size=3),
                theirs(files, candidate_labels=labels, batch_size=1))
    assert_same(ours(images=open_images(files[:2]), candidate_labels=labels[:2]),
                theirs(open_images(files[:2]), candidate_labels=labels[:2]))
    with pytest.raises(ValueError, match="candidate_labels"):
        ours(files[0])
    with pytest.raises(ValueError, match="hypothesis_template"):
        ours(files[0], candidate_labels=labels, hypothesis_template="no slot")


def test_image_feature_extraction(vit, clip, files):
    ours = P.pipeline("image-feature-extraction", model=vit)
    theirs = T.pipeline("image-feature-extraction", model=vit)
    a, b = ours(files[0]), theirs(files[0])
    assert np.array(a).shape == (1, 17, 32)
    assert np.allclose(np.array(a), np.array(b), atol=1e-5)
    a, b = ours(files, batch_size=4), theirs(files)
    assert all(np.allclose(np.array(x), np.array(y), atol=1e-5) for x, y in zip(a, b, strict=True))
    tensor = ours(files[1], return_tensors=True)
    assert isinstance(tensor, torch.Tensor) and torch.allclose(tensor, theirs(files[1], return_tensors=True), atol=1e-5)
    assert np.array(ours(files[0], pool=True)).shape == (1, 32)  # ViTModel's pooler (new: not in the checkpoint)
    # a bare CLIP image tower: pooled output
    model = T.CLIPVisionModel.from_pretrained(clip)
    ours = P.pipeline("image-feature-extraction", model=P.CLIPVisionModel.from_pretrained(clip),
                      image_processor=P.AutoImageProcessor.from_pretrained(clip))
    theirs = T.pipeline("image-feature-extraction", model=model, image_processor=T.AutoImageProcessor.from_pretrained(clip))
    assert np.allclose(np.array(ours(files[2], pool=True)), np.array(theirs(files[2], pool=True)), atol=1e-5)


def test_task_inferred_and_pipeline_saved(vit, tmp_path, files):
    pipe = P.pipeline(model=vit)
    assert pipe.task == "image-classification"
    pipe.save_pretrained(tmp_path)
    assert (tmp_path / "preprocessor_config.json").is_file()
    assert_same(P.pipeline("image-classification", model=str(tmp_path))(files[0]), pipe(files[0]))


def test_missing_image_processor_is_named(tmp_path):
    save_tiny_vit(tmp_path, with_processor=False)
    with pytest.raises(OSError, match="image processor"):
        P.pipeline("image-classification", model=str(tmp_path))


def test_cli_prints_json_lines(vit, clip, files, capsys):
    code = main(["run", "image-classification", "--model", vit, files[0], files[3], "--top-k", "2"])
    out = capsys.readouterr().out
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert_same(lines, T.pipeline("image-classification", model=vit)([files[0], files[3]], top_k=2))
    code = main(["run", "zero-shot-image-classification", "--model", clip, files[1], "--candidate-labels",
                 "cat, dog,car"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert_same(lines, [T.pipeline("zero-shot-image-classification", model=clip)(
        files[1], candidate_labels=["cat", "dog", "car"])])
    code = main(["run", "image-classification", "--model", vit, "/no/such/image.png"])
    assert code == 1 and "image" in capsys.readouterr().err


def test_feature_extractor_argument(vit, files):
    # transformers' older name for an image processor is accepted; an audio extractor is refused by name
    pipe = P.pipeline("image-classification", model=vit, feature_extractor=P.ViTImageProcessor(size=32))
    assert pipe.image_processor.size == {"height": 32, "width": 32}
    assert_same(pipe(files[0]), T.pipeline("image-classification", model=vit)(files[0]))
    with pytest.raises(ValueError, match="automatic-speech-recognition"):
        P.pipeline("image-classification", model=vit, feature_extractor=P.WhisperFeatureExtractor())

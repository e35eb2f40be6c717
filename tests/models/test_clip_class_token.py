"""CLIP's image tower run with its last layer for the class token alone (``class_token_state``,
``CLIPModel.class_token_logits``, used by the zero-shot image pipeline): against the full forward and
transformers'."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from vision_fixtures import clip_inputs, close, save_tiny_clip

import pretrained as P


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    save_tiny_clip(path)
    return path


@pytest.fixture(scope="module")
def inputs(folder):
    return clip_inputs(folder, seed=3)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_class_token_logits_match_full_forward_and_transformers(folder, inputs, attn):
    ours = P.CLIPModel.from_pretrained(folder, attn_implementation=attn)
    theirs = T.CLIPModel.from_pretrained(folder, attn_implementation=attn).eval()
    calls = []
    ours.vision_model.encoder.layers[-1].register_forward_hook(lambda *args: calls.append("full"))
    with torch.no_grad():
        short = ours.class_token_logits(**inputs)
        assert calls == []  # the last layer's full forward did not run
        full = ours(**inputs)
        assert calls == ["full"]
        expected = theirs(**inputs).logits_per_image
        pooled = ours.vision_model.class_token_state(inputs["pixel_values"])
        full_pooled = ours.vision_model(inputs["pixel_values"]).pooler_output
    assert short.shape == (2, 3)
    close(short, full.logits_per_image, atol=1e-5)
    close(short, expected)
    close(pooled, full_pooled, atol=1e-5)


def test_class_token_state_with_interpolated_positions(folder):
    ours = P.CLIPVisionModel.from_pretrained(folder)
    theirs = T.CLIPVisionModel.from_pretrained(folder).eval()
    torch.manual_seed(4)
    big = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        short = ours.class_token_state(big, interpolate_pos_encoding=True)
        close(short, ours(big, interpolate_pos_encoding=True).pooler_output, atol=1e-5)
        close(short, theirs(big, interpolate_pos_encoding=True).pooler_output)
    with pytest.raises(ValueError, match="pixel_values"):
        ours.class_token_state(None)


def test_zero_shot_pipeline_takes_the_class_token_path_unless_hooked(folder, tmp_path):
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    labels = ["cat", "dog", "car"]
    ours = P.pipeline("zero-shot-image-classification", model=str(folder))
    theirs = T.pipeline("zero-shot-image-classification", model=str(folder))
    expected = theirs(image, candidate_labels=labels)
    calls = []
    handle = ours.model.vision_model.encoder.layers[-1].register_forward_pre_hook(
        lambda *args: calls.append("full"))
    hooked = ours(image, candidate_labels=labels)
    assert calls == ["full"]  # a hook sees the full forward
    handle.remove()
    short = ours(image, candidate_labels=labels)
    assert calls == ["full"]
    for got in (short, hooked):
        assert [r["label"] for r in got] == [r["label"] for r in expected]
        assert all(abs(a["score"] - b["score"]) < 1e-5 for a, b in zip(got, expected, strict=True))


def test_image_feature_extraction_pool_takes_the_class_token_path(folder, tmp_path):
    """``pool=True`` runs the last layer for the class token alone (ViT with its pooler, CLIP's image tower),
    within 1e-5 of transformers' pooled output, batched or not; hooks or hidden states asked for take the full
    forward."""
    import numpy as np
    from PIL import Image
    from vision_fixtures import save_tiny_vit

    images = [Image.fromarray(np.random.default_rng(i).integers(0, 256, (40, 36, 3), dtype=np.uint8))
              for i in range(3)]
    vit = tmp_path / "vit"
    save_tiny_vit(vit)
    T.ViTModel.from_pretrained(vit, add_pooling_layer=True).save_pretrained(vit)  # with a (new) pooler
    cases = [(P.ViTModel.from_pretrained(vit), T.ViTModel.from_pretrained(vit), vit, "encoder.layer"),
             (P.CLIPVisionModel.from_pretrained(folder), T.CLIPVisionModel.from_pretrained(folder), folder,
              "encoder.layers")]
    for ours_model, theirs_model, path, layers in cases:
        ours = P.pipeline("image-feature-extraction", model=ours_model,
                          image_processor=P.AutoImageProcessor.from_pretrained(path))
        theirs = T.pipeline("image-feature-extraction", model=theirs_model,
                            image_processor=T.AutoImageProcessor.from_pretrained(path))
        expected = theirs(images, pool=True, return_tensors=True)
        last = ours_model.get_submodule(layers)[-1]
        calls = []
        handle = last.register_forward_hook(lambda *args, calls=calls: calls.append("full"))
        hooked = ours(images, pool=True, return_tensors=True)
        assert calls == ["full"] * 3
        handle.remove()
        for batch_size in (1, 2):
            short = ours(images, pool=True, return_tensors=True, batch_size=batch_size)
            assert calls == ["full"] * 3
            for got in (short, hooked):
                for a, b in zip(got, expected, strict=True):
                    close(a, b, atol=1e-5)
        # features (not pooled) still come from the full forward
        close(ours(images[0], return_tensors=True), theirs(images[0], return_tensors=True), atol=1e-5)
    with pytest.raises(ValueError, match="no pooler"):
        P.ViTModel(P.ViTConfig.from_pretrained(vit), add_pooling_layer=False).pooled_class_token(
            torch.zeros(1, 3, 32, 32))

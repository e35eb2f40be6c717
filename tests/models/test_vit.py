"""ViT parity with transformers on tiny random checkpoints: logits, hidden states, attentions, pooler,
interpolated positions, loss; saved folders load in both libraries."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from vision_fixtures import close, save_tiny_vit

import pretrained as P


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit")
    save_tiny_vit(path)
    return path


@pytest.fixture(scope="module")
def pixels():
    torch.manual_seed(1)
    return torch.randn(3, 3, 32, 32)


def test_classifier_parity(folder, pixels):
    ours = P.AutoModelForImageClassification.from_pretrained(folder)
    theirs = T.AutoModelForImageClassification.from_pretrained(folder, attn_implementation="eager").eval()
    assert type(ours) is P.ViTForImageClassification and not ours.training
    with torch.no_grad():
        a = ours(pixels, output_hidden_states=True, output_attentions=True)
        b = theirs(pixels, output_hidden_states=True, output_attentions=True)
    close(a.logits, b.logits)
    assert len(a.hidden_states) == len(b.hidden_states) == 3
    for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
        close(x, y)
    for x, y in zip(a.attentions, b.attentions, strict=True):
        close(x, y)
    assert ours.config.id2label == theirs.config.id2label
    labels = torch.tensor([0, 3, 1])
    close(ours(pixels, labels=labels).loss, theirs(pixels, labels=labels).loss)
    logits, = ours(pixels, return_dict=False)
    close(logits, b.logits)


def test_base_model_and_pooler(folder, pixels, tmp_path):
    theirs = T.ViTModel(T.ViTConfig.from_pretrained(folder)).eval()
    theirs.save_pretrained(tmp_path)
    ours = P.AutoModel.from_pretrained(tmp_path)
    assert type(ours) is P.ViTModel
    with torch.no_grad():
        a, b = ours(pixel_values=pixels), theirs(pixel_values=pixels)
    close(a.last_hidden_state, b.last_hidden_state)
    close(a.pooler_output, b.pooler_output)


def test_interpolated_positions(folder):
    ours = P.ViTForImageClassification.from_pretrained(folder)
    theirs = T.ViTForImageClassification.from_pretrained(folder).eval()
    big = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        close(ours(big, interpolate_pos_encoding=True).logits, theirs(big, interpolate_pos_encoding=True).logits)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        ours(big)


def test_saved_by_us_loads_in_transformers(folder, pixels, tmp_path):
    ours = P.ViTForImageClassification.from_pretrained(folder)
    ours.save_pretrained(tmp_path)
    theirs = T.ViTForImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        close(ours(pixels).logits, theirs(pixels).logits)


def test_eager_and_sdpa_agree(folder, pixels):
    sdpa = P.ViTForImageClassification.from_pretrained(folder)
    eager = P.ViTForImageClassification.from_pretrained(folder, attn_implementation="eager")
    with torch.no_grad():
        close(sdpa(pixels).logits, eager(pixels).logits)


def test_from_config_trains(pixels):
    config = P.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                         image_size=32, patch_size=8, num_labels=3)
    model = P.AutoModelForImageClassification.from_config(config)
    model.train()
    out = model(pixels, labels=torch.tensor([0, 1, 2]))
    out.loss.backward()
    assert model.vit.embeddings.cls_token.grad is not None
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 1, 32, 32))

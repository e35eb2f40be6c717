"""ViT's classifier forward runs its last layer for the class token alone (when no hidden states or
attentions are asked for, outside training): its logits against the full forward's and transformers'."""

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
    torch.manual_seed(2)
    return torch.randn(3, 3, 32, 32)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_class_token_path_matches_full_forward_and_transformers(folder, pixels, attn):
    ours = P.ViTForImageClassification.from_pretrained(folder, attn_implementation=attn)
    theirs = T.ViTForImageClassification.from_pretrained(folder, attn_implementation=attn).eval()
    calls = []
    last = ours.vit.encoder.layer[-1]
    last.register_forward_hook(lambda *args: calls.append("full"))
    with torch.no_grad():
        short = ours(pixels).logits
        assert calls == []  # the last layer's full forward did not run
        full = ours(pixels, output_hidden_states=True)
        assert calls == ["full"]
        expected = theirs(pixels).logits
    close(short, full.logits, atol=1e-5)
    close(short, expected)
    # the state it classifies is the full forward's first row
    with torch.no_grad():
        close(ours.vit.class_token_state(pixels), ours.vit(pixels).last_hidden_state[:, 0], atol=1e-5)


def test_class_token_path_with_interpolated_positions_and_tuples(folder):
    ours = P.ViTForImageClassification.from_pretrained(folder)
    theirs = T.ViTForImageClassification.from_pretrained(folder).eval()
    big = torch.randn(2, 3, 48, 64)
    labels = torch.tensor([1, 0])
    with torch.no_grad():
        a = ours(big, labels=labels, interpolate_pos_encoding=True, return_dict=False)
        b = theirs(big, labels=labels, interpolate_pos_encoding=True, return_dict=False)
    assert len(a) == len(b) == 2
    close(a[0], b[0])
    close(a[1], b[1])
    assert ours(big, interpolate_pos_encoding=True).hidden_states is None


def test_training_and_grad_paths_use_the_full_forward(folder, pixels):
    ours = P.ViTForImageClassification.from_pretrained(folder)
    theirs = T.ViTForImageClassification.from_pretrained(folder)
    ours.train()
    theirs.train()
    labels = torch.tensor([0, 2, 1])
    a, b = ours(pixels, labels=labels), theirs(pixels, labels=labels)
    a.loss.backward()
    b.loss.backward()
    close(a.loss, b.loss)
    close(ours.classifier.weight.grad, theirs.classifier.weight.grad)
    close(ours.vit.embeddings.cls_token.grad, theirs.vit.embeddings.cls_token.grad)
    # eval with gradients: the short path still gives transformers' input gradients
    ours.eval()
    theirs.eval()
    x1, x2 = pixels.clone().requires_grad_(), pixels.clone().requires_grad_()
    ours(x1).logits.sum().backward()
    theirs(x2).logits.sum().backward()
    close(x1.grad, x2.grad)


def test_one_layer_model():
    config = P.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                         image_size=32, patch_size=8, num_labels=3)
    model = P.ViTForImageClassification(config).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        close(model(pixels).logits, model(pixels, output_attentions=True).logits, atol=1e-5)

"""CLIP parity with transformers on tiny random checkpoints: similarities, embeddings, text / image
features, each tower alone (5.x and older key layouts), the projection models, loss; files both ways."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from vision_fixtures import clip_inputs, close, save_tiny_clip, tiny_clip_config

import pretrained as P


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip")
    save_tiny_clip(path)
    return path


@pytest.fixture(scope="module")
def inputs(folder):
    return clip_inputs(folder, seed=2)


@pytest.fixture(scope="module")
def models(folder):
    return P.AutoModel.from_pretrained(folder), T.CLIPModel.from_pretrained(folder).eval()


def test_clip_model_parity(models, inputs):
    ours, theirs = models
    assert type(ours) is P.CLIPModel
    with torch.no_grad():
        a = ours(**inputs, return_loss=False, output_hidden_states=True)
        b = theirs(**inputs, output_hidden_states=True)
    for key in ("logits_per_image", "logits_per_text", "text_embeds", "image_embeds"):
        close(a[key], b[key])
    close(a.vision_model_output.last_hidden_state, b.vision_model_output.last_hidden_state)
    close(a.vision_model_output.pooler_output, b.vision_model_output.pooler_output)
    mask = inputs["attention_mask"].bool()
    close(a.text_model_output.last_hidden_state[mask], b.text_model_output.last_hidden_state[mask])
    assert len(a.text_model_output.hidden_states) == len(b.text_model_output.hidden_states)
    close(ours.logit_scale, theirs.logit_scale)
    square = {**inputs, "input_ids": inputs["input_ids"][:2], "attention_mask": inputs["attention_mask"][:2]}
    close(ours(**square, return_loss=True).loss, theirs(**square, return_loss=True).loss)
    as_tuple = ours(**inputs, return_dict=False)
    close(as_tuple[0], b.logits_per_image)


def test_text_and_image_features(models, inputs):
    ours, theirs = models
    text = {k: inputs[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        a, b = ours.get_text_features(**text), theirs.get_text_features(**text)
        close(a.pooler_output, b.pooler_output)
        a, b = ours.get_image_features(inputs["pixel_values"]), theirs.get_image_features(inputs["pixel_values"])
        close(a.pooler_output, b.pooler_output)
        close(a.last_hidden_state, b.last_hidden_state)


def test_attention_implementations(folder, inputs):
    eager = P.CLIPModel.from_pretrained(folder, attn_implementation="eager")
    assert eager.text_model.config._attn_implementation == "eager"
    sdpa = P.CLIPModel.from_pretrained(folder)
    with torch.no_grad():
        close(eager(**inputs).logits_per_image, sdpa(**inputs).logits_per_image)
        weights = sdpa(**inputs, output_attentions=True).vision_model_output.attentions
    assert len(weights) == 2 and weights[0].shape == (2, 2, 17, 17)
    sdpa.set_attn_implementation("eager")
    assert sdpa.vision_model.config._attn_implementation == "eager"


@pytest.mark.parametrize("tower", ["text", "vision"])
def test_towers_alone_both_layouts(folder, inputs, tmp_path, tower):
    config = tiny_clip_config(eos_token_id=int(inputs["input_ids"][0, -1]))
    if tower == "text":
        classes = (T.CLIPTextModel, T.CLIPTextModelWithProjection, P.CLIPTextModel, P.CLIPTextModelWithProjection)
        sub, args = config.text_config, {k: inputs[k] for k in ("input_ids", "attention_mask")}
    else:
        classes = (T.CLIPVisionModel, T.CLIPVisionModelWithProjection, P.CLIPVisionModel,
                   P.CLIPVisionModelWithProjection)
        sub, args = config.vision_config, {"pixel_values": inputs["pixel_values"]}
    torch.manual_seed(3)
    theirs_bare, theirs_proj = classes[0](sub).eval(), classes[1](sub).eval()
    theirs_bare.save_pretrained(tmp_path / "bare")  # 5.x layout: modules at the top
    theirs_proj.save_pretrained(tmp_path / "proj")  # under text_model. / vision_model.
    ours_bare = classes[2].from_pretrained(tmp_path / "bare")
    ours_proj = classes[3].from_pretrained(tmp_path / "proj")
    ours_from_proj = classes[2].from_pretrained(tmp_path / "proj")  # older layout, prefix removed
    assert type(P.AutoModel.from_pretrained(tmp_path / "bare")) is classes[2]
    with torch.no_grad():
        a, b = ours_bare(**args), theirs_bare(**args)
        close(a.pooler_output, b.pooler_output)
        embeds = "text_embeds" if tower == "text" else "image_embeds"
        close(ours_proj(**args)[embeds], theirs_proj(**args)[embeds])
        theirs_from_proj = classes[0].from_pretrained(tmp_path / "proj").eval()
        close(ours_from_proj(**args).pooler_output, theirs_from_proj(**args).pooler_output)


def test_legacy_eos_token_id_two(inputs, tmp_path):
    config = tiny_clip_config(eos_token_id=2)
    torch.manual_seed(4)
    theirs = T.CLIPModel(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = P.CLIPModel.from_pretrained(tmp_path)
    with torch.no_grad():  # eos_token_id == 2: the highest token id marks the end of the text
        close(ours(**inputs).text_embeds, theirs(**inputs).text_embeds)


def test_saved_by_us_loads_in_transformers(models, inputs, tmp_path):
    ours, _ = models
    ours.save_pretrained(tmp_path)
    reloaded = T.CLIPModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        close(ours(**inputs).logits_per_image, reloaded(**inputs).logits_per_image)


def test_from_config_and_errors(inputs):
    config = P.CLIPConfig(text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                       "intermediate_size": 37, "vocab_size": 600, "max_position_embeddings": 16},
                          vision_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                         "intermediate_size": 37, "image_size": 32, "patch_size": 8},
                          projection_dim=8)
    assert isinstance(config.text_config, P.CLIPTextConfig) and config.to_dict()["text_config"]["hidden_size"] == 32
    model = P.AutoModelForZeroShotImageClassification.from_config(config)
    out = model(**inputs, return_loss=False)
    assert out.logits_per_image.shape == (2, 3)
    with pytest.raises(ValueError, match="at most 16"):
        model(input_ids=torch.zeros(1, 20, dtype=torch.long), pixel_values=inputs["pixel_values"])
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model.get_image_features(torch.randn(1, 3, 40, 40))


def test_image_classifier(folder, inputs, tmp_path):
    config = T.CLIPConfig.from_pretrained(folder)
    config.num_labels = 4
    torch.manual_seed(5)
    theirs = T.CLIPForImageClassification(config).eval()
    theirs.save_pretrained(tmp_path)
    ours = P.AutoModelForImageClassification.from_pretrained(tmp_path)
    assert type(ours).__name__ == "CLIPForImageClassification"
    labels = torch.tensor([1, 3])
    with torch.no_grad():
        a, b = ours(inputs["pixel_values"], labels=labels), theirs(inputs["pixel_values"], labels=labels)
    close(a.logits, b.logits)
    close(a.loss, b.loss)


def test_interpolated_positions(models):
    ours, theirs = models
    big = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        a = ours.get_image_features(big, interpolate_pos_encoding=True).pooler_output
        b = theirs.get_image_features(big, interpolate_pos_encoding=True).pooler_output
    close(a, b)

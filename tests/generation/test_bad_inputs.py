"""generate() names what is wrong with its inputs instead of failing inside the model."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoModelForCausalLM  # noqa: E402

VOCAB = 64


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def model(request, tmp_path_factory):
    torch.manual_seed(0)
    if request.param == "llama":
        config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=1,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                          pad_token_id=0, eos_token_id=3, bos_token_id=1)
    else:
        config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=1, n_head=4,
                                         pad_token_id=0, eos_token_id=3, bos_token_id=1)
    folder = tmp_path_factory.mktemp(request.param)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(folder)


@pytest.mark.parametrize("bad", [VOCAB, VOCAB + 1000, -1])
def test_id_outside_the_vocabulary(model, bad):
    ids = torch.tensor([[5, 6, bad, 7]])
    with pytest.raises(ValueError, match=rf"token id {bad}, outside the model's vocabulary of {VOCAB} ids"):
        model.generate(ids, max_new_tokens=2)


@pytest.mark.parametrize("shape", [(1, 0), (0, 4)])
def test_empty_prompt(model, shape):
    with pytest.raises(ValueError, match=rf"input_ids is empty \(shape \({shape[0]}, {shape[1]}\)\)"):
        model.generate(torch.zeros(shape, dtype=torch.long), max_new_tokens=2)


@pytest.mark.parametrize("mask_shape", [(1, 3), (2, 4), (4,), (1, 1, 4)])
def test_attention_mask_of_another_shape(model, mask_shape):
    ids = torch.tensor([[5, 6, 7, 8]])
    with pytest.raises(ValueError, match=r"attention_mask has shape .* but input_ids has shape \(1, 4\)"):
        model.generate(ids, attention_mask=torch.ones(mask_shape, dtype=torch.long), max_new_tokens=2)


def test_float_ids_refused(model):
    with pytest.raises(TypeError, match="input_ids must hold integer token ids, got torch.float32"):
        model.generate(torch.tensor([[5.0, 6.0]]), max_new_tokens=2)


def test_valid_edges_still_generate(model):
    ids = torch.tensor([[0, VOCAB - 1, 5]])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=2, do_sample=False)
    assert out.shape == (1, 5) and torch.equal(out[:, :3], ids)
    assert model.generate(max_new_tokens=2).shape[1] >= 2  # no prompt: starts from bos_token_id

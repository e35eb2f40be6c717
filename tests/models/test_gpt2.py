"""GPT-2 against transformers on tiny random models (fp32)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoModelForCausalLM, AutoModelForSequenceClassification  # noqa: E402
from pretrained.modeling.cache import DynamicCache, StaticCache  # noqa: E402

TINY = dict(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4, pad_token_id=0)


@pytest.fixture(scope="module", params=["plain", "scaled_by_layer"])
def checkpoint(request, tmp_path_factory):
    torch.manual_seed(0)
    extra = {"scale_attn_by_inverse_layer_idx": True, "n_inner": 40} if request.param != "plain" else {}
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**TINY, **extra)).eval()
    folder = tmp_path_factory.mktemp("gpt2")
    hf.save_pretrained(folder)
    return hf, folder


def _batch(seq: int = 10, pad: int = 4):
    ids = torch.randint(1, TINY["vocab_size"], (2, seq), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, seq, dtype=torch.long)
    mask[0, :pad] = 0
    ids[0, :pad] = 0
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    return ids, mask, pos


def test_forward_and_cached_decode_match(checkpoint):
    hf, folder = checkpoint
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert model.lm_head.weight is model.transformer.wte.weight  # tied
    ids, mask, pos = _batch()
    real = mask.bool()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        got = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        torch.testing.assert_close(got[real], want[real], atol=1e-4, rtol=0)
        torch.testing.assert_close(model(ids[1:]).logits, hf(ids[1:]).logits, atol=1e-4, rtol=0)
        for cache in (DynamicCache(config=model.config), StaticCache(model.config, max_cache_len=12)):
            out = model(
                ids[:, :5], attention_mask=mask[:, :5], position_ids=pos[:, :5], past_key_values=cache
            )
            steps = [out.logits]
            for t in range(5, ids.shape[1]):
                out = model(
                    ids[:, t : t + 1],
                    attention_mask=mask[:, : t + 1],
                    position_ids=pos[:, t : t + 1],
                    past_key_values=out.past_key_values,
                )
                steps.append(out.logits)
            torch.testing.assert_close(torch.cat(steps, 1)[real], want[real], atol=1e-4, rtol=0)


def test_round_trip_and_loss(checkpoint, tmp_path):
    hf, folder = checkpoint
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask, _ = _batch()
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits, atol=1e-5, rtol=0)
        labels = ids.masked_fill(mask == 0, -100)
        torch.testing.assert_close(
            model(ids, attention_mask=mask, labels=labels).loss,
            hf(ids, attention_mask=mask, labels=labels).loss,
            atol=1e-5,
            rtol=0,
        )
        n = int((labels[:, 1:] != -100).sum())
        torch.testing.assert_close(
            model(ids, attention_mask=mask, labels=labels, num_items_in_batch=n + 3).loss,
            hf(ids, attention_mask=mask, labels=labels, num_items_in_batch=n + 3).loss,
            atol=1e-5,
            rtol=0,
        )


def test_token_type_ids_and_sequence_classification(tmp_path):
    torch.manual_seed(0)
    hf = transformers.GPT2ForSequenceClassification(transformers.GPT2Config(**TINY, num_labels=2)).eval()
    hf.save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    ids, mask, _ = _batch()
    types = torch.randint(0, 2, ids.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
        got = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


def test_old_checkpoints_with_attention_bias_buffers_load(checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    hf, folder = checkpoint
    state = load_file(str(folder / "model.safetensors"))
    state["h.0.attn.bias"] = torch.ones(1, 1, 32, 32).tril()  # as in the original OpenAI conversion
    state = {k.removeprefix("transformer."): v for k, v in state.items()}
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    hf.config.save_pretrained(tmp_path)
    model, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert info["unexpected_keys"] == [] and info["missing_keys"] == []
    ids, _, _ = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=0)

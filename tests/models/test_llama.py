"""Llama / Mistral / Qwen2 / Qwen3 against transformers on tiny random models (fp32)."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification  # noqa: E402
from pretrained.modeling.cache import DynamicCache, StaticCache  # noqa: E402

TINY = dict(
    vocab_size=101,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
)

VARIANTS = {
    "llama": ("LlamaConfig", {}),
    "llama_tied_llama3": (
        "LlamaConfig",
        dict(
            tie_word_embeddings=True,
            rope_parameters=dict(
                rope_type="llama3",
                rope_theta=10000.0,
                factor=8.0,
                low_freq_factor=1.0,
                high_freq_factor=4.0,
                original_max_position_embeddings=16,
            ),
        ),
    ),
    "llama_linear_bias": (
        "LlamaConfig",
        dict(
            attention_bias=True,
            mlp_bias=True,
            rope_parameters=dict(rope_type="linear", factor=2.0, rope_theta=500.0),
        ),
    ),
    "llama_dynamic": (
        "LlamaConfig",
        dict(rope_parameters=dict(rope_type="dynamic", factor=2.0, rope_theta=10000.0)),
    ),
    "llama_yarn": (
        "LlamaConfig",
        dict(
            max_position_embeddings=128,
            rope_parameters=dict(
                rope_type="yarn", factor=4.0, rope_theta=10000.0, original_max_position_embeddings=32
            ),
        ),
    ),
    "mistral": ("MistralConfig", dict(sliding_window=5)),
    "qwen2": ("Qwen2Config", dict(tie_word_embeddings=True)),
    "qwen3": ("Qwen3Config", dict(head_dim=16)),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def checkpoint(request, tmp_path_factory):
    """(variant name, transformers model, folder it was saved to)."""
    config_name, extra = VARIANTS[request.param]
    torch.manual_seed(0)
    config = getattr(transformers, config_name)(**{**TINY, **extra})
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, model, folder


def _batch(seq: int = 9, pad: int = 3):
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, TINY["vocab_size"], (2, seq), generator=gen)
    mask = torch.ones(2, seq, dtype=torch.long)
    mask[0, :pad] = 0
    ids[0, :pad] = 0
    return ids, mask


def _positions(mask):
    return (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)


def test_full_forward_matches(checkpoint):
    name, hf, folder = checkpoint
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert type(model).__name__.endswith("ForCausalLM")
    ids, mask = _batch()
    pos = _positions(mask)
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        got = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        real = mask.bool()
        torch.testing.assert_close(got[real], want[real], atol=1e-4, rtol=0)
        # Without padding the mask-free path (is_causal) must agree too.
        torch.testing.assert_close(model(ids[1:]).logits, hf(ids[1:]).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cache_kind", ["dynamic", "static", "legacy"])
def test_prefill_then_cached_decode(checkpoint, cache_kind):
    name, hf, folder = checkpoint
    if cache_kind == "legacy" and name == "mistral":
        pytest.skip("a sliding-window cache drops old keys, so its legacy tuple cannot be resumed")
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = _batch(seq=12, pad=2)
    pos = _positions(mask)
    prefill = 6
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        if cache_kind == "static":
            cache = StaticCache(model.config, max_cache_len=16)
        else:
            cache = DynamicCache(config=model.config)
        out = model(
            input_ids=ids[:, :prefill],
            attention_mask=mask[:, :prefill],
            position_ids=pos[:, :prefill],
            past_key_values=cache,
            use_cache=True,
        )
        logits = [out.logits]
        past = out.past_key_values
        for t in range(prefill, ids.shape[1]):
            if cache_kind == "legacy":
                past = past.to_legacy_cache()  # the tuple format is accepted too
            out = model(
                input_ids=ids[:, t : t + 1],
                attention_mask=mask[:, : t + 1],
                position_ids=pos[:, t : t + 1],
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            logits.append(out.logits)
        got = torch.cat(logits, dim=1)
    real = mask.bool()
    torch.testing.assert_close(got[real], want[real], atol=1e-4, rtol=0)


def test_round_trip_saved_by_pretrained_loads_in_transformers(checkpoint, tmp_path):
    name, hf, folder = checkpoint
    model = AutoModelForCausalLM.from_pretrained(folder)
    model.save_pretrained(tmp_path)
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids, mask = _batch()
    with torch.no_grad():
        torch.testing.assert_close(back(ids).logits, model(ids).logits, atol=1e-5, rtol=0)
    assert type(back).__name__ == type(hf).__name__


def test_old_rope_scaling_spelling_is_accepted():
    config = AutoConfig.for_model(
        "llama", rope_theta=500.0, rope_scaling={"type": "linear", "factor": 2.0}, **TINY
    )
    assert config.rope_parameters == {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}
    with pytest.raises(ValueError, match="rope_type"):
        AutoConfig.for_model("llama", rope_scaling={"rope_type": "nope"}, **TINY)


def test_mistral_sliding_window_beyond_window(tmp_path):
    torch.manual_seed(0)
    config = transformers.MistralConfig(**{**TINY, "sliding_window": 4})
    hf = transformers.MistralForCausalLM(config).eval()
    hf.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.randint(1, TINY["vocab_size"], (1, 14), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = hf(ids).logits
        torch.testing.assert_close(model(ids).logits, want, atol=1e-4, rtol=0)
        for cache in (DynamicCache(config=model.config), StaticCache(model.config, max_cache_len=14)):
            out = model(ids[:, :3], past_key_values=cache, use_cache=True)
            steps = [out.logits]
            for t in range(3, 14):  # decode far past the 4-token window
                out = model(ids[:, t : t + 1], past_key_values=out.past_key_values, use_cache=True)
                steps.append(out.logits)
            torch.testing.assert_close(torch.cat(steps, 1), want, atol=1e-4, rtol=0)
            assert cache.get_seq_length() == 14
            if isinstance(cache, DynamicCache):  # the sliding layers keep only window - 1 keys
                assert cache[0][0].shape[2] == 3


def test_sequence_classification_matches(tmp_path):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(**TINY, num_labels=3)
    hf = transformers.LlamaForSequenceClassification(config).eval()
    hf.save_pretrained(tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    ids, mask = _batch()
    ids[1, -2:] = 0  # right padding in the second row
    mask[1, -2:] = 0
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask)
        got = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2]))
    torch.testing.assert_close(got.logits, want.logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(
        got.loss, hf(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2])).loss
    )


def test_loss_and_num_items_in_batch(tmp_path):
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids, mask = _batch()
    labels = ids.masked_fill(mask == 0, -100)
    want = hf(input_ids=ids, attention_mask=mask, labels=labels)
    got = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=0)
    # Summed and divided by the global token count, as transformers does under gradient accumulation.
    n = int((labels[:, 1:] != -100).sum())
    summed = model(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=2 * n).loss
    torch.testing.assert_close(summed, got.loss / 2)
    hf_summed = hf(input_ids=ids, attention_mask=mask, labels=labels, num_items_in_batch=2 * n).loss
    torch.testing.assert_close(summed, hf_summed, atol=1e-5, rtol=0)
    # Training path: gradients flow, also with gradient checkpointing.
    model.train()
    model.gradient_checkpointing_enable()
    model(input_ids=ids, labels=labels).loss.backward()
    assert model.model.embed_tokens.weight.grad is not None


def test_outputs_hidden_states_and_attentions(checkpoint):
    name, hf, folder = checkpoint
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids, mask = _batch()
    with torch.no_grad():
        got = model(ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
        want = hf(ids, attention_mask=mask, output_hidden_states=True)
    assert len(got.hidden_states) == TINY["num_hidden_layers"] + 1
    assert got.attentions[0].shape == (2, 4, 9, 9)
    real = mask.bool()
    torch.testing.assert_close(got.logits[real], want.logits[real], atol=1e-4, rtol=0)
    torch.testing.assert_close(got.hidden_states[-1][real], want.hidden_states[-1][real], atol=1e-4, rtol=0)
    as_tuple = model(ids, return_dict=False, use_cache=False)
    assert isinstance(as_tuple, tuple)


def _module_state(model):
    return {name: (sorted(vars(m)), [p.data_ptr() for p in m.parameters(recurse=False)])
            for name, m in model.named_modules()}


def test_inference_leaves_the_model_plain(tmp_path):
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    before = _module_state(model)
    ids, mask = _batch()
    with torch.no_grad():
        model(ids)
    model.generate(ids, attention_mask=mask, max_new_tokens=3, do_sample=False)
    model.generate(ids[:1].repeat(4, 1), max_new_tokens=3, do_sample=False)  # small-rows kernels route
    assert _module_state(model) == before  # no attributes added, no weight re-pointed
    assert all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith("proj"))


def test_attn_implementation_eager_matches_sdpa(tmp_path):
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids, mask = _batch()
    with torch.no_grad():
        sdpa = model(ids, attention_mask=mask).logits
        model.config._attn_implementation = "eager"
        eager = model(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(eager[real], sdpa[real], atol=1e-5, rtol=0)


def test_checkpoint_with_old_rope_spelling_matches(tmp_path):
    import json

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        **TINY, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}
    )
    hf = transformers.LlamaForCausalLM(config).eval()
    hf.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data.pop("rope_parameters")
    data.update(rope_theta=500.0, rope_scaling={"type": "linear", "factor": 2.0})  # as older files have it
    (tmp_path / "config.json").write_text(json.dumps(data))
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert model.config.rope_parameters["rope_type"] == "linear"
    ids, _ = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, hf(ids).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("rot", [16, 8])
def test_rotary_helpers_agree(rot):
    from pretrained.modeling.rotary import apply_rotary, apply_rotary_tables, rotary_tables

    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 5, 16, generator=gen), torch.randn(2, 2, 5, 16, generator=gen)
    angles = torch.randn(2, 5, rot // 2, generator=gen)
    cos, sin = torch.cat((angles, angles), -1).cos(), torch.cat((angles, angles), -1).sin()
    want = apply_rotary(q, k, cos, sin)
    got = apply_rotary_tables(q, k, *rotary_tables(cos, sin))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert torch.equal(want[0][..., rot:], q[..., rot:])  # partial rotary leaves the tail alone

"""The fused fp32 operations of eager decode steps (pretrained.inference.decode_ops): each kernel against the
PyTorch ops it replaces, and generate() with and without them (same tokens, scores within fp32 rounding),
with padding, grouped heads, per-head norms (Qwen3) and beams; anything they do not serve falls back."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from tiny_models import generate_greedy, tiny_decode_llama

from pretrained.generation import runner
from pretrained.inference import decode_ops
from pretrained.modeling.attention import sdpa_attention
from pretrained.modeling.cache import DynamicLayer
from pretrained.modeling.rotary import apply_rotary_tables, rotary_tables

lib = decode_ops.load_decode_ops()
needs_lib = pytest.mark.skipif(lib is None, reason="no AVX-512 or no C++ compiler")


@needs_lib
@pytest.mark.parametrize("width", [32, 37, 768])
def test_rms_norm_and_residual_add(width):
    torch.manual_seed(0)
    x, residual, weight = torch.randn(3, 1, width), torch.randn(3, 1, width), torch.randn(width)
    out, total = decode_ops.rms_norm(x, weight, 1e-6)
    assert total is None
    torch.testing.assert_close(out, F.rms_norm(x, (width,), weight, 1e-6), rtol=1e-6, atol=1e-6)
    out, total = decode_ops.rms_norm(x, weight, 1e-5, residual=residual)
    assert torch.equal(total, residual + x)
    torch.testing.assert_close(out, F.rms_norm(residual + x, (width,), weight, 1e-5), rtol=1e-6, atol=1e-6)
    wide = torch.randn(3, 1, 2 * width)  # a column slice of a wider product
    out, _ = decode_ops.rms_norm(wide[..., width:], None, 1e-6)
    torch.testing.assert_close(out, F.rms_norm(wide[..., width:], (width,), None, 1e-6), rtol=1e-6, atol=1e-6)


@needs_lib
@pytest.mark.parametrize("width", [16, 37, 2048])
def test_silu_mul(width):
    torch.manual_seed(0)
    both = torch.randn(2, 1, 2 * width) * 8  # gate | up, as a packed gate/up product gives them
    gate, up = both[..., :width], both[..., width:]
    out = torch.empty(2, 1, width)
    lib.silu_mul_rows(gate.data_ptr(), 2 * width, up.data_ptr(), 2 * width, out.data_ptr(), 2, width)
    torch.testing.assert_close(out, F.silu(gate) * up, rtol=3e-7, atol=1e-30)


@needs_lib
@pytest.mark.parametrize("padded", [False, True])
def test_decode_attention_against_sdpa(padded):
    torch.manual_seed(0)
    batch, heads, kv_heads, d, past = 2, 6, 2, 32, 9
    old_k, old_v = torch.randn(batch, kv_heads, past, d), torch.randn(batch, kv_heads, past, d)
    q, k, v = (
        torch.randn(batch, 1, heads * d),
        torch.randn(batch, 1, kv_heads * d),
        torch.randn(batch, 1, kv_heads * d),
    )
    angles = torch.rand(batch, 1, d) * 6
    cos, sin = rotary_tables(angles.cos(), angles.sin())
    mask = torch.ones(batch, 1, 1, past + 1, dtype=torch.bool)
    if padded:
        mask[0, ..., :4] = False
    layer = DynamicLayer()
    layer.update(old_k, old_v)
    keys, values = layer.reserve(1)
    out = torch.empty(batch, 1, heads * d)
    lib.decode_attention(q.data_ptr(), heads * d, k.data_ptr(), kv_heads * d, v.data_ptr(), kv_heads * d,
                         cos.data_ptr(), sin.data_ptr(), d, keys.data_ptr(), values.data_ptr(), *keys.stride()[:3],
                         past, past + 1, mask.data_ptr() if padded else None, past + 1 if padded else 0,
                         out.data_ptr(), batch, heads, kv_heads, d, d**-0.5, 1)  # fmt: skip
    layer.length += 1
    split = lambda t: t.view(batch, 1, -1, d).transpose(1, 2)  # noqa: E731
    rq, rk = apply_rotary_tables(split(q), split(k), cos, sin)
    full_k, full_v = torch.cat((old_k, rk), 2), torch.cat((old_v, split(v)), 2)
    torch.testing.assert_close(layer.keys, full_k, rtol=0, atol=0)  # rotated exactly as PyTorch rounds it
    assert torch.equal(layer.values, full_v)
    expected, _ = sdpa_attention(rq, full_k, full_v, mask if padded else None)
    torch.testing.assert_close(out, expected.transpose(1, 2).flatten(2), rtol=1e-5, atol=1e-6)


@needs_lib
@pytest.mark.parametrize("blocks", [True, False])
@pytest.mark.parametrize("case", ["plain", "padded", "qwen3", "beams", "int8"])
def test_generate_same_tokens(case, blocks, monkeypatch):
    model = tiny_decode_llama(hidden_size=64, layers=2)
    if case == "qwen3":  # per-head norms: the block falls back to one call per fused operation
        from pretrained.models.llama import LlamaForCausalLM, Qwen3Config

        torch.manual_seed(0)
        config = Qwen3Config(vocab_size=96, hidden_size=64, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, head_dim=16, eos_token_id=None,
                             pad_token_id=0)  # fmt: skip
        model = LlamaForCausalLM(config).eval()
    if case == "int8":
        from pretrained.quantizers.int4_linear import Int8WeightOnlyLinear, replace_linears

        replace_linears(model, Int8WeightOnlyLinear.from_linear, skip=("lm_head",))
    ids = torch.randint(1, 96, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if case == "padded":
        mask[0, :3] = 0
    extra = {"num_beams": 3} if case == "beams" else {}
    calls = []
    entry = "block_step" if blocks and case != "qwen3" else "decode_attention"
    real = getattr(lib, entry)
    monkeypatch.setattr(lib, entry, lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(decode_ops, "BLOCKS", blocks)
    plain = generate_greedy(model, False, input_ids=ids, attention_mask=mask, max_new_tokens=12, **extra)
    assert not calls
    fused = generate_greedy(model, True, input_ids=ids, attention_mask=mask, max_new_tokens=12, **extra)
    assert len(calls) == 11 * 2  # every step after the prompt, in both layers
    assert torch.equal(plain.sequences, fused.sequences)
    for a, b in zip(plain.scores, fused.scores):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert all("forward" not in vars(m) for m in model.modules())  # restored after each step


@needs_lib
def test_other_calls_fall_back():
    model = tiny_decode_llama(hidden_size=64, layers=2)
    ids = torch.randint(1, 96, (1, 5), generator=torch.Generator().manual_seed(2))
    forwards = dict(decode_ops.decode_forwards(model))
    assert (
        len(forwards) == 2 * 5 + 2
    )  # per layer: two norms, attention, MLP, the block; the final norm, the stack
    attention = model.model.layers[0].self_attn
    hidden = torch.randn(1, 1, 64)
    with torch.no_grad():
        out = model(ids, use_cache=True)
        cache = out.past_key_values
        cos, sin = rotary_tables(*model.model.rotary_emb(torch.tensor([[5]]), torch.float32))
        expected = attention(hidden, None, (cos, sin), cache, torch.tensor([5]))[0]
        cache.crop(5)
        fused = forwards[attention](hidden, None, (cos, sin), cache, torch.tensor([5]))[0]
        cache.crop(5)
        with torch.enable_grad():  # autograd: the layer's own path
            own = forwards[attention](hidden, None, (cos, sin), cache, torch.tensor([5]))[0]
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-6)
    assert own.requires_grad
    torch.testing.assert_close(own.detach(), expected)
    with torch.no_grad():  # another dtype: the norm's own path
        assert forwards[model.model.norm](torch.randn(2, 1, 64, dtype=torch.float64)).dtype == torch.float64


def test_nothing_swapped_without_the_library(monkeypatch):
    monkeypatch.setitem(decode_ops._built, "lib", None)
    model = tiny_decode_llama()
    assert decode_ops.decode_forwards(model) == []
    ids = torch.randint(1, 96, (1, 5), generator=torch.Generator().manual_seed(3))
    assert model.generate(ids, max_new_tokens=4, do_sample=False).shape == (1, 9)


@needs_lib
@pytest.mark.parametrize("kind", ["fp32", "int8"])
def test_stack_step_runs_the_blocks_without_their_forwards(kind, monkeypatch):
    from pretrained.generation.runner import RoutedLinears

    model = tiny_decode_llama(hidden_size=64, layers=3)
    if kind == "int8":
        from pretrained.quantizers.int4_linear import Int8WeightOnlyLinear, replace_linears

        replace_linears(model, Int8WeightOnlyLinear.from_linear, skip=("lm_head",))
    ids = torch.randint(1, 96, (2, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = model(ids, use_cache=True)
        cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
        expected = model(token, past_key_values=copy.deepcopy(cache)).logits
        calls = []
        real = lib.block_step
        monkeypatch.setattr(lib, "block_step", lambda *a: calls.append(1) or real(*a))
        with RoutedLinears(model):
            for layer in model.model.layers:  # the stack must not go through the blocks' forwards
                vars(layer)["forward"] = None
            got = model(token, past_key_values=cache).logits
    assert len(calls) == 3 and cache.get_seq_length() == 7
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@needs_lib
def test_models_with_other_libraries_layers_decode_op_by_op():
    """A model holding a layer class from outside pretrained / torch.nn (bitsandbytes', an adapter's) gets no
    fused forwards: their own rounding (bitsandbytes: activations to int8 in fp16) would turn the fused ops'
    last-bit differences into other tokens than transformers'."""
    model = tiny_decode_llama()
    assert decode_ops.decode_forwards(model)

    class OtherLinear(torch.nn.Linear):  # defined here: its module is this test file, like a third party's
        pass

    proj = model.model.layers[0].mlp.up_proj
    other = OtherLinear(proj.in_features, proj.out_features, bias=False)
    other.weight = proj.weight
    model.model.layers[0].mlp.up_proj = other
    assert decode_ops.decode_forwards(model) == []


@needs_lib
@pytest.mark.parametrize("grouped", [True, False])
def test_blocks_take_the_int8_groups_of_the_routed_layers(grouped, monkeypatch):
    """The fused blocks pack q / k / v and gate / up exactly as RoutedLinears' int8 layers do (its table)."""
    from pretrained.generation.runner import RoutedLinears
    from pretrained.inference.compiled import int8_group_table
    from pretrained.quantizers.int4_linear import Int8WeightOnlyLinear, replace_linears

    model = tiny_decode_llama(hidden_size=64, layers=2)
    replace_linears(model, Int8WeightOnlyLinear.from_linear, skip=("lm_head",))
    tables = []
    real = decode_ops._block_forward
    monkeypatch.setattr(decode_ops, "_block_forward", lambda m, table, fb: tables.append(table) or real(m, table, fb))
    monkeypatch.setattr(runner, "INT8_GROUPS", grouped)
    RoutedLinears(model)
    assert len(tables) == 2
    for table, layer in zip(tables, model.model.layers):
        if grouped:  # the runner's own (memoized) table, holding this block's projections
            assert table is int8_group_table(model)
            assert layer.self_attn.q_proj.weight in table and layer.mlp.gate_proj.weight in table
        else:
            assert table == {}

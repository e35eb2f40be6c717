"""GPTQ / AWQ / int8 weight-only layers in a tiny Llama: loaded from checkpoint-style state dicts made by
the packers, their logits match an fp32 Llama holding the dequantized weights; bad buffers are named."""

import pytest
import torch
from torch import nn

from pretrained import LlamaConfig, LlamaForCausalLM
from pretrained.quantizers import int4_formats as F
from pretrained.quantizers.int4_linear import AWQLinear, GPTQLinear, Int8WeightOnlyLinear, replace_linears

# group size 128 needs inputs of 128 and more; kept small otherwise
TINY = dict(vocab_size=101, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip


def fp32_llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**TINY)).eval()


def linears(model):
    return {name: m for name, m in model.named_modules() if type(m) is nn.Linear and not name.endswith("lm_head")}


def checkpoint(model, kind, sym=True, desc_act=False):
    """(state dict in the checkpoint's format, the dequantized fp32 weights computed here from the integers)."""
    state, dequantized = {}, {}
    for i, (name, lin) in enumerate(linears(model).items()):
        w = lin.weight.detach() + 0.02 * torch.randn(lin.weight.shape, generator=torch.Generator().manual_seed(i))
        perm = torch.randperm(lin.in_features, generator=torch.Generator().manual_seed(100 + i)) if desc_act else None
        ints, zeros, scales, g_idx = F.quantize_rtn(w, 4, 128, sym, perm)
        if kind == "gptq":
            packed = F.pack_gptq(ints, zeros, scales, g_idx)
        else:
            packed = F.pack_awq(ints, zeros, scales)
        state.update({f"{name}.{k}": v for k, v in packed.items()})
        g = g_idx.long()
        dequantized[name] = (ints.float() - zeros[g].t().float()) * scales[g].t().float()
    return state, dequantized


def quantized_llama(model, state, make):
    q = LlamaForCausalLM(model.config).eval()
    q.load_state_dict(model.state_dict())  # embeddings, norms, head
    replace_linears(q, make)
    missing, unexpected = q.load_state_dict(state, strict=False)
    assert not unexpected and all("proj" not in k for k in missing)
    return q


def reference_llama(model, dequantized):
    ref = LlamaForCausalLM(model.config).eval()
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name, lin in linears(ref).items():
            lin.weight.copy_(dequantized[name])
    return ref


def assert_logits_match(q, ref, kernel="auto"):
    for module in q.modules():
        if hasattr(module, "kernel"):
            module.kernel = kernel
    ids = torch.randint(0, 101, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for batch in (ids, ids[:1, :5], ids[:, :1]):  # 40 rows (dequantize + GEMM), 5 and 2 rows (kernels)
            torch.testing.assert_close(q(batch).logits, ref(batch).logits, atol=1e-4, rtol=0)


@pytest.mark.parametrize("sym", [True, False])
@pytest.mark.parametrize("desc_act", [False, True])
def test_gptq_llama_matches_dequantized_fp32(sym, desc_act):
    model = fp32_llama()
    state, dequantized = checkpoint(model, "gptq", sym, desc_act)
    q = quantized_llama(model, state,
                        lambda lin: GPTQLinear(lin.in_features, lin.out_features, False, desc_act=desc_act, sym=sym))
    assert_logits_match(q, reference_llama(model, dequantized))
    # saved back unchanged
    saved = q.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in state.items())


def test_awq_llama_matches_dequantized_fp32():
    model = fp32_llama()
    state, dequantized = checkpoint(model, "awq", sym=False)
    q = quantized_llama(model, state, lambda lin: AWQLinear(lin.in_features, lin.out_features, False))
    ref = reference_llama(model, dequantized)
    assert_logits_match(q, ref)
    assert_logits_match(q, ref, kernel="reduction")


@pytest.mark.parametrize("make", [
    lambda lin: GPTQLinear.from_linear(lin, group_size=64, desc_act=True),
    lambda lin: AWQLinear.from_linear(lin, group_size=64),
    Int8WeightOnlyLinear.from_linear,
], ids=["gptq", "awq", "int8"])  # fmt: skip
def test_from_linear_then_dequantize(make):
    torch.manual_seed(0)
    lin = nn.Linear(128, 48)
    layer = make(lin)
    plain = layer.dequantize()
    assert isinstance(plain, nn.Linear) and plain.weight.dtype == torch.float32
    x = torch.randn(3, 128)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), plain(x), atol=1e-5, rtol=0)
        # close to the original layer: 4-bit steps of about max|w| / 8, 8-bit of max|w| / 127
        err = (layer(x) - lin(x)).abs().max() / lin(x).abs().max()
    assert err < (0.01 if isinstance(layer, Int8WeightOnlyLinear) else 0.2)


def test_int8_llama_matches_dequantized_fp32():
    model = fp32_llama()
    q = LlamaForCausalLM(model.config).eval()
    q.load_state_dict(model.state_dict())
    replace_linears(q, Int8WeightOnlyLinear.from_linear)
    ref = reference_llama(model, {name: m.dequantized_weight() for name, m in q.named_modules()
                                  if isinstance(m, Int8WeightOnlyLinear)})  # fmt: skip
    assert_logits_match(q, ref)


def test_bias_and_bits_8_gptq():
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    layer = GPTQLinear.from_linear(lin, bits=8, group_size=32)
    x = torch.randn(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer.dequantize()(x), atol=1e-5, rtol=0)
        assert (layer(x) - lin(x)).abs().max() < 0.02


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"in_features \(100\).*group_size \(128\)"):
        GPTQLinear(100, 64)
    with pytest.raises(ValueError, match=r"in_features \(132\) must be divisible by 8"):
        GPTQLinear(132, 64, group_size=-1)
    with pytest.raises(ValueError, match=r"out_features \(60\)"):
        AWQLinear(128, 60)
    layer = GPTQLinear(128, 64, bias=False)
    bad = {k: v for k, v in layer.state_dict().items()}
    bad["qweight"] = torch.zeros(8, 64, dtype=torch.int32)
    with pytest.raises(ValueError, match="'qweight' has shape"):
        layer.load_state_dict(bad)
    # the loading pass sets buffers directly: the first forward checks them
    layer._buffers["scales"] = torch.zeros(2, 64, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"buffer 'scales' has shape \(2, 64\), expected \(1, 64\)"):
        layer(torch.zeros(1, 128))
    layer = AWQLinear(128, 64, bias=False)
    layer._buffers["qzeros"] = torch.zeros(1, 8, dtype=torch.int64)
    with pytest.raises(ValueError, match="buffer 'qzeros' has dtype torch.int64"):
        layer(torch.zeros(1, 128))


def test_generate_eager_and_compiled_match_dequantized():
    model = fp32_llama()
    q = LlamaForCausalLM(model.config).eval()
    q.load_state_dict(model.state_dict())
    # one compiled graph covering every layer kind: GPTQ act-order, AWQ and int8 in turn
    makers = iter([lambda lin: GPTQLinear.from_linear(lin, desc_act=True), AWQLinear.from_linear,
                   Int8WeightOnlyLinear.from_linear] * 10)  # fmt: skip
    replace_linears(q, lambda lin: next(makers)(lin))
    ref = reference_llama(model, {name: m.dequantized_weight() for name, m in q.named_modules()
                                  if hasattr(m, "dequantized_weight")})  # fmt: skip
    ids = torch.randint(1, 101, (2, 6), generator=torch.Generator().manual_seed(5))
    options = dict(max_new_tokens=6, do_sample=False, pad_token_id=0)
    expected = ref.generate(ids, **options)
    assert torch.equal(q.generate(ids, **options), expected)
    # compile tests run earlier in the same worker can use up dynamo's recompile limit for the step function
    torch._dynamo.reset()
    compiled = q.generate(ids, cache_implementation="static", compile_config={"fullgraph": True}, **options)
    assert torch.equal(compiled, expected)


@pytest.mark.parametrize("make", [GPTQLinear.from_linear, AWQLinear.from_linear, Int8WeightOnlyLinear.from_linear],
                         ids=["gptq", "awq", "int8"])  # fmt: skip
def test_vnni_kernel_computes_with_int8_activations(make):
    from pretrained.inference import quant_kernels

    if not (quant_kernels.load_kernels() and quant_kernels.vnni_ready()):
        pytest.skip("needs AVX-512 VNNI")
    torch.manual_seed(0)
    layer = make(nn.Linear(128, 64))
    layer.kernel = "vnni"
    x = torch.randn(4, 128)
    with torch.no_grad():
        expected = layer.dequantize()(quant_kernels.quantize_activations(x))
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)

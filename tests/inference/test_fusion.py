"""Projection fusion owned by `inference.compiled.CompiledDecoder`: sibling q/k/v and gate/up layers packed
side by side (the same Parameter objects, names, values; saving and training still work), each group one
product inside the traced step, and layers that are not plain fp32 ``nn.Linear`` left alone."""

from __future__ import annotations

import copy
import operator

import pytest
import torch
from layer_standins import Int8Linear
from tiny_models import tiny_decode_llama
from torch import nn

from pretrained.inference.compiled import CompiledDecoder, compiled_decoder, fusable_groups
from pretrained.inference.routing import DecodeKernels
from pretrained.models.llama import LlamaForCausalLM

# The eager backend runs the traced graph op by op: no C++ compiler needed, and fast.
EAGER = {"backend": "eager", "fullgraph": True}


def _decoder(model: nn.Module, options: dict = EAGER, fuse: bool = True) -> CompiledDecoder:
    """``model``'s decoder (``generate`` reuses it), writing one-row linears as multiply + sum as it
    does for inductor, which is when it packs and merges groups; run here op by op."""
    decoder = compiled_decoder(model, options, fuse=fuse)
    decoder.reductions = True
    DecodeKernels.prepare(compiled=True, reductions=True)
    decoder.prepare(model)
    return decoder


def _llama(layers: int = 2, bias: bool = False) -> LlamaForCausalLM:
    return tiny_decode_llama(32, 64, layers, bias)


def _generate(model: nn.Module, compiled: bool, rows: int = 1) -> torch.Tensor:
    ids = torch.randint(1, 96, (rows, 5), generator=torch.Generator().manual_seed(rows))
    if compiled:
        _decoder(model)
    options = dict(cache_implementation="static", compile_config=EAGER) if compiled else {}
    return model.generate(ids, max_new_tokens=8, do_sample=False, **options)


def _shares_storage(*tensors: torch.Tensor) -> bool:
    return len({t.untyped_storage().data_ptr() for t in tensors}) == 1


def test_packing_keeps_parameters_names_values_and_training(tmp_path):
    model = _llama(bias=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = dict(model.named_parameters())
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    decoder = _decoder(model)
    assert dict(model.named_parameters()) == params  # the same objects under the same names
    assert all(type(p) is nn.Parameter and p.requires_grad for p in model.parameters())
    assert _shares_storage(attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight)
    assert _shares_storage(attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias)
    assert _shares_storage(mlp.gate_proj.weight, mlp.up_proj.weight)
    assert not _shares_storage(attn.q_proj.weight, attn.o_proj.weight)  # only the siblings
    # side by side, in declaration order
    k_at = attn.k_proj.weight.data_ptr() - attn.q_proj.weight.data_ptr()
    assert k_at == attn.q_proj.weight.numel() * 4
    group = decoder.groups[attn.v_proj.weight]
    assert (group.start, group.end) == (attn.q_proj.out_features + attn.k_proj.out_features, group.weight.shape[0])
    assert torch.equal(group.weight[group.start : group.end], attn.v_proj.weight)
    assert len(decoder.groups) == 2 * (3 + 2)  # every member of both groups in both layers
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)

    # saved and loaded back as separate checkpoint tensors
    model.save_pretrained(tmp_path)
    loaded = LlamaForCausalLM.from_pretrained(tmp_path)
    assert all(torch.equal(loaded.state_dict()[k], before[k]) for k in before)

    # training: gradients reach each member, an optimizer step updates the packed memory in place
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    assert attn.k_proj.weight.grad is not None and attn.k_proj.weight.grad.shape == attn.k_proj.weight.shape
    optimizer.step()
    assert torch.equal(group.weight[: attn.q_proj.out_features], attn.q_proj.weight)
    assert not torch.equal(attn.q_proj.weight, before["model.layers.0.self_attn.q_proj.weight"])


@pytest.mark.parametrize(("rows", "bias"), [(1, True), (1, False), (4, False)])  # 4 rows: layer by layer
def test_compiled_steps_through_packed_groups_give_the_eager_tokens(rows, bias):
    model = _llama(bias=bias)
    eager = _generate(model, compiled=False, rows=rows)
    torch._dynamo.reset()
    assert torch.equal(_generate(model, compiled=True, rows=rows), eager)


class _PackedInt8(nn.Module):
    """A quantized layer that is no ``nn.Linear`` and has no ``weight`` (as GPTQ's)."""

    def __init__(self, layer: nn.Linear) -> None:
        super().__init__()
        self.inner = Int8Linear(layer)
        del self.inner.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def test_quantized_and_sliced_layers_are_not_packed_and_give_the_plain_tokens():
    model = _llama()
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    attn.q_proj = Int8Linear(attn.q_proj)  # quantized: not packed, k and v still are
    model.model.layers[1].mlp.up_proj = _PackedInt8(model.model.layers[1].mlp.up_proj)
    wide = torch.zeros(mlp.gate_proj.out_features, 2 * mlp.gate_proj.in_features)
    wide[:, ::2] = mlp.gate_proj.weight.detach()
    mlp.gate_proj.weight = nn.Parameter(wide[:, ::2])  # a non-contiguous slice: gate / up not packed
    plain = copy.deepcopy(model)
    eager = _generate(plain, compiled=False)
    torch._dynamo.reset()
    assert torch.equal(_generate(model, compiled=True), eager)
    groups = fusable_groups(model)
    assert [attn.k_proj, attn.v_proj] in groups and attn.q_proj not in sum(groups, [])
    assert mlp.gate_proj not in sum(groups, []) and mlp.up_proj not in sum(groups, [])
    layer1 = model.model.layers[1]
    assert [layer1.self_attn.q_proj, layer1.self_attn.k_proj, layer1.self_attn.v_proj] in groups
    assert layer1.mlp.gate_proj not in sum(groups, [])  # its sibling is quantized: nothing to pack with
    assert _shares_storage(attn.k_proj.weight, attn.v_proj.weight)


def test_weights_replaced_after_compiling_are_packed_again():
    model = _llama()
    torch._dynamo.reset()
    first = _generate(model, compiled=True)
    assert torch.equal(first, _generate(model, compiled=False))
    attn = model.model.layers[1].self_attn
    torch.manual_seed(1)
    attn.k_proj.weight = nn.Parameter(torch.randn_like(attn.k_proj.weight))
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(-1)  # in place: stays packed
    eager = _generate(model, compiled=False)
    assert not torch.equal(eager, first)
    assert torch.equal(_generate(model, compiled=True), eager)
    assert _shares_storage(attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight)


def test_no_groups_for_encoder_decoders_cross_attention_or_without_fusing():
    from pretrained.models.bart import BartConfig, BartForConditionalGeneration

    config = BartConfig(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32)
    assert fusable_groups(BartForConditionalGeneration(config).eval()) == []
    model = _llama()
    q = model.model.layers[0].self_attn.q_proj
    q_at = q.weight.data_ptr()
    decoder = _decoder(model, fuse=False)
    assert decoder.groups == {} and q.weight.data_ptr() == q_at  # not packed (below 2 MB: not moved either)
    # cross-attention (keys and values read another sequence) is never packed
    model.model.layers[0].encoder_attn = copy.deepcopy(model.model.layers[0].self_attn)
    names = {id(layer) for group in fusable_groups(model) for layer in group}
    assert id(model.model.layers[0].encoder_attn.q_proj) not in names and id(q) in names


@pytest.mark.parametrize("fuse", [False, True])
def test_each_group_is_one_product_in_the_traced_step(fuse):
    """The calls of a packed group trace to one product with the packed weight (inductor then computes it
    in one loop: tests/generation/test_compile.py)."""
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    model = _llama()
    ids = torch.tensor([[3, 4, 5]])
    from pretrained.modeling.cache import StaticCache

    decoder = _decoder(model, {"backend": capture, "fullgraph": True}, fuse=fuse)
    cache = StaticCache(model.config, max_cache_len=8)
    torch._dynamo.reset()
    with torch.no_grad():
        model(ids, past_key_values=cache, cache_position=torch.arange(3))
        step = dict(input_ids=ids[:, -1:], position_ids=torch.tensor([[3]]), cache_position=torch.tensor([3]))
        decoder(model, cache, past_key_values=cache, **step)
    (graph,) = graphs
    products = [n for n in graph.graph.nodes if n.target is operator.mul
                and isinstance(n.args[1], torch.fx.Node) and n.args[1].op == "placeholder"]  # fmt: skip
    # per layer q, k, v, o, gate, up, down, and the head; packed: qkv, o, gate-up, down, and the head
    assert len(products) == (2 * 4 + 1 if fuse else 2 * 7 + 1)
    assert len({n.args[1] for n in products}) == len(products)  # each weight read once

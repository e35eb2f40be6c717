"""Fused int8 weight-only projections (`inference.compiled.int8_group_table`): sibling q/k/v and gate/up
``Int8WeightOnlyLinear`` layers packed one after another (the same buffer objects, names and values; saving
still works) and computed as one int8 kernel call per group, eagerly (`generation.runner.RoutedLinears`) and in
compiled steps (`inference.routing.DecodeKernels`), with results bit-identical to per-layer calls."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import tiny_decode_llama
from torch import nn

from pretrained.generation import runner
from pretrained.generation.runner import RoutedLinears
from pretrained.inference import quant_kernels as Q
from pretrained.inference.compiled import compiled_decoder, fusable_groups, int8_group_table
from pretrained.inference.routing import DecodeKernels
from pretrained.models.llama import LlamaForCausalLM
from pretrained.quantizers.int4_linear import Int8WeightOnlyLinear, replace_linears

pytestmark = pytest.mark.skipif(Q.load_kernels() is None, reason="needs AVX-512 and a C++ compiler")

EAGER = {"backend": "eager", "fullgraph": True}  # the traced graph run op by op: no compiler needed
# The int8 kernel calls of one step (their output widths) with groups: per layer q/k/v (64 + 2 * 32), o,
# gate/up (2 * 128), down
_STEP = [128, 64, 256, 64] * 2


@pytest.fixture(autouse=True)
def _unfused_fp32_ops(monkeypatch):
    """These tests compare int8 grouping bit for bit with per-layer calls; the fused fp32 operations of eager
    steps (pretrained.inference.decode_ops, tested in test_decode_ops.py) sum in another order."""
    monkeypatch.setattr(runner, "FUSED_OPS", False)


def _llama(bias: bool = False, layers: int = 2) -> LlamaForCausalLM:
    model = tiny_decode_llama(64, 128, layers, bias)
    return replace_linears(model, Int8WeightOnlyLinear.from_linear)  # (the head stays fp32)


def _ids(rows: int) -> torch.Tensor:
    return torch.randint(1, 96, (rows, 5), generator=torch.Generator().manual_seed(rows))


def _greedy_by_layers(model: nn.Module, ids: torch.Tensor, new: int = 8) -> torch.Tensor:
    """Greedy tokens from plain forwards of the whole sequence: every layer its own kernel call."""
    with torch.no_grad():
        for _ in range(new):
            ids = torch.cat([ids, model(ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids


@pytest.fixture
def kernel_calls(monkeypatch) -> list[int]:
    """The output widths of the int8 kernel's calls from here on (through ctypes: the extension's operators
    are set aside for the test)."""
    calls: list[int] = []
    kernels = dict(Q._built["kernels"])
    real = kernels["int8"]

    def counting(*args):
        calls.append(args[6])  # (x, w, s, b, out, rows, n, k)
        return real(*args)

    kernels["int8"] = counting
    monkeypatch.setitem(Q._built, "kernels", kernels)
    monkeypatch.setitem(Q._built, "ext", False)
    monkeypatch.setitem(Q._built, "ext_ops", None)
    return calls


def _shares_storage(*tensors: torch.Tensor) -> bool:
    return len({t.untyped_storage().data_ptr() for t in tensors}) == 1


def test_groups_pack_buffers_in_place_and_keep_the_state_dict(tmp_path):
    model = _llama(bias=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    buffers = {id(b) for b in model.buffers()}
    table = int8_group_table(model)
    assert {id(b) for b in model.buffers()} == buffers  # the same objects
    assert len(table) == 2 * (3 + 2) and fusable_groups(model, "int8")[0] == [attn.q_proj, attn.k_proj, attn.v_proj]
    assert _shares_storage(attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight)
    assert _shares_storage(attn.q_proj.weight_scale, attn.v_proj.weight_scale)
    assert _shares_storage(mlp.gate_proj.weight, mlp.up_proj.weight)
    group = table[attn.k_proj.weight]
    assert group.weight.dtype == torch.int8 and group.scale is not None
    assert attn.k_proj.weight.data_ptr() == group.weight[group.start].data_ptr()  # a view of the group's rows
    assert torch.equal(group.scale[group.start : group.end], attn.k_proj.weight_scale)
    assert torch.equal(group.bias[group.start : group.end], attn.k_proj.bias.float())
    assert int8_group_table(model) is table  # packed once
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    model.save_pretrained(tmp_path)  # each buffer its own checkpoint tensor
    loaded = load_file(tmp_path / "model.safetensors")
    assert loaded.keys() == before.keys() and all(torch.equal(loaded[k], before[k]) for k in before)


def test_every_int8_layer_is_packed_into_one_run_in_step_order():
    model = _llama()
    with torch.inference_mode():
        model(_ids(1)[:, :1])  # (the first forward places each layer's buffers, as a run's prefill does)
    int8_group_table(model)
    for name in ("weight", "weight_scale"):
        # the buffers a step reads, in the order it reads them, each right after the one before
        read = [getattr(x, name) for layer in model.model.layers for x in
                (*layer.self_attn.children(), *layer.mlp.children())]  # fmt: skip
        assert len(read) == 2 * 7 and _shares_storage(*read)
        ends = [t.data_ptr() + t.numel() * t.element_size() for t in read]
        assert [t.data_ptr() for t in read[1:]] == ends[:-1]  # (here each is whole cache lines: no padding)


@pytest.mark.parametrize(("rows", "bias"), [(1, False), (1, True), (3, False)])
def test_eager_groups_give_bit_identical_logits_with_fewer_calls(rows, bias, kernel_calls):
    model = _llama(bias=bias)
    plain = copy.deepcopy(model)
    x = _ids(rows)[:, :1]
    routed = RoutedLinears(model)
    with torch.inference_mode():
        with routed:
            fused = model(x).logits
        del kernel_calls[:]
        reference = plain(x).logits
        assert len(kernel_calls) == 2 * 7  # per layer: 7 calls
        del kernel_calls[:]
        with routed:
            assert torch.equal(model(x).logits, fused)
    assert torch.equal(fused, reference)
    assert kernel_calls == _STEP  # one call per group: q/k/v and gate/up of each layer
    assert "forward" not in vars(model.model.layers[0].self_attn.q_proj)  # put back after the step


@pytest.mark.parametrize("rows", [1, 3])
def test_eager_generate_gives_the_per_layer_tokens(rows):
    model = _llama(bias=True)
    assert torch.equal(model.generate(_ids(rows), max_new_tokens=8, do_sample=False),
                       _greedy_by_layers(copy.deepcopy(model), _ids(rows)))  # fmt: skip


def test_replaced_buffers_fall_back_then_pack_again(kernel_calls):
    model = _llama()
    plain = copy.deepcopy(model)
    routed = RoutedLinears(model)
    old = int8_group_table(model)
    attn = model.model.layers[1].self_attn
    torch.manual_seed(1)
    new = torch.randint(-127, 128, attn.k_proj.weight.shape, dtype=torch.int8)
    attn.k_proj.weight = new.clone()  # replaced buffer: its prepared call must not use the group's rows
    plain.model.layers[1].self_attn.k_proj.weight = new.clone()
    x = _ids(1)[:, :1]
    with torch.inference_mode():
        with routed:
            out = model(x).logits
        assert torch.equal(out, plain(x).logits)
        assert attn.k_proj.weight not in old
        table = int8_group_table(model)  # packed again, with the new buffer
        group = table[attn.k_proj.weight]
        assert table is not old and group.weight[group.start].data_ptr() == attn.k_proj.weight.data_ptr()
        routed = RoutedLinears(model)
        del kernel_calls[:]
        with routed:
            assert torch.equal(model(x).logits, plain(x).logits)
        assert kernel_calls[:4] == _STEP[:4]


def test_training_and_other_routes_take_the_layers_own_forward():
    model = _llama()
    for module in model.modules():
        if isinstance(module, Int8WeightOnlyLinear):
            module.kernel = "dequant"
    plain = copy.deepcopy(model)
    x = _ids(1)[:, :1]
    with torch.inference_mode(), RoutedLinears(model):
        assert torch.equal(model(x).logits, plain(x).logits)
    with RoutedLinears(model):  # autograd on: the layers' own forward
        torch.testing.assert_close(model(x).logits, plain(x).logits, rtol=0, atol=0)


@pytest.mark.parametrize("rows", [1, 3])
def test_compiled_steps_call_one_kernel_per_group_and_give_the_eager_tokens(rows, kernel_calls):
    model = _llama(bias=True)
    eager = model.generate(_ids(rows), max_new_tokens=8, do_sample=False)
    torch._dynamo.reset()
    decoder = compiled_decoder(model, EAGER)
    DecodeKernels.prepare(compiled=True, reductions=False)
    decoder.prepare(model)
    assert sum(g.scale is not None for g in decoder.groups.values()) == 2 * (3 + 2)
    compiled = model.generate(_ids(rows), max_new_tokens=8, do_sample=False, cache_implementation="static",
                              compile_config=EAGER)  # fmt: skip
    assert torch.equal(compiled, eager)
    assert kernel_calls[-len(_STEP) :] == _STEP  # the last compiled step: whole groups

"""Compiled decode steps that skip guards run the code dynamo ran for the run's first step directly
(`inference.compiled.CompiledDecoder._direct_step`), without dynamo's per-call lookup: the tokens stay those
of eager decoding, runs of other shapes get their own graph, and weights replaced or re-packed between runs
take effect. The ``eager`` backend traces the same code without needing a C++ compiler."""

from __future__ import annotations

import threading

import pytest
import torch
from tiny_models import tiny_decode_llama

from pretrained.inference import compiled as C
from pretrained.inference import quant_kernels as Q
from pretrained.models.llama import LlamaForCausalLM
from pretrained.quantizers.int4_linear import Int8WeightOnlyLinear, replace_linears

EAGER = {"backend": "eager", "fullgraph": True}


def _llama(int8: bool = False) -> LlamaForCausalLM:
    model = tiny_decode_llama(64, 128)
    return replace_linears(model, Int8WeightOnlyLinear.from_linear) if int8 else model


def _ids(rows: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(1, 96, (rows, 5), generator=torch.Generator().manual_seed(rows + seed))


@pytest.fixture
def direct_calls(monkeypatch) -> list[int]:
    """One entry per decode step run directly (not looked up by dynamo)."""
    calls: list[int] = []
    real = C.CompiledDecoder._direct_step

    def counting(self, args):
        found = real(self, args)
        if found is None:
            return None

        def step(*a):
            calls.append(1)
            return found[1](*a)

        return found[0], step

    monkeypatch.setattr(C.CompiledDecoder, "_direct_step", counting)
    return calls


def _compiled(model, ids, new=8, config=EAGER):
    return model.generate(ids, max_new_tokens=new, do_sample=False, cache_implementation="static",
                          compile_config=config)  # fmt: skip


@pytest.mark.parametrize("fullgraph", [True, False])
def test_steps_after_the_first_run_directly_and_give_the_eager_tokens(direct_calls, fullgraph):
    model = _llama()
    torch._dynamo.reset()
    for rows, new in [(1, 8), (2, 6), (1, 9)]:  # other shapes: each run's first step picks its graph
        ids = _ids(rows)
        eager = model.generate(ids, max_new_tokens=new, do_sample=False)
        del direct_calls[:]
        assert torch.equal(_compiled(model, ids, new, {"backend": "eager", "fullgraph": fullgraph}), eager)
        # prefill eager, first decode step looked up with every guard, the other new - 2 run directly
        assert len(direct_calls) == new - 2, (rows, new)


def test_prepare_and_guarded_steps_drop_the_direct_step():
    model = _llama()
    torch._dynamo.reset()
    _compiled(model, _ids(1))
    decoder = C.compiled_decoder(model, EAGER)  # (prepares it again, as generate does)
    assert decoder._direct == {}
    _compiled(model, _ids(1))
    assert list(decoder._direct) == [threading.get_ident()] and decoder._direct[threading.get_ident()][0]() is model
    with torch.compiler.set_stance("force_eager"):  # a guarded step that dynamo does not look up
        _compiled(model, _ids(1))
    assert decoder._direct == {}


def test_each_thread_runs_the_graph_of_its_own_run(direct_calls):
    model = _llama()
    torch._dynamo.reset()
    eager = {rows: model.generate(_ids(rows), max_new_tokens=8, do_sample=False) for rows in (1, 2)}
    _compiled(model, _ids(1))
    decoder = C.compiled_decoder(model, EAGER)
    _compiled(model, _ids(1))
    mine = decoder._direct[threading.get_ident()]
    results, ident = {}, []
    other = threading.Thread(target=lambda: (ident.append(threading.get_ident()),
                                             results.setdefault(2, _compiled(model, _ids(2)))))  # fmt: skip
    other.start()
    other.join()
    # The other run's entry (batch 2) is kept for its thread only; its generate prepared the decoder again,
    # which dropped this thread's (its next step is looked up with every guard).
    assert list(decoder._direct) == ident and decoder._direct[ident[0]][1] is not mine[1]
    results[1] = _compiled(model, _ids(1))
    assert all(torch.equal(results[rows], eager[rows]) for rows in (1, 2))


def test_a_replaced_weight_takes_effect_in_the_next_run(direct_calls):
    model = _llama()
    torch._dynamo.reset()
    ids = _ids(1)
    assert torch.equal(_compiled(model, ids), model.generate(ids, max_new_tokens=8, do_sample=False))
    weight = model.model.layers[1].mlp.down_proj.weight
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(3)))  # in place
    eager = model.generate(ids, max_new_tokens=8, do_sample=False)
    del direct_calls[:]
    assert torch.equal(_compiled(model, ids), eager)
    model.model.layers[0].self_attn.o_proj.weight = torch.nn.Parameter(torch.randn_like(weight[:, :64]) * 0.5)
    eager = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(_compiled(model, ids), eager)  # (a new object: guarded step, then direct again)
    assert len(direct_calls) == 2 * 6


@pytest.mark.skipif(Q.load_kernels() is None, reason="needs AVX-512 and a C++ compiler")
def test_int8_groups_run_directly_and_a_replaced_buffer_is_packed_again(direct_calls):
    model = _llama(int8=True)
    torch._dynamo.reset()
    ids = _ids(1)
    assert torch.equal(_compiled(model, ids), model.generate(ids, max_new_tokens=8, do_sample=False))
    assert len(direct_calls) == 6
    attn = model.model.layers[1].self_attn
    attn.k_proj.weight = torch.randint(-127, 128, attn.k_proj.weight.shape, dtype=torch.int8,
                                       generator=torch.Generator().manual_seed(1))  # fmt: skip
    eager = model.generate(ids, max_new_tokens=8, do_sample=False)
    decoder = C.compiled_decoder(model, EAGER)
    assert torch.equal(_compiled(model, ids), eager)
    group = decoder.groups[attn.k_proj.weight]  # packed again, and the packed rows are what ran
    assert group.weight[group.start].data_ptr() == attn.k_proj.weight.data_ptr()
    assert len(direct_calls) == 12

"""torch.compile of the decode step with a static cache (about a minute on 2 cores with a cold inductor
cache; skipped without a C++ compiler, or with ``PRETRAINED_TEST_COMPILE=0``)."""

from __future__ import annotations

import os
import shutil
import sysconfig

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrained import AutoModelForCausalLM  # noqa: E402
from pretrained.inference import hugepages, kernels  # noqa: E402

# The compiled decode path is what the CPU speed goals rest on, so it runs by default.
needs_compiler = pytest.mark.skipif(
    os.environ.get("PRETRAINED_TEST_COMPILE") == "0"
    or not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)
    or not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")),  # (C++ wrapper)
    reason="no C++ compiler or Python headers for inductor, or PRETRAINED_TEST_COMPILE=0",
)


def _tiny_llama(folder):
    """A one-layer Llama saved by transformers, loaded by pretrained."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, eos_token_id=None,
    )  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(folder)


@pytest.mark.slow
@needs_compiler
# 1 row: the multiply + sum reduction; 4 rows: the small-rows custom op in the graph
@pytest.mark.parametrize("rows", [1, 2, 4])
def test_compiled_static_decode_matches_eager(tmp_path, rows, monkeypatch):
    model = _tiny_llama(tmp_path)
    monkeypatch.setattr(kernels, "MIN_WEIGHT", 0)  # tiny weights take the small-rows path too
    ids = torch.randint(1, 64, (rows, 5), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding: the mask keeps a fixed shape in compiled steps
    monkeypatch.setattr(hugepages, "HUGE_PAGE", 1024)  # tiny weights go to huge-page regions too
    eager = model.generate(ids, attention_mask=mask, max_new_tokens=12)
    attributes = {name: sorted(vars(m)) for name, m in model.named_modules()}
    compiled = dict(cache_implementation="static", compile_config={"fullgraph": True})
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    assert torch.equal(model.generate(ids, attention_mask=mask, max_new_tokens=12, **compiled), eager)
    # One graph for all 11 decode steps (no recompilation per token) ...
    assert counters["stats"]["unique_graphs"] == 1
    assert all(hugepages.in_huge_pages(p) for p in model.parameters() if p.numel() * 4 >= 1024)
    assert {name: sorted(vars(m)) for name, m in model.named_modules()} == attributes  # nothing left on it
    # ... and later calls reuse it (the steps after the first skip dynamo's guard checks).
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert torch.equal(model.generate(ids, attention_mask=mask, max_new_tokens=12, **compiled), eager)


@pytest.mark.slow
@needs_compiler
@pytest.mark.parametrize("family", ["mistral", "qwen2", "qwen3"])
def test_compiled_one_row_decode_matches_eager_across_the_family(tmp_path, family):
    """One row: linears and attention as fused reductions (sliding window, qkv bias, q/k norm)."""
    torch.manual_seed(0)
    common = dict(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, eos_token_id=None,
    )  # fmt: skip
    if family == "mistral":
        model = transformers.MistralForCausalLM(transformers.MistralConfig(**common, sliding_window=4))
    elif family == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    else:
        model = transformers.Qwen3ForCausalLM(transformers.Qwen3Config(**common, head_dim=8))
    model.save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.randint(1, 64, (1, 6), generator=torch.Generator().manual_seed(0))
    eager = model.generate(ids, max_new_tokens=12)  # beyond the sliding window
    compiled = dict(cache_implementation="static", compile_config={"fullgraph": True})
    torch._dynamo.reset()
    assert torch.equal(model.generate(ids, max_new_tokens=12, **compiled), eager)


@pytest.mark.slow
@needs_compiler
def test_compiled_runs_of_other_shapes_pick_their_own_graph(tmp_path):
    """Steps after a run's first skip dynamo's guard checks, except those telling graphs apart: runs
    alternating batch sizes and lengths must each use the graph compiled for their shapes."""
    model = _tiny_llama(tmp_path)
    compiled = dict(cache_implementation="static", compile_config={"fullgraph": True})
    torch._dynamo.reset()
    for rows, new in [(1, 6), (2, 6), (1, 9), (2, 20), (1, 6)]:
        ids = torch.randint(1, 64, (rows, 4), generator=torch.Generator().manual_seed(rows * new))
        eager = model.generate(ids, max_new_tokens=new)
        assert torch.equal(model.generate(ids, max_new_tokens=new, **compiled), eager), (rows, new)


@pytest.mark.slow
@needs_compiler
def test_compiled_decoder_advances_the_cache_like_an_eager_forward(tmp_path):
    from pretrained.inference.compiled import compiled_decoder, release
    from pretrained.modeling.cache import StaticCache

    model = _tiny_llama(tmp_path)
    ids = torch.randint(1, 64, (1, 4), generator=torch.Generator().manual_seed(0))
    decoder = compiled_decoder(model, {"fullgraph": True})
    assert compiled_decoder(model, {"fullgraph": True}) is decoder  # kept, not compiled again
    caches = [StaticCache(model.config, max_cache_len=8) for _ in range(2)]
    with torch.no_grad():
        for cache in caches:
            model(ids, past_key_values=cache, cache_position=torch.arange(4))
        step = dict(input_ids=ids[:, -1:], position_ids=torch.tensor([[4]]), cache_position=torch.tensor([4]))
        eager = model(past_key_values=caches[0], **step).logits
        compiled = decoder(model, caches[1], past_key_values=caches[1], **step).logits
    assert caches[0].get_seq_length() == caches[1].get_seq_length() == 5
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=1e-5)
    release(model)
    assert compiled_decoder(model, {"fullgraph": True}) is not decoder


@pytest.mark.slow
@needs_compiler
@pytest.mark.parametrize("fuse", [False, True])
def test_packed_projections_are_one_loop_per_group_in_inductors_code(fuse):
    """With the q/k/v and gate/up layers packed, inductor's code reads each group in one loop over all its
    rows (the sibling calls merged), and the step's numbers are those of the plain model's."""
    import re

    from torch._inductor.utils import run_and_get_code

    from pretrained.inference.compiled import compiled_decoder
    from pretrained.modeling.cache import StaticCache
    from pretrained.models.llama import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # q / k / v: 32 + 16 + 16 = 64 rows; gate / up: 40 + 40 = 80; no other loop is 64 or 80 long
    config = LlamaConfig(vocab_size=72, hidden_size=32, intermediate_size=40, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    ids = torch.randint(1, 72, (1, 4), generator=torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    decoder = compiled_decoder(model, {"fullgraph": True}, fuse=fuse)
    assert bool(decoder.groups) == fuse
    cache, eager_cache = (StaticCache(config, max_cache_len=8) for _ in range(2))
    step = dict(input_ids=ids[:, -1:], position_ids=torch.tensor([[4]]), cache_position=torch.tensor([4]))
    with torch.no_grad():
        for c in (cache, eager_cache):
            model(ids, past_key_values=c, cache_position=torch.arange(4))
        out, code = run_and_get_code(lambda: decoder(model, cache, past_key_values=cache, **step).logits)
        want = model(past_key_values=eager_cache, **step).logits
    extents = re.findall(r"x0<static_cast<int64_t>\((\d+)L\)", "\n".join(code))
    assert (extents.count("64"), extents.count("80")) == ((2, 2) if fuse else (0, 0)), extents
    torch.testing.assert_close(out, want, atol=1e-5, rtol=1e-5)

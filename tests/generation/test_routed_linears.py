"""RoutedLinears (eager few-row decode steps): the big linear layers get exactly the kernels DecodeKernels
would pick, everything else is untouched, and the layers are restored after each step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pretrained.generation.utils as generation_utils
from pretrained.generation.runner import RoutedLinears
from pretrained.inference import kernels
from pretrained.inference.routing import DecodeKernels

BIG = (kernels.MIN_WEIGHT // 64, 64)  # (out, in): exactly MIN_WEIGHT elements


class _Quantized(nn.Linear):
    """A Linear subclass with its own forward (as quantized layers are): never rerouted."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 2


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict({
        "big": nn.Linear(BIG[1], BIG[0]),
        "small": nn.Linear(64, 64),
        "subclass": _Quantized(BIG[1], BIG[0]),
    })  # fmt: skip


def test_only_plain_big_linears_are_routed_and_restored():
    model = _model()
    routed = RoutedLinears(model)
    assert routed.modules == [model["big"]]
    with routed:
        assert "forward" in vars(model["big"])
    assert all("forward" not in vars(m) for m in model.values())
    with pytest.raises(RuntimeError), routed:
        raise RuntimeError("a failing step")
    assert "forward" not in vars(model["big"])  # restored on errors too
    assert not RoutedLinears(nn.Linear(8, 8))  # nothing to route: generate keeps no kernels at all


@pytest.mark.parametrize("rows", [1, 3, 4, 8, 12])
def test_same_results_as_decode_kernels_mode(rows, monkeypatch):
    model = _model().eval()
    x = torch.randn(rows, 1, BIG[1])
    rerouted = []
    real = kernels.onednn_linear
    monkeypatch.setattr(kernels, "onednn_linear", lambda *a: rerouted.append("onednn_linear") or real(*a))
    kernel = kernels.load_small_rows_kernel()
    if kernel is not None:  # every call of the C++ kernel, through kernel_linear or RoutedLinears' own call
        monkeypatch.setitem(kernels._built, "kernel", lambda *a: rerouted.append("kernel_linear") or kernel(*a))
    with torch.inference_mode():
        with DecodeKernels():
            expected = {name: m(x) for name, m in model.items()}
        by_mode, rerouted[:] = list(rerouted), []
        with RoutedLinears(model):
            got = {name: m(x) for name, m in model.items()}
        plain = {name: m(x) for name, m in model.items()}
    assert torch.equal(got["big"], expected["big"]) and torch.equal(got["small"], expected["small"])
    # the mode also reroutes the subclass's inner F.linear; RoutedLinears leaves that layer alone (MKL)
    assert torch.equal(got["subclass"], plain["subclass"])
    torch.testing.assert_close(got["subclass"], expected["subclass"], atol=1e-4, rtol=1e-5)
    want = "kernel_linear" if kernels.kernel_ready() else "onednn_linear" if kernels.onednn_available() else None
    if rows > kernels.KERNEL_MAX_ROWS or not kernels.kernel_ready():
        want = "onednn_linear" if rows in kernels.LIBRARY_ROWS and kernels.onednn_available() else None
    assert by_mode == ([want] * 2 if want else []) and rerouted == ([want] if want else [])
    torch.testing.assert_close(got["big"], plain["big"], atol=1e-4, rtol=1e-5)


def test_generate_tokens_same_as_with_decode_kernels_mode(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from pretrained import AutoModelForCausalLM

    # vocab x hidden = MIN_WEIGHT: the LM head is big enough to be rerouted at 4-8 rows
    config = transformers.LlamaConfig(vocab_size=BIG[0], hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      eos_token_id=None, bos_token_id=None, pad_token_id=0)  # fmt: skip
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    ids = torch.randint(1, BIG[0], (4, 6), generator=torch.Generator().manual_seed(0))
    calls = []
    real = generation_utils.RoutedLinears

    def spy(m):
        calls.append(real(m))
        return calls[-1]

    monkeypatch.setattr(generation_utils, "RoutedLinears", spy)
    kwargs = dict(max_new_tokens=6, do_sample=False)
    routed = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
    beams = model.generate(ids[:1], num_beams=4, early_stopping=False, **kwargs)
    assert len(calls) == 2 and [m for m in calls[0].modules] == [model.lm_head]
    monkeypatch.setattr(generation_utils, "RoutedLinears", lambda m: DecodeKernels())
    assert torch.equal(routed, model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs))
    assert torch.equal(beams, model.generate(ids[:1], num_beams=4, early_stopping=False, **kwargs))

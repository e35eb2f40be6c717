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
    assert len(calls) == 2 and [m for m in calls[0].modules if isinstance(m, nn.Linear)] == [model.lm_head]
    monkeypatch.setattr(generation_utils, "RoutedLinears", lambda m: DecodeKernels())
    assert torch.equal(routed, model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs))
    assert torch.equal(beams, model.generate(ids[:1], num_beams=4, early_stopping=False, **kwargs))


def test_direct_calls_follow_a_replaced_weight():
    """RoutedLinears prepares each layer's kernel call once per generate(); a weight replaced or re-pointed
    since then takes the general route with the new tensors."""
    model = _model().eval()
    routed = RoutedLinears(model)
    x = torch.randn(2, BIG[1])
    with torch.inference_mode():
        model["big"].weight = nn.Parameter(torch.randn(BIG))  # another Parameter
        with routed:
            got = model["big"](x)
        torch.testing.assert_close(got, x @ model["big"].weight.T + model["big"].bias, atol=1e-4, rtol=1e-5)
    model = _model().eval()
    routed = RoutedLinears(model)
    with torch.no_grad():
        model["big"].weight.data = torch.randn(BIG)  # same Parameter, new memory
        with routed:
            got = model["big"](x)
        torch.testing.assert_close(got, x @ model["big"].weight.T + model["big"].bias, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_encoder_decoder_generate_routed_matches_transformers(family, tmp_path, monkeypatch):
    """With every linear of a tiny T5 / BART big enough for the kernel, eager greedy and beam search still give
    transformers' tokens, and the kernel really ran (1 row for greedy, 4 for the beams)."""
    transformers = pytest.importorskip("transformers")
    from pretrained import AutoModelForSeq2SeqLM

    if kernels.load_small_rows_kernel() is None:
        pytest.skip("no AVX-512 or no C++ toolchain")
    torch.manual_seed(0)
    if family == "t5":
        config = transformers.T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                       decoder_start_token_id=0, eos_token_id=1, pad_token_id=0)  # fmt: skip
        hf = transformers.T5ForConditionalGeneration(config).eval()
    else:
        config = transformers.BartConfig(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2,
                                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=48,
                                         decoder_ffn_dim=48, max_position_embeddings=64)  # fmt: skip
        hf = transformers.BartForConditionalGeneration(config).eval()
    hf.save_pretrained(tmp_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    monkeypatch.setattr(kernels, "MIN_KERNEL_WEIGHT", 0)
    kernel, rows = kernels._built["kernel"], []
    monkeypatch.setitem(kernels._built, "kernel", lambda *a: rows.append(a[4]) or kernel(*a))
    ids = torch.randint(3, 99, (1, 9), generator=torch.Generator().manual_seed(1))
    # (no end of sequence before the steps under test: BART's tiny model ends at once otherwise)
    for options in (dict(max_new_tokens=10, min_new_tokens=10, do_sample=False),
                    dict(max_new_tokens=8, min_new_tokens=8, num_beams=4, do_sample=False)):
        rows.clear()
        with torch.no_grad():
            want, got = hf.generate(ids, **options), model.generate(ids, **options)
        assert got.tolist() == want.tolist()
        assert set(rows) == {options.get("num_beams", 1)}

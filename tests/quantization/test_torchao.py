"""torchao int8 configs against transformers: the same quantized tensors, logits, folders loading both ways;
int4 layouts that cannot run on this CPU are refused naming the configs that can."""

import json

import pytest
import torch
import transformers as T
from safetensors import safe_open
from torchao.quantization import (
    Int4WeightOnlyConfig,
    Int8DynamicActivationInt8WeightConfig,
    Int8WeightOnlyConfig,
)

import pretrained as P

CONFIGS = {"int8-weight-only": Int8WeightOnlyConfig, "int8-dynamic": Int8DynamicActivationInt8WeightConfig}
MODELS = {"llama": "LlamaForCausalLM", "bert": "BertForSequenceClassification"}
INPUTS = {"llama": dict(input_ids=torch.tensor([[1, 5, 9, 77, 3], [4, 8, 15, 16, 23]])),
          "bert": dict(input_ids=torch.tensor([[2, 5, 9, 7, 3], [4, 8, 15, 16, 23]]),
                       attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))}


def _out(model, family):
    with torch.no_grad():
        return model(**INPUTS[family]).logits


def _tensors(path):
    with safe_open(path / "model.safetensors", framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()  # noqa: SIM118


@pytest.mark.parametrize("quant", sorted(CONFIGS))
@pytest.mark.parametrize("family", sorted(MODELS))
def test_parity_and_round_trips(llama_dir, bert_dir, tmp_path, family, quant):
    folder = {"llama": llama_dir, "bert": bert_dir}[family]
    cls = MODELS[family]
    ref = getattr(T, cls).from_pretrained(folder, quantization_config=T.TorchAoConfig(CONFIGS[quant]()))
    ours = getattr(P, cls).from_pretrained(folder, quantization_config=P.TorchAoConfig(CONFIGS[quant]()))
    assert ours.is_quantized and ours.quantization_method == "torchao"
    quantized = {n for n, p in ours.named_parameters() if type(p.data).__name__ == "Int8Tensor"}
    assert quantized == {n for n, p in ref.named_parameters() if type(p.data).__name__ == "Int8Tensor"}
    for name in quantized:  # identical int8 values and scales from the same weights
        a, b = ref.get_parameter(name), ours.get_parameter(name)
        assert torch.equal(a.qdata, b.qdata) and torch.equal(a.scale, b.scale), name
    expected = _out(ref, family)
    torch.testing.assert_close(_out(ours, family), expected, atol=1e-4, rtol=0)

    ours.save_pretrained(tmp_path / "ours")
    ref.save_pretrained(tmp_path / "ref")
    (a, meta_a), (b, meta_b) = _tensors(tmp_path / "ref"), _tensors(tmp_path / "ours")
    assert sorted(a) == sorted(b) and [k for k in a if not torch.equal(a[k], b[k])] == []
    assert meta_a == meta_b
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["quantization_config"] == \
        json.loads((tmp_path / "ref" / "config.json").read_text())["quantization_config"]
    torch.testing.assert_close(_out(getattr(T, cls).from_pretrained(tmp_path / "ours"), family), expected,
                               atol=0, rtol=0)
    again = getattr(P, cls).from_pretrained(tmp_path / "ref")
    assert again.is_quantized and isinstance(again.config.quantization_config, P.TorchAoConfig)
    torch.testing.assert_close(_out(again, family), expected, atol=0, rtol=0)


def test_footprint_dequantize_and_skip_list(llama_dir):
    fp32 = P.LlamaForCausalLM.from_pretrained(llama_dir)
    config = P.TorchAoConfig(Int8WeightOnlyConfig(), modules_to_not_convert=["mlp.down_proj", "lm_head"])
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config)
    assert type(model.model.layers[0].mlp.down_proj.weight.data) is torch.Tensor
    converted = [m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
                 and type(m.weight.data) is not torch.Tensor]
    assert len(converted) == 2 * 6
    elements = sum(m.weight.numel() for m in converted)
    rows = sum(m.weight.shape[0] for m in converted)
    # int8 values, an fp32 scale and an int8 zero point per row, instead of fp32 values
    assert model.get_memory_footprint() == fp32.get_memory_footprint() - 3 * elements + 5 * rows
    logits = _out(model, "llama")
    model.dequantize()
    assert not model.is_quantized and type(model.model.layers[0].mlp.up_proj.weight.data) is torch.Tensor
    torch.testing.assert_close(_out(model, "llama"), logits, atol=1e-5, rtol=0)


def test_embeddings_included_and_bf16(llama_dir):
    for kwargs in (dict(include_input_output_embeddings=True), dict(dtype=torch.bfloat16)):
        dtype = kwargs.pop("dtype", None)
        ref = T.LlamaForCausalLM.from_pretrained(llama_dir, dtype=dtype, quantization_config=T.TorchAoConfig(
            Int8WeightOnlyConfig(), **kwargs))
        ours = P.LlamaForCausalLM.from_pretrained(llama_dir, dtype=dtype, quantization_config=P.TorchAoConfig(
            Int8WeightOnlyConfig(), **kwargs))
        kinds = {n: type(p.data).__name__ for n, p in ours.named_parameters()}
        assert kinds == {n: type(p.data).__name__ for n, p in ref.named_parameters()}
        assert kinds["lm_head.weight"] == ("Int8Tensor" if kwargs else "Tensor")
        torch.testing.assert_close(_out(ours, "llama"), _out(ref, "llama"), atol=1e-4, rtol=0)
    with pytest.raises(NotImplementedError, match="untie_embedding_weights"):
        P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.TorchAoConfig(
            Int8WeightOnlyConfig(), untie_embedding_weights=True))


def test_int4_that_cannot_run_here_is_refused_clearly(llama_dir):
    with pytest.raises(ValueError, match="On the CPU use Int8WeightOnlyConfig"):
        P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.TorchAoConfig(Int4WeightOnlyConfig()))


def test_config_errors_and_round_trip():
    with pytest.raises(ValueError, match="String-based quantization type"):
        P.TorchAoConfig("int8_weight_only")
    with pytest.raises(TypeError, match="AOBaseConfig"):
        P.TorchAoConfig(42)
    config = P.TorchAoConfig(Int8WeightOnlyConfig(), modules_to_not_convert=["lm_head"])
    data = config.to_dict()
    assert data == T.TorchAoConfig(Int8WeightOnlyConfig(), modules_to_not_convert=["lm_head"]).to_dict()
    again = P.TorchAoConfig.from_dict(json.loads(json.dumps(data)))
    assert again == config and type(again.quant_type) is Int8WeightOnlyConfig


def test_weight_only_decode_steps_run_on_the_int8_kernel(llama_dir, monkeypatch):
    """Eager generate() sends the few-row calls of torchao's int8 weight-only layers to our int8 kernel (the same
    product on the layer's own int8 values and scales): every decode step of every such layer goes there, and
    the tokens and scores are transformers' (its layers run torchao's own float path)."""
    from pretrained.inference import quant_kernels

    if quant_kernels.load_kernels() is None:
        pytest.skip("the C++ kernels do not build here")
    ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.TorchAoConfig(Int8WeightOnlyConfig()))
    ours = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.TorchAoConfig(Int8WeightOnlyConfig()))
    layers = [m for m in ours.modules() if type(m.__dict__.get("_parameters", {}).get("weight")).__name__ == "Int8Tensor"]
    assert layers
    calls = []
    op = quant_kernels.int8_op()
    monkeypatch.setattr(quant_kernels, "int8_op", lambda: lambda *args: calls.append(args[0].shape) or op(*args))
    ids = INPUTS["llama"]["input_ids"]
    options = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True)
    expected, got = ref.generate(ids, **options), ours.generate(ids, **options)
    assert torch.equal(got.sequences, expected.sequences)
    torch.testing.assert_close(torch.stack(got.scores), torch.stack(expected.scores), atol=1e-4, rtol=0)
    assert len(calls) == len(layers) * 5 and all(shape[0] == 2 for shape in calls)  # 5 steps after the prompt
    with torch.no_grad():  # outside generate() the layers are torchao's own
        ours(ids)
    assert len(calls) == len(layers) * 5

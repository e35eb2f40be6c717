"""bitsandbytes 8-bit, NF4 and FP4 against transformers: the same quantized tensors from the same weights,
the same logits, folders that load in either library, and the CPU repack quirk."""

import json

import bitsandbytes as bnb
import pytest
import torch
import transformers as T
from safetensors.torch import load_file

import pretrained as P

CONFIGS = {
    "int8": dict(load_in_8bit=True),
    "nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True),
    "fp4": dict(load_in_4bit=True),
}
MODELS = {"llama": "LlamaForCausalLM", "bert": "BertForSequenceClassification"}
INPUTS = {"llama": dict(input_ids=torch.tensor([[1, 5, 9, 77, 3], [4, 8, 15, 16, 23]])),
          "bert": dict(input_ids=torch.tensor([[2, 5, 9, 7, 3], [4, 8, 15, 16, 23]]),
                       attention_mask=torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]))}


def _load(lib, family, path, **kwargs):
    return getattr(lib, MODELS[family]).from_pretrained(path, **kwargs)


def _out(model, family):
    with torch.no_grad():
        return model(**INPUTS[family]).logits


@pytest.fixture
def folders(llama_dir, bert_dir):
    return {"llama": llama_dir, "bert": bert_dir}


@pytest.mark.parametrize("quant", sorted(CONFIGS))
@pytest.mark.parametrize("family", sorted(MODELS))
def test_parity_and_round_trips(folders, tmp_path, family, quant):
    ref = _load(T, family, folders[family], quantization_config=T.BitsAndBytesConfig(**CONFIGS[quant]))
    ours = _load(P, family, folders[family], quantization_config=P.BitsAndBytesConfig(**CONFIGS[quant]))
    layer = bnb.nn.Linear8bitLt if quant == "int8" else bnb.nn.Linear4bit
    assert {n for n, m in ours.named_modules() if isinstance(m, layer)} == \
        {n for n, m in ref.named_modules() if isinstance(m, layer)}
    assert ours.is_quantized and ours.quantization_method == "bitsandbytes" and ours.hf_quantizer is not None
    # identical quantized tensors (packed values, scales, quant-state blobs) from the same weights; saved
    # before any forward, since transformers' save after one is lossy (the CPU repack, see below)
    ref.save_pretrained(tmp_path / "ref")
    ours.save_pretrained(tmp_path / "ours")
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "ours" / "model.safetensors")
    assert sorted(a) == sorted(b)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    saved = json.loads((tmp_path / "ours" / "config.json").read_text())["quantization_config"]
    assert saved == ref.config.quantization_config.to_dict()
    expected = _out(ref, family)
    torch.testing.assert_close(_out(ours, family), expected, atol=1e-4, rtol=0)

    # we save -> transformers loads; transformers saves -> we load
    torch.testing.assert_close(_out(_load(T, family, tmp_path / "ours"), family), expected, atol=0, rtol=0)
    again = _load(P, family, tmp_path / "ref")
    assert again.is_quantized and isinstance(again.hf_quantizer, P.quantizers.HfQuantizer)
    torch.testing.assert_close(_out(again, family), expected, atol=0, rtol=0)


@pytest.mark.parametrize("quant", ["nf4", "fp4"])
def test_saving_after_a_forward_gives_the_bytes_of_a_save_before_it(llama_dir, tmp_path, quant):
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig(**CONFIGS[quant]))
    model.save_pretrained(tmp_path / "before")
    first = _out(model, "llama")
    # the CPU backend repacked the layers on that forward (when the CPU has the bf16 kernels)
    model.save_pretrained(tmp_path / "after")
    assert (tmp_path / "before" / "model.safetensors").read_bytes() == \
        (tmp_path / "after" / "model.safetensors").read_bytes()
    # transformers' own save after a forward is not (the quirk this guards against), where the CPU repacks
    ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.BitsAndBytesConfig(**CONFIGS[quant]))
    ref.save_pretrained(tmp_path / "ref_before")
    _out(ref, "llama")
    repacked = getattr(ref.model.layers[0].mlp.up_proj.weight.quant_state, "packing_format_for_cpu", False)
    ref.save_pretrained(tmp_path / "ref_after")
    lossy = (tmp_path / "ref_before" / "model.safetensors").read_bytes() != \
        (tmp_path / "ref_after" / "model.safetensors").read_bytes()
    assert lossy == repacked
    torch.testing.assert_close(_out(model, "llama"), first, atol=0, rtol=0)  # still runs as before
    reloaded = P.LlamaForCausalLM.from_pretrained(tmp_path / "after")
    torch.testing.assert_close(_out(reloaded, "llama"), first, atol=0, rtol=0)


def test_a_4bit_layer_of_any_output_size_runs(tmp_path):
    # transformers quantizes a 3-label classifier too, and bitsandbytes' CPU repack then fails on it
    torch.manual_seed(0)
    from quant_fixtures import BERT

    T.BertForSequenceClassification(T.BertConfig(**BERT, num_labels=3)).save_pretrained(tmp_path)
    model = P.BertForSequenceClassification.from_pretrained(tmp_path,
                                                            quantization_config=P.BitsAndBytesConfig(load_in_4bit=True))
    layer = model.classifier
    assert isinstance(layer, bnb.nn.Linear4bit)
    assert _out(model, "bert").shape == (2, 3)
    x = torch.randn(4, layer.in_features)
    weight = bnb.functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, weight, layer.bias), atol=1e-5, rtol=0)


def test_a_saved_dict_with_load_in_4bit_and_no_quant_method_is_bitsandbytes(llama_dir, tmp_path):
    ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.BitsAndBytesConfig(**CONFIGS["nf4"]))
    ref.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())
    del config["quantization_config"]["quant_method"]
    path.write_text(json.dumps(config))
    ours = P.LlamaForCausalLM.from_pretrained(tmp_path)
    assert isinstance(ours.model.layers[0].mlp.up_proj, bnb.nn.Linear4bit)
    assert isinstance(ours.config.quantization_config, P.BitsAndBytesConfig)
    torch.testing.assert_close(_out(ours, "llama"), _out(ref, "llama"), atol=1e-4, rtol=0)
    # and as an argument
    quantized = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config={"load_in_8bit": True})
    assert isinstance(quantized.model.layers[0].mlp.up_proj, bnb.nn.Linear8bitLt)


def test_a_quantized_head_checkpoint_loads_into_the_base_model(llama_dir, tmp_path):
    for quant in ("int8", "nf4"):
        ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.BitsAndBytesConfig(**CONFIGS[quant]))
        ref.save_pretrained(tmp_path / quant)
        ours, info = P.LlamaModel.from_pretrained(tmp_path / quant, output_loading_info=True)
        assert info["missing_keys"] == [] and info["unexpected_keys"] == ["lm_head.weight"]
        theirs = T.LlamaModel.from_pretrained(tmp_path / quant)
        with torch.no_grad():
            torch.testing.assert_close(ours(**INPUTS["llama"]).last_hidden_state,
                                       theirs(**INPUTS["llama"]).last_hidden_state, atol=0, rtol=0)


@pytest.mark.parametrize("quant", ["int8", "nf4"])
def test_bf16_loads_match_transformers(llama_dir, quant):
    kwargs = {**CONFIGS[quant], **({"bnb_4bit_compute_dtype": "bfloat16"} if quant == "nf4" else {})}
    ref = T.LlamaForCausalLM.from_pretrained(llama_dir, dtype=torch.bfloat16,
                                             quantization_config=T.BitsAndBytesConfig(**kwargs))
    ours = P.LlamaForCausalLM.from_pretrained(llama_dir, dtype=torch.bfloat16,
                                              quantization_config=P.BitsAndBytesConfig(**kwargs))
    assert ours.model.norm.weight.dtype == torch.bfloat16 and ours.config.dtype == "bfloat16"
    a, b = ref.state_dict(), ours.state_dict()
    assert sorted(a) == sorted(b) and [k for k in a if not torch.equal(a[k], b[k])] == []
    torch.testing.assert_close(_out(ours, "llama"), _out(ref, "llama"), atol=0, rtol=0)


def test_skip_modules_fp32_modules_and_the_output_head(llama_dir):
    config = P.BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["mlp.down_proj", "lm_head"])
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config)
    assert type(model.model.layers[0].mlp.down_proj) is torch.nn.Linear
    assert isinstance(model.model.layers[0].mlp.up_proj, bnb.nn.Linear8bitLt)
    assert type(model.lm_head) is torch.nn.Linear  # kept by default, and here by name
    ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.BitsAndBytesConfig(
        load_in_8bit=True, llm_int8_skip_modules=["mlp.down_proj", "lm_head"]))
    torch.testing.assert_close(_out(model, "llama"), _out(ref, "llama"), atol=1e-4, rtol=0)


def test_modules_kept_in_fp32_stay_float(llama_dir, monkeypatch):
    # (transformers keeps `_keep_in_fp32_modules` in fp32 for float16 loads; bfloat16 needs the strict list)
    monkeypatch.setattr(P.LlamaForCausalLM, "_keep_in_fp32_modules", ["down_proj"])
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, dtype=torch.float16,
                                               quantization_config=P.BitsAndBytesConfig(load_in_8bit=True))
    down = model.model.layers[0].mlp.down_proj
    assert type(down) is torch.nn.Linear and down.weight.dtype == torch.float32
    assert isinstance(model.model.layers[0].mlp.up_proj, bnb.nn.Linear8bitLt)
    assert "down_proj" in model.hf_quantizer.modules_to_not_convert


def test_tied_output_head_stays_tied_and_unquantized(tmp_path):
    torch.manual_seed(0)
    from quant_fixtures import LLAMA

    T.LlamaForCausalLM(T.LlamaConfig(**{**LLAMA, "tie_word_embeddings": True})).save_pretrained(tmp_path)
    model = P.LlamaForCausalLM.from_pretrained(tmp_path, quantization_config=P.BitsAndBytesConfig(load_in_4bit=True))
    assert type(model.lm_head) is torch.nn.Linear and model.lm_head.weight is model.model.embed_tokens.weight
    ref = T.LlamaForCausalLM.from_pretrained(tmp_path, quantization_config=T.BitsAndBytesConfig(load_in_4bit=True))
    torch.testing.assert_close(_out(model, "llama"), _out(ref, "llama"), atol=1e-4, rtol=0)


def test_memory_footprint_counts_real_bytes(llama_dir):
    fp32 = P.LlamaForCausalLM.from_pretrained(llama_dir)
    int8 = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig(load_in_8bit=True))
    nf4 = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig(**CONFIGS["nf4"]))
    linear = sum(m.weight.numel() for m in fp32.model.layers.modules() if isinstance(m, torch.nn.Linear))
    rest = fp32.get_memory_footprint() - 4 * linear
    rows = sum(m.out_features for m in int8.model.layers.modules() if isinstance(m, bnb.nn.Linear8bitLt))
    assert int8.get_memory_footprint() == rest + linear + 4 * rows  # int8 values + one fp32 scale per row
    blocks = linear // 64
    # 4-bit values, one uint8 absmax per block of 64, the nested fp32 scales and the code tables
    nested = sum(-(-(m.weight.numel() // 64) // 256) for m in nf4.model.layers.modules()
                 if isinstance(m, bnb.nn.Linear4bit))
    layers = sum(isinstance(m, bnb.nn.Linear4bit) for m in nf4.model.layers.modules())
    assert nf4.get_memory_footprint() == rest + linear // 2 + blocks + 4 * nested + layers * (16 + 256) * 4


def test_dequantize_gives_float_layers_with_the_quantized_values(llama_dir):
    for quant in ("int8", "nf4"):
        model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig(**CONFIGS[quant]))
        ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.BitsAndBytesConfig(**CONFIGS[quant]))
        model.dequantize()
        ref.dequantize()
        assert not model.is_quantized and model.hf_quantizer is None
        assert "quantization_config" not in model.config.to_dict()
        up = model.model.layers[0].mlp.up_proj
        assert type(up) is torch.nn.Linear and up.weight.dtype == torch.float32
        torch.testing.assert_close(up.weight, ref.model.layers[0].mlp.up_proj.weight.float(), atol=0, rtol=0)
    with pytest.raises(ValueError, match="first quantize"):
        P.LlamaForCausalLM.from_pretrained(llama_dir).dequantize()


def test_generate_on_a_quantized_model(llama_dir):
    config = P.BitsAndBytesConfig(**CONFIGS["nf4"])
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config)
    ref = T.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=T.BitsAndBytesConfig(**CONFIGS["nf4"]))
    prompt = torch.tensor([[1, 5, 9, 77]])
    ours = model.generate(prompt, max_new_tokens=6, do_sample=False)
    assert torch.equal(ours, ref.generate(prompt, max_new_tokens=6, do_sample=False))
    with pytest.warns(UserWarning, match="cannot be compiled: decoding eagerly"):
        static = model.generate(prompt, max_new_tokens=6, do_sample=False, cache_implementation="static",
                                compile_config={"fullgraph": True})
    assert torch.equal(static, ours)


def test_errors(llama_dir, monkeypatch):
    with pytest.raises(ValueError, match="load_in_4bit and load_in_8bit are both True"):
        P.BitsAndBytesConfig(load_in_4bit=True, load_in_8bit=True)
    config = P.BitsAndBytesConfig(load_in_8bit=True)
    with pytest.raises(ValueError, match="load_in_4bit and load_in_8bit are both True"):
        config.load_in_4bit = True
    with pytest.raises(ValueError, match="bnb_4bit_quant_type must be 'fp4' or 'nf4'"):
        P.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="int4")
    with pytest.raises(ValueError, match="neither load_in_8bit nor load_in_4bit"):
        P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig())
    with pytest.raises(ValueError, match="llm_int8_enable_fp32_cpu_offload=True"):
        P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config,
                                           device_map={"model": "cuda:0", "lm_head": "cpu"})
    with pytest.raises(ValueError, match="not supported by pretrained"):
        P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config={"quant_method": "hqq-nope"})
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config)
    with pytest.raises(ValueError, match="cannot cast a bitsandbytes model"):
        model.to(torch.bfloat16)
    with pytest.raises(ValueError, match="half"):
        model.half()
    assert model.to("cpu") is model
    monkeypatch.setitem(__import__("sys").modules, "bitsandbytes", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install bitsandbytes"):
        P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config)

"""GPTQ and AWQ checkpoints through ``from_pretrained``: folders written by our packers (from transformers'
tiny Llama, its linears quantized by round-to-nearest) with transformers' own GPTQConfig / AwqConfig dicts
in config.json load with no arguments; the layers dequantize to the packer's weights exactly, and logits
and greedy tokens match an fp32 transformers model built from those weights."""

import json

import pytest
import torch
import transformers as T
from safetensors import safe_open
from safetensors.torch import save_file

import pretrained as P
from pretrained.quantizers import int4_formats as formats
from pretrained.quantizers.int4_linear import AWQLinear, GPTQLinear

LLAMA = dict(vocab_size=128, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False)
IDS = torch.tensor([[1, 5, 9, 77, 3, 100], [4, 8, 15, 16, 23, 42]])
VARIANTS = {  # name -> (method, sym, desc_act)
    "gptq-sym": ("gptq", True, False),
    "gptq-asym": ("gptq", False, False),
    "gptq-sym-desc_act": ("gptq", True, True),
    "gptq-asym-desc_act": ("gptq", False, True),
    "awq-gemm": ("awq", False, False),
}


def _quant_config(method, sym, desc_act, **extra):
    if method == "gptq":
        # set after construction: transformers checks optimum's version for modules_in_block_to_quantize
        return {**T.GPTQConfig(bits=4, group_size=128, desc_act=desc_act, sym=sym).to_dict(), **extra}
    return T.AwqConfig(bits=4, group_size=128, zero_point=True, **extra).to_dict()


def _build(folder, method, sym, desc_act, quant_extra=None, packed=lambda name: name != "lm_head",
           format="gptq", shards=1):
    """Write the quantized checkpoint to ``folder`` (the linears ``packed`` picks quantized, the rest float);
    returns the dequantized weights and an fp32 transformers model holding them."""
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(T.LlamaConfig(**LLAMA))
    model.save_pretrained(folder)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    dequantized = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or not packed(name):
            continue
        weight = state.pop(f"{name}.weight")
        perm = torch.randperm(weight.shape[1]) if desc_act else None
        intweight, zeros, scales, g_idx = formats.quantize_rtn(weight, 4, 128, sym, perm)
        if method == "gptq":
            tensors = formats.pack_gptq(intweight, zeros, scales, g_idx, 4, format)
            dequantized[name] = formats.unpack_gptq(tensors["qweight"], tensors["qzeros"], tensors["scales"],
                                                    tensors["g_idx"], 4, format=format)
        else:
            tensors = formats.pack_awq(intweight, zeros, scales, 4)
            dequantized[name] = formats.unpack_awq(tensors["qweight"], tensors["qzeros"], tensors["scales"], 4, 128)
        state.update({f"{name}.{k}": v.contiguous() for k, v in tensors.items()})
        module.weight.data = dequantized[name].clone()
    if shards == 1:
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})
    else:  # split by layer, with the index transformers writes
        (folder / "model.safetensors").unlink()
        names = sorted(state)
        weight_map = {k: f"model-{i % shards + 1:05d}-of-{shards:05d}.safetensors" for i, k in enumerate(names)}
        for file in sorted(set(weight_map.values())):
            save_file({k: state[k] for k in names if weight_map[k] == file}, folder / file, metadata={"format": "pt"})
        index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in state.values())},
                 "weight_map": weight_map}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    config = json.loads((folder / "config.json").read_text())
    extra = dict(quant_extra or {}, **({"checkpoint_format": format} if format != "gptq" else {}))
    config["quantization_config"] = _quant_config(method, sym, desc_act, **extra)
    (folder / "config.json").write_text(json.dumps(config))
    return dequantized, model.eval()


def _tensors(path):
    out = {}
    for file in sorted(path.glob("*.safetensors")):
        with safe_open(file, framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_checkpoint_loads_runs_and_round_trips(tmp_path, variant):
    method, sym, desc_act = VARIANTS[variant]
    dequantized, reference = _build(tmp_path / "q", method, sym, desc_act)
    model = P.AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    layer = GPTQLinear if method == "gptq" else AWQLinear
    assert model.is_quantized and model.quantization_method == method
    assert type(model.lm_head) is torch.nn.Linear  # the output head stays float
    layers = {n: m for n, m in model.named_modules() if isinstance(m, layer)}
    assert sorted(layers) == sorted(dequantized)
    for name, module in layers.items():
        assert torch.equal(module.dequantized_weight(), dequantized[name]), name
        assert module.scales.dtype == torch.float16  # stored dtype kept through the fp32 load
        if method == "gptq":
            assert module.desc_act == desc_act and module.sym == sym

    with torch.no_grad():
        logits, expected = model(IDS).logits, reference(IDS).logits
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    kwargs = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(IDS, **kwargs), reference.generate(IDS, **kwargs))

    # save -> reload: the same tensors and config, the same logits
    model.save_pretrained(tmp_path / "saved")
    stored, saved = _tensors(tmp_path / "q"), _tensors(tmp_path / "saved")
    assert sorted(saved) == sorted(stored)
    for key, tensor in stored.items():
        assert saved[key].dtype == tensor.dtype and torch.equal(saved[key], tensor), key
    written = json.loads((tmp_path / "saved" / "config.json").read_text())["quantization_config"]
    original = json.loads((tmp_path / "q" / "config.json").read_text())["quantization_config"]
    assert {k: written.get(k) for k in ("quant_method", "bits", "group_size")} == \
        {k: original[k] for k in ("quant_method", "bits", "group_size")}
    if method == "gptq":
        assert (written["desc_act"], written["sym"], written["checkpoint_format"]) == (desc_act, sym, "gptq")
        T.GPTQConfig.from_dict(written)  # transformers reads our config back
    else:
        assert written["zero_point"] and written["version"] == "gemm"
        T.AwqConfig.from_dict(written)
    again = P.AutoModelForCausalLM.from_pretrained(tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(again(IDS).logits, logits)

    # real bytes: packed words, zeros, 16-bit scales (under a third of the fp32 linears), plus the float rest
    linear_fp32 = sum(w.numel() * 4 for w in dequantized.values())
    rest = sum(p.numel() * p.element_size() for n, p in model.named_parameters())
    footprint = model.get_memory_footprint()
    packed_bytes = sum(b.numel() * b.element_size() for m in layers.values() for b in m.buffers())
    assert footprint >= rest + packed_bytes
    assert packed_bytes < linear_fp32 / 5
    assert footprint < rest + linear_fp32 / 2

    # dequantize: plain nn.Linear layers holding the packer's weights, same logits
    model.dequantize(dtype=torch.float32)
    assert not model.is_quantized and not any(isinstance(m, layer) for m in model.modules())
    for name, weight in dequantized.items():
        assert type(model.get_submodule(name)) is torch.nn.Linear
        assert torch.equal(model.get_submodule(name).weight, weight)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, expected, atol=1e-4, rtol=1e-4)


def test_quantizer_flags_and_exports(tmp_path):
    _build(tmp_path / "q", "gptq", True, False)
    model = P.AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    quantizer = model.hf_quantizer
    assert quantizer.is_serializable() and not quantizer.is_trainable and quantizer.requires_calibration
    # the Trainer's check: even with adapters on top, the packed layers have no backward
    from pretrained.quantizers.base import validate_quantization_for_training

    model._hf_peft_config_loaded = True
    with pytest.raises(ValueError, match="quantized with gptq, which does not support training"):
        validate_quantization_for_training(model)
    from pretrained.quantizers.auto import AUTO_QUANTIZER_MAPPING
    from pretrained.quantizers.awq import AwqQuantizer
    from pretrained.quantizers.gptq import GptqHfQuantizer

    assert AUTO_QUANTIZER_MAPPING["gptq"] is GptqHfQuantizer and AUTO_QUANTIZER_MAPPING["awq"] is AwqQuantizer
    assert type(quantizer) is GptqHfQuantizer
    # transformers' module paths (the compat table)
    from pretrained.quantizers.quantizer_awq import AwqQuantizer as compat_awq
    from pretrained.quantizers.quantizer_gptq import GptqHfQuantizer as compat_gptq

    assert (compat_gptq, compat_awq) == (GptqHfQuantizer, AwqQuantizer)


def test_errors(tmp_path):
    folder = tmp_path / "float"
    torch.manual_seed(0)
    T.LlamaForCausalLM(T.LlamaConfig(**LLAMA)).save_pretrained(folder)
    # no calibration backend: quantizing a float model is refused, naming the package that can
    with pytest.raises(ValueError, match="gptqmodel"):
        P.AutoModelForCausalLM.from_pretrained(folder, quantization_config=P.GPTQConfig(bits=4))
    with pytest.raises(ValueError, match="autoawq"):
        P.AutoModelForCausalLM.from_pretrained(folder, quantization_config=P.AwqConfig(bits=4))
    # AWQ layouts other than gemm
    _build(tmp_path / "gemv", "awq", False, False, {"version": "gemv"})
    with pytest.raises(ValueError, match="gemv"):
        P.AutoModelForCausalLM.from_pretrained(tmp_path / "gemv")
    with pytest.raises(ValueError, match="exllama"):
        P.AwqConfig(bits=4, version="exllama")
    # 3-bit GPTQ: no reader
    _build(tmp_path / "three", "gptq", True, False)
    config = json.loads((tmp_path / "three" / "config.json").read_text())
    config["quantization_config"]["bits"] = 3
    (tmp_path / "three" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="bits=3"):
        P.AutoModelForCausalLM.from_pretrained(tmp_path / "three")


def _check_loads(folder, dequantized, reference, layer):
    """Load ``folder``: exactly the packed linears become ``layer``, with the packer's weights; logits match."""
    model = P.AutoModelForCausalLM.from_pretrained(folder)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, layer)}
    assert sorted(layers) == sorted(dequantized)
    for name, module in layers.items():
        assert torch.equal(module.dequantized_weight(), dequantized[name]), name
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, reference(IDS).logits, atol=1e-4, rtol=1e-4)
    return model


@pytest.mark.parametrize("case", ["gptq_v2", "gptq-lm_head", "gptq-attention-only", "awq-skip-mlp", "awq-sharded"])
def test_formats_and_which_layers_are_packed(tmp_path, case):
    """The checkpoint decides which linears are packed: the output head quantized (gptqmodel's lm_head=True),
    only some modules per block (modules_in_block_to_quantize), AWQ's modules_to_not_convert."""
    shards = 3 if case.endswith("sharded") else 1
    method, extra, packed, fmt = {
        "gptq_v2": ("gptq", {}, lambda n: n != "lm_head", "gptq_v2"),
        "gptq-lm_head": ("gptq", {}, lambda n: True, "gptq"),
        "gptq-attention-only": ("gptq", {"modules_in_block_to_quantize": [["self_attn.q_proj", "self_attn.k_proj",
                                                                          "self_attn.v_proj", "self_attn.o_proj"]]},
                                lambda n: "self_attn" in n, "gptq"),
        "awq-sharded": ("awq", {}, lambda n: n != "lm_head", "gptq"),
        "awq-skip-mlp": ("awq", {"modules_to_not_convert": ["gate_proj", "up_proj", "down_proj"]},
                         lambda n: "self_attn" in n, "gptq"),
    }[case]
    dequantized, reference = _build(tmp_path / "q", method, False, False, extra, packed, fmt, shards)
    layer = GPTQLinear if method == "gptq" else AWQLinear
    model = _check_loads(tmp_path / "q", dequantized, reference, layer)
    if fmt == "gptq_v2":
        assert all(m.format == "gptq_v2" for m in model.modules() if isinstance(m, GPTQLinear))
    model.save_pretrained(tmp_path / "saved")
    stored, saved = _tensors(tmp_path / "q"), _tensors(tmp_path / "saved")
    assert sorted(saved) == sorted(stored) and all(torch.equal(saved[k], v) for k, v in stored.items())


@pytest.mark.parametrize("desc_act", [False, True])
def test_checkpoint_without_g_idx(tmp_path, desc_act):
    """Some exporters leave g_idx out when there is no act-order: contiguous groups are meant. With
    desc_act=True its absence loses the feature order, which is refused."""
    dequantized, reference = _build(tmp_path / "q", "gptq", True, False)
    state = _tensors(tmp_path / "q")
    save_file({k: v for k, v in state.items() if not k.endswith(".g_idx")}, tmp_path / "q" / "model.safetensors",
              metadata={"format": "pt"})
    if desc_act:
        config = json.loads((tmp_path / "q" / "config.json").read_text())
        config["quantization_config"]["desc_act"] = True
        (tmp_path / "q" / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=r"no model\.layers\.0\.self_attn\.q_proj\.g_idx.*desc_act=True"):
            P.AutoModelForCausalLM.from_pretrained(tmp_path / "q")
    else:
        _check_loads(tmp_path / "q", dequantized, reference, GPTQLinear)


def test_skip_rules_without_the_checkpoint_keys():
    """With no safetensors headers to read (a state_dict, .bin files) the config's rules pick the layers:
    GPTQ converts the blocks' linears (modules_in_block_to_quantize when given), AWQ all but the skip list
    and the output head."""
    from pretrained.quantizers.awq import AwqQuantizer
    from pretrained.quantizers.gptq import GptqHfQuantizer

    def packed(quantizer):
        with torch.device("meta"):
            model = P.LlamaForCausalLM(P.LlamaConfig(**LLAMA))
        quantizer.preprocess_model(model)
        return sorted({n.split(".")[-1] if "layers" in n else n for n, m in model.named_modules()
                       if isinstance(m, (GPTQLinear, AWQLinear))})

    attn = ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert packed(GptqHfQuantizer(P.GPTQConfig(bits=4))) == sorted(attn + ["down_proj", "gate_proj", "up_proj"])
    assert packed(GptqHfQuantizer(P.GPTQConfig(bits=4, modules_in_block_to_quantize=[
        ["self_attn.q_proj", "self_attn.k_proj"], ["self_attn.v_proj", "self_attn.o_proj"]]))) == attn
    # transformers' pattern rules: a prefix up to a module boundary, a regex, or a suffix
    assert packed(AwqQuantizer(P.AwqConfig(bits=4, modules_to_not_convert=["gate_proj", "up_proj"]))) == \
        sorted(attn + ["down_proj"])
    assert packed(AwqQuantizer(P.AwqConfig(bits=4, modules_to_not_convert=[r"model.layers.\d+.mlp"]))) == attn


@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_half_precision_load(tmp_path, method):
    """dtype=bfloat16: the float parts and activations in bf16, the stored fp16 scales kept; logits as
    close to the fp32 model as transformers' own bf16 copy of it is."""
    _, reference = _build(tmp_path / "q", method, False, method == "gptq")
    model = P.AutoModelForCausalLM.from_pretrained(tmp_path / "q", dtype=torch.bfloat16)
    layer = model.model.layers[0].mlp.down_proj
    assert model.model.embed_tokens.weight.dtype == torch.bfloat16 and layer.scales.dtype == torch.float16
    with torch.no_grad():
        logits, expected = model(IDS).logits, reference(IDS).logits
        bf16_error = (reference.to(torch.bfloat16)(IDS).logits.float() - expected).abs().max()
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - expected).abs().max() <= 3 * bf16_error


@pytest.mark.parametrize("tool", ["autogptq", "gptqmodel", "autoawq"])
def test_configs_as_the_quantizing_tools_write_them(tmp_path, tool):
    """config.json as AutoGPTQ, gptqmodel and AutoAWQ write it (their extra keys: static_groups, meta,
    pack_dtype, lm_head, dynamic, ...) loads, and saves a config transformers reads."""
    saved = {
        "autogptq": {"bits": 4, "group_size": 128, "damp_percent": 0.01, "desc_act": False, "static_groups": False,
                     "sym": True, "true_sequential": True, "model_name_or_path": None,
                     "model_file_base_name": "model", "quant_method": "gptq"},
        "gptqmodel": {"bits": 4, "dynamic": None, "group_size": 128, "desc_act": True, "sym": True, "lm_head": False,
                      "quant_method": "gptq", "checkpoint_format": "gptq", "pack_dtype": "int32",
                      "meta": {"quantizer": ["gptqmodel:2.0.0"], "damp_percent": 0.01, "static_groups": False}},
        "autoawq": {"quant_method": "awq", "zero_point": True, "group_size": 128, "bits": 4, "version": "gemm",
                    "modules_to_not_convert": None},
    }[tool]
    method = saved["quant_method"]
    dequantized, reference = _build(tmp_path / "q", method, saved.get("sym", False), saved.get("desc_act", False))
    config = json.loads((tmp_path / "q" / "config.json").read_text())
    config["quantization_config"] = saved
    (tmp_path / "q" / "config.json").write_text(json.dumps(config))
    model = _check_loads(tmp_path / "q", dequantized, reference, GPTQLinear if method == "gptq" else AWQLinear)
    model.save_pretrained(tmp_path / "saved")
    written = json.loads((tmp_path / "saved" / "config.json").read_text())["quantization_config"]
    (T.GPTQConfig if method == "gptq" else T.AwqConfig).from_dict(written)
    assert {k: written[k] for k in ("quant_method", "bits", "group_size")} == \
        {k: saved[k] for k in ("quant_method", "bits", "group_size")}

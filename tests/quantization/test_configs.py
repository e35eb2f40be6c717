"""Quantization configs and the quantizer tables: transformers' fields, defaults, dict and JSON forms,
validation, and the choice of quantizer."""

import json
import subprocess
import sys

import pytest
import torch
import transformers as T

import pretrained as P
from pretrained.quantizers import AutoHfQuantizer, AutoQuantizationConfig, get_hf_quantizer
from pretrained.quantizers.bitsandbytes import Bnb4BitHfQuantizer, Bnb8BitHfQuantizer

BNB = [dict(), dict(load_in_8bit=True, llm_int8_threshold=4.0, llm_int8_skip_modules=["out"]),
       dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype="bfloat16", bnb_4bit_quant_storage="float16"),
       dict(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)]


@pytest.mark.parametrize("kwargs", BNB)
def test_bitsandbytes_config_matches_transformers(kwargs):
    ours, theirs = P.BitsAndBytesConfig(**kwargs), T.BitsAndBytesConfig(**kwargs)
    assert ours.to_dict() == theirs.to_dict()
    assert ours.to_diff_dict() == theirs.to_diff_dict()
    assert ours.to_json_string() == theirs.to_json_string()
    assert ours.to_json_string(use_diff=False) == theirs.to_json_string(use_diff=False)
    assert ours.quantization_method() == theirs.quantization_method()
    assert ours.is_quantizable() == theirs.is_quantizable()
    # the saved form (with its private duplicates and quant_method) reads back in both libraries
    saved = json.loads(json.dumps(theirs.to_dict()))
    assert P.BitsAndBytesConfig.from_dict(saved).to_dict() == theirs.to_dict()
    assert T.BitsAndBytesConfig.from_dict(json.loads(json.dumps(ours.to_dict()))).to_dict() == ours.to_dict()


def test_bitsandbytes_validation():
    with pytest.raises(ValueError, match="both True"):
        P.BitsAndBytesConfig(load_in_8bit=True, load_in_4bit=True)
    with pytest.raises(TypeError, match="llm_int8_threshold must be a float"):
        P.BitsAndBytesConfig(llm_int8_threshold=6)
    with pytest.raises(TypeError, match="llm_int8_skip_modules must be a list"):
        P.BitsAndBytesConfig(llm_int8_skip_modules="lm_head")
    with pytest.raises(ValueError, match="bnb_4bit_quant_storage must be one of"):
        P.BitsAndBytesConfig(bnb_4bit_quant_storage="int4")
    with pytest.raises(ValueError, match="not a torch dtype"):
        P.BitsAndBytesConfig(bnb_4bit_compute_dtype="float99")
    with pytest.raises(TypeError, match="load_in_8bit must be a boolean"):
        P.BitsAndBytesConfig().load_in_8bit = 1
    config = P.BitsAndBytesConfig(load_in_4bit=True)
    assert config.update(llm_int8_threshold=5.0, unknown=1) == {"unknown": 1}
    assert config.llm_int8_threshold == 5.0


@pytest.mark.parametrize("kwargs", [dict(bits=4), dict(bits=4, group_size=64, desc_act=True, sym=False),
                                    dict(bits=8, group_size=-1, backend="AUTO", checkpoint_format="gptq_v2")])
def test_gptq_config_matches_transformers(kwargs):
    ours, theirs = P.GPTQConfig(**kwargs), T.GPTQConfig(**kwargs)
    assert ours.to_dict() == theirs.to_dict()
    assert ours.to_json_string() == theirs.to_json_string()
    assert ours.get_loading_attributes() == theirs.get_loading_attributes()
    assert P.GPTQConfig.from_dict(theirs.to_dict()).to_dict() == theirs.to_dict()


@pytest.mark.parametrize("kwargs", [dict(), dict(bits=4, group_size=64, zero_point=False, version="GEMV"),
                                    dict(backend="autoawq", modules_to_not_convert=["gate"])])
def test_awq_config_matches_transformers(kwargs):
    ours, theirs = P.AwqConfig(**kwargs), T.AwqConfig(**kwargs)
    assert json.loads(ours.to_json_string()) == json.loads(theirs.to_json_string())
    saved = json.loads(theirs.to_json_string())
    assert json.loads(P.AwqConfig.from_dict(saved).to_json_string()) == saved


def test_gptq_and_awq_validation():
    with pytest.raises(ValueError, match=r"\[2,3,4,8\] bits"):
        P.GPTQConfig(bits=5)
    with pytest.raises(ValueError, match="group_size must be greater than 0"):
        P.GPTQConfig(bits=4, group_size=0)
    with pytest.raises(ValueError, match="damp_percent"):
        P.GPTQConfig(bits=4, damp_percent=1.5)
    with pytest.raises(ValueError, match="dataset"):
        P.GPTQConfig(bits=4, dataset="pile")
    assert P.GPTQConfig(bits=4, desc_act=True).act_group_aware is False
    with pytest.raises(ValueError, match="Invalid format"):
        P.AwqConfig(version="exl3")
    with pytest.raises(ValueError, match="Invalid backend"):
        P.AwqConfig(backend="cuda-magic")


def test_auto_tables_pick_config_and_quantizer():
    assert isinstance(AutoQuantizationConfig.from_dict({"load_in_4bit": True}), P.BitsAndBytesConfig)
    assert isinstance(AutoQuantizationConfig.from_dict({"quant_method": "gptq", "bits": 4}), P.GPTQConfig)
    assert isinstance(AutoHfQuantizer.from_config({"load_in_8bit": True}), Bnb8BitHfQuantizer)
    assert isinstance(AutoHfQuantizer.from_config(P.BitsAndBytesConfig(load_in_4bit=True)), Bnb4BitHfQuantizer)
    with pytest.raises(ValueError, match="no quant_method"):
        AutoQuantizationConfig.from_dict({"bits": 4})
    with pytest.raises(ValueError, match="Unknown quantization type, got hqq"):
        AutoQuantizationConfig.from_dict({"quant_method": "hqq"})
    assert type(AutoHfQuantizer.from_config(P.GPTQConfig(bits=4))).__name__ == "GptqHfQuantizer"
    assert type(AutoHfQuantizer.from_config({"quant_method": "awq", "bits": 4})).__name__ == "AwqQuantizer"


def test_get_hf_quantizer_prefers_the_saved_config():
    config = P.LlamaConfig(quantization_config={"load_in_8bit": True, "quant_method": "bitsandbytes"})
    with pytest.warns(UserWarning, match="from the model will be used"):
        quantizer, config, device_map = get_hf_quantizer(config, P.BitsAndBytesConfig(load_in_8bit=True,
                                                                                      llm_int8_threshold=1.0),
                                                         device_map=None, weights_only=True, user_agent={})
    assert quantizer.pre_quantized and config.quantization_config.llm_int8_threshold == 6.0
    assert device_map == ({"": torch.cuda.current_device()} if torch.cuda.is_available() else {"": "cpu"})
    with pytest.raises(ValueError, match="quantized with BitsAndBytesConfig but you are passing a GPTQConfig"):
        get_hf_quantizer(P.LlamaConfig(quantization_config={"load_in_8bit": True}), P.GPTQConfig(bits=4))
    fresh, _, _ = get_hf_quantizer(P.LlamaConfig(), {"load_in_4bit": True})
    assert isinstance(fresh, Bnb4BitHfQuantizer) and not fresh.pre_quantized
    assert get_hf_quantizer(P.LlamaConfig(), None)[0] is None


def test_configs_import_without_torch_and_resolve_through_transformers_paths():
    code = ("import sys, pretrained; from pretrained.utils.quantization_config import QuantizationMethod, "
            "GPTQConfig; assert 'torch' not in sys.modules, 'torch imported'; "
            "assert pretrained.GPTQConfig is GPTQConfig; print(GPTQConfig(bits=4).quant_method)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "gptq"
    from pretrained.quantizers.auto import AUTO_QUANTIZER_MAPPING
    from pretrained.utils import quantization_config

    assert quantization_config.BitsAndBytesConfig is P.BitsAndBytesConfig
    assert {"bitsandbytes_4bit", "bitsandbytes_8bit", "torchao"} <= set(AUTO_QUANTIZER_MAPPING)

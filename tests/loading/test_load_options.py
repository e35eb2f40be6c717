"""LoadOptions: every loading option declared once, shared by from_pretrained, the Auto classes and configs."""

import dataclasses
import inspect
import warnings

import pytest
import torch

import pretrained as P
from pretrained.loading.options import LoadOptions

# from_pretrained's public keyword arguments and defaults (as transformers names them): must not change.
SIGNATURE = {"config": None, "cache_dir": None, "ignore_mismatched_sizes": False, "force_download": False,
             "local_files_only": False, "token": None, "revision": None, "use_safetensors": None,
             "weights_only": True, "dtype": "auto", "device_map": None, "max_memory": None,
             "output_loading_info": False, "variant": None, "subfolder": "", "state_dict": None,
             "quantization_config": None, "tp_plan": None, "device_mesh": None}
# Accepted because transformers accepts them; they change nothing.
IGNORED = {"low_cpu_mem_usage": True, "offload_folder": "offload", "offload_state_dict": True,
           "offload_buffers": True, "key_mapping": {}, "proxies": {}, "resume_download": True,
           "_from_auto": True, "_from_pipeline": "text-classification", "_commit_hash": "0" * 40,
           "from_tf": False, "from_flax": False}


def test_signature_unchanged_and_declared_by_the_dataclass():
    params = inspect.signature(P.PreTrainedModel.from_pretrained).parameters
    named = {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert named == SIGNATURE
    assert list(params)[:2] == ["pretrained_model_name_or_path", "model_args"] and list(params)[-1] == "kwargs"
    defaults = {f.name: f.default for f in dataclasses.fields(LoadOptions)}
    assert {n: defaults[n] for n in named} == SIGNATURE
    assert set(IGNORED) | {"attn_implementation", "trust_remote_code"} <= set(defaults)


def test_ignored_options_are_accepted_silently(saved):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = P.BertForMaskedLM.from_pretrained(saved, **IGNORED)
        auto = P.AutoModelForMaskedLM.from_pretrained(saved, **IGNORED)
        config = P.AutoConfig.from_pretrained(saved, **IGNORED)
    torch.testing.assert_close(model.cls.predictions.bias, auto.cls.predictions.bias)
    assert config.hidden_size == 32


def test_options_that_warn_or_are_refused(saved):
    with pytest.warns(UserWarning, match="force_download is ignored"):
        P.BertModel.from_pretrained(saved, force_download=True)
    with pytest.warns(UserWarning, match="trust_remote_code is ignored"):
        P.AutoModel.from_pretrained(saved, trust_remote_code=True)
    for flag in ("from_tf", "from_flax"):
        with pytest.raises(ValueError, match=f"{flag}=True is not supported.*PyTorch weights"):
            P.BertModel.from_pretrained(saved, **{flag: True})
        with pytest.raises(ValueError, match=flag):
            P.AutoModel.from_pretrained(saved, **{flag: True})


def test_auto_classes_split_options_from_config_overrides(saved):
    model, info = P.AutoModelForSequenceClassification.from_pretrained(
        saved, num_labels=5, torch_dtype="float16", output_loading_info=True, low_cpu_mem_usage=True)
    assert model.config.num_labels == 5 and model.classifier.out_features == 5
    assert model.dtype == torch.float16 and "classifier.weight" in info["missing_keys"]
    with pytest.raises(TypeError, match="not_an_option"):
        P.AutoModel.from_pretrained(saved, not_an_option=1)
    config = P.AutoConfig.from_pretrained(saved)
    with pytest.raises(TypeError, match="not_an_option"):
        P.AutoModel.from_pretrained(saved, config=config, not_an_option=1)
    # a config object given to an Auto class is copied, then overridden
    model = P.AutoModel.from_pretrained(saved, config=config, hidden_dropout_prob=0.3)
    assert model.config.hidden_dropout_prob == 0.3 and config.hidden_dropout_prob != 0.3


def test_config_loading_drops_options_that_locate_files(saved):
    config, unused = P.BertConfig.from_pretrained(
        saved, return_unused_kwargs=True, cache_dir=None, revision=None, force_download=True,
        trust_remote_code=True, _from_auto=True, _commit_hash="0" * 40, device_map="cpu", hidden_size=32)
    assert unused == {"device_map": "cpu"} and config.hidden_size == 32


def test_split_and_from_kwargs():
    options, rest = LoadOptions.split({"dtype": "float16", "torch_dtype": "bfloat16", "num_labels": 3,
                                       "cache_dir": "/x"})
    assert options == {"dtype": "float16", "torch_dtype": "bfloat16", "cache_dir": "/x"} and rest == {"num_labels": 3}
    assert LoadOptions.from_kwargs(torch_dtype="bfloat16").dtype == "bfloat16"
    assert LoadOptions.from_kwargs(dtype="float16", torch_dtype="bfloat16").dtype == "float16"
    assert LoadOptions.from_kwargs(cache_dir="/x", subfolder="s").hub() == {
        "cache_dir": "/x", "local_files_only": False, "token": None, "revision": None, "subfolder": "s"}
    with pytest.raises(TypeError, match="num_labels"):
        LoadOptions.from_kwargs(num_labels=3)


def test_model_constructor_arguments_reach_the_model(saved):
    """Keywords that are not config attributes but arguments of the model class go to its constructor, as
    transformers passes them (``add_pooling_layer=False``); the same set of weights loads either way."""
    import transformers

    plain = P.BertModel.from_pretrained(saved)
    model, info = P.BertModel.from_pretrained(saved, add_pooling_layer=False, output_loading_info=True)
    assert model.pooler is None and plain.pooler is not None
    assert not info["missing_keys"] and not hasattr(model.config, "add_pooling_layer")
    auto = P.AutoModel.from_pretrained(saved, add_pooling_layer=False)
    assert auto.pooler is None
    ids = torch.tensor([[2, 5, 7, 3]])
    with torch.no_grad():
        ours = model(input_ids=ids).last_hidden_state
        theirs = transformers.BertModel.from_pretrained(saved, add_pooling_layer=False).eval()(input_ids=ids)
    assert theirs.pooler_output is None
    torch.testing.assert_close(ours, theirs.last_hidden_state, atol=1e-5, rtol=0)
    with pytest.raises(TypeError, match=r"not_an_option.*nor arguments of BertModel"):
        P.BertModel.from_pretrained(saved, add_pooling_layer=False, not_an_option=1)

"""attn_implementation as in transformers 5: set at load or build time, switched live, never saved."""

import copy
import json

import pytest
import torch
import transformers as T
from tiny_models import TINY

import pretrained as P


def test_default_and_load_time_choice(saved):
    assert P.BertForMaskedLM.from_pretrained(saved).config._attn_implementation == "sdpa"
    eager = P.BertForMaskedLM.from_pretrained(saved, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager" and eager.bert.config is eager.config
    assert P.AutoModelForMaskedLM.from_pretrained(saved, attn_implementation="eager").config._attn_implementation \
        == "eager"
    config = P.AutoConfig.from_pretrained(saved)
    assert P.AutoModel.from_pretrained(saved, config=config, attn_implementation="eager").config \
        ._attn_implementation == "eager"
    assert config._attn_implementation is None  # the caller's config is copied, not changed
    with pytest.raises(ValueError, match=r"'flash_attention_2' is not available.*'eager', 'sdpa'"):
        P.BertModel.from_pretrained(saved, attn_implementation="flash_attention_2")


def test_from_config():
    model = P.AutoModelForMaskedLM.from_config(P.BertConfig(**TINY), attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    assert P.BertModel.from_config(P.BertConfig(**TINY), attn_implementation="sdpa").config._attn_implementation \
        == "sdpa"
    assert P.BertModel(P.BertConfig(**TINY)).config._attn_implementation == "sdpa"
    with pytest.raises(ValueError, match="choose one of"):
        P.BertModel.from_config(P.BertConfig(**TINY), attn_implementation="nope")


def test_switch_on_a_live_model(saved):
    model = P.BertForMaskedLM.from_pretrained(saved)
    ids = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        before = model(ids).logits
        model.set_attn_implementation("eager")
        after = model(ids).logits
    assert model.config._attn_implementation == model.bert.config._attn_implementation == "eager"
    torch.testing.assert_close(before, after)
    with pytest.raises(ValueError, match=r"'eager', 'sdpa'"):
        model.set_attn_implementation("flex_attention")
    assert model.config._attn_implementation == "eager"


def test_never_saved_and_config_round_trips(saved, tmp_path):
    model = P.BertForMaskedLM.from_pretrained(saved, attn_implementation="eager")
    model.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert not any("attn_implementation" in key for key in written)
    assert P.BertForMaskedLM.from_pretrained(tmp_path).config._attn_implementation == "sdpa"

    ours, theirs = P.BertConfig(attn_implementation="eager"), T.BertConfig(attn_implementation="eager")
    assert ours._attn_implementation == theirs._attn_implementation == "eager"
    assert copy.deepcopy(ours)._attn_implementation == "eager"
    for config, cls in ((ours, P.BertConfig), (theirs, T.BertConfig)):
        assert not any("attn_implementation" in key for key in config.to_dict())
        assert cls.from_dict(config.to_dict())._attn_implementation is None
        # a config.json that carries the internal field (written by some tools) does not choose it
        assert cls.from_dict({**config.to_dict(), "_attn_implementation_internal": "eager"}) \
            ._attn_implementation is None
    assert P.BertConfig.from_pretrained(saved, attn_implementation="eager")._attn_implementation == "eager"
    assert P.BertConfig()._attn_implementation is None

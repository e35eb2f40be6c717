"""transformers' module paths on pretrained (pretrained.compat.MODULES) and the alias runner."""

import importlib
import importlib.util
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import pretrained
from pretrained import compat

HAS_ARGPARSER = importlib.util.find_spec("pretrained.training.argparser") is not None


def _tables():
    for path, table in compat.MODULES.items():
        for name, module in table.items():
            if module == "pretrained.training.argparser" and not HAS_ARGPARSER:
                continue
            yield path, name, module


@pytest.mark.parametrize("path,name,module", list(_tables()))
def test_every_table_entry_resolves_to_our_own_object(path, name, module):
    alias = importlib.import_module(f"pretrained.{path}")
    if name.endswith("*"):
        names = [n for n in dir(alias) if not n.startswith("_")]
        assert names, f"pretrained.{path} lists no names"
        name = names[0]
    assert getattr(alias, name) is getattr(importlib.import_module(module), name)


@pytest.mark.skipif(not HAS_ARGPARSER, reason="pretrained.training.argparser (HfArgumentParser) is not built yet")
def test_hf_argparser_path():
    from pretrained.hf_argparser import HfArgumentParser

    assert HfArgumentParser is pretrained.HfArgumentParser


def test_from_imports_as_programs_write_them():
    from pretrained.data.data_collator import DataCollatorWithPadding
    from pretrained.models.auto.modeling_auto import AutoModelForCausalLM
    from pretrained.models.bert.modeling_bert import BertForSequenceClassification
    from pretrained.models.qwen2.configuration_qwen2 import Qwen2Config
    from pretrained.trainer_utils import EvalPrediction, get_last_checkpoint

    from pretrained.utils import check_min_version, is_torch_xla_available, logging

    assert DataCollatorWithPadding is pretrained.DataCollatorWithPadding
    assert AutoModelForCausalLM is pretrained.AutoModelForCausalLM
    assert BertForSequenceClassification is pretrained.BertForSequenceClassification
    assert Qwen2Config is pretrained.Qwen2Config
    assert EvalPrediction is pretrained.EvalPrediction and get_last_checkpoint is pretrained.get_last_checkpoint
    assert logging is importlib.import_module("pretrained.utils.logging")
    check_min_version("4.57.0.dev0")
    assert is_torch_xla_available() is False


def test_family_modules_hold_only_their_family():
    from pretrained.models.roberta import modeling_roberta

    assert "RobertaModel" in dir(modeling_roberta) and "BertModel" not in dir(modeling_roberta)
    with pytest.raises(AttributeError, match="BertModel"):
        modeling_roberta.BertModel  # noqa: B018
    with pytest.raises(ImportError):
        from pretrained.models.bert.modeling_bert import NoSuchModel  # noqa: F401
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pretrained.models.m2m_100.modeling_m2m_100")


def test_real_family_modules_stay_themselves():
    import pretrained.models.bert as bert

    assert bert.__file__.endswith("bert.py") and bert.BertModel is pretrained.BertModel


def test_not_implemented_family_is_importable_but_refuses_use():
    from pretrained import M2M100ForConditionalGeneration, MBart50Tokenizer

    assert not isinstance(object(), MBart50Tokenizer)
    with pytest.raises(NotImplementedError, match="M2M100ForConditionalGeneration: the M2M100 / NLLB family is not"):
        M2M100ForConditionalGeneration.from_pretrained("facebook/m2m100_418M")
    with pytest.raises(NotImplementedError, match="MBart50Tokenizer"):
        MBart50Tokenizer()
    with pytest.raises(AttributeError, match="NoSuchThing"):
        pretrained.NoSuchThing  # noqa: B018


def test_submodules_are_attributes():
    assert pretrained.utils.logging.set_verbosity_info is not None
    assert isinstance(pretrained.trainer_utils, types.ModuleType)


def test_mappings_follow_the_registry():
    from pretrained import CONFIG_MAPPING, MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_MAPPING
    from pretrained.models import auto

    assert CONFIG_MAPPING["bert"] is pretrained.BertConfig
    assert {"bert", "gpt2", "llama", "qwen3"} <= set(CONFIG_MAPPING)
    with pytest.raises(KeyError):
        CONFIG_MAPPING["m2m_100"]
    assert MODEL_FOR_CAUSAL_LM_MAPPING[pretrained.GPT2Config] is pretrained.GPT2LMHeadModel
    assert pretrained.BertConfig not in MODEL_FOR_CAUSAL_LM_MAPPING
    assert MODEL_MAPPING[pretrained.BertConfig] is pretrained.BertModel
    assert auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES["qwen3"] == "Qwen3ForCausalLM"
    assert "bert" not in auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and auto.CONFIG_MAPPING_NAMES["gpt2"] == "GPT2Config"
    assert "BertModel" in auto.MODEL_MAPPING_NAMES.values()
    assert tuple(c.model_type for c in MODEL_FOR_CAUSAL_LM_MAPPING.keys())  # noqa: SIM118  (as run_clm.py)

    class TinyConfig(pretrained.PretrainedConfig):
        model_type = "tiny-compat-test"

    class TinyModel:
        pass

    try:
        pretrained.AutoModelForCausalLM.register(TinyConfig, TinyModel)
        assert CONFIG_MAPPING["tiny-compat-test"] is TinyConfig
        assert MODEL_FOR_CAUSAL_LM_MAPPING[TinyConfig] is TinyModel
        assert auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES["tiny-compat-test"] == "TinyModel"
    finally:
        auto._CONFIGS.pop("tiny-compat-test", None)
        auto._MODELS["causal_lm"].pop("tiny-compat-test", None)


def test_import_stays_lazy():
    code = "import sys, pretrained, pretrained.utils.logging, pretrained.utils.versions; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


PROGRAM = '''
import importlib.metadata, json, logging, sys
from dataclasses import dataclass

import transformers
from transformers import AutoModelForSequenceClassification, BertConfig, set_seed
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import check_min_version, is_torch_xla_available
from transformers.utils.versions import require_version
from transformers.models.bert.modeling_bert import BertModel
from helper import double  # a sibling module, as run_qa.py imports trainer_qa.py

check_min_version("4.57.0.dev0")
require_version("transformers>=4.40", "the newest branch must be taken under the alias")
transformers.utils.logging.set_verbosity_info()
transformers.utils.logging.enable_default_handler()
transformers.utils.logging.enable_explicit_format()
set_seed(0)
config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, num_labels=3)
model = AutoModelForSequenceClassification.from_config(config)
import pretrained
import pretrained.trainer_utils
print(json.dumps({
    "argv": sys.argv[1:], "main": __name__, "double": double(2),
    "version": transformers.__version__, "metadata": importlib.metadata.version("transformers"),
    "dist": type(importlib.metadata.distribution("transformers")).__name__,
    "pretrained_version": pretrained.__version__,
    "same_modules": sys.modules["transformers.trainer_utils"] is pretrained.trainer_utils
                    and transformers.utils.logging is pretrained.utils.logging
                    and sys.modules["transformers.models.bert"] is sys.modules["pretrained.models.bert"],
    "same_names": BertModel is pretrained.BertModel and get_last_checkpoint is pretrained.get_last_checkpoint,
    "model": type(model).__module__ + "." + type(model).__name__,
    "xla": is_torch_xla_available(),
    "level": logging.getLogger("pretrained").level,
    "real_transformers": [m for m in sys.modules if m.startswith("transformers") and
                          getattr(sys.modules[m], "__file__", None) and "site-packages" in sys.modules[m].__file__],
}))
'''


def test_alias_runner_runs_a_transformers_program_unchanged(tmp_path):
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(PROGRAM))
    (tmp_path / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    root = Path(pretrained.__file__).parent.parent
    result = subprocess.run([sys.executable, "-m", "pretrained.compat", str(script), "--flag", "x"],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["argv"] == ["--flag", "x"] and out["main"] == "__main__" and out["double"] == 4
    assert out["version"] == out["metadata"] == "5.24.0" != out["pretrained_version"]
    assert out["dist"] == "_AliasDistribution"  # not the installed transformers' metadata
    assert out["same_modules"] and out["same_names"]
    assert out["model"] == "pretrained.models.bert.BertForSequenceClassification"
    assert out["xla"] is False and out["level"] == 20
    assert out["real_transformers"] == []


def test_alias_runner_usage_errors(tmp_path):
    for argv, message in [([], "usage:"), ([str(tmp_path / "missing.py")], "no such script")]:
        result = subprocess.run([sys.executable, "-m", "pretrained.compat", *argv], capture_output=True, text=True)
        assert result.returncode != 0 and message in result.stderr


def test_alias_refuses_after_the_real_transformers():
    code = "import transformers, pretrained.compat as c\ntry:\n    c.install_alias()\nexcept RuntimeError as e:\n    print(e)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "already imported" in out


def test_real_modules_gain_the_listed_names_after_their_own():
    import inspect

    import pretrained.utils as utils

    assert utils.PaddingStrategy is pretrained.PaddingStrategy and utils.TensorType is pretrained.TensorType
    assert utils.check_min_version is pretrained.utils.versions.check_min_version  # its own name first
    with pytest.raises(AttributeError, match="'pretrained.utils' has no attribute 'Nope'"):
        utils.Nope  # noqa: B018
    assert "def check_min_version" in inspect.getsource(pretrained.utils.versions)
    assert "class BertModel" in inspect.getsource(pretrained.models.bert)  # a real module made a package


def _explicit_entries():
    return [(path, name) for path, name, _ in _tables() if not name.endswith("*")]


@pytest.mark.parametrize("path,name", _explicit_entries())
def test_table_names_exist_at_the_same_path_in_transformers(path, name):
    transformers_module = pytest.importorskip(f"transformers.{path}")
    assert hasattr(transformers_module, name), f"transformers.{path} has no {name}"


def test_helper_names_match_transformers():
    transformers = pytest.importorskip("transformers")
    from pretrained.utils import import_utils

    checks = [n for n in dir(import_utils) if n.startswith("is_") and n.endswith("_available")]
    utils = importlib.import_module("transformers.utils")
    integrations = importlib.import_module("transformers.integrations")
    assert [n for n in checks if n not in import_utils.INTEGRATION_CHECKS and not hasattr(utils, n)] == []
    assert [n for n in import_utils.INTEGRATION_CHECKS if not hasattr(integrations, n)] == []
    added = [n for n, module in pretrained._EXPORTS.items()
             if module in ("pretrained.utils.import_utils", "pretrained.training.argparser") or n.endswith("_MAPPING")]
    assert len(added) > 20 and [n for n in added if not hasattr(transformers, n)] == []
    assert [n for n in compat.NOT_IMPLEMENTED if not hasattr(transformers, n)] == []


def test_alias_paths_are_reachable_as_attributes():
    code = ("import pretrained\n"
            "m = pretrained.models.roberta.modeling_roberta\n"
            "print(m.RobertaModel is pretrained.RobertaModel, pretrained.models.auto.modeling_auto.AutoModel is "
            "pretrained.AutoModel, pretrained.data.data_collator.default_data_collator is "
            "pretrained.default_data_collator)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["True", "True", "True"]

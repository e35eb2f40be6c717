"""pretrained: the transformers API for Hugging Face checkpoints, smaller and faster.

``import pretrained`` is cheap: every public name is resolved on first use, so
torch (and everything else heavy) is imported only when something needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it. Each area keeps its own block.
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        _EXPORTS[name] = module


# --- configs and models (foundation) ---
_export("pretrained.configuration", "PretrainedConfig", "PreTrainedConfig")
_export("pretrained.modeling.outputs", "ModelOutput")
_export("pretrained.modeling.base", "PreTrainedModel")
_export(
    "pretrained.models.auto",
    "AutoConfig",
    "AutoModel",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoModelForQuestionAnswering",
    "AutoModelForCausalLM",
)
_export(
    "pretrained.models.bert",
    "BertConfig",
    "BertModel",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "RobertaConfig",
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
)
_export(
    "pretrained.models.distilbert",
    "DistilBertConfig",
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
)

# --- tokenization ---

# --- generation ---

# --- pipelines ---

# --- training ---


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pretrained' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)

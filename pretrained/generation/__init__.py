"""Text generation: GenerationConfig, logits processors, stopping criteria, streamers and ``generate``.

Names resolve lazily (``from pretrained.generation import GenerationConfig`` does not import torch).
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "configuration_utils": ("GenerationConfig",),
    "streamers": ("BaseStreamer", "TextStreamer", "TextIteratorStreamer"),
    "stopping_criteria": (
        "StoppingCriteria", "StoppingCriteriaList", "MaxLengthCriteria", "MaxTimeCriteria", "EosTokenCriteria",
        "StopStringCriteria",
    ),
    "logits_process": (
        "LogitsProcessor", "LogitsWarper", "LogitsProcessorList", "TemperatureLogitsWarper", "TopKLogitsWarper",
        "TopPLogitsWarper", "MinPLogitsWarper", "TypicalLogitsWarper", "EpsilonLogitsWarper", "EtaLogitsWarper",
        "RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor", "NoBadWordsLogitsProcessor",
        "SequenceBiasLogitsProcessor", "MinLengthLogitsProcessor", "MinNewTokensLengthLogitsProcessor",
        "ForcedBOSTokenLogitsProcessor", "ForcedEOSTokenLogitsProcessor", "SuppressTokensLogitsProcessor",
        "SuppressTokensAtBeginLogitsProcessor", "InfNanRemoveLogitsProcessor", "LogitNormalization",
        "ExponentialDecayLengthPenalty", "EncoderRepetitionPenaltyLogitsProcessor",
        "EncoderNoRepeatNGramLogitsProcessor",
    ),
    "utils": ("generate", "GenerateDecoderOnlyOutput", "GenerateBeamDecoderOnlyOutput",
              "GenerateEncoderDecoderOutput", "GenerateBeamEncoderDecoderOutput"),
    "whisper": ("WhisperTimeStampLogitsProcessor",),
}  # fmt: skip
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pretrained.generation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_WHERE)

"""mBART: BART with pre-LayerNorm layers and a final LayerNorm on each stack, for many languages.

The decoder starts from the target language's code rather than one start token: labels end with
``</s> <lang_code>``, and teacher-forcing inputs move that code to the front (:func:`shift_tokens_right`
here). Everything else is BART's (``models/bart.py``).
"""

from __future__ import annotations

import torch

from pretrained.modeling.seq2seq import Seq2SeqDecoder, Seq2SeqEncoder
from pretrained.models.auto import register
from pretrained.models.bart import (
    BartConfig,
    BartDecoderWrapper,
    BartForCausalLM,
    BartForConditionalGeneration,
    BartForQuestionAnswering,
    BartForSequenceClassification,
    BartModel,
)


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """mBART's decoder inputs: each row's last non-pad token (its language code) first, then the row shifted
    right by one; ``-100`` (ignored labels) becomes ``pad_token_id``."""
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to make decoder inputs from labels")
    shifted = input_ids.masked_fill(input_ids == -100, pad_token_id)
    last = (shifted.ne(pad_token_id).sum(dim=1) - 1).unsqueeze(-1)
    start = shifted.gather(1, last).squeeze(-1)
    shifted[:, 1:] = shifted[:, :-1].clone()
    shifted[:, 0] = start
    return shifted


class MBartConfig(BartConfig):
    """Configuration of an mBART model (BART's fields; no fixed decoder start token)."""

    model_type = "mbart"
    _default_num_labels = 2

    def __init__(self, decoder_start_token_id: int | None = None, **kwargs) -> None:
        super().__init__(decoder_start_token_id=decoder_start_token_id, **kwargs)


class _PreNormStack:
    # What sets mBART's stacks apart from BART's: pre-LayerNorm layers and a final ``layer_norm``.
    final_norm = True
    normalize_before = True


class MBartEncoder(_PreNormStack, Seq2SeqEncoder):
    """mBART's encoder: pre-LayerNorm layers, ``layernorm_embedding`` and a final ``layer_norm``."""


class MBartDecoder(_PreNormStack, Seq2SeqDecoder):
    """mBART's decoder: pre-LayerNorm layers, ``layernorm_embedding`` and a final ``layer_norm``."""


class _LanguageCodeShift:
    # mBART's teacher forcing (the bare model's default decoder inputs, and every head's from labels).
    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The decoder inputs that teacher-force ``labels``: their language code first."""
        return shift_tokens_right(labels, self.config.pad_token_id)


class MBartModel(_LanguageCodeShift, BartModel):
    """The bare mBART encoder-decoder."""

    config_class = MBartConfig
    encoder_class = MBartEncoder
    decoder_class = MBartDecoder


class _MBartHead(_LanguageCodeShift):
    # Every mBART head is BART's around an MBartModel.
    config_class = MBartConfig
    model_class = MBartModel


class MBartForConditionalGeneration(_MBartHead, BartForConditionalGeneration):
    """mBART with its language-modelling head: translation between the languages it was trained on."""


class MBartForSequenceClassification(_MBartHead, BartForSequenceClassification):
    """mBART with a classification head at the last ``</s>``."""


class MBartForQuestionAnswering(_MBartHead, BartForQuestionAnswering):
    """mBART with a span head for extractive question answering."""


class MBartDecoderWrapper(BartDecoderWrapper):
    """Holds mBART's decoder under ``decoder`` (see :class:`MBartForCausalLM`)."""

    config_class = MBartConfig
    decoder_class = MBartDecoder


class MBartForCausalLM(BartForCausalLM):
    """mBART's decoder alone with the language-modelling head."""

    config_class = MBartConfig
    wrapper_class = MBartDecoderWrapper


register(
    "mbart",
    MBartConfig,
    base=MBartModel,
    seq2seq_lm=MBartForConditionalGeneration,
    sequence_classification=MBartForSequenceClassification,
    question_answering=MBartForQuestionAnswering,
    causal_lm=MBartForCausalLM,
)

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


class MBartEncoder(Seq2SeqEncoder):
    """mBART's encoder: pre-LayerNorm layers, ``layernorm_embedding`` and a final ``layer_norm``."""

    final_norm = True
    normalize_before = True


class MBartDecoder(Seq2SeqDecoder):
    """mBART's decoder: pre-LayerNorm layers, ``layernorm_embedding`` and a final ``layer_norm``."""

    final_norm = True
    normalize_before = True


class MBartModel(BartModel):
    """The bare mBART encoder-decoder."""

    config_class = MBartConfig
    encoder_class = MBartEncoder
    decoder_class = MBartDecoder

    def _default_decoder_inputs(self, input_ids: torch.Tensor | None) -> torch.Tensor:
        if input_ids is None:
            raise ValueError("give decoder_input_ids (or decoder_inputs_embeds), or input_ids to shift right")
        return shift_tokens_right(input_ids, self.config.pad_token_id)


class MBartForConditionalGeneration(BartForConditionalGeneration):
    """mBART with its language-modelling head: translation between the languages it was trained on."""

    config_class = MBartConfig
    model_class = MBartModel

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id)


class MBartForSequenceClassification(BartForSequenceClassification):
    """mBART with a classification head at the last ``</s>``."""

    config_class = MBartConfig
    model_class = MBartModel


class MBartForQuestionAnswering(BartForQuestionAnswering):
    """mBART with a span head for extractive question answering."""

    config_class = MBartConfig
    model_class = MBartModel


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

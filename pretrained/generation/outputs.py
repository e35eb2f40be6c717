"""What ``generate`` returns with ``return_dict_in_generate=True``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pretrained.modeling.outputs import ModelOutput


class _CacheAlias:
    @property
    def cache(self) -> Any:
        """The transformers 5 name of ``past_key_values``."""
        return self.past_key_values


@dataclass
class GenerateDecoderOnlyOutput(_CacheAlias, ModelOutput):
    """What ``generate`` returns with ``return_dict_in_generate=True`` (greedy and sampling).

    Attributes:
        sequences: ``(batch * num_return_sequences, length)`` prompt plus generated tokens.
        scores: Per step, the processed scores ``(batch, vocab)`` (``output_scores``).
        logits: Per step, the raw logits ``(batch, vocab)`` (``output_logits``).
        attentions / hidden_states: Per step, the model's outputs (``output_attentions`` /
            ``output_hidden_states``).
        past_key_values: The cache after the last step.
    """

    sequences: torch.LongTensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[Any, ...] | None = None
    hidden_states: tuple[Any, ...] | None = None
    past_key_values: Any = None


@dataclass
class GenerateBeamDecoderOnlyOutput(_CacheAlias, ModelOutput):
    """What beam search returns with ``return_dict_in_generate=True``.

    Attributes:
        sequences: ``(batch * num_return_sequences, length)``.
        sequences_scores: Final length-penalised score of each returned sequence (``output_scores``).
        scores: Per step, the processed log-probabilities ``(batch * num_beams, vocab)``.
        logits: Per step, the raw logits.
        beam_indices: ``(batch * num_return_sequences, generated)`` the beam each token came from.
        past_key_values: The cache after the last step.
    """

    sequences: torch.LongTensor | None = None
    sequences_scores: torch.Tensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    beam_indices: torch.LongTensor | None = None
    attentions: tuple[Any, ...] | None = None
    hidden_states: tuple[Any, ...] | None = None
    past_key_values: Any = None


@dataclass
class GenerateEncoderDecoderOutput(_CacheAlias, ModelOutput):
    """What an encoder-decoder's greedy decoding or sampling returns with ``return_dict_in_generate=True``.

    Attributes:
        sequences: ``(batch * num_return_sequences, length)`` decoder tokens (start token first).
        scores / logits: Per step, the processed scores / raw logits ``(batch, vocab)``.
        encoder_attentions / encoder_hidden_states: The encoder's (``output_attentions`` /
            ``output_hidden_states``).
        decoder_attentions / cross_attentions / decoder_hidden_states: Per step, the decoder's.
        past_key_values: The cache after the last step.
    """

    sequences: torch.LongTensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    encoder_attentions: tuple[torch.Tensor, ...] | None = None
    encoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    decoder_attentions: tuple[Any, ...] | None = None
    cross_attentions: tuple[Any, ...] | None = None
    decoder_hidden_states: tuple[Any, ...] | None = None
    past_key_values: Any = None


@dataclass
class GenerateBeamEncoderDecoderOutput(_CacheAlias, ModelOutput):
    """What an encoder-decoder's beam search returns with ``return_dict_in_generate=True`` (fields of
    :class:`GenerateEncoderDecoderOutput`, plus ``sequences_scores`` and ``beam_indices``)."""

    sequences: torch.LongTensor | None = None
    sequences_scores: torch.Tensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    beam_indices: torch.LongTensor | None = None
    encoder_attentions: tuple[torch.Tensor, ...] | None = None
    encoder_hidden_states: tuple[torch.Tensor, ...] | None = None
    decoder_attentions: tuple[Any, ...] | None = None
    cross_attentions: tuple[Any, ...] | None = None
    decoder_hidden_states: tuple[Any, ...] | None = None
    past_key_values: Any = None


# Older transformers names of the same outputs.
GreedySearchDecoderOnlyOutput = SampleDecoderOnlyOutput = GenerateDecoderOnlyOutput
BeamSearchDecoderOnlyOutput = BeamSampleDecoderOnlyOutput = GenerateBeamDecoderOnlyOutput
GreedySearchEncoderDecoderOutput = SampleEncoderDecoderOutput = GenerateEncoderDecoderOutput
BeamSearchEncoderDecoderOutput = BeamSampleEncoderDecoderOutput = GenerateBeamEncoderDecoderOutput

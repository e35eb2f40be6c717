"""What ``generate`` returns with ``return_dict_in_generate=True``."""

from __future__ import annotations

from dataclasses import field, make_dataclass
from typing import Any

import torch  # noqa: F401 - the field annotations name it (typing.get_type_hints resolves them here)

from pretrained.modeling.outputs import ModelOutput


class _CacheAlias:
    @property
    def cache(self) -> Any:
        """The transformers 5 name of ``past_key_values``."""
        return self.past_key_values


# Each output's fields, in transformers' order (the order tuple indexing follows), from one table of types.
_TYPES = {
    "sequences": "torch.LongTensor | None", "sequences_scores": "torch.Tensor | None",
    "scores": "tuple[torch.Tensor, ...] | None", "logits": "tuple[torch.Tensor, ...] | None",
    "beam_indices": "torch.LongTensor | None",
    "attentions": "tuple[Any, ...] | None", "hidden_states": "tuple[Any, ...] | None",
    "encoder_attentions": "tuple[torch.Tensor, ...] | None", "encoder_hidden_states": "tuple[torch.Tensor, ...] | None",
    "decoder_attentions": "tuple[Any, ...] | None", "cross_attentions": "tuple[Any, ...] | None",
    "decoder_hidden_states": "tuple[Any, ...] | None", "past_key_values": "Any",
}
_DECODER = ("attentions", "hidden_states")
_ENCODER_DECODER = ("encoder_attentions", "encoder_hidden_states", "decoder_attentions", "cross_attentions",
                    "decoder_hidden_states")


def _output(name: str, doc: str, names: tuple[str, ...]) -> type:
    """A ``ModelOutput`` dataclass ``name`` whose fields are ``names`` (each ``None`` by default)."""
    cls = make_dataclass(name, [(n, _TYPES[n], field(default=None)) for n in names], bases=(_CacheAlias, ModelOutput))
    cls.__module__ = __name__
    cls.__doc__ = doc
    return cls


GenerateDecoderOnlyOutput = _output("GenerateDecoderOnlyOutput", """What ``generate`` returns with
    ``return_dict_in_generate=True`` (greedy and sampling).

    Attributes:
        sequences: ``(batch * num_return_sequences, length)`` prompt plus generated tokens.
        scores: Per step, the processed scores ``(batch, vocab)`` (``output_scores``).
        logits: Per step, the raw logits ``(batch, vocab)`` (``output_logits``).
        attentions / hidden_states: Per step, the model's outputs (``output_attentions`` /
            ``output_hidden_states``).
        past_key_values: The cache after the last step.
    """, ("sequences", "scores", "logits", *_DECODER, "past_key_values"))

GenerateBeamDecoderOnlyOutput = _output("GenerateBeamDecoderOnlyOutput", """What beam search returns with
    ``return_dict_in_generate=True``.

    Attributes:
        sequences: ``(batch * num_return_sequences, length)``.
        sequences_scores: Final length-penalised score of each returned sequence (``output_scores``).
        scores: Per step, the processed log-probabilities ``(batch * num_beams, vocab)``.
        logits: Per step, the raw logits.
        beam_indices: ``(batch * num_return_sequences, generated)`` the beam each token came from.
        past_key_values: The cache after the last step.
    """, ("sequences", "sequences_scores", "scores", "logits", "beam_indices", *_DECODER, "past_key_values"))

GenerateEncoderDecoderOutput = _output("GenerateEncoderDecoderOutput", """What an encoder-decoder's greedy
    decoding or sampling returns with ``return_dict_in_generate=True``.

    Attributes:
        sequences: ``(batch * num_return_sequences, length)`` decoder tokens (start token first).
        scores / logits: Per step, the processed scores / raw logits ``(batch, vocab)``.
        encoder_attentions / encoder_hidden_states: The encoder's (``output_attentions`` /
            ``output_hidden_states``).
        decoder_attentions / cross_attentions / decoder_hidden_states: Per step, the decoder's.
        past_key_values: The cache after the last step.
    """, ("sequences", "scores", "logits", *_ENCODER_DECODER, "past_key_values"))

GenerateBeamEncoderDecoderOutput = _output("GenerateBeamEncoderDecoderOutput", """What an encoder-decoder's
    beam search returns with ``return_dict_in_generate=True`` (fields of
    :class:`GenerateEncoderDecoderOutput`, plus ``sequences_scores`` and ``beam_indices``).""",
    ("sequences", "sequences_scores", "scores", "logits", "beam_indices", *_ENCODER_DECODER, "past_key_values"))


# Older transformers names of the same outputs.
GreedySearchDecoderOnlyOutput = SampleDecoderOnlyOutput = GenerateDecoderOnlyOutput
BeamSearchDecoderOnlyOutput = BeamSampleDecoderOnlyOutput = GenerateBeamDecoderOnlyOutput
GreedySearchEncoderDecoderOutput = SampleEncoderDecoderOutput = GenerateEncoderDecoderOutput
BeamSearchEncoderDecoderOutput = BeamSampleEncoderDecoderOutput = GenerateBeamEncoderDecoderOutput

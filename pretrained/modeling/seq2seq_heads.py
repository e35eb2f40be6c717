"""The passes every encoder-decoder family shares above its stacks (BART / mBART / Marian, T5 / mT5 / UMT5).

* :func:`encoder_decoder_forward`: encode (unless ``encoder_outputs`` are given), then decode against the
  encoder's states: the bare model's pass, a :class:`Seq2SeqModelOutput`.
* :func:`decoder_inputs`: the decoder's input ids, made by shifting labels (or input ids) when not given.
* :func:`seq2seq_fields`: what every head's output repeats of the bare model's (cache, per-layer states).
* :func:`seq2seq_lm_output`, :func:`seq2seq_classifier_output`, :func:`seq2seq_qa_output`: the task heads'
  scoring and output assembly (conditional generation, sequence classification at the last ``</s>``,
  extractive question answering) once the family has run its bare model.
* :func:`eos_pool` and :class:`Seq2SeqClassificationHead`: the sentence vector and the classifier of the
  sequence-classification heads.
* :class:`Seq2SeqModelForward`, :class:`Seq2SeqLMForward`, :class:`Seq2SeqClassifierForward`,
  :class:`Seq2SeqQAForward`: the public ``forward`` of the bare model and of each task head, written once
  with transformers' argument names and order, mixed in before a family's pretrained-model class.

The family files keep what is their own, as small hooks of those classes: their stacks, whether the bare
model makes decoder inputs from ``input_ids`` (``_default_decoder_inputs``: BART denoises, T5 does not) and
how the language-model head turns decoder states into logits (``_lm_logits``: BART's ``final_logits_bias``,
T5's output scaling).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from pretrained.modeling.decoder import causal_lm_loss
from pretrained.modeling.embeddings import OutputEmbeddings
from pretrained.modeling.losses import sequence_classification_loss, span_logits_and_loss
from pretrained.modeling.outputs import (
    SEQ2SEQ_FIELDS,
    BaseModelOutput,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqQuestionAnsweringModelOutput,
    Seq2SeqSequenceClassifierOutput,
)


def as_encoder_output(encoder_outputs: Any) -> BaseModelOutput:
    """Given encoder outputs as a :class:`BaseModelOutput`: a ``(last, hidden_states, attentions)`` tuple
    or another output object (a stack's, with a cache field) are read into one."""
    if isinstance(encoder_outputs, BaseModelOutput):
        return encoder_outputs
    if isinstance(encoder_outputs, (tuple, list)):
        return BaseModelOutput(*encoder_outputs[:3])
    # (by name: the tuple view of another output class skips its None fields, so positions would shift)
    return BaseModelOutput(last_hidden_state=encoder_outputs.last_hidden_state,
                           hidden_states=getattr(encoder_outputs, "hidden_states", None),
                           attentions=getattr(encoder_outputs, "attentions", None))


def encoder_decoder_forward(model: Any, arguments: dict[str, Any]) -> Seq2SeqModelOutput:
    """The bare encoder-decoder's pass from a forward's arguments (``locals()``, with ``kwargs``).

    ``model.get_encoder()`` encodes ``input_ids`` / ``inputs_embeds`` unless ``encoder_outputs`` are
    given; ``model.get_decoder()`` decodes ``decoder_input_ids`` / ``decoder_inputs_embeds`` against it
    with the encoder's ``attention_mask``. ``output_attentions``, ``output_hidden_states``,
    ``cache_position`` and ``cache`` (transformers 5's name of ``past_key_values``) may come as arguments
    or in ``kwargs``. Always an output object (the caller applies ``return_dict``).
    """
    extra = arguments.get("kwargs") or {}

    def get(name: str, alias: str | None = None) -> Any:
        value = arguments.get(name)
        if value is None:
            value = extra.get(name)
        return extra.get(alias) if value is None and alias else value

    flags = {"output_attentions": get("output_attentions"), "output_hidden_states": get("output_hidden_states")}
    encoder_outputs = arguments.get("encoder_outputs")
    if encoder_outputs is None:
        encoder_outputs = model.get_encoder()(input_ids=arguments.get("input_ids"),
                                              attention_mask=arguments.get("attention_mask"),
                                              inputs_embeds=arguments.get("inputs_embeds"), return_dict=True, **flags)
    encoded = as_encoder_output(encoder_outputs)
    decoded = model.get_decoder()(
        input_ids=arguments.get("decoder_input_ids"), attention_mask=arguments.get("decoder_attention_mask"),
        encoder_hidden_states=encoded.last_hidden_state, encoder_attention_mask=arguments.get("attention_mask"),
        past_key_values=get("past_key_values", "cache"), inputs_embeds=arguments.get("decoder_inputs_embeds"),
        use_cache=arguments.get("use_cache"), cache_position=get("cache_position"), return_dict=True, **flags,
    )
    return Seq2SeqModelOutput(
        last_hidden_state=decoded.last_hidden_state,
        past_key_values=decoded.past_key_values,
        decoder_hidden_states=decoded.hidden_states,
        decoder_attentions=decoded.attentions,
        cross_attentions=decoded.cross_attentions,
        encoder_last_hidden_state=encoded.last_hidden_state,
        encoder_hidden_states=encoded.hidden_states,
        encoder_attentions=encoded.attentions,
    )


def decoder_inputs(model: Any, decoder_input_ids: torch.Tensor | None, decoder_inputs_embeds: torch.Tensor | None,
                   source: torch.Tensor | None) -> torch.Tensor | None:
    """The decoder's input ids: as given, or (when neither ids nor embeddings are) ``source`` (the labels to
    teacher-force, or the input ids a denoising / classifying pass feeds back) shifted right by
    ``model.prepare_decoder_input_ids_from_labels``."""
    if decoder_input_ids is not None or decoder_inputs_embeds is not None:
        return decoder_input_ids
    if source is None:
        raise ValueError("give decoder_input_ids (or decoder_inputs_embeds), or input_ids to shift right")
    return model.prepare_decoder_input_ids_from_labels(source)


def seq2seq_fields(outputs: Seq2SeqModelOutput) -> dict[str, Any]:
    """The fields a head's output takes over from the bare model's: everything but ``last_hidden_state``."""
    return {name: getattr(outputs, name) for name in SEQ2SEQ_FIELDS}


def keep_logits_positions(hidden: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The decoder positions a language-model head scores: the last ``logits_to_keep`` (all for 0), or
    those a tensor of indices names."""
    if isinstance(logits_to_keep, int):
        return hidden[:, -logits_to_keep:] if logits_to_keep else hidden
    return hidden[:, logits_to_keep]


def seq2seq_lm_output(model: Any, outputs: Seq2SeqModelOutput, logits: torch.Tensor, labels: torch.Tensor | None,
                      return_dict: bool | None) -> Seq2SeqLMOutput | tuple:
    """A conditional-generation head's output: its ``logits``, the mean cross-entropy against ``labels`` as
    given (``labels[:, i]`` is the target of decoder position ``i``; ``-100`` ignored), and the bare model's
    other fields."""
    loss = None
    if labels is not None:
        loss = causal_lm_loss(logits, labels, None, shift_labels=labels)
    return model._outputs(Seq2SeqLMOutput(loss=loss, logits=logits, **seq2seq_fields(outputs)), return_dict)


def eos_pool(hidden: torch.Tensor, input_ids: torch.Tensor, eos_token_id: Any) -> torch.Tensor:
    """The decoder's hidden state at each row's last end-of-sequence token (every row must hold as many,
    at least one)."""
    eos = eos_token_id[0] if isinstance(eos_token_id, (list, tuple)) else eos_token_id
    mask = input_ids.eq(eos).to(hidden.device)
    counts = mask.sum(1)
    if bool((counts != counts[0]).any()):
        raise ValueError("All examples must have the same number of <eos> tokens.")
    if int(counts[0]) == 0:
        raise ValueError("Each example must contain at least one <eos> token.")
    return hidden[mask, :].view(hidden.shape[0], -1, hidden.shape[-1])[:, -1, :]


class Seq2SeqClassificationHead(nn.Module):
    """``out_proj(tanh(dense(x)))`` with dropout before each projection."""

    def __init__(self, input_dim: int, inner_dim: int, num_classes: int, pooler_dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(input_dim, inner_dim)
        self.dropout = nn.Dropout(p=pooler_dropout)
        self.out_proj = nn.Linear(inner_dim, num_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(torch.tanh(self.dense(self.dropout(hidden)))))


def seq2seq_classifier_output(model: Any, outputs: Seq2SeqModelOutput, input_ids: torch.Tensor,
                              labels: torch.Tensor | None, return_dict: bool | None
                              ) -> Seq2SeqSequenceClassifierOutput | tuple:
    """A sequence-classification head's output: ``model.classification_head`` on the decoder's state at the
    last ``</s>`` of ``input_ids``, and the loss ``config.problem_type`` asks for."""
    pooled = eos_pool(outputs.last_hidden_state, input_ids, model.config.eos_token_id)
    logits = model.classification_head(pooled)
    loss = sequence_classification_loss(logits, labels, model.config) if labels is not None else None
    out = Seq2SeqSequenceClassifierOutput(loss=loss, logits=logits, **seq2seq_fields(outputs))
    return model._outputs(out, return_dict)


def seq2seq_qa_output(model: Any, outputs: Seq2SeqModelOutput, start_positions: torch.Tensor | None,
                      end_positions: torch.Tensor | None, return_dict: bool | None
                      ) -> Seq2SeqQuestionAnsweringModelOutput | tuple:
    """An extractive question-answering head's output: ``model.qa_outputs`` split into start and end scores
    over the decoder positions, and the span loss when both positions are given."""
    start, end, loss = span_logits_and_loss(model.qa_outputs(outputs.last_hidden_state), start_positions,
                                            end_positions)
    out = Seq2SeqQuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end,
                                              **seq2seq_fields(outputs))
    return model._outputs(out, return_dict)


class EncoderDecoderAccess:
    """What the forwards below ask of every encoder-decoder model: ``get_encoder`` / ``get_decoder`` (the
    stacks of the base model, ``base_model_prefix``) and ``_default_decoder_inputs``."""

    def get_encoder(self) -> nn.Module:
        return self.base_model.encoder

    def get_decoder(self) -> nn.Module:
        return self.base_model.decoder

    def _default_decoder_inputs(self, input_ids: torch.Tensor | None) -> torch.Tensor | None:
        """The decoder's inputs when the caller gives none: none here (the decoder then asks for them); BART
        shifts ``input_ids`` right (denoising), Marian refuses."""
        return None


# --------------------------------------------------------------------------------------------------------
# The public forwards. Each is the class's whole pass; the model it is mixed into provides ``config``,
# :class:`EncoderDecoderAccess`, ``prepare_decoder_input_ids_from_labels`` and ``_outputs``.


class Seq2SeqModelForward:
    """The bare encoder-decoder's ``forward`` (``BartModel``, ``T5Model``, ...)."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqModelOutput | tuple:
        """Encode ``input_ids`` (or take ``encoder_outputs``), decode ``decoder_input_ids`` against it.

        Keyword arguments: ``output_attentions``, ``output_hidden_states``, ``return_dict``,
        ``cache_position``, ``cache`` (transformers 5's name of ``past_key_values``).
        """
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self._default_decoder_inputs(input_ids)
        return self._outputs(encoder_decoder_forward(self, locals()), kwargs.get("return_dict"))


class Seq2SeqLMForward(OutputEmbeddings):
    """A ``...ForConditionalGeneration`` head's ``forward``: the bare model's pass, then ``_lm_logits`` on the
    kept decoder positions and the cross-entropy against ``labels``. The head's linear layer is ``lm_head``.

    ``_labels_disable_cache``: whether a pass with ``labels`` returns no cache (BART; T5 keeps
    ``use_cache`` as given, as transformers does).
    """

    _labels_disable_cache: ClassVar[bool] = True

    def _lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits of the kept decoder states (the family's own head)."""
        raise NotImplementedError(f"{type(self).__name__} must define _lm_logits")

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput | tuple:
        """Next-token logits of the decoder; with ``labels`` (``-100`` ignored) the mean cross-entropy, the
        decoder inputs made by shifting the labels right when not given. ``logits_to_keep`` is accepted as a
        keyword argument, as are those of the bare model's forward. ``num_items_in_batch`` is accepted and
        ignored, as transformers' encoder-decoder heads do: under gradient accumulation the Trainer then logs
        what transformers logs."""
        if labels is not None:
            use_cache = False if self._labels_disable_cache else use_cache
            decoder_input_ids = decoder_inputs(self, decoder_input_ids, decoder_inputs_embeds, labels)
        elif decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self.base_model._default_decoder_inputs(input_ids)
        kwargs.pop("num_items_in_batch", None)
        logits_to_keep = kwargs.pop("logits_to_keep", 0)
        return_dict = kwargs.pop("return_dict", None)
        outputs = encoder_decoder_forward(self, locals())
        logits = self._lm_logits(keep_logits_positions(outputs.last_hidden_state, logits_to_keep))
        return seq2seq_lm_output(self, outputs, logits, labels, return_dict)


class Seq2SeqClassifierForward:
    """A ``...ForSequenceClassification`` head's ``forward``: the decoder reads the shifted input (unless
    given its own), ``classification_head`` reads its state at the last ``</s>``."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqSequenceClassifierOutput | tuple:
        """Class scores ``(batch, num_labels)``; a loss chosen by ``config.problem_type`` with ``labels``.
        Every input must hold the same number (at least one) of ``eos_token_id`` tokens."""
        if input_ids is None:
            raise NotImplementedError(f"{type(self).__name__} needs input_ids (it pools at the </s> tokens)")
        if labels is not None:
            use_cache = False
        decoder_input_ids = decoder_inputs(self, decoder_input_ids, decoder_inputs_embeds, input_ids)
        outputs = encoder_decoder_forward(self, locals())
        return seq2seq_classifier_output(self, outputs, input_ids, labels, kwargs.get("return_dict"))


class Seq2SeqQAForward:
    """A ``...ForQuestionAnswering`` head's ``forward``: start / end scores (``qa_outputs``) over the decoder
    positions; the decoder reads the shifted input unless given its own."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqQuestionAnsweringModelOutput | tuple:
        """Start and end logits ``(batch, tgt_len)``; with both positions the mean of their cross-entropies
        (positions past the end are ignored)."""
        if start_positions is not None and end_positions is not None:
            use_cache = False
        decoder_input_ids = decoder_inputs(self, decoder_input_ids, decoder_inputs_embeds, input_ids)
        outputs = encoder_decoder_forward(self, locals())
        return seq2seq_qa_output(self, outputs, start_positions, end_positions, kwargs.get("return_dict"))

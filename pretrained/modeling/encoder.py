"""Pieces shared by the bidirectional encoders (BERT and RoBERTa, DistilBERT).

* :class:`EncoderSelfAttention` splits heads and attends through the registry of
  :mod:`pretrained.modeling.attention`, chosen by ``config._attn_implementation``;
  :class:`QueryKeyValueSelfAttention` is it with BERT's / ViT's projection names, and
  :class:`EncoderIntermediate` the first half of their feed-forward block.
* :class:`LayerStack` is the layer loop (``encoder.layer`` / ``transformer.layer``).
* :class:`EncoderPreTrainedModel` is the base of every encoder model: standard initialisation, the input
  embeddings, the bare model's pass, and how a task head runs its encoder and builds its output.

The module names stay in each family's file, since they are the checkpoint keys.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from pretrained.modeling.activations import get_activation
from pretrained.modeling.attention import attention_function, merge_heads, padding_mask, split_heads
from pretrained.modeling.base import PreTrainedModel, init_standard_
from pretrained.modeling.checkpointing import call_layer
from pretrained.modeling.embeddings import check_token_inputs
from pretrained.modeling.losses import (
    sequence_classification_loss,
    span_logits_and_loss,
    token_classification_loss,
)
from pretrained.modeling.outputs import (
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    output_flag,
)


class EncoderSelfAttention(nn.Module):
    """Multi-head self-attention over every position (no causal mask).

    Subclasses create the query, key and value layers under their checkpoint's names and pass them to
    :meth:`attend`. The attention function is read from ``config._attn_implementation`` at every call
    (SDPA when unset), so a later ``set_attn_implementation`` takes effect.

    Args:
        config: the model config (``hidden_size`` / ``num_attention_heads``, or their aliases).
        dropout: dropout on the attention weights in training.
    """

    def __init__(self, config: Any, dropout: float):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(f"hidden_size ({config.hidden_size}) is not a multiple of num_attention_heads "
                             f"({config.num_attention_heads}).")
        self.num_heads = config.num_attention_heads
        self.dropout = dropout
        self.config = config

    def attend(self, hidden: torch.Tensor, projections: tuple[nn.Module, nn.Module, nn.Module],
               mask: torch.Tensor | None, output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``hidden`` ``(batch, seq, hidden)`` to itself through the query, key and value ``projections``.

        Returns the ``(batch, seq, hidden)`` states before any output projection, and the
        ``(batch, heads, seq, seq)`` weights when ``output_attentions`` (else ``None``).
        """
        q, k, v = (split_heads(proj(hidden), self.num_heads) for proj in projections)  # (batch, heads, seq, dim)
        attend = attention_function(self.config._attn_implementation, output_attentions)
        out, weights = attend(q, k, v, mask, dropout=self.dropout if self.training else 0.0)
        return merge_heads(out), weights


class QueryKeyValueSelfAttention(EncoderSelfAttention):
    """:class:`EncoderSelfAttention` whose projections are ``query`` / ``key`` / ``value`` (the names of
    BERT's and ViT's checkpoints), with or without biases."""

    def __init__(self, config: Any, bias: bool = True):
        super().__init__(config, config.attention_probs_dropout_prob)
        self.query, self.key, self.value = (nn.Linear(config.hidden_size, config.hidden_size, bias=bias)
                                            for _ in range(3))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.attend(hidden, (self.query, self.key, self.value), mask, output_attentions)


class EncoderIntermediate(nn.Module):
    """The first half of an encoder layer's feed-forward block: ``act(dense(x))`` from ``hidden_size`` to
    ``intermediate_size``, ``act`` being ``config.hidden_act``."""

    def __init__(self, config: Any):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden))


class LayerStack(nn.Module):
    """``self.layer`` (or the ``attribute`` named) run in order, collecting hidden states / attention weights when asked.

    Each layer takes ``(hidden, mask, output_attentions)`` and returns ``(hidden, weights)``.
    With gradient checkpointing on (``PreTrainedModel.gradient_checkpointing_enable``) and in training,
    layers recompute their activations in backward.
    """

    def __init__(self, layers: list[nn.Module], attribute: str = "layer"):
        super().__init__()
        # The checkpoints name the list ``layer`` (BERT, ViT) or ``layers`` (CLIP).
        self._attribute = attribute
        setattr(self, attribute, nn.ModuleList(layers))
        self.gradient_checkpointing = False

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool,
                output_hidden_states: bool):
        all_hidden = (hidden,) if output_hidden_states else None
        all_weights = () if output_attentions else None
        for layer in getattr(self, self._attribute):
            hidden, weights = call_layer(self, layer, hidden, mask, output_attentions)
            if output_hidden_states:
                all_hidden += (hidden,)
            if output_attentions:
                all_weights += (weights,)
        return hidden, all_hidden, all_weights


class EncoderPreTrainedModel(PreTrainedModel):
    """Base of the encoder models: what a bare encoder and its task heads do the same way in every family.

    A bare model keeps its embeddings module under ``embeddings`` (with ``word_embeddings``). A task head
    keeps the bare model under ``base_model_prefix``, lists that model's forward arguments in
    ``_encoder_args`` and, when scored against ``labels``, names its output class in ``_output_class``.
    """

    supports_gradient_checkpointing = True
    _encoder_args: ClassVar[tuple[str, ...]] = ()
    _output_class: ClassVar[type[ModelOutput] | None] = None

    def _init_weights(self, module: nn.Module) -> None:
        init_standard_(module, self.config.initializer_range)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = value

    # --- the bare model ------------------------------------------------------------------------------
    def _run_encoder(self, layers: LayerStack, attention_mask: torch.Tensor | None, output_attentions: bool | None,
                    output_hidden_states: bool | None, **inputs: torch.Tensor | None):
        """Embed ``inputs`` (keyword arguments of ``self.embeddings``) and run ``layers`` on them.

        Exactly one of ``input_ids`` / ``inputs_embeds`` must be given; the output flags default to the
        config's. Returns ``(last hidden, every layer's hidden or None, every layer's weights or None)``.
        """
        check_token_inputs(inputs.get("input_ids"), inputs.get("inputs_embeds"))
        config = self.config
        output_attentions = output_flag(config, "output_attentions", output_attentions)
        output_hidden_states = output_flag(config, "output_hidden_states", output_hidden_states)
        hidden = self.embeddings(**inputs)
        return layers(hidden, padding_mask(attention_mask), output_attentions, output_hidden_states)

    # --- task heads ----------------------------------------------------------------------------------
    def _logits(self, encoded: ModelOutput) -> torch.Tensor:
        """A head scored against ``labels``: its logits from the encoder's output."""
        raise NotImplementedError(f"{type(self).__name__} has no scoring head.")

    def _num_scores(self) -> int:
        """How many scores a classifier head gives per input: one per choice for a multiple-choice head (the
        choices of a question are its classes), ``config.num_labels`` otherwise."""
        return 1 if self._output_class is MultipleChoiceModelOutput else self.config.num_labels

    def _encode(self, inputs: dict[str, Any]) -> ModelOutput:
        """Run the bare model on the ``_encoder_args`` found in ``inputs`` (a head forward's ``locals()``)."""
        return self.base_model(**{k: inputs.get(k) for k in self._encoder_args}, return_dict=True)

    def _scored_output(self, logits: torch.Tensor, labels: torch.Tensor | None, encoded: ModelOutput,
                       return_dict: bool | None) -> Any:
        """``_output_class`` with ``logits``, the loss against ``labels`` when given (by ``problem_type`` for
        a sequence classifier, else cross-entropy over the last dimension: one label per token, question or
        pair) and the encoder's hidden states / attentions."""
        loss = None
        if labels is not None and self._output_class is SequenceClassifierOutput:
            loss = sequence_classification_loss(logits, labels, self.config)
        elif labels is not None:
            loss = token_classification_loss(logits, labels)
        return self._head_output(self._output_class, loss, encoded, return_dict, logits=logits)

    def _multiple_choice_output(self, inputs: dict[str, Any]) -> Any:
        """A multiple-choice head's forward, from its ``locals()``: every choice of every question is encoded
        as one sequence, scored by ``_logits`` (one score each), and the scores of a question are its row of
        ``(batch, num_choices)`` logits, scored against ``labels`` (the right choice) when given."""
        first = inputs.get("input_ids")
        if first is None:
            first = inputs.get("inputs_embeds")
        expected = 4 if inputs.get("input_ids") is None else 3
        if first is not None and first.dim() != expected:
            name = "inputs_embeds" if expected == 4 else "input_ids"
            raise ValueError(
                f"{type(self).__name__} takes {name} of shape (batch, num_choices, sequence_length"
                f"{', hidden_size' if expected == 4 else ''}), got shape {tuple(first.shape)}.")
        flat = dict(inputs)
        for name in self._encoder_args:
            value = inputs.get(name)
            if isinstance(value, torch.Tensor):  # (batch, choices, seq[, hidden]) -> (batch * choices, ...)
                kept = 2 if name == "inputs_embeds" else 1
                flat[name] = value.reshape(-1, *value.shape[value.dim() - kept:])
        encoded = self._encode(flat)
        num_choices = first.shape[1] if first is not None else 0
        logits = self._logits(encoded).view(-1, num_choices)
        return self._scored_output(logits, inputs.get("labels"), encoded, inputs.get("return_dict"))

    def _span_output(self, logits: torch.Tensor, start_positions: torch.Tensor | None,
                     end_positions: torch.Tensor | None, encoded: ModelOutput, return_dict: bool | None) -> Any:
        """A question-answering head's output from its ``(batch, seq, 2)`` logits."""
        start_logits, end_logits, loss = span_logits_and_loss(logits, start_positions, end_positions)
        return self._head_output(QuestionAnsweringModelOutput, loss, encoded, return_dict,
                                 start_logits=start_logits, end_logits=end_logits)

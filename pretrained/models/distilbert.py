"""DistilBERT: a 6-layer BERT without token types or pooler, and its task heads.

Attention, losses and initialisation are the shared ones; only the module names
(``q_lin``, ``sa_layer_norm``, ``ffn.lin1``...) and the heads differ from BERT.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.modeling.activations import get_activation
from pretrained.modeling.embeddings import PositionIds
from pretrained.modeling.encoder import EncoderPreTrainedModel, EncoderSelfAttention, LayerStack
from pretrained.modeling.outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from pretrained.models.auto import register


class DistilBertConfig(PretrainedConfig):
    model_type = "distilbert"
    attribute_map = {"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"}

    def __init__(self, vocab_size: int = 30522, max_position_embeddings: int = 512,
                 sinusoidal_pos_embds: bool = False, n_layers: int = 6, n_heads: int = 12, dim: int = 768,
                 hidden_dim: int = 4 * 768, dropout: float = 0.1, attention_dropout: float = 0.1,
                 activation: str = "gelu", initializer_range: float = 0.02, qa_dropout: float = 0.1,
                 seq_classif_dropout: float = 0.2, pad_token_id: int | None = 0,
                 eos_token_id: int | None = None, bos_token_id: int | None = None,
                 tie_word_embeddings: bool = True, **kwargs: Any) -> None:
        self._store_arguments(locals())
        super().__init__(**kwargs)


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """Fixed sin/cos position table (``sinusoidal_pos_embds=True``)."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.empty(n_pos, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


class Embeddings(PositionIds, nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)
        self._init_position_ids(config.max_position_embeddings)

    def forward(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        if input_ids is not None:
            inputs_embeds = self.word_embeddings(input_ids)
        if position_ids is None:
            position_ids = self.position_ids[:, : inputs_embeds.size(1)]
        return self.dropout(self.LayerNorm(inputs_embeds + self.position_embeddings(position_ids)))


class DistilBertSelfAttention(EncoderSelfAttention):
    def __init__(self, config: DistilBertConfig):
        super().__init__(config, config.attention_dropout)
        self.q_lin, self.k_lin, self.v_lin, self.out_lin = (nn.Linear(config.dim, config.dim) for _ in range(4))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        out, weights = self.attend(hidden, (self.q_lin, self.k_lin, self.v_lin), mask, output_attentions)
        return self.out_lin(out), weights


class FFN(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.activation = get_activation(config.activation)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.lin2(self.activation(self.lin1(x))))


class TransformerBlock(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.attention = DistilBertSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        attended, weights = self.attention(hidden, mask, output_attentions)
        attended = self.sa_layer_norm(attended + hidden)
        return self.output_layer_norm(self.ffn(attended) + attended), weights


class Transformer(LayerStack):
    def __init__(self, config: DistilBertConfig):
        super().__init__([TransformerBlock(config) for _ in range(config.n_layers)])


class DistilBertPreTrainedModel(EncoderPreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"
    _no_split_modules = ["TransformerBlock"]
    _encoder_args = ("input_ids", "attention_mask", "inputs_embeds", "position_ids", "output_attentions",
                     "output_hidden_states")

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, Embeddings) and self.config.sinusoidal_pos_embds:
            weight = module.position_embeddings.weight
            if not weight.is_meta:
                weight.copy_(sinusoidal_table(*weight.shape))


class DistilBertModel(DistilBertPreTrainedModel):
    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.transformer = Transformer(config)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> BaseModelOutput:
        hidden, all_hidden, all_weights = self._run_encoder(
            self.transformer, attention_mask, output_attentions, output_hidden_states, input_ids=input_ids,
            inputs_embeds=inputs_embeds, position_ids=position_ids)
        out = BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_weights)
        return self._outputs(out, return_dict)


class _Heads(DistilBertPreTrainedModel):
    """What every task head shares: the encoder, built first, and one forward for the heads scored against
    ``labels``, each of which computes its ``_logits`` from the encoder's output."""

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.distilbert = DistilBertModel(config)

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None,
                output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs) -> ModelOutput:
        """Encode, score with the head and, given ``labels``, compute the loss (``-100`` labels ignored)."""
        encoded = self._encode(locals())
        return self._scored_output(self._logits(encoded), labels, encoded, return_dict)


class DistilBertForMaskedLM(_Heads):
    _tied_weights_keys = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}
    _output_class = MaskedLMOutput

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.activation = get_activation(config.activation)
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.vocab_projector

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.vocab_projector = value

    def _logits(self, encoded: BaseModelOutput) -> torch.Tensor:
        x = self.vocab_layer_norm(self.activation(self.vocab_transform(encoded.last_hidden_state)))
        return self.vocab_projector(x)


class DistilBertForSequenceClassification(_Heads):
    """First token → pre_classifier → ReLU → dropout → classifier."""

    _output_class = SequenceClassifierOutput

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, self._num_scores())
        self.dropout = nn.Dropout(config.seq_classif_dropout)
        self.post_init()

    def _logits(self, encoded: BaseModelOutput) -> torch.Tensor:
        pooled = torch.relu(self.pre_classifier(encoded.last_hidden_state[:, 0]))
        return self.classifier(self.dropout(pooled))


class DistilBertForMultipleChoice(DistilBertForSequenceClassification):
    """The sequence classifier's layers with one score per choice; the scores of a question's choices are its
    row of ``(batch, num_choices)`` logits, cross-entropy against ``labels``."""

    _output_class = MultipleChoiceModelOutput

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None,
                output_attentions=None, output_hidden_states=None, return_dict=None,
                **kwargs) -> MultipleChoiceModelOutput:
        """Score every choice; inputs are ``(batch, num_choices, sequence_length)``, ``labels`` ``(batch,)``."""
        return self._multiple_choice_output(locals())


class DistilBertForTokenClassification(_Heads):
    """Every token → dropout → classifier."""

    _output_class = TokenClassifierOutput

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.post_init()

    def _logits(self, encoded: BaseModelOutput) -> torch.Tensor:
        return self.classifier(self.dropout(encoded.last_hidden_state))


class DistilBertForQuestionAnswering(_Heads):
    def __init__(self, config: DistilBertConfig):
        if config.num_labels != 2:
            raise ValueError(f"config.num_labels should be 2 for question answering, not {config.num_labels}.")
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.qa_dropout)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, start_positions=None,
                end_positions=None, position_ids=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs) -> QuestionAnsweringModelOutput:
        """Encode and score each token as the answer's start and end; the loss needs both positions."""
        encoded = self._encode(locals())
        logits = self.qa_outputs(self.dropout(encoded.last_hidden_state))  # (batch, seq, 2)
        return self._span_output(logits, start_positions, end_positions, encoded, return_dict)


register("distilbert", DistilBertConfig, base=DistilBertModel, masked_lm=DistilBertForMaskedLM,
         sequence_classification=DistilBertForSequenceClassification,
         token_classification=DistilBertForTokenClassification, question_answering=DistilBertForQuestionAnswering,
         multiple_choice=DistilBertForMultipleChoice, pretraining=DistilBertForMaskedLM)

"""BERT and RoBERTa: one encoder, two embedding rules, their task heads.

Module names mirror the checkpoints (``bert.encoder.layer.0.attention.self.query.weight``), so
weights load with no renaming. RoBERTa differs from BERT only in how position ids are made
(counted from ``padding_idx + 1``, skipping padding) and in the shape of its heads.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.modeling.activations import get_activation
from pretrained.modeling.embeddings import PositionIds
from pretrained.modeling.encoder import (
    EncoderIntermediate,
    EncoderPreTrainedModel,
    LayerStack,
    QueryKeyValueSelfAttention,
)
from pretrained.modeling.losses import token_classification_loss
from pretrained.modeling.outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from pretrained.models.auto import register


class BertConfig(PretrainedConfig):
    model_type = "bert"

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, hidden_act: str = "gelu",
                 hidden_dropout_prob: float = 0.1, attention_probs_dropout_prob: float = 0.1,
                 max_position_embeddings: int = 512, type_vocab_size: int = 2, initializer_range: float = 0.02,
                 layer_norm_eps: float = 1e-12, pad_token_id: int | None = 0, use_cache: bool = True,
                 classifier_dropout: float | None = None, is_decoder: bool = False,
                 add_cross_attention: bool = False, bos_token_id: int | None = None,
                 eos_token_id: int | None = None, tie_word_embeddings: bool = True, **kwargs: Any) -> None:
        self._store_arguments(locals())
        super().__init__(**kwargs)


class RobertaConfig(BertConfig):
    model_type = "roberta"

    def __init__(self, vocab_size: int = 50265, pad_token_id: int | None = 1, bos_token_id: int | None = 0,
                 eos_token_id: int | None = 2, **kwargs: Any) -> None:
        super().__init__(vocab_size=vocab_size, pad_token_id=pad_token_id, bos_token_id=bos_token_id,
                         eos_token_id=eos_token_id, **kwargs)


# --- the encoder ---------------------------------------------------------------------------------------


class BertEmbeddings(PositionIds, nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        # RoBERTa counts positions from padding_idx + 1 and gives padding the padding position.
        self.roberta_positions = config.model_type == "roberta"
        self.padding_idx = config.pad_token_id
        self._init_position_ids(config.max_position_embeddings)

    def _init_buffers(self, device: torch.device | str) -> None:
        super()._init_buffers(device)
        self.register_buffer("token_type_ids", torch.zeros_like(self.position_ids), persistent=False)

    def forward(self, input_ids: torch.Tensor | None = None, token_type_ids: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, seq = inputs_embeds.shape[:2]
        if position_ids is None:
            if not self.roberta_positions:
                position_ids = self.position_ids[:, :seq]
            elif input_ids is not None:
                keep = input_ids.ne(self.padding_idx).int()
                position_ids = torch.cumsum(keep, dim=1) * keep + self.padding_idx
            else:
                position_ids = self.position_ids[:, self.padding_idx + 1 : seq + self.padding_idx + 1]
        if token_type_ids is None:
            token_type_ids = self.token_type_ids[:, :seq].expand(batch, seq)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(QueryKeyValueSelfAttention):
    """BERT's self-attention: ``query`` / ``key`` / ``value`` with biases."""


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig, in_size: int | None = None):
        super().__init__()
        self.dense = nn.Linear(in_size or config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        out, weights = self.self(hidden, mask, output_attentions)
        return self.output(out, hidden), weights


class BertIntermediate(EncoderIntermediate):
    """``act(dense(x))``, the first half of BERT's feed-forward block."""


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertSelfOutput(config, in_size=config.intermediate_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        attended, weights = self.attention(hidden, mask, output_attentions)
        return self.output(self.intermediate(attended), attended), weights


class BertEncoder(LayerStack):
    def __init__(self, config: BertConfig):
        super().__init__([BertLayer(config) for _ in range(config.num_hidden_layers)])


class BertPooler(nn.Module):
    """``tanh(dense(hidden[:, 0]))``: the first token's state, as the sentence vector."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))


class BertPreTrainedModel(EncoderPreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"
    _no_split_modules = ["BertEmbeddings", "BertLayer"]
    _encoder_args = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
                     "output_attentions", "output_hidden_states")

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, (BertLMPredictionHead, RobertaLMHead)):
            module.bias.zero_()  # the decoder's bias: zeroed also when this module alone is initialised


class BertModel(BertPreTrainedModel):
    """The bare encoder: ``last_hidden_state`` and, with the pooler, ``pooler_output``."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPooling:
        hidden, all_hidden, all_weights = self._run_encoder(
            self.encoder, attention_mask, output_attentions, output_hidden_states, input_ids=input_ids,
            token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled,
                                         hidden_states=all_hidden, attentions=all_weights)
        return self._outputs(out, return_dict)


# --- heads -------------------------------------------------------------------------------------------------


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """transform → decoder over the vocabulary; the decoder's bias also stands here as ``bias``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = self.decoder.bias  # one bias under two names, as in the checkpoints

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden))


class BertOnlyMLMHead(nn.Sequential):
    """The prediction head alone, under ``predictions`` (the checkpoints' ``cls.predictions.*`` keys)."""

    def __init__(self, config: BertConfig):
        super().__init__(OrderedDict(predictions=BertLMPredictionHead(config)))


class BertOnlyNSPHead(nn.Module):
    """The next-sentence scores from the pooled first token, under ``seq_relationship``."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled)


class BertPreTrainingHeads(nn.Module):
    """Both pre-training heads: masked-LM ``predictions`` on every token, next-sentence
    ``seq_relationship`` on the pooled first token."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, hidden: torch.Tensor, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictions(hidden), self.seq_relationship(pooled)


@dataclass
class BertForPreTrainingOutput(ModelOutput):
    """:class:`BertForPreTraining`'s output: vocabulary scores at every position, next-sentence scores per
    pair, and the sum of both losses when both kinds of labels are given."""

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class RobertaLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = self.decoder.bias

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(nn.functional.gelu(self.dense(hidden))))


def _classifier_dropout(config: BertConfig) -> float:
    """Dropout before a classifier: ``classifier_dropout``, or else the hidden dropout."""
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class RobertaClassificationHead(nn.Module):
    """dense → tanh → out_proj on the first token, with dropout before each projection."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(self.dense(self.dropout(hidden[:, 0])))
        return self.out_proj(self.dropout(x))


class _EncoderHeads(BertPreTrainedModel):
    """What every task head shares: the encoder under the family's prefix, built first, and one forward for
    the heads scored against ``labels``, each of which computes its ``_logits`` from the encoder's output."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = False):
        super().__init__(config)
        setattr(self, self.base_model_prefix, BertModel(config, add_pooling_layer=add_pooling_layer))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs: Any) -> ModelOutput:
        """Encode, score with the head and, given ``labels``, compute the loss (``-100`` labels ignored)."""
        encoded = self._encode(locals())
        return self._scored_output(self._logits(encoded), labels, encoded, return_dict)


class _MaskedLM(_EncoderHeads):
    """A masked-LM head module (``_lm_head()``) whose ``decoder`` shares the word embedding matrix and
    whose ``bias`` is the decoder's, under a second name."""

    _keys_to_ignore_on_load_unexpected = [r"pooler"]
    _output_class = MaskedLMOutput

    def _lm_head(self) -> nn.Module:
        raise NotImplementedError

    def get_output_embeddings(self) -> nn.Linear:
        return self._lm_head().decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        head = self._lm_head()
        head.decoder, head.bias = value, value.bias


class BertForMaskedLM(_MaskedLM):
    _aliased_weights_keys = {"cls.predictions.decoder.bias": "cls.predictions.bias"}
    _tied_weights_keys = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}
    _keys_to_ignore_on_load_unexpected = [r"pooler", r"seq_relationship"]

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.cls = BertOnlyMLMHead(config)
        self.post_init()

    def _lm_head(self) -> nn.Module:
        return self.cls.predictions

    def _logits(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.cls(encoded.last_hidden_state)


class _DropoutClassifier(_EncoderHeads):
    """Dropout then a linear classifier, on the pooled first token (``_pooled``) or on every token."""

    _pooled: ClassVar[bool] = False

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=self._pooled)
        self.dropout = nn.Dropout(self._dropout_rate(config))
        self.classifier = nn.Linear(config.hidden_size, self._num_scores())
        self.post_init()

    def _dropout_rate(self, config: BertConfig) -> float:
        return _classifier_dropout(config)

    def _logits(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        states = encoded.pooler_output if self._pooled else encoded.last_hidden_state
        return self.classifier(self.dropout(states))


class BertForSequenceClassification(_DropoutClassifier):
    """Pooled first token → dropout → linear; loss by ``problem_type`` (regression / single / multi-label)."""

    _pooled = True
    _output_class = SequenceClassifierOutput


class BertForTokenClassification(_DropoutClassifier):
    """Every token → dropout → linear; cross-entropy per token."""

    _keys_to_ignore_on_load_unexpected = [r"pooler"]
    _output_class = TokenClassifierOutput


class BertForMultipleChoice(_DropoutClassifier):
    """Each choice encoded with its question → pooled first token → dropout → one score; the scores of a
    question's choices are its row of ``(batch, num_choices)`` logits, cross-entropy against ``labels``."""

    _pooled = True
    _output_class = MultipleChoiceModelOutput

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, output_attentions=None, output_hidden_states=None,
                return_dict=None, **kwargs: Any) -> MultipleChoiceModelOutput:
        """Score every choice; inputs are ``(batch, num_choices, sequence_length)``, ``labels`` ``(batch,)``."""
        return self._multiple_choice_output(locals())


class BertForNextSentencePrediction(_EncoderHeads):
    """Pooled first token → two scores: whether sentence B follows sentence A (0) or is random (1)."""

    _output_class = NextSentencePredictorOutput

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=True)
        self.cls = BertOnlyNSPHead(config)
        self.post_init()

    def _logits(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.cls(encoded.pooler_output)


class BertForPreTraining(_MaskedLM):
    """BERT's two pre-training heads at once: masked LM on every token and next-sentence prediction on the
    pooled first token; the loss, given ``labels`` and ``next_sentence_label``, is the sum of both."""

    _aliased_weights_keys = BertForMaskedLM._aliased_weights_keys
    _tied_weights_keys = BertForMaskedLM._tied_weights_keys
    _keys_to_ignore_on_load_unexpected = []

    def __init__(self, config: BertConfig):
        super().__init__(config, add_pooling_layer=True)
        self.cls = BertPreTrainingHeads(config)
        self.post_init()

    def _lm_head(self) -> nn.Module:
        return self.cls.predictions

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, next_sentence_label=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs: Any) -> BertForPreTrainingOutput:
        """Encode and score with both heads; ``labels`` are per token (``-100`` ignored), ``next_sentence_label``
        per pair, and the loss is computed only when both are given."""
        encoded = self._encode(locals())
        tokens, pairs = self.cls(encoded.last_hidden_state, encoded.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = token_classification_loss(tokens, labels) + token_classification_loss(pairs, next_sentence_label)
        return self._head_output(BertForPreTrainingOutput, loss, encoded, return_dict, prediction_logits=tokens,
                                 seq_relationship_logits=pairs)


class BertForQuestionAnswering(_EncoderHeads):
    _keys_to_ignore_on_load_unexpected = [r"pooler"]

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs: Any) -> QuestionAnsweringModelOutput:
        """Encode and score each token as the answer's start and end; the loss needs both positions."""
        encoded = self._encode(locals())
        logits = self.qa_outputs(encoded.last_hidden_state)  # (batch, seq, 2)
        return self._span_output(logits, start_positions, end_positions, encoded, return_dict)


# --- RoBERTa: the same encoder under the ``roberta`` prefix, with its own heads --------------------------


class RobertaPreTrainedModel(BertPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"


class RobertaModel(RobertaPreTrainedModel, BertModel):
    pass


class RobertaForMaskedLM(RobertaPreTrainedModel, _MaskedLM):
    _aliased_weights_keys = {"lm_head.decoder.bias": "lm_head.bias"}
    _tied_weights_keys = {"lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight"}

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.lm_head = RobertaLMHead(config)
        self.post_init()

    def _lm_head(self) -> nn.Module:
        return self.lm_head

    def _logits(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.lm_head(encoded.last_hidden_state)


class RobertaForSequenceClassification(RobertaPreTrainedModel, _EncoderHeads):
    """dense → tanh → out_proj on the first token (no pooler); loss by ``problem_type``."""

    _keys_to_ignore_on_load_unexpected = [r"pooler"]
    _output_class = SequenceClassifierOutput

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.classifier = RobertaClassificationHead(config)
        self.post_init()

    def _logits(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.classifier(encoded.last_hidden_state)


class RobertaForMultipleChoice(RobertaPreTrainedModel, BertForMultipleChoice):
    """BERT's multiple-choice head; its dropout is the hidden dropout (RoBERTa ignores ``classifier_dropout``
    here)."""

    def _dropout_rate(self, config: RobertaConfig) -> float:
        return config.hidden_dropout_prob


class RobertaForTokenClassification(RobertaPreTrainedModel, BertForTokenClassification):
    pass


class RobertaForQuestionAnswering(RobertaPreTrainedModel, BertForQuestionAnswering):
    pass


register("bert", BertConfig, base=BertModel, masked_lm=BertForMaskedLM,
         sequence_classification=BertForSequenceClassification,
         token_classification=BertForTokenClassification, question_answering=BertForQuestionAnswering,
         multiple_choice=BertForMultipleChoice, pretraining=BertForPreTraining,
         next_sentence_prediction=BertForNextSentencePrediction)
# RoBERTa was pre-trained on masked LM alone, so its pre-training model is the masked LM (as in transformers).
register("roberta", RobertaConfig, base=RobertaModel, masked_lm=RobertaForMaskedLM,
         sequence_classification=RobertaForSequenceClassification,
         token_classification=RobertaForTokenClassification, question_answering=RobertaForQuestionAnswering,
         multiple_choice=RobertaForMultipleChoice, pretraining=RobertaForMaskedLM)

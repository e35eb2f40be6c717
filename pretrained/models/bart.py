"""BART: a post-LayerNorm encoder-decoder with learned positions and a LayerNorm after the embeddings.

The encoder and decoder share one token embedding (``model.shared``), and the language-modelling head is
tied to it. The stacks, layers and attention are the shared ones of :mod:`pretrained.modeling.seq2seq`;
this file holds the config, the checkpoint layout and the task heads (conditional generation, sequence
classification pooled at the last ``</s>``, extractive question answering). mBART and Marian reuse the
config and heads with other flags (``models/mbart.py``, ``models/marian.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.generation.mixin import GenerationMixin
from pretrained.modeling.decoder import causal_lm_loss
from pretrained.modeling.embeddings import InputEmbeddings, OutputEmbeddings
from pretrained.modeling.outputs import (
    CausalLMOutputWithCrossAttentions,
)
from pretrained.modeling.seq2seq import (
    ScaledWordEmbedding,
    Seq2SeqDecoder,
    Seq2SeqEncoder,
    Seq2SeqPreTrainedModel,
    shift_tokens_right,  # noqa: F401 (public here too, as in transformers' modeling_bart)
)
from pretrained.modeling.seq2seq_heads import (
    Seq2SeqClassificationHead,
    Seq2SeqClassifierForward,
    Seq2SeqLMForward,
    Seq2SeqModelForward,
    Seq2SeqQAForward,
    decoder_inputs,
    keep_logits_positions,
)
from pretrained.models.auto import register


class BartConfig(PretrainedConfig):
    """Configuration of a BART model (field names and defaults as in transformers)."""

    model_type = "bart"
    attribute_map = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    _default_num_labels = 3  # BART's classification checkpoints (MNLI) have three classes

    def __init__(
        self,
        vocab_size: int = 50265,
        max_position_embeddings: int = 1024,
        encoder_layers: int = 12,
        encoder_ffn_dim: int = 4096,
        encoder_attention_heads: int = 16,
        decoder_layers: int = 12,
        decoder_ffn_dim: int = 4096,
        decoder_attention_heads: int = 16,
        encoder_layerdrop: float = 0.0,
        decoder_layerdrop: float = 0.0,
        activation_function: str = "gelu",
        d_model: int = 1024,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        init_std: float = 0.02,
        classifier_dropout: float = 0.0,
        scale_embedding: bool = False,
        use_cache: bool = True,
        pad_token_id: int | None = 1,
        bos_token_id: int | None = 0,
        eos_token_id: int | list[int] | None = 2,
        is_encoder_decoder: bool = True,
        decoder_start_token_id: int | None = 2,
        forced_eos_token_id: int | list[int] | None = 2,
        is_decoder: bool = False,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        self._store_arguments(locals())
        kwargs["is_encoder_decoder"] = is_encoder_decoder  # a base-class field: stored by the base
        if kwargs.get("id2label") is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = self._default_num_labels
        super().__init__(**kwargs)


class BartEncoder(Seq2SeqEncoder):
    """BART's encoder: learned positions, ``layernorm_embedding``, post-LayerNorm layers."""


class BartDecoder(Seq2SeqDecoder):
    """BART's decoder: learned positions, ``layernorm_embedding``, post-LayerNorm layers."""


class BartPreTrainedModel(Seq2SeqPreTrainedModel):
    """Shared settings of the BART models."""

    config_class = BartConfig
    _no_split_modules = ["EncoderLayer", "DecoderLayer"]


class BartModel(Seq2SeqModelForward, BartPreTrainedModel):
    """The bare encoder-decoder: the decoder's last hidden states (and the encoder's output)."""

    _aliased_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }
    encoder_class: type[Seq2SeqEncoder] = BartEncoder
    decoder_class: type[Seq2SeqDecoder] = BartDecoder

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = ScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, scale)
        self.encoder = self.encoder_class(config, self.shared)
        self.decoder = self.decoder_class(config, self.shared)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        if not isinstance(value, ScaledWordEmbedding):
            # A plain table (resize_token_embeddings makes one) keeps the model's embedding scale.
            with torch.device("meta"):
                scaled = ScaledWordEmbedding(value.num_embeddings, value.embedding_dim, value.padding_idx,
                                             getattr(self.shared, "embed_scale", 1.0))
            scaled.weight = value.weight
            value = scaled
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def _default_decoder_inputs(self, input_ids: torch.Tensor | None) -> torch.Tensor:
        """Without decoder inputs, BART denoises: the decoder reads ``input_ids`` shifted right."""
        return decoder_inputs(self, None, None, input_ids)


class BartForConditionalGeneration(Seq2SeqLMForward, GenerationMixin, BartPreTrainedModel):
    """BART with its language-modelling head (tied to ``model.shared``) plus ``final_logits_bias``:
    summarization, translation, denoising."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}
    _aliased_weights_keys = {
        "model.encoder.embed_tokens.weight": "model.shared.weight",
        "model.decoder.embed_tokens.weight": "model.shared.weight",
    }
    _keys_to_ignore_on_load_missing = ["final_logits_bias"]
    model_class: type[BartModel] = BartModel

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = self.model_class(config)
        vocab = self.model.decoder.embed_tokens.num_embeddings  # (the target vocabulary: Marian may have its own)
        self.register_buffer("final_logits_bias", torch.zeros((1, vocab)))
        self.lm_head = nn.Linear(config.d_model, vocab, bias=False)
        self.post_init()

    def resize_token_embeddings(self, new_num_tokens: int, pad_to_multiple_of: int | None = None) -> nn.Embedding:
        new = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of)
        self._resize_final_logits_bias(new.num_embeddings)
        return new

    def _lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.lm_head(hidden) + self.final_logits_bias.to(hidden.device)


class BartClassificationHead(Seq2SeqClassificationHead):
    """``out_proj(tanh(dense(x)))`` with dropout before each projection (the shared head, BART's name)."""


class BartForSequenceClassification(Seq2SeqClassifierForward, BartPreTrainedModel):
    """BART with a classification head on the decoder's state at the last ``</s>`` (MNLI, zero-shot)."""

    _aliased_weights_keys = BartForConditionalGeneration._aliased_weights_keys
    model_class: type[BartModel] = BartModel

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = self.model_class(config)
        self.classification_head = BartClassificationHead(config.d_model, config.d_model, config.num_labels,
                                                          config.classifier_dropout)
        self.post_init()


class BartForQuestionAnswering(Seq2SeqQAForward, BartPreTrainedModel):
    """BART with a span head (``qa_outputs``) on the decoder's states: answer start and end scores."""

    _aliased_weights_keys = BartForConditionalGeneration._aliased_weights_keys
    model_class: type[BartModel] = BartModel

    def __init__(self, config: BartConfig) -> None:
        config.num_labels = 2
        super().__init__(config)
        self.num_labels = 2
        self.model = self.model_class(config)
        self.qa_outputs = nn.Linear(config.d_model, 2)
        self.post_init()


class BartDecoderWrapper(BartPreTrainedModel):
    """Holds a decoder under ``decoder`` so a decoder-only head reads a full checkpoint's ``model.decoder.*``."""

    decoder_class: type[Seq2SeqDecoder] = BartDecoder

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.decoder = self.decoder_class(config)
        self.post_init()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.decoder(*args, **kwargs)


class BartForCausalLM(InputEmbeddings, OutputEmbeddings, GenerationMixin, BartPreTrainedModel):
    """BART's decoder alone with the language-modelling head (tied to its token embedding): a causal LM,
    optionally attending to ``encoder_hidden_states`` (as in transformers' ``EncoderDecoderModel``)."""

    _tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}
    input_embeddings_path = "model.decoder.embed_tokens"
    wrapper_class: type[BartDecoderWrapper] = BartDecoderWrapper

    def __init__(self, config: BartConfig) -> None:
        config.is_decoder = True
        config.is_encoder_decoder = False
        super().__init__(config)
        self.model = self.wrapper_class(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def get_decoder(self) -> nn.Module:
        return self.model.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithCrossAttentions | tuple:
        """Next-token logits; with ``labels`` the cross-entropy against them as given (transformers 5 does
        not shift them here: ``labels[:, i]`` is the target of position ``i``)."""
        return_dict = kwargs.pop("return_dict", None)
        kwargs.pop("position_ids", None)  # positions follow the cache, as in the reference
        out = self.model.decoder(input_ids=input_ids, attention_mask=attention_mask,
                                 encoder_hidden_states=encoder_hidden_states,
                                 encoder_attention_mask=encoder_attention_mask, past_key_values=past_key_values,
                                 inputs_embeds=inputs_embeds, use_cache=use_cache, return_dict=True, **kwargs)
        logits = self.lm_head(keep_logits_positions(out.last_hidden_state, logits_to_keep))
        loss = causal_lm_loss(logits, labels, shift_labels=labels) if labels is not None else None
        result = CausalLMOutputWithCrossAttentions(
            loss=loss, logits=logits, past_key_values=out.past_key_values, hidden_states=out.hidden_states,
            attentions=out.attentions, cross_attentions=out.cross_attentions)
        return self._outputs(result, return_dict)


register(
    "bart",
    BartConfig,
    base=BartModel,
    seq2seq_lm=BartForConditionalGeneration,
    sequence_classification=BartForSequenceClassification,
    question_answering=BartForQuestionAnswering,
    causal_lm=BartForCausalLM,
)

"""The T5 family: T5 (v1.0 and v1.1 / flan-T5), mT5 and UMT5 in one file.

An encoder and a decoder of pre-norm blocks (RMSNorm without bias, no learned absolute positions); the
attention scores are not scaled by ``1/sqrt(d)`` and get a learned bias per head for each bucket of
relative distance. mT5 and UMT5 are config variants (:mod:`pretrained.models.t5_config` tells them apart)
whose classes are T5's under their own names.

Parameter names are the checkpoint keys (``encoder.block.0.layer.0.SelfAttention.q.weight``). The configs
live in :mod:`pretrained.models.t5_config` (imported here, so ``pretrained.models.t5.T5Config`` works).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pretrained.generation.mixin import GenerationMixin
from pretrained.modeling.activations import get_activation
from pretrained.modeling.attention import attention_function, merge_heads, split_heads
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.cache import EncoderDecoderCache, StaticCache
from pretrained.modeling.checkpointing import call_layer
from pretrained.modeling.decoder import cache_positions, requested_cache
from pretrained.modeling.embeddings import InputEmbeddings, check_token_inputs
from pretrained.modeling.losses import token_classification_loss
from pretrained.modeling.masks import boolean_padding_mask, explicit_causal_mask
from pretrained.modeling.norms import RMSNorm
from pretrained.modeling.outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    TokenClassifierOutput,
    output_flag,
)
from pretrained.modeling.seq2seq import (
    clamp_fp16,
    prepare_encoder_decoder_cache,
    relative_position_bucket,
    shift_tokens_right,
)
from pretrained.modeling.seq2seq_heads import (
    EncoderDecoderAccess,
    Seq2SeqClassificationHead,
    Seq2SeqClassifierForward,
    Seq2SeqLMForward,
    Seq2SeqModelForward,
    Seq2SeqQAForward,
)
from pretrained.models.auto import register
from pretrained.models.t5_config import MT5Config, T5Config, UMT5Config

# --------------------------------------------------------------------------------------------------------
# layers


class T5LayerNorm(RMSNorm):
    """T5's layer norm: RMSNorm (scale only, no mean subtraction, no bias) whose output takes the weight's
    half-precision dtype, so the float32 residual that a float32 ``wo`` leaves goes back to half."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            shape = (hidden_states.shape[-1],)
            normed = F.rms_norm(hidden_states.float(), shape, None, self.variance_epsilon)
            return self.weight * normed.to(self.weight.dtype)
        return super().forward(hidden_states)


class T5DenseActDense(nn.Module):
    """Feed-forward ``wo(act(wi(x)))``."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = get_activation(config.dense_act_fn)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(self.act(self.wi(hidden)))
        return self.wo(hidden.to(self.wo.weight.dtype) if self.wo.weight.is_floating_point() else hidden)


class T5DenseGatedActDense(nn.Module):
    """Gated feed-forward ``wo(act(wi_0(x)) * wi_1(x))`` (T5 v1.1)."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = get_activation(config.dense_act_fn)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = self.dropout(self.act(self.wi_0(hidden)) * self.wi_1(hidden))
        # ``wo`` may be kept in float32 while the rest runs in half precision (_keep_in_fp32_modules).
        return self.wo(hidden.to(self.wo.weight.dtype) if self.wo.weight.is_floating_point() else hidden)


class T5LayerFF(nn.Module):
    """Pre-norm residual feed-forward sub-layer."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(config) if config.is_gated_act else T5DenseActDense(config)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.dropout(self.DenseReluDense(self.layer_norm(hidden)))


class T5Attention(nn.Module):
    """Unscaled multi-head attention with an additive relative position bias.

    Self-attention with ``has_relative_attention_bias`` computes the bias (masked: ``-inf``-like where
    ``allowed`` is False) and returns it, so the layers above can reuse it; cross-attention has no
    position bias, only the encoder's padding mask.
    """

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, layer_idx: int, is_decoder: bool):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_decoder = is_decoder
        self.has_relative_attention_bias = has_relative_attention_bias
        self.n_heads = config.num_heads
        self.key_value_proj_dim = config.d_kv
        self.dropout = config.dropout_rate
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)

    def compute_bias(self, query_positions: torch.Tensor, key_length: int) -> torch.Tensor:
        """``(1, heads, q_len, key_length)`` bias for queries at ``query_positions`` (their cache slots)."""
        keys = torch.arange(key_length, device=query_positions.device)
        buckets = relative_position_bucket(
            keys[None, :] - query_positions[:, None],
            bidirectional=not self.is_decoder,
            num_buckets=self.config.relative_attention_num_buckets,
            max_distance=self.config.relative_attention_max_distance,
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def forward(
        self,
        hidden: torch.Tensor,
        allowed: torch.Tensor | None,
        position_bias: torch.Tensor | None = None,
        key_value_states: torch.Tensor | None = None,
        cache: Any = None,
        query_positions: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        query = split_heads(self.q(hidden), self.n_heads)  # (batch, heads, q_len, d_kv)
        cross = key_value_states is not None
        if cross and isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            key, value = layer.keys, layer.values  # projected from the encoder output at the first step
        else:
            source = key_value_states if cross else hidden
            key, value = split_heads(self.k(source), self.n_heads), split_heads(self.v(source), self.n_heads)
            if cross:
                if isinstance(cache, EncoderDecoderCache):
                    cache.update_cross(key, value, self.layer_idx)
            elif cache is not None:  # (written at the queries' slots: a static cache is indexed by them)
                key, value = cache.update(key, value, self.layer_idx, {"cache_position": query_positions})
        if position_bias is None and self.has_relative_attention_bias:
            if query_positions is None:
                query_positions = torch.arange(hidden.shape[1], device=hidden.device)
            position_bias = self.compute_bias(query_positions, key.shape[2]).to(query.dtype)
            if allowed is not None:
                position_bias = position_bias.masked_fill(~allowed, torch.finfo(query.dtype).min)
        mask = position_bias
        if mask is None and allowed is not None:  # (a layer built without bias, given none)
            mask = torch.zeros(allowed.shape, dtype=query.dtype, device=query.device)
            mask = mask.masked_fill(~allowed, torch.finfo(query.dtype).min)
        attend = attention_function(self.config._attn_implementation, output_attentions)
        out, weights = attend(query, key, value, mask, dropout=self.dropout if self.training else 0.0, scale=1.0)
        return self.o(merge_heads(out)), position_bias, weights


class T5LayerSelfAttention(nn.Module):
    """Pre-norm residual self-attention sub-layer."""

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, layer_idx: int, is_decoder: bool):
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, layer_idx, is_decoder)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden: torch.Tensor, allowed: torch.Tensor | None, position_bias: torch.Tensor | None,
                cache: Any, query_positions: torch.Tensor | None, output_attentions: bool) -> tuple:
        cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        out, bias, weights = self.SelfAttention(
            self.layer_norm(hidden), allowed, position_bias, cache=cache, query_positions=query_positions,
            output_attentions=output_attentions,
        )
        return hidden + self.dropout(out), bias, weights


class T5LayerCrossAttention(nn.Module):
    """Pre-norm residual attention over the encoder output."""

    def __init__(self, config: T5Config, layer_idx: int):
        super().__init__()
        self.EncDecAttention = T5Attention(config, False, layer_idx, is_decoder=True)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden: torch.Tensor, encoder_states: torch.Tensor, encoder_bias: torch.Tensor | None,
                cache: Any, output_attentions: bool) -> tuple:
        out, _, weights = self.EncDecAttention(
            self.layer_norm(hidden), None, encoder_bias, key_value_states=encoder_states, cache=cache,
            output_attentions=output_attentions,
        )
        return hidden + self.dropout(out), weights


class T5Block(nn.Module):
    """One encoder (self-attention, feed-forward) or decoder (self-, cross-attention, feed-forward) block."""

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, layer_idx: int, is_decoder: bool):
        super().__init__()
        self.is_decoder = is_decoder
        self.layer = nn.ModuleList([T5LayerSelfAttention(config, has_relative_attention_bias, layer_idx, is_decoder)])
        if is_decoder:
            self.layer.append(T5LayerCrossAttention(config, layer_idx))
        self.layer.append(T5LayerFF(config))

    def forward(self, hidden: torch.Tensor, allowed: torch.Tensor | None, position_bias: torch.Tensor | None,
                encoder_states: torch.Tensor | None, encoder_bias: torch.Tensor | None, cache: Any,
                query_positions: torch.Tensor | None, output_attentions: bool) -> tuple:
        hidden, position_bias, self_weights = self.layer[0](
            hidden, allowed, position_bias, cache, query_positions, output_attentions
        )
        hidden = clamp_fp16(hidden, only_if_overflowing=True)
        cross_weights = None
        if self.is_decoder and encoder_states is not None:
            hidden, cross_weights = self.layer[1](hidden, encoder_states, encoder_bias, cache, output_attentions)
            hidden = clamp_fp16(hidden, only_if_overflowing=True)
        return clamp_fp16(self.layer[-1](hidden), True), position_bias, self_weights, cross_weights


class T5Stack(InputEmbeddings, nn.Module):
    """The encoder or the decoder: embeddings (the model's shared table), blocks, final norm."""

    def __init__(self, config: T5Config, is_decoder: bool) -> None:
        super().__init__()
        self.config = config
        self.is_decoder = is_decoder
        layers = config.num_decoder_layers if is_decoder else config.num_layers
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        every = config.relative_bias_every_layer
        self.block = nn.ModuleList(
            [T5Block(config, every or i == 0, i, is_decoder) for i in range(layers)]
        )
        self.final_layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.gradient_checkpointing = False

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: Any = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        """Run the stack; the decoder takes the encoder's states and mask, and a cache when decoding."""
        config = self.config
        check_token_inputs(input_ids, inputs_embeds)
        output_attentions = output_flag(config, "output_attentions", output_attentions)
        output_hidden_states = output_flag(config, "output_hidden_states", output_hidden_states)
        return_dict = output_flag(config, "return_dict", return_dict)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, seq = inputs_embeds.shape[:2]
        device = inputs_embeds.device

        cache = None
        if self.is_decoder:
            past_key_values, use_cache = requested_cache(self, past_key_values, use_cache, kwargs)
            cache = prepare_encoder_decoder_cache(past_key_values, use_cache, wrap_self_attention_cache=False)
        elif use_cache:
            raise ValueError("use_cache=True is only possible for the decoder of a T5 model")
        self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        if cache_position is None:
            cache_position = cache_positions(self_cache, seq, device)

        if self.is_decoder:
            static = isinstance(self_cache, StaticCache)
            if self_cache is None:
                kv_len = seq
            else:
                kv_len = self_cache.get_max_cache_shape() if static else self_cache.get_seq_length() + seq
            allowed = explicit_causal_mask(attention_mask, cache_position, kv_len, not static)
        else:
            allowed = boolean_padding_mask(attention_mask)
        # The encoder's padding as one additive bias shared by every cross-attention layer.
        encoder_bias = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_allowed = boolean_padding_mask(encoder_attention_mask)
            encoder_bias = torch.zeros(encoder_allowed.shape, dtype=inputs_embeds.dtype, device=device)
            encoder_bias = encoder_bias.masked_fill(~encoder_allowed, torch.finfo(inputs_embeds.dtype).min)

        hidden = self.dropout(inputs_embeds)
        all_hidden: list[torch.Tensor] = []
        all_attn: list[torch.Tensor] = []
        all_cross: list[torch.Tensor] = []
        position_bias = None
        for block in self.block:
            if output_hidden_states:
                all_hidden.append(hidden)
            args = (hidden, allowed, position_bias, encoder_hidden_states, encoder_bias, cache,
                    cache_position, output_attentions)
            hidden, bias, weights, cross = call_layer(self, block, *args)
            if not config.relative_bias_every_layer:
                position_bias = bias  # the first layer's bias serves them all
            if output_attentions:
                all_attn.append(weights)
                if cross is not None:
                    all_cross.append(cross)
        hidden = self.dropout(self.final_layer_norm(hidden))
        if output_hidden_states:
            all_hidden.append(hidden)
        out = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden,
            past_key_values=cache if self.is_decoder and use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions and all_cross else None,
        )
        return out if return_dict else out.to_tuple()


# --------------------------------------------------------------------------------------------------------
# models


class T5PreTrainedModel(EncoderDecoderAccess, PreTrainedModel):
    """Weight initialisation, tying and decoder-input shifting shared by the T5 models."""

    config_class = T5Config
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["T5Block"]
    _keep_in_fp32_modules = ["wo"]
    # The reference never used this weight: cross-attention has no position bias.
    _keys_to_ignore_on_load_unexpected = [r"decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        factor = self.config.initializer_factor
        d_model, d_ff, d_kv = self.config.d_model, self.config.d_ff, self.config.d_kv
        if isinstance(module, RMSNorm):
            module.weight.fill_(factor)
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, factor)
        elif isinstance(module, T5ClassificationHead):
            for linear in (module.dense, module.out_proj):
                linear.weight.normal_(0.0, factor * d_model**-0.5)
                linear.bias.zero_()
        elif isinstance(module, (T5DenseActDense, T5DenseGatedActDense)):
            for name in ("wi", "wi_0", "wi_1"):
                if hasattr(module, name):
                    getattr(module, name).weight.normal_(0.0, factor * d_model**-0.5)
            module.wo.weight.normal_(0.0, factor * d_ff**-0.5)
        elif isinstance(module, T5Attention):
            module.q.weight.normal_(0.0, factor * (d_model * d_kv) ** -0.5)
            module.k.weight.normal_(0.0, factor * d_model**-0.5)
            module.v.weight.normal_(0.0, factor * d_model**-0.5)
            module.o.weight.normal_(0.0, factor * (self.config.num_heads * d_kv) ** -0.5)
            if module.has_relative_attention_bias:  # after the generic Embedding case (apply visits it first)
                module.relative_attention_bias.weight.normal_(0.0, factor * d_model**-0.5)
        elif isinstance(module, nn.Linear) and getattr(self, "lm_head", None) is module:
            module.weight.normal_(0.0, factor)
        elif isinstance(module, nn.Linear) and module in (getattr(self, "qa_outputs", None),
                                                          getattr(self, "classifier", None)):
            module.weight.normal_(0.0, factor * (d_model**-0.5 if module is getattr(self, "qa_outputs", None) else 1))
            module.bias.zero_()

    def _shift_right(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Decoder inputs from labels: ``decoder_start_token_id`` first, the labels shifted one to the right,
        ``-100`` replaced by ``pad_token_id``."""
        return shift_tokens_right(input_ids, self.config.pad_token_id,
                                  getattr(self.config, "decoder_start_token_id", None))

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """``decoder_input_ids`` for ``labels`` (used by ``DataCollatorForSeq2Seq``)."""
        return self._shift_right(labels)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        base = self.base_model
        base.shared = value
        base.encoder.embed_tokens = value
        if hasattr(base, "decoder"):
            base.decoder.embed_tokens = value


class _EncoderDecoder(T5PreTrainedModel):
    # Shared by T5Model and T5ForConditionalGeneration: the embedding table under ``shared``, used by both
    # stacks (one tensor under three names).
    _aliased_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, is_decoder=False)
        self.decoder = T5Stack(config, is_decoder=True)


class T5Model(Seq2SeqModelForward, _EncoderDecoder):
    """The bare encoder-decoder: the decoder's last hidden states."""

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.post_init()


class T5ForConditionalGeneration(Seq2SeqLMForward, GenerationMixin, _EncoderDecoder):
    """T5 with its language-model head: next-token logits of the decoder, and the loss against ``labels``."""

    _tied_weights_keys = {"lm_head.weight": "shared.weight"}
    _labels_disable_cache = False  # (a pass with labels still returns the cache, as transformers' T5 does)

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.model_dim = config.d_model
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def _lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if getattr(self.config, "scale_decoder_outputs", False):
            hidden = hidden * self.model_dim**-0.5
        return self.lm_head(hidden)


class T5EncoderModel(T5PreTrainedModel):
    """The encoder alone (the text encoder of many diffusion and retrieval models)."""

    _aliased_weights_keys = {"encoder.embed_tokens.weight": "shared.weight"}
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^lm_head\."]

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, is_decoder=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput | tuple:
        """The encoder's hidden states (keyword arguments: ``output_attentions``, ``output_hidden_states``,
        ``return_dict``)."""
        flags = {name: kwargs.get(name) for name in ("output_attentions", "output_hidden_states")}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                           return_dict=True, **flags)
        out = BaseModelOutput(out.last_hidden_state, out.hidden_states, out.attentions)
        return self._outputs(out, kwargs.get("return_dict"))


class T5ClassificationHead(Seq2SeqClassificationHead):
    """``out_proj(tanh(dense(x)))`` with dropout, on the decoder state at the last end-of-sequence token."""

    def __init__(self, config: T5Config) -> None:
        super().__init__(config.d_model, config.d_model, config.num_labels, config.classifier_dropout)


class T5ForSequenceClassification(Seq2SeqClassifierForward, T5PreTrainedModel):
    """T5 as a classifier: the decoder reads the shifted input, the head reads the last ``</s>`` position."""

    _aliased_weights_keys = {
        "transformer.encoder.embed_tokens.weight": "transformer.shared.weight",
        "transformer.decoder.embed_tokens.weight": "transformer.shared.weight",
    }

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.transformer = T5Model(config)
        self.classification_head = T5ClassificationHead(config)
        self.post_init()


class T5ForTokenClassification(T5PreTrainedModel):
    """The encoder with a linear classifier on every token (the decoder is not used)."""

    _aliased_weights_keys = {"transformer.encoder.embed_tokens.weight": "transformer.shared.weight"}
    _keys_to_ignore_on_load_unexpected = [r"(^|\.)decoder\.", r"(^|\.)lm_head\."]

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = T5EncoderModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> TokenClassifierOutput | tuple:
        """Class scores for every token; cross-entropy against ``labels`` (``-100`` ignored). Keyword
        arguments as :meth:`T5EncoderModel.forward`'s."""
        return_dict = kwargs.pop("return_dict", None)
        encoded = self.transformer(input_ids, attention_mask, inputs_embeds, return_dict=True, **kwargs)
        logits = self.classifier(self.dropout(encoded.last_hidden_state))
        loss = token_classification_loss(logits, labels) if labels is not None else None
        return self._head_output(TokenClassifierOutput, loss, encoded, return_dict, logits=logits)


class T5ForQuestionAnswering(Seq2SeqQAForward, _EncoderDecoder):
    """The encoder-decoder with start / end scores (``qa_outputs``) over the decoder positions; the decoder
    reads the shifted input unless given its own."""

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.model_dim = config.d_model
        self.num_labels = config.num_labels
        self.qa_outputs = nn.Linear(config.d_model, config.num_labels)
        self.post_init()


# --------------------------------------------------------------------------------------------------------
# mT5 and UMT5: the same modules under their own names


def _renamed(prefix: str, config_class: type[T5Config]) -> tuple[type, ...]:
    classes = []
    for base in (T5PreTrainedModel, T5Model, T5ForConditionalGeneration, T5EncoderModel,
                 T5ForSequenceClassification, T5ForTokenClassification, T5ForQuestionAnswering):
        name = base.__name__.replace("T5", prefix, 1)
        doc = f"{prefix} version of :class:`{base.__name__}` (same modules and checkpoint keys)."
        classes.append(type(name, (base,), {"config_class": config_class, "__doc__": doc, "__module__": __name__,
                                            "__qualname__": name}))
    return tuple(classes)


(MT5PreTrainedModel, MT5Model, MT5ForConditionalGeneration, MT5EncoderModel, MT5ForSequenceClassification,
 MT5ForTokenClassification, MT5ForQuestionAnswering) = _renamed("MT5", MT5Config)
(UMT5PreTrainedModel, UMT5Model, UMT5ForConditionalGeneration, UMT5EncoderModel, UMT5ForSequenceClassification,
 UMT5ForTokenClassification, UMT5ForQuestionAnswering) = _renamed("UMT5", UMT5Config)

for _type, _config, _classes in (
    ("t5", T5Config, (T5Model, T5ForConditionalGeneration, T5EncoderModel, T5ForSequenceClassification,
                      T5ForTokenClassification, T5ForQuestionAnswering)),
    ("mt5", MT5Config, (MT5Model, MT5ForConditionalGeneration, MT5EncoderModel, MT5ForSequenceClassification,
                        MT5ForTokenClassification, MT5ForQuestionAnswering)),
    ("umt5", UMT5Config, (UMT5Model, UMT5ForConditionalGeneration, UMT5EncoderModel, UMT5ForSequenceClassification,
                          UMT5ForTokenClassification, UMT5ForQuestionAnswering)),
):
    register(_type, _config, base=_classes[0], seq2seq_lm=_classes[1], sequence_classification=_classes[3],
             token_classification=_classes[4], question_answering=_classes[5])
del _type, _config, _classes

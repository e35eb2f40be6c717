"""Pieces shared by the encoder-decoder families (BART, mBART, Marian).

* :func:`shift_tokens_right` makes decoder inputs from labels (start token first, ``-100`` as padding).
* :class:`LearnedPositionalEmbedding` (BART's table, offset by two rows) and
  :class:`SinusoidalPositionalEmbedding` (Marian's fixed table, computed, never saved);
  :func:`relative_position_bucket` (T5's relative distances, bucketed for its learned position bias).
* :class:`Seq2SeqAttention` is one attention module for encoder self-attention, causal decoder
  self-attention and cross-attention; the last reuses its keys / values from an
  :class:`~pretrained.modeling.cache.EncoderDecoderCache` after the first decoder step.
* :class:`EncoderLayer` / :class:`DecoderLayer`: post-LayerNorm (BART, Marian) or pre-LayerNorm (mBART).
* :class:`Seq2SeqEncoder` / :class:`Seq2SeqDecoder`: the stacks; a family subclass sets which optional
  norms and which positions it has (their module names are the checkpoint keys).
* :class:`Seq2SeqPreTrainedModel`: initialisation, encoder / decoder access, decoder inputs from labels and
  ``final_logits_bias``; the public forwards are :mod:`pretrained.modeling.seq2seq_heads`' (T5's too).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pretrained.modeling.activations import get_activation
from pretrained.modeling.attention import attention_function, merge_heads, padding_mask, split_heads
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.cache import Cache, DynamicCache, EncoderDecoderCache
from pretrained.modeling.checkpointing import call_layer
from pretrained.modeling.decoder import build_masks, cache_positions, init_decoder_weights, requested_cache
from pretrained.modeling.embeddings import InputEmbeddings, check_token_inputs
from pretrained.modeling.outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    output_flag,
)
from pretrained.modeling.seq2seq_heads import EncoderDecoderAccess


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None
                       ) -> torch.Tensor:
    """Decoder inputs for teacher forcing: ``decoder_start_token_id`` then ``input_ids`` shifted one step to
    the right (the last token dropped); ``-100`` (ignored labels) becomes ``pad_token_id``."""
    if decoder_start_token_id is None:
        raise ValueError("config.decoder_start_token_id must be set to make decoder inputs from labels")
    if pad_token_id is None:
        raise ValueError("config.pad_token_id must be set to make decoder inputs from labels")
    shifted = input_ids.new_empty(input_ids.shape)
    shifted[..., 1:] = input_ids[..., :-1]  # (any leading dims: T5's shift takes a single sequence too)
    shifted[..., 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == -100, pad_token_id)


class ScaledWordEmbedding(nn.Embedding):
    """A token embedding multiplied by ``embed_scale`` (``sqrt(d_model)`` with ``scale_embedding``)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, embed_scale: float = 1.0):
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.embed_scale = embed_scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeds = super().forward(input_ids)
        return embeds if self.embed_scale == 1.0 else embeds * self.embed_scale


class LearnedPositionalEmbedding(nn.Embedding):
    """BART's learned positions: the table has two extra leading rows (fairseq's padding offset), so
    position ``p`` reads row ``p + 2``."""

    offset = 2

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__(num_positions + self.offset, embedding_dim)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return super().forward(positions + self.offset)


def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """Marian's fixed table: sines of every even frequency in the first half of each row, cosines of the
    odd ones in the second (not interleaved). Computed in float64, as the reference does with numpy."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)
    angles = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)  # (positions, dim)
    half = -(-dim // 2)
    table = torch.empty(num_positions, dim, dtype=torch.float64)
    table[:, :half] = torch.sin(angles[:, 0::2])
    table[:, half:] = torch.cos(angles[:, 1::2])
    return table.float()


class SinusoidalPositionalEmbedding(nn.Module):
    """Fixed sinusoidal positions (Marian). The table is a non-persistent buffer named ``weight``: computed
    at build time (or by ``_init_buffers`` after a meta build), never written to or read from checkpoints."""

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.num_positions, self.embedding_dim = num_positions, embedding_dim
        self.register_buffer("weight", sinusoidal_table(num_positions, embedding_dim), persistent=False)

    def _init_buffers(self, device: Any = None) -> None:
        self.weight = sinusoidal_table(self.num_positions, self.embedding_dim).to(device or "cpu")

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return F.embedding(positions, self.weight)


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """T5's relative positions: the bucket of each ``key_position - query_position``: exact for small distances, then logarithmic
    bins up to ``max_distance`` (everything further shares the last bin). Bidirectional (encoder) attention
    spends half the buckets on keys after the query; causal attention sees only keys before it."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    exact = num_buckets // 2
    # The float computation matches the reference bit for bit, so distances land in the same bins.
    log_ratio = torch.log(distance.float() / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (num_buckets - exact)).long()).clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < exact, distance, far)


class Seq2SeqAttention(nn.Module):
    """Multi-head attention with ``q_proj`` / ``k_proj`` / ``v_proj`` / ``out_proj`` (all with bias).

    Self-attention when ``key_value_states`` is ``None`` (causal in the decoder: the caller's mask says so),
    cross-attention over ``key_value_states`` otherwise. With an :class:`EncoderDecoderCache`, the
    cross-attention keys / values are projected once and read back on later steps.
    """

    def __init__(self, config: Any, num_heads: int, layer_idx: int, is_causal: bool = False):
        super().__init__()
        dim = config.d_model
        if dim % num_heads:
            raise ValueError(f"d_model ({dim}) must be a multiple of the number of attention heads ({num_heads})")
        self.config = config
        self.num_heads = num_heads
        self.scaling = (dim // num_heads) ** -0.5
        self.layer_idx = layer_idx
        self.is_causal = is_causal
        self.dropout = config.attention_dropout
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        key_value_states: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = split_heads(self.q_proj(hidden_states), self.num_heads)  # (batch, heads, q_len, head_dim)
        if key_value_states is None:
            k = split_heads(self.k_proj(hidden_states), self.num_heads)
            v = split_heads(self.v_proj(hidden_states), self.num_heads)
            if cache is not None:
                k, v = cache.update(k, v, self.layer_idx, {"cache_position": cache_position})
        elif isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            k, v = layer.keys, layer.values
        else:
            k = split_heads(self.k_proj(key_value_states), self.num_heads)
            v = split_heads(self.v_proj(key_value_states), self.num_heads)
            if isinstance(cache, EncoderDecoderCache):
                cache.update_cross(k, v, self.layer_idx)
        attend = attention_function(self.config._attn_implementation, output_attentions)
        out, weights = attend(q, k, v, mask, dropout=self.dropout if self.training else 0.0, scale=self.scaling,
                              is_causal=self.is_causal)
        return self.out_proj(merge_heads(out)), weights


class _Sublayers(nn.Module):
    """What both layer kinds share: the feed-forward block (``fc1`` / ``fc2`` / ``final_layer_norm`` sit
    directly on the layer in the checkpoints) and the residual wiring of every sub-layer, post-LayerNorm
    (``norm(x + f(x))``: BART, Marian) or pre-LayerNorm (``x + f(norm(x))``: mBART)."""

    def _init_ffn(self, config: Any, ffn_dim: int, normalize_before: bool) -> None:
        self.normalize_before = normalize_before
        self.fc1 = nn.Linear(config.d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.activation_fn = get_activation(config.activation_function)
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def _input(self, hidden: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """What a sub-layer reads: the normalised states (pre-LayerNorm) or the states themselves."""
        return norm(hidden) if self.normalize_before else hidden

    def _add(self, residual: torch.Tensor, out: torch.Tensor, norm: nn.Module) -> torch.Tensor:
        """The residual sum after a sub-layer, normalised there in the post-LayerNorm layout."""
        hidden = residual + F.dropout(out, self.dropout, self.training)
        return hidden if self.normalize_before else norm(hidden)

    def _feed_forward(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self._input(hidden, self.final_layer_norm)
        x = F.dropout(self.activation_fn(self.fc1(x)), self.activation_dropout, self.training)
        return self._add(hidden, self.fc2(x), self.final_layer_norm)


def clamp_fp16(hidden: torch.Tensor, only_if_overflowing: bool = False) -> torch.Tensor:
    """float16 activations of these models can overflow; the references clamp them to stay finite: BART's
    always to ``max - 1000`` (rather than after a check for infinities, which would cost a host sync per
    layer), T5's (``only_if_overflowing``) to ``max`` unless some value is already infinite (computed on the
    device, no sync)."""
    if hidden.dtype != torch.float16:
        return hidden
    limit = torch.finfo(torch.float16).max
    limit = torch.where(torch.isinf(hidden).any(), limit - 1000, limit) if only_if_overflowing else limit - 1000
    return hidden.clamp(-limit, limit)


class EncoderLayer(_Sublayers):
    """Self-attention then the feed-forward block, each with a residual and a LayerNorm."""

    def __init__(self, config: Any, layer_idx: int, normalize_before: bool = False):
        super().__init__()
        self.self_attn = Seq2SeqAttention(config, config.encoder_attention_heads, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self._init_ffn(config, config.encoder_ffn_dim, normalize_before)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, weights = self.self_attn(self._input(hidden, self.self_attn_layer_norm), mask,
                                      output_attentions=output_attentions)
        hidden = self._add(hidden, out, self.self_attn_layer_norm)
        return clamp_fp16(self._feed_forward(hidden)), weights


class DecoderLayer(_Sublayers):
    """Causal self-attention, cross-attention over the encoder output, then the feed-forward block."""

    def __init__(self, config: Any, layer_idx: int, normalize_before: bool = False):
        super().__init__()
        heads = config.decoder_attention_heads
        self.self_attn = Seq2SeqAttention(config, heads, layer_idx, is_causal=True)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = Seq2SeqAttention(config, heads, layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)
        self._init_ffn(config, config.decoder_ffn_dim, normalize_before)

    def forward(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor | None,
        encoder_hidden: torch.Tensor | None,
        encoder_mask: torch.Tensor | None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        out, weights = self.self_attn(self._input(hidden, self.self_attn_layer_norm), mask, cache, cache_position,
                                      output_attentions=output_attentions)
        hidden = self._add(hidden, out, self.self_attn_layer_norm)
        cross_weights = None
        if encoder_hidden is not None:
            out, cross_weights = self.encoder_attn(self._input(hidden, self.encoder_attn_layer_norm), encoder_mask,
                                                   cache, key_value_states=encoder_hidden,
                                                   output_attentions=output_attentions)
            hidden = self._add(hidden, out, self.encoder_attn_layer_norm)
        return self._feed_forward(hidden), weights, cross_weights


class _Stack(InputEmbeddings, nn.Module):
    """What the encoder and decoder stacks share: embeddings, positions and the optional norms.

    A family subclass sets ``learned_positions`` (else sinusoidal), ``scaled_embedding_module`` (the token
    embedding is a :class:`ScaledWordEmbedding`, shared with the model: BART; else a plain table whose
    output the stack scales: Marian), ``embedding_norm`` (``layernorm_embedding`` after the embeddings:
    BART), ``final_norm`` (``layer_norm`` after the last layer: mBART) and ``normalize_before``
    (pre-LayerNorm layers: mBART).
    """

    learned_positions: ClassVar[bool] = True
    scaled_embedding_module: ClassVar[bool] = True
    embedding_norm: ClassVar[bool] = True
    final_norm: ClassVar[bool] = False
    normalize_before: ClassVar[bool] = False

    def _init_stack(self, config: Any, embed_tokens: nn.Embedding | None, vocab_size: int, layer_class: type,
                    num_layers: int) -> None:
        """Build the stack in its checkpoint's order: token and position embeddings, ``num_layers`` layers of
        ``layer_class``, then the optional norms."""
        self.config = config
        self.dropout = config.dropout
        dim = config.d_model
        scale = math.sqrt(dim) if config.scale_embedding else 1.0
        if embed_tokens is None:
            embed_tokens = (ScaledWordEmbedding(vocab_size, dim, config.pad_token_id, scale)
                            if self.scaled_embedding_module else nn.Embedding(vocab_size, dim, config.pad_token_id))
        self.embed_scale = 1.0 if self.scaled_embedding_module else scale
        self.embed_tokens = embed_tokens
        if self.learned_positions:
            self.embed_positions = LearnedPositionalEmbedding(config.max_position_embeddings, dim)
        else:
            self.embed_positions = SinusoidalPositionalEmbedding(config.max_position_embeddings, dim)
        self.gradient_checkpointing = False
        self.layers = nn.ModuleList(layer_class(config, i, self.normalize_before) for i in range(num_layers))
        self._norms()

    def _norms(self) -> None:
        if self.embedding_norm:
            self.layernorm_embedding = nn.LayerNorm(self.config.d_model)
        if self.final_norm:
            self.layer_norm = nn.LayerNorm(self.config.d_model)

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
               positions: torch.Tensor) -> torch.Tensor:
        check_token_inputs(input_ids, inputs_embeds)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
            if self.embed_scale != 1.0:
                inputs_embeds = inputs_embeds * self.embed_scale
        # (Marian's computed table is fp32 whatever the weights' dtype: it is added in theirs)
        hidden = inputs_embeds + self.embed_positions(positions).to(inputs_embeds.device, inputs_embeds.dtype)
        if self.embedding_norm:
            hidden = self.layernorm_embedding(hidden)
        return F.dropout(hidden, self.dropout, self.training)

    def _finish(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(hidden) if self.final_norm else hidden

    def _dropped(self, layerdrop: float) -> bool:
        # LayerDrop: in training each layer is skipped with this probability.
        return self.training and layerdrop > 0.0 and bool(torch.rand([]) < layerdrop)

    def _encode(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool | None,
                output_hidden_states: bool | None, return_dict: bool | None) -> BaseModelOutput | tuple:
        """An encoder stack's layer loop from its embedded input (``layers``, LayerDrop, the final norm)."""
        output_attentions = output_flag(self.config, "output_attentions", output_attentions)
        output_hidden_states = output_flag(self.config, "output_hidden_states", output_hidden_states)
        all_hidden: list[torch.Tensor] = []
        all_attn: list[torch.Tensor | None] = []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden)
            if self._dropped(self.config.encoder_layerdrop):
                all_attn.append(None)
                continue
            hidden, weights = call_layer(self, layer, hidden, mask, output_attentions)
            all_attn.append(weights)
        hidden = self._finish(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        out = BaseModelOutput(last_hidden_state=hidden,
                              hidden_states=tuple(all_hidden) if output_hidden_states else None,
                              attentions=tuple(all_attn) if output_attentions else None)
        return out if output_flag(self.config, "return_dict", return_dict) else out.to_tuple()


class Seq2SeqEncoder(_Stack):
    """The encoder stack: embeddings (+ positions), ``layers`` of :class:`EncoderLayer`, optional norms."""

    def __init__(self, config: Any, embed_tokens: nn.Embedding | None = None):
        super().__init__()
        self._init_stack(config, embed_tokens, config.vocab_size, EncoderLayer, config.encoder_layers)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput | tuple:
        """Encode ``input_ids`` ``(batch, src_len)`` (or ``inputs_embeds``) with padding ``attention_mask``."""
        given = input_ids if input_ids is not None else inputs_embeds
        hidden = self._embed(input_ids, inputs_embeds, torch.arange(given.shape[1], device=given.device))
        return self._encode(hidden, padding_mask(attention_mask), output_attentions, output_hidden_states,
                            return_dict)


def prepare_encoder_decoder_cache(past_key_values: Any, use_cache: bool, wrap_self_attention_cache: bool = True
                                  ) -> Cache | None:
    """The cache a decoder pass uses: the given :class:`EncoderDecoderCache`, one built from the legacy
    ``((self_k, self_v, cross_k, cross_v), ...)`` tuples or around a self-attention :class:`Cache` (that
    cache itself with ``wrap_self_attention_cache=False``: T5's decoder then projects the encoder's keys /
    values anew at each step, as the reference does), or a new dynamic one when ``use_cache``."""
    if past_key_values is None:
        return EncoderDecoderCache(DynamicCache(), DynamicCache()) if use_cache else None
    if isinstance(past_key_values, EncoderDecoderCache) or (
            isinstance(past_key_values, Cache) and not wrap_self_attention_cache):
        return past_key_values
    if isinstance(past_key_values, Cache):
        return EncoderDecoderCache(past_key_values, DynamicCache())
    if isinstance(past_key_values, (tuple, list)):
        return EncoderDecoderCache.from_legacy_cache(past_key_values)
    raise TypeError(f"past_key_values must be an EncoderDecoderCache, a Cache or legacy tuples, got "
                    f"{type(past_key_values).__name__}")


class Seq2SeqDecoder(_Stack):
    """The decoder stack: embeddings (+ positions), ``layers`` of :class:`DecoderLayer`, optional norms.

    ``scales_given_embeds``: whether ``inputs_embeds`` passed by the caller are scaled too (Marian).
    """

    scales_given_embeds: ClassVar[bool] = False

    def __init__(self, config: Any, embed_tokens: nn.Embedding | None = None, vocab_size: int | None = None):
        super().__init__()
        self._init_stack(config, embed_tokens, vocab_size or config.vocab_size, DecoderLayer, config.decoder_layers)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        """Decode ``input_ids`` ``(batch, tgt_len)`` attending to ``encoder_hidden_states``.

        ``attention_mask`` is the decoder's padding mask (``(batch, cache + tgt_len)``), ``encoder_attention_mask``
        the encoder's (2-d, or an already expanded boolean ``(batch, 1, 1, src_len)``). ``cache`` is accepted
        as the transformers 5 name of ``past_key_values``.
        """
        config = self.config
        output_attentions = output_flag(config, "output_attentions", output_attentions)
        output_hidden_states = output_flag(config, "output_hidden_states", output_hidden_states)
        past_key_values, use_cache = requested_cache(self, past_key_values, use_cache, kwargs)
        cache = prepare_encoder_decoder_cache(past_key_values, use_cache)
        self_cache = cache.self_attention_cache if cache is not None else None
        given = input_ids if input_ids is not None else inputs_embeds
        if given is None:
            raise ValueError("give exactly one of decoder_input_ids or decoder_inputs_embeds")
        length = given.shape[1]
        if cache_position is None:
            cache_position = cache_positions(self_cache, length, given.device)
        if inputs_embeds is not None and self.scales_given_embeds:
            inputs_embeds = inputs_embeds * self.embed_scale
        hidden = self._embed(input_ids, inputs_embeds, cache_position)
        mask = build_masks(attention_mask, self_cache, cache_position, [None])[None]
        # No check for an all-ones mask here (a host sync per decode step): generate passes None then.
        encoder_mask = encoder_attention_mask
        if encoder_mask is not None and encoder_mask.dim() == 2:
            encoder_mask = encoder_mask.bool()[:, None, None, :]
        all_hidden: list[torch.Tensor] = []
        all_attn: list[torch.Tensor | None] = []
        all_cross: list[torch.Tensor | None] = []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden)
            if self._dropped(config.decoder_layerdrop):
                continue
            hidden, weights, cross = call_layer(self, layer, hidden, mask, encoder_hidden_states, encoder_mask,
                                                cache, cache_position, output_attentions)
            all_attn.append(weights)
            all_cross.append(cross)
        hidden = self._finish(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        out = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden,
            past_key_values=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions and encoder_hidden_states is not None else None,
        )
        return out if output_flag(config, "return_dict", return_dict) else out.to_tuple()


class Seq2SeqPreTrainedModel(EncoderDecoderAccess, PreTrainedModel):
    """Base of the encoder-decoder models: initialisation, encoder / decoder access, decoder inputs from
    labels. The bare model lives under ``model`` (``base_model_prefix``) in the heads."""

    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _keys_to_ignore_on_load_unexpected = [r"encoder\.version", r"decoder\.version"]

    def _init_weights(self, module: nn.Module) -> None:
        init_decoder_weights(module, self.config.init_std)
        if isinstance(module, SinusoidalPositionalEmbedding):
            module._init_buffers(module.weight.device)
        final_bias = getattr(module, "final_logits_bias", None)
        if isinstance(final_bias, torch.Tensor) and not final_bias.is_meta:
            final_bias.zero_()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The decoder inputs that teacher-force ``labels``."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def _init_buffers(self, device: Any = None) -> None:
        # final_logits_bias is a saved buffer that older checkpoints lack: zeros then.
        bias = getattr(self, "final_logits_bias", None)
        if isinstance(bias, torch.Tensor) and bias.is_meta:
            self.final_logits_bias = torch.zeros(bias.shape, dtype=bias.dtype, device=device or "cpu")

    def _resize_final_logits_bias(self, new_num_tokens: int) -> None:
        old = self.final_logits_bias
        if new_num_tokens <= old.shape[-1]:
            new = old[:, :new_num_tokens]
        else:
            new = torch.cat([old, old.new_zeros((1, new_num_tokens - old.shape[-1]))], dim=1)
        self.register_buffer("final_logits_bias", new.contiguous())

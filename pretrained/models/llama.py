"""The Llama family: Llama, Mistral, Qwen2 and Qwen3 in one file.

They share one decoder (RMSNorm, rotary attention with grouped-query heads, gated MLP) and differ by
config flags:

============  ==========================================================================
``llama``     base; ``attention_bias`` puts biases on q/k/v/o; rope scaling variants
``mistral``   sliding-window attention (``sliding_window``)
``qwen2``     biases on q/k/v only; optional sliding window on the upper layers
``qwen3``     RMSNorm on each query / key head (``q_norm`` / ``k_norm``) before rotary
============  ==========================================================================

Parameter names are the checkpoint keys (``model.layers.0.self_attn.q_proj.weight``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pretrained.configuration import PretrainedConfig
from pretrained.generation.mixin import GenerationMixin
from pretrained.modeling.attention import decode_attention
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.cache import layer_windows
from pretrained.modeling.decoder import (
    build_masks,
    cache_positions,
    last_token_pool,
    lm_head_output,
    prepare_cache,
)
from pretrained.modeling.fusion import FusedLinears
from pretrained.modeling.kernels import apply_linear, fuse_as_reductions
from pretrained.modeling.losses import sequence_classification_loss
from pretrained.modeling.masks import sdpa_is_causal
from pretrained.modeling.mlp import GatedMLP
from pretrained.modeling.norms import RMSNorm
from pretrained.modeling.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from pretrained.modeling.rotary import (
    RotaryEmbedding,
    apply_rotary_tables,
    rotary_tables,
    standardize_rope_parameters,
)
from pretrained.models.auto import register

# --------------------------------------------------------------------------------------------------------
# configs


class LlamaConfig(PretrainedConfig):
    """Configuration of a Llama model (field names and defaults as in transformers).

    RoPE settings are accepted as ``rope_parameters`` (new spelling) or ``rope_theta`` +
    ``rope_scaling`` (old spelling) and stored as ``rope_parameters``.
    """

    model_type = "llama"
    # Which projections carry biases, and whether heads are normalised, are family traits.
    qkv_bias_only = False
    qk_norm = False
    default_rope_theta = 10_000.0

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 4096,
        intermediate_size: int = 11008,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = None,
        hidden_act: str = "silu",
        max_position_embeddings: int = 2048,
        initializer_range: float = 0.02,
        rms_norm_eps: float = 1e-6,
        use_cache: bool = True,
        pad_token_id: int | None = None,
        bos_token_id: int | None = 1,
        eos_token_id: int | list[int] | None = 2,
        pretraining_tp: int | None = 1,
        tie_word_embeddings: bool = False,
        rope_parameters: dict[str, Any] | None = None,
        attention_bias: bool = False,
        attention_dropout: float = 0.0,
        mlp_bias: bool = False,
        head_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.initializer_range = initializer_range
        self.rms_norm_eps = rms_norm_eps
        self.use_cache = use_cache
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.pretraining_tp = pretraining_tp
        self.tie_word_embeddings = tie_word_embeddings
        self.attention_bias = attention_bias
        self.attention_dropout = attention_dropout
        self.mlp_bias = mlp_bias
        self.head_dim = head_dim if head_dim is not None else hidden_size // num_attention_heads
        self.rope_parameters = standardize_rope_parameters(
            rope_parameters,
            rope_scaling=kwargs.pop("rope_scaling", None),
            rope_theta=kwargs.pop("rope_theta", None),
            partial_rotary_factor=kwargs.pop("partial_rotary_factor", None),
            max_position_embeddings=max_position_embeddings,
            default_theta=self.default_rope_theta,
        )
        if num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({self.num_key_value_heads})"
            )
        super().__init__(**kwargs)

    @property
    def rope_theta(self) -> float:
        return self.rope_parameters["rope_theta"]

    @property
    def rope_scaling(self) -> dict[str, Any] | None:
        """The old spelling: ``None`` for plain RoPE, else the scaling settings."""
        return None if self.rope_parameters["rope_type"] == "default" else self.rope_parameters


class MistralConfig(LlamaConfig):
    """Mistral: Llama with sliding-window attention (``sliding_window`` tokens, ``None`` for full)."""

    model_type = "mistral"

    def __init__(
        self,
        vocab_size: int = 32000,
        hidden_size: int = 4096,
        intermediate_size: int = 14336,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = 8,
        max_position_embeddings: int = 4096 * 32,
        sliding_window: int | None = 4096,
        **kwargs: Any,
    ) -> None:
        self.sliding_window = sliding_window
        super().__init__(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            max_position_embeddings=max_position_embeddings,
            **kwargs,
        )


class Qwen2Config(LlamaConfig):
    """Qwen2: biases on the q/k/v projections; a sliding window on layers ``>= max_window_layers``
    when ``use_sliding_window``."""

    model_type = "qwen2"
    qkv_bias_only = True

    def __init__(
        self,
        vocab_size: int = 151936,
        hidden_size: int = 4096,
        intermediate_size: int = 22016,
        num_hidden_layers: int = 32,
        num_attention_heads: int = 32,
        num_key_value_heads: int | None = 32,
        max_position_embeddings: int = 32768,
        use_sliding_window: bool = False,
        sliding_window: int | None = 4096,
        max_window_layers: int = 28,
        layer_types: list[str] | None = None,
        bos_token_id: int | None = None,
        eos_token_id: int | list[int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.use_sliding_window = use_sliding_window
        self.sliding_window = sliding_window if use_sliding_window else None
        self.max_window_layers = max_window_layers
        if layer_types is None:
            layer_types = [
                "sliding_attention"
                if self.sliding_window is not None and i >= max_window_layers
                else "full_attention"
                for i in range(num_hidden_layers)
            ]
        self.layer_types = layer_types
        super().__init__(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            max_position_embeddings=max_position_embeddings,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )


class Qwen3Config(Qwen2Config):
    """Qwen3: per-head RMSNorm of queries and keys, no projection biases by default."""

    model_type = "qwen3"
    qkv_bias_only = False
    qk_norm = True

    def __init__(self, head_dim: int | None = 128, intermediate_size: int = 22016, **kwargs: Any) -> None:
        super().__init__(head_dim=head_dim, intermediate_size=intermediate_size, **kwargs)


# --------------------------------------------------------------------------------------------------------
# layers


class LlamaAttention(nn.Module):
    """Multi-head attention with grouped key/value heads, rotary positions and a KV cache."""

    def __init__(self, config: LlamaConfig, layer_idx: int, sliding_window: int | None = None) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.sliding_window = sliding_window
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.attention_dropout = config.attention_dropout
        qkv_bias = config.attention_bias or config.qkv_bias_only
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(
            self.num_heads * self.head_dim, config.hidden_size, bias=config.attention_bias
        )
        self._qkv = FusedLinears("q_proj", "k_proj", "v_proj")
        if config.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq, _ = hidden_states.shape
        hd, nq, nkv = self.head_dim, self.num_heads, self.num_kv_heads
        qkv = self._qkv.output(self, hidden_states)
        cos, signed_sin = position_embeddings  # (batch, 1, seq, rot_dim)
        if qkv is not None and self.q_norm is None and cos.shape[-1] == hd:
            # Queries and keys sit side by side in the fused output: rotate them in one go.
            qk = qkv[..., : (nq + nkv) * hd].view(batch, seq, nq + nkv, hd)
            qk = qk * cos.transpose(1, 2) + qk.roll(hd // 2, -1) * signed_sin.transpose(1, 2)
            q, k = qk[:, :, :nq].transpose(1, 2), qk[:, :, nq:].transpose(1, 2)  # (batch, heads, seq, hd)
            v = qkv[..., (nq + nkv) * hd :].view(batch, seq, nkv, hd).transpose(1, 2)
        else:
            if qkv is not None:
                parts = qkv.split_with_sizes(self._qkv.sizes, dim=-1)
            else:
                parts = (self.q_proj(hidden_states), self.k_proj(hidden_states), self.v_proj(hidden_states))
            q, k, v = (t.view(batch, seq, -1, hd) for t in parts)
            v = v.transpose(1, 2)
            if self.q_norm is not None:
                q, k = self.q_norm(q), self.k_norm(k)
            q, k = q.transpose(1, 2), k.transpose(1, 2)  # (batch, heads, seq, head_dim)
            q, k = apply_rotary_tables(q, k, cos, signed_sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, {"cache_position": cache_position})
        dropout = self.attention_dropout if self.training else 0.0
        if output_attentions:
            out, weights = eager_attention(q, k, v, mask, dropout, self.training)
        elif seq == 1 and not dropout and fuse_as_reductions(q):
            out, weights = decode_attention(q, k, v, mask), None
        else:
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=dropout,
                is_causal=sdpa_is_causal(mask, seq),
                enable_gqa=self.num_kv_heads != self.num_heads,
            )
            weights = None
        out = out.transpose(1, 2).reshape(batch, seq, -1)
        return apply_linear(self.o_proj, out), weights


def eager_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout: float,
    training: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention with explicit weights (for ``output_attentions``); same math as the SDPA path."""
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    q_len, kv_len = q.shape[2], k.shape[2]
    if mask is None and q_len > 1:
        mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=q.device).tril(kv_len - q_len)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype)
    weights = F.dropout(weights, p=dropout, training=training)
    return weights @ v, weights


class LlamaDecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, config: LlamaConfig, layer_idx: int, sliding_window: int | None = None) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(config, layer_idx, sliding_window)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act, config.mlp_bias)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn, weights = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings,
            mask,
            cache,
            cache_position,
            output_attentions,
        )
        hidden_states = hidden_states + attn
        hidden_states = hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))
        return hidden_states, weights


# --------------------------------------------------------------------------------------------------------
# models


class LlamaPreTrainedModel(PreTrainedModel):
    """Shared settings and weight initialisation of the family."""

    config_class = LlamaConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)


class LlamaModel(LlamaPreTrainedModel):
    """The decoder stack without a head; returns the last hidden states and the cache."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.windows = layer_windows(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            LlamaDecoderLayer(config, i, self.windows[i]) for i in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(
            config.rope_parameters, config.head_dim, config.max_position_embeddings
        )
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed_tokens = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast | tuple:
        """Run the decoder.

        Args:
            input_ids: ``(batch, seq)`` token ids (or give ``inputs_embeds``).
            attention_mask: ``(batch, past + seq)`` with 0 on padding, or a prepared 4D boolean mask.
            position_ids: ``(batch, seq)`` rotary positions (default: following the cache length).
            past_key_values: A cache from an earlier call (``cache`` is accepted as an alias), or a legacy
                tuple of ``(keys, values)``.
            use_cache: Return a cache (default ``config.use_cache`` outside training).
            cache_position: ``(seq,)`` cache slots of the new tokens (default: after the cached ones).
        """
        if past_key_values is None:
            past_key_values = kwargs.pop("cache", None)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids or inputs_embeds")
        output_attentions = (
            output_attentions if output_attentions is not None else self.config.output_attentions
        )
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        cache = prepare_cache(past_key_values, use_cache, self.config)
        seq = inputs_embeds.shape[1]
        if cache_position is None:
            cache_position = cache_positions(cache, seq, inputs_embeds.device)
        if position_ids is None:
            position_ids = cache_position.unsqueeze(0)
        masks = build_masks(attention_mask, cache, cache_position, self.windows)
        position_embeddings = rotary_tables(*self.rotary_emb(position_ids, inputs_embeds.dtype))

        hidden_states = inputs_embeds
        all_hidden: list[torch.Tensor] = []
        all_attn: list[torch.Tensor] = []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden_states)
            mask = masks[layer.self_attn.sliding_window]
            args = (hidden_states, position_embeddings, mask, cache, cache_position, output_attentions)
            if self.gradient_checkpointing and self.training:
                hidden_states, weights = checkpoint(layer, *args, **getattr(self, "_checkpoint_kwargs", {}))
            else:
                hidden_states, weights = layer(*args)
            if output_attentions:
                all_attn.append(weights)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden.append(hidden_states)
        out = BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=cache if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attn) if output_attentions else None,
        )
        return out if return_dict else out.to_tuple()


class LlamaForCausalLM(GenerationMixin, LlamaPreTrainedModel):
    """The decoder with a language-modelling head (tied to the embeddings when configured)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.model = LlamaModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple:
        """Logits for every position (or the last ``logits_to_keep``), and the loss when ``labels`` are given.

        ``num_items_in_batch`` (passed by the Trainer under gradient accumulation) turns the mean loss
        into ``sum / num_items_in_batch``.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            cache_position=cache_position,
            cache=kwargs.pop("cache", None),
        )
        return lm_head_output(self.lm_head, outputs, labels, logits_to_keep, num_items_in_batch,
                              kwargs.get("shift_labels"), return_dict)


class LlamaForSequenceClassification(LlamaPreTrainedModel):
    """The decoder with a linear ``score`` head read at the last non-padding token."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LlamaModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutputWithPast | tuple:
        """Class scores ``(batch, num_labels)``; a loss chosen by ``config.problem_type`` with ``labels``."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = last_token_pool(self.score(outputs.last_hidden_state), input_ids, self.config.pad_token_id)
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        out = SequenceClassifierOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return out if return_dict else out.to_tuple()


# Mistral and Qwen share the classes; the names exist so user code and `architectures` resolve.
def _alias(name: str, base: type, config_class: type[LlamaConfig]) -> type:
    return type(
        name, (base,), {"config_class": config_class, "__doc__": base.__doc__, "__module__": __name__}
    )


MistralModel = _alias("MistralModel", LlamaModel, MistralConfig)
MistralForCausalLM = _alias("MistralForCausalLM", LlamaForCausalLM, MistralConfig)
MistralForSequenceClassification = _alias(
    "MistralForSequenceClassification", LlamaForSequenceClassification, MistralConfig
)
Qwen2Model = _alias("Qwen2Model", LlamaModel, Qwen2Config)
Qwen2ForCausalLM = _alias("Qwen2ForCausalLM", LlamaForCausalLM, Qwen2Config)
Qwen2ForSequenceClassification = _alias(
    "Qwen2ForSequenceClassification", LlamaForSequenceClassification, Qwen2Config
)
Qwen3Model = _alias("Qwen3Model", LlamaModel, Qwen3Config)
Qwen3ForCausalLM = _alias("Qwen3ForCausalLM", LlamaForCausalLM, Qwen3Config)
Qwen3ForSequenceClassification = _alias(
    "Qwen3ForSequenceClassification", LlamaForSequenceClassification, Qwen3Config
)

register("llama", LlamaConfig, base=LlamaModel, causal_lm=LlamaForCausalLM,
         sequence_classification=LlamaForSequenceClassification)  # fmt: skip
register("mistral", MistralConfig, base=MistralModel, causal_lm=MistralForCausalLM,
         sequence_classification=MistralForSequenceClassification)  # fmt: skip
register("qwen2", Qwen2Config, base=Qwen2Model, causal_lm=Qwen2ForCausalLM,
         sequence_classification=Qwen2ForSequenceClassification)  # fmt: skip
register("qwen3", Qwen3Config, base=Qwen3Model, causal_lm=Qwen3ForCausalLM,
         sequence_classification=Qwen3ForSequenceClassification)  # fmt: skip

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
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.generation.mixin import GenerationMixin
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.cache import layer_windows
from pretrained.modeling.decoder import (
    CausalSelfAttention,
    DecoderClassifierForward,
    DecoderLMForward,
    PreNormDecoderLayer,
    begin_decoder,
    build_masks,
    finish_decoder,
    head_inputs,
    init_decoder_weights,
    run_layers,
)
from pretrained.modeling.embeddings import InputEmbeddings
from pretrained.modeling.mlp import GatedMLP
from pretrained.modeling.norms import RMSNorm
from pretrained.modeling.outputs import (
    BaseModelOutputWithPast,
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
    # transformers' plan for the family (the head adds lm_head, the base model embed_tokens).
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }
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
        self._store_arguments(locals())
        self.num_key_value_heads = num_attention_heads if num_key_value_heads is None else num_key_value_heads
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
        super().__init__(**head_inputs(locals(), "sliding_window"))  # (its other arguments are Llama's)


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
        super().__init__(**head_inputs(locals(), "use_sliding_window", "sliding_window", "max_window_layers",
                                       "layer_types"))  # (its other arguments are Llama's)


class Qwen3Config(Qwen2Config):
    """Qwen3: per-head RMSNorm of queries and keys, no projection biases by default."""

    model_type = "qwen3"
    qkv_bias_only = False
    qk_norm = True
    # The per-head norms see only this rank's heads, so their gradients are summed over the ranks.
    base_model_tp_plan = {
        **LlamaConfig.base_model_tp_plan,
        "layers.*.self_attn.q_norm": "replicated_with_grad_allreduce",
        "layers.*.self_attn.k_norm": "replicated_with_grad_allreduce",
    }

    def __init__(self, head_dim: int | None = 128, intermediate_size: int = 22016, **kwargs: Any) -> None:
        super().__init__(head_dim=head_dim, intermediate_size=intermediate_size, **kwargs)


# --------------------------------------------------------------------------------------------------------
# layers


class LlamaAttention(CausalSelfAttention):
    """Multi-head attention with grouped key/value heads, rotary positions and a KV cache."""

    # Eager decode steps of exactly this class may run as one C++ call (``inference.decode_ops``, which does
    # not import the model families: it asks the class itself, not a subclass that may compute otherwise).
    decode_ops_kind = "llama_attention"

    def __init__(self, config: LlamaConfig, layer_idx: int, sliding_window: int | None = None) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.sliding_window = sliding_window
        self.head_dim = config.head_dim
        self.attention_dropout = config.attention_dropout
        qkv_bias = config.attention_bias or config.qkv_bias_only
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.q_proj = nn.Linear(config.hidden_size, heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(heads * self.head_dim, config.hidden_size, bias=config.attention_bias)
        if config.qk_norm:
            self.q_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = RMSNorm(self.head_dim, eps=config.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = None

    def _project(
        self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        shape = (*hidden_states.shape[:2], -1, self.head_dim)  # (batch, seq, heads, head_dim)
        q, k = self.q_proj(hidden_states).view(shape), self.k_proj(hidden_states).view(shape)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)  # (batch, heads, seq, head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rotary_tables(q.transpose(1, 2), k.transpose(1, 2), *position_embeddings)
        return q, k, v

    def _output(self, attended: torch.Tensor) -> torch.Tensor:
        return self.o_proj(attended)


class LlamaDecoderLayer(PreNormDecoderLayer):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, config: LlamaConfig, layer_idx: int, sliding_window: int | None = None) -> None:
        super().__init__()
        self.self_attn = LlamaAttention(config, layer_idx, sliding_window)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act, config.mlp_bias)
        self.input_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def _sublayers(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        return self.input_layernorm, self.self_attn, self.post_attention_layernorm, self.mlp


# --------------------------------------------------------------------------------------------------------
# models


class LlamaPreTrainedModel(PreTrainedModel):
    """Shared settings and weight initialisation of the family."""

    config_class = LlamaConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaDecoderLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        init_decoder_weights(module, self.config.initializer_range)


class LlamaModel(InputEmbeddings, LlamaPreTrainedModel):
    """The decoder stack without a head; returns the last hidden states and the cache."""

    decode_ops_kind = "llama_stack"  # see LlamaAttention.decode_ops_kind

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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
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
            kwargs: ``cache_position`` (``(seq,)`` cache slots of the new tokens, default: after the cached
                ones), ``output_attentions``, ``output_hidden_states``, ``return_dict``.
        """
        run = begin_decoder(self, self.embed_tokens, input_ids, inputs_embeds, past_key_values, use_cache,
                            position_ids, kwargs)  # fmt: skip
        masks = build_masks(attention_mask, run.cache, run.cache_position, self.windows)
        rotary = rotary_tables(*self.rotary_emb(run.position_ids, run.hidden_states.dtype))
        hidden_states, all_hidden, all_attn = run_layers(self, self.layers, run, masks, self.windows, rotary)
        return finish_decoder(self.norm(hidden_states), run, all_hidden, all_attn)


class LlamaForCausalLM(DecoderLMForward, GenerationMixin, LlamaPreTrainedModel):
    """The decoder with a language-modelling head (tied to the embeddings when configured)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.model = LlamaModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()


class LlamaForSequenceClassification(DecoderClassifierForward, LlamaPreTrainedModel):
    """The decoder with a linear ``score`` head read at the last non-padding token."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LlamaModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()


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

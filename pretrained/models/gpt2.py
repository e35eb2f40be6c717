"""GPT-2: learned absolute positions, pre-LayerNorm blocks, fused ``c_attn`` projection.

Weights use the checkpoint's ``Conv1D`` layout (``weight`` is ``(in_features, out_features)``), so
OpenAI/HF checkpoints load without transposing. Cross-attention (``add_cross_attention``) is not
supported.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.generation.mixin import GenerationMixin
from pretrained.modeling.activations import get_activation
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.decoder import (
    CausalSelfAttention,
    PreNormDecoderLayer,
    begin_decoder,
    build_masks,
    causal_lm_forward,
    finish_decoder,
    head_inputs,
    init_decoder_weights,
    run_layers,
    sequence_classifier_forward,
)
from pretrained.modeling.embeddings import InputEmbeddings, OutputEmbeddings
from pretrained.modeling.linear import Conv1D
from pretrained.modeling.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from pretrained.models.auto import register


class GPT2Config(PretrainedConfig):
    """Configuration of a GPT-2 model (field names and defaults as in transformers)."""

    model_type = "gpt2"
    attribute_map = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }
    # transformers declares no plan for GPT-2; this one follows the Llama plan. Conv1D weights are
    # (in, out), which the strategies read from the layer type; c_attn packs q|k|v, so each rank takes its
    # heads from each of the three (packed_qkv_colwise). Position embeddings stay whole on every rank.
    base_model_tp_plan = {
        "wte": "embedding_rowwise",
        "h.*.attn.c_attn": "packed_qkv_colwise",
        "h.*.attn.c_proj": "rowwise",
        "h.*.mlp.c_fc": "colwise",
        "h.*.mlp.c_proj": "rowwise",
    }

    def __init__(
        self,
        vocab_size: int = 50257,
        n_positions: int = 1024,
        n_embd: int = 768,
        n_layer: int = 12,
        n_head: int = 12,
        n_inner: int | None = None,
        activation_function: str = "gelu_new",
        resid_pdrop: float = 0.1,
        embd_pdrop: float = 0.1,
        attn_pdrop: float = 0.1,
        layer_norm_epsilon: float = 1e-5,
        initializer_range: float = 0.02,
        summary_type: str = "cls_index",
        summary_use_proj: bool = True,
        summary_activation: str | None = None,
        summary_proj_to_labels: bool = True,
        summary_first_dropout: float = 0.1,
        scale_attn_weights: bool = True,
        use_cache: bool = True,
        bos_token_id: int | None = 50256,
        eos_token_id: int | list[int] | None = 50256,
        pad_token_id: int | None = None,
        scale_attn_by_inverse_layer_idx: bool = False,
        reorder_and_upcast_attn: bool = False,
        add_cross_attention: bool = False,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        if add_cross_attention:
            raise ValueError("pretrained's GPT-2 does not support add_cross_attention=True")
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
        self._store_arguments(locals())
        super().__init__(**kwargs)


class GPT2Attention(CausalSelfAttention):
    """Causal self-attention with one fused q/k/v projection (``c_attn``)."""

    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.embed_dim = config.n_embd
        self.num_heads = config.n_head
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scaling /= float(layer_idx + 1)
        self.c_attn = Conv1D(3 * self.embed_dim, self.embed_dim)
        self.c_proj = Conv1D(self.embed_dim, self.embed_dim)
        self.attention_dropout = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def _project(
        self, hidden_states: torch.Tensor, position_embeddings: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, seq, _ = hidden_states.shape
        # -1 heads: a tensor-parallel rank holds only its share of them.
        qkv = self.c_attn(hidden_states).view(batch, seq, 3, -1, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (batch, heads, seq, head_dim)
        return q, k, v

    def _output(self, attended: torch.Tensor) -> torch.Tensor:
        return self.resid_dropout(self.c_proj(attended))


class GPT2MLP(nn.Module):
    """``c_proj(act(c_fc(x)))`` with dropout."""

    def __init__(self, intermediate_size: int, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(intermediate_size, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, intermediate_size)
        self.act = get_activation(config.activation_function)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class GPT2Block(PreNormDecoderLayer):
    """Pre-LayerNorm block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        inner = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(inner, config)

    def _sublayers(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        return self.ln_1, self.attn, self.ln_2, self.mlp


class GPT2PreTrainedModel(PreTrainedModel):
    """Shared settings and weight initialisation (scaled residual projections, as in the paper)."""

    config_class = GPT2Config
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["GPT2Block"]
    # Old checkpoints store the causal mask as a buffer; it is not needed.
    _keys_to_ignore_on_load_unexpected = [r"attn\.bias$", r"attn\.masked_bias$", r"crossattention\.bias$"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        init_decoder_weights(module, std)
        if isinstance(module, (GPT2Attention, GPT2MLP)):
            # Residual projections scaled by 1/sqrt(2 * n_layer).
            nn.init.normal_(module.c_proj.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layer))


class GPT2Model(InputEmbeddings, GPT2PreTrainedModel):
    """The GPT-2 transformer without a head."""

    input_embeddings_path = "wte"

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.embed_dim = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, self.embed_dim)
        self.wpe = nn.Embedding(config.n_positions, self.embed_dim)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(GPT2Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(self.embed_dim, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast | tuple:
        """Run the transformer (arguments as in :meth:`LlamaModel.forward`, plus ``token_type_ids``)."""
        run = begin_decoder(self, self.wte, input_ids, inputs_embeds, past_key_values, use_cache, position_ids,
                            kwargs)  # fmt: skip
        hidden_states = run.hidden_states + self.wpe(run.position_ids)
        if token_type_ids is not None:
            hidden_states = hidden_states + self.wte(token_type_ids.view(-1, hidden_states.shape[1]))
        run.hidden_states = self.drop(hidden_states)
        masks = build_masks(attention_mask, run.cache, run.cache_position, [None])
        hidden_states, all_hidden, all_attn = run_layers(self, self.h, run, masks, [None] * len(self.h))
        return finish_decoder(self.ln_f(hidden_states), run, all_hidden, all_attn)


class GPT2LMHeadModel(OutputEmbeddings, GenerationMixin, GPT2PreTrainedModel):
    """GPT-2 with its language-modelling head (tied to ``wte`` by default)."""

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple:
        """Next-token logits, and the shifted cross-entropy loss when ``labels`` are given
        (see :func:`~pretrained.modeling.decoder.causal_lm_forward` for ``num_items_in_batch``)."""
        return causal_lm_forward(self, labels, logits_to_keep, head_inputs(locals(), "labels", "logits_to_keep"))


class GPT2ForSequenceClassification(GPT2PreTrainedModel):
    """GPT-2 with a linear ``score`` head read at the last non-padding token."""

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = GPT2Model(config)
        self.score = nn.Linear(config.n_embd, config.num_labels, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutputWithPast | tuple:
        """Class scores ``(batch, num_labels)``; a loss chosen by ``config.problem_type`` with ``labels``.
        Other keyword arguments (``output_attentions``, ...) go to the transformer."""
        return sequence_classifier_forward(self, labels, head_inputs(locals(), "labels"))


register(
    "gpt2",
    GPT2Config,
    base=GPT2Model,
    causal_lm=GPT2LMHeadModel,
    sequence_classification=GPT2ForSequenceClassification,
)

"""ViT: an image cut into patches, each patch a token, through a pre-norm encoder; and its classifier.

Module names mirror the checkpoints (``vit.encoder.layer.0.attention.attention.query.weight``), which is
also what transformers 5 writes, so weights load with no renaming. The layer loop and self-attention
are the shared encoder pieces (:mod:`pretrained.modeling.encoder`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.modeling.activations import get_activation
from pretrained.modeling.attention import attention_function, merge_heads, split_heads
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.encoder import EncoderIntermediate, LayerStack, QueryKeyValueSelfAttention
from pretrained.modeling.losses import sequence_classification_loss
from pretrained.modeling.outputs import BaseModelOutputWithPooling, ImageClassifierOutput
from pretrained.modeling.vision import interpolate_positions
from pretrained.models.auto import register


class ViTConfig(PretrainedConfig):
    model_type = "vit"

    def __init__(self, hidden_size: int = 768, num_hidden_layers: int = 12, num_attention_heads: int = 12,
                 intermediate_size: int = 3072, hidden_act: str = "gelu", hidden_dropout_prob: float = 0.0,
                 attention_probs_dropout_prob: float = 0.0, initializer_range: float = 0.02,
                 layer_norm_eps: float = 1e-12, image_size: int = 224, patch_size: int = 16, num_channels: int = 3,
                 qkv_bias: bool = True, encoder_stride: int = 16, pooler_output_size: int | None = None,
                 pooler_act: str = "tanh", **kwargs: Any) -> None:
        self._store_arguments(locals())
        self.pooler_output_size = pooler_output_size if pooler_output_size else hidden_size
        super().__init__(**kwargs)


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value[0], value[1]) if isinstance(value, (tuple, list)) else (value, value)


class ViTPatchEmbeddings(nn.Module):
    """``(batch, channels, H, W)`` → ``(batch, patches, hidden)`` through one strided convolution."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.image_size, self.patch_size = _pair(config.image_size), _pair(config.patch_size)
        self.num_channels = config.num_channels
        self.num_patches = (self.image_size[0] // self.patch_size[0]) * (self.image_size[1] // self.patch_size[1])
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size, kernel_size=self.patch_size,
                                    stride=self.patch_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.shape[1] != self.num_channels:
            raise ValueError(f"pixel_values have {pixel_values.shape[1]} channels; the model expects "
                             f"{self.num_channels} (config.num_channels).")
        return self.projection(pixel_values).flatten(2).transpose(1, 2)


class ViTEmbeddings(nn.Module):
    """Patch embeddings with the class token in front, plus learned positions (optionally interpolated)."""

    def __init__(self, config: ViTConfig, use_mask_token: bool = False):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size)) if use_mask_token else None
        self.patch_embeddings = ViTPatchEmbeddings(config)
        self.position_embeddings = nn.Parameter(torch.zeros(1, self.patch_embeddings.num_patches + 1,
                                                            config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.patch_size = _pair(config.patch_size)[0]

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None,
                interpolate_pos_encoding: bool = False) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        expected = self.patch_embeddings.image_size
        if not interpolate_pos_encoding and (height, width) != expected:
            raise ValueError(f"Input image size ({height}*{width}) doesn't match model ({expected[0]}*{expected[1]}); "
                             "resize the images or pass interpolate_pos_encoding=True.")
        embeddings = self.patch_embeddings(pixel_values)
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError("bool_masked_pos needs a model built with use_mask_token=True.")
            mask = bool_masked_pos.unsqueeze(-1).type_as(embeddings)
            embeddings = embeddings * (1.0 - mask) + self.mask_token.expand_as(embeddings) * mask
        embeddings = torch.cat((self.cls_token.expand(batch, -1, -1), embeddings), dim=1)
        positions = self.position_embeddings
        if interpolate_pos_encoding:
            positions = interpolate_positions(positions, height, width, self.patch_size)
        return self.dropout(embeddings + positions)


class ViTSelfAttention(QueryKeyValueSelfAttention):
    """ViT's self-attention: ``query`` / ``key`` / ``value``, biased when ``config.qkv_bias``."""

    def __init__(self, config: ViTConfig):
        super().__init__(config, bias=config.qkv_bias)


class ViTSelfOutput(nn.Module):
    """The output projection (its residual is added by the layer)."""

    def __init__(self, config: ViTConfig, in_size: int | None = None):
        super().__init__()
        self.dense = nn.Linear(in_size or config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(hidden))


class ViTAttention(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention = ViTSelfAttention(config)
        self.output = ViTSelfOutput(config)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        out, weights = self.attention(hidden, mask, output_attentions)
        return self.output(out), weights


class ViTIntermediate(EncoderIntermediate):
    """``act(dense(x))``, the first half of ViT's feed-forward block."""


class ViTLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.attention = ViTAttention(config)
        self.intermediate = ViTIntermediate(config)
        self.output = ViTSelfOutput(config, in_size=config.intermediate_size)
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        attended, weights = self.attention(self.layernorm_before(hidden), mask, output_attentions)
        hidden = hidden + attended
        return hidden + self.output(self.intermediate(self.layernorm_after(hidden))), weights

    def first_token(self, hidden: torch.Tensor) -> torch.Tensor:
        """The layer's output for the first position alone, ``(batch, 1, hidden)``: keys and values come
        from every position, the query, attention output and feed-forward block from the first only."""
        attention = self.attention.attention
        normed = self.layernorm_before(hidden)
        q = split_heads(attention.query(normed[:, :1]), attention.num_heads)  # (batch, heads, 1, head_dim)
        k, v = (split_heads(proj(normed), attention.num_heads) for proj in (attention.key, attention.value))
        attend = attention_function(attention.config._attn_implementation, False)
        out, _ = attend(q, k, v, None, dropout=0.0)
        hidden = hidden[:, :1] + self.attention.output(merge_heads(out))
        return hidden + self.output(self.intermediate(self.layernorm_after(hidden)))


class ViTEncoder(LayerStack):
    def __init__(self, config: ViTConfig):
        super().__init__([ViTLayer(config) for _ in range(config.num_hidden_layers)])


class ViTPooler(nn.Module):
    """``act(dense(hidden[:, 0]))``: the class token's state as the image vector."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.pooler_output_size)
        self.activation = get_activation(config.pooler_act)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden[:, 0]))


class ViTPreTrainedModel(PreTrainedModel):
    config_class = ViTConfig
    base_model_prefix = "vit"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ViTEmbeddings", "ViTLayer"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, ViTEmbeddings):
            nn.init.trunc_normal_(module.position_embeddings, mean=0.0, std=std)
            nn.init.trunc_normal_(module.cls_token, mean=0.0, std=std)
            if module.mask_token is not None:
                module.mask_token.zero_()

    def get_input_embeddings(self) -> nn.Module:
        return self.base_model.embeddings.patch_embeddings

    def _flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> tuple[bool, bool]:
        config = self.config
        return (config.output_attentions if output_attentions is None else output_attentions,
                config.output_hidden_states if output_hidden_states is None else output_hidden_states)


class ViTModel(ViTPreTrainedModel):
    """The bare encoder: ``last_hidden_state`` (after the final LayerNorm) and, with the pooler,
    ``pooler_output``."""

    def __init__(self, config: ViTConfig, add_pooling_layer: bool = True, use_mask_token: bool = False):
        super().__init__(config)
        self.embeddings = ViTEmbeddings(config, use_mask_token=use_mask_token)
        self.encoder = ViTEncoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = ViTPooler(config) if add_pooling_layer else None
        self.post_init()

    def forward(self, pixel_values: torch.Tensor | None = None, bool_masked_pos: torch.Tensor | None = None,
                interpolate_pos_encoding: bool | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPooling:
        if pixel_values is None:
            raise ValueError("You have to specify pixel_values")
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        hidden = self.embeddings(pixel_values, bool_masked_pos, bool(interpolate_pos_encoding))
        hidden, all_hidden, all_weights = self.encoder(hidden, None, output_attentions, output_hidden_states)
        hidden = self.layernorm(hidden)
        pooled = self.pooler(hidden) if self.pooler is not None else None
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden,
                                         attentions=all_weights)
        return self._outputs(out, return_dict)

    def class_token_state(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """``last_hidden_state[:, 0]`` ``(batch, hidden)`` with the last layer run for the class token alone.

        Every earlier layer is needed in full (the last one attends to all positions' keys and values), but
        the last layer's query, attention output and feed-forward block, and the final LayerNorm, only
        matter for the row a classifier reads: about a twelfth of a 12-layer forward is skipped. Equal to
        the full forward's row up to float rounding.
        """
        pixel_values = pixel_values.to(self.embeddings.patch_embeddings.projection.weight.dtype)
        hidden = self.embeddings(pixel_values, None, interpolate_pos_encoding)
        *layers, last = self.encoder.layer
        for layer in layers:
            hidden, _ = layer(hidden, None, False)
        return self.layernorm(last.first_token(hidden))[:, 0]

    def pooled_class_token(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """``pooler_output`` with the last layer run for the class token alone (:meth:`class_token_state`).

        Raises:
            ValueError: the model was made without its pooler (``add_pooling_layer=False``).
        """
        if self.pooler is None:
            raise ValueError("This ViTModel has no pooler (add_pooling_layer=False), so it has no pooled output.")
        return self.pooler(self.class_token_state(pixel_values, interpolate_pos_encoding)[:, None])


class ViTForImageClassification(ViTPreTrainedModel):
    """The class token's final state → linear classifier; loss by ``problem_type`` given ``labels``."""

    def __init__(self, config: ViTConfig):
        super().__init__(config)
        self.vit = ViTModel(config, add_pooling_layer=False)
        self.classifier = (nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0
                           else nn.Identity())
        self.post_init()

    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                interpolate_pos_encoding: bool | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> ImageClassifierOutput:
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        if self.training or output_attentions or output_hidden_states or not self.vit.encoder.layer:
            encoded = self.vit(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=True)
            logits = self.classifier(encoded.last_hidden_state[:, 0])
        else:  # the classifier reads the class token alone: the last layer runs for that row only
            if pixel_values is None:
                raise ValueError("You have to specify pixel_values")
            encoded = BaseModelOutputWithPooling()  # no hidden states or attentions to report
            logits = self.classifier(self.vit.class_token_state(pixel_values, bool(interpolate_pos_encoding)))
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        return self._head_output(ImageClassifierOutput, loss, encoded, return_dict, logits=logits)


register("vit", ViTConfig, base=ViTModel, image_classification=ViTForImageClassification)

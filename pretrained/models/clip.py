"""CLIP: a text encoder and an image encoder whose pooled states, projected and normalised, are compared
by a scaled dot product (``logit_scale``).

Both towers are pre-norm encoders built from the shared pieces (:mod:`pretrained.modeling.encoder`);
the text tower is causal and pools the end-of-text token, the image tower pools the class token.
Module names are the checkpoints' (``text_model.encoder.layers.0.self_attn.q_proj.weight``); a bare
``CLIPTextModel`` / ``CLIPVisionModel`` holds its modules at the top, as transformers 5 saves it, and
loads older checkpoints that put them under ``text_model.`` / ``vision_model.`` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.modeling.activations import get_activation
from pretrained.modeling.attention import attention_function, merge_heads, split_heads
from pretrained.modeling.base import PreTrainedModel
from pretrained.modeling.embeddings import InputEmbeddings
from pretrained.modeling.encoder import EncoderSelfAttention, LayerStack
from pretrained.modeling.losses import sequence_classification_loss
from pretrained.modeling.outputs import (
    BaseModelOutputWithPooling,
    ImageClassifierOutput,
    ModelOutput,
    output_flag,
)
from pretrained.modeling.vision import interpolate_positions
from pretrained.models.auto import register

# --- configs ---------------------------------------------------------------------------------------------


class _TowerConfig(PretrainedConfig):
    """A tower's config, which can also be read from a whole CLIP checkpoint's ``config.json`` (its
    ``text_config`` / ``vision_config`` section), so ``CLIPVisionModel.from_pretrained(clip_folder)`` works."""

    base_config_key = ""

    @classmethod
    def get_config_dict(cls, path_or_repo_id: Any, **kwargs: Any) -> dict[str, Any]:
        data = super().get_config_dict(path_or_repo_id, **kwargs)
        if data.get("model_type") == "clip" and isinstance(data.get(cls.base_config_key), dict):
            data = dict(data[cls.base_config_key])
        return data


class CLIPTextConfig(_TowerConfig):
    model_type = "clip_text_model"
    base_config_key = "text_config"

    def __init__(self, vocab_size: int = 49408, hidden_size: int = 512, intermediate_size: int = 2048,
                 projection_dim: int = 512, num_hidden_layers: int = 12, num_attention_heads: int = 8,
                 max_position_embeddings: int = 77, hidden_act: str = "quick_gelu", layer_norm_eps: float = 1e-5,
                 attention_dropout: float = 0.0, initializer_range: float = 0.02, initializer_factor: float = 1.0,
                 pad_token_id: int | None = 1, bos_token_id: int | None = 49406, eos_token_id: int | None = 49407,
                 **kwargs: Any) -> None:
        self._store_arguments(locals())
        super().__init__(**kwargs)


class CLIPVisionConfig(_TowerConfig):
    model_type = "clip_vision_model"
    base_config_key = "vision_config"

    def __init__(self, hidden_size: int = 768, intermediate_size: int = 3072, projection_dim: int = 512,
                 num_hidden_layers: int = 12, num_attention_heads: int = 12, num_channels: int = 3,
                 image_size: int = 224, patch_size: int = 32, hidden_act: str = "quick_gelu",
                 layer_norm_eps: float = 1e-5, attention_dropout: float = 0.0, initializer_range: float = 0.02,
                 initializer_factor: float = 1.0, **kwargs: Any) -> None:
        self._store_arguments(locals())
        super().__init__(**kwargs)


def _sub_config(cls: type[PretrainedConfig], value: Any, legacy: dict | None) -> PretrainedConfig:
    if isinstance(value, PretrainedConfig):
        return value
    data = dict(value or {})
    data.update(legacy or {})  # the old *_config_dict arguments win, as in transformers
    return cls(**data)


class CLIPConfig(PretrainedConfig):
    """The two towers' configs (``text_config``, ``vision_config``) and the shared projection."""

    model_type = "clip"
    sub_configs = {"text_config": CLIPTextConfig, "vision_config": CLIPVisionConfig}

    def __init__(self, text_config: dict | CLIPTextConfig | None = None,
                 vision_config: dict | CLIPVisionConfig | None = None, projection_dim: int = 512,
                 logit_scale_init_value: float = 2.6592, initializer_factor: float = 1.0, **kwargs: Any) -> None:
        self.text_config = _sub_config(CLIPTextConfig, text_config, kwargs.pop("text_config_dict", None))
        self.vision_config = _sub_config(CLIPVisionConfig, vision_config, kwargs.pop("vision_config_dict", None))
        self.projection_dim = projection_dim
        self.logit_scale_init_value = logit_scale_init_value
        self.initializer_factor = initializer_factor
        super().__init__(**kwargs)

    @classmethod
    def from_text_vision_configs(cls, text_config: CLIPTextConfig, vision_config: CLIPVisionConfig,
                                 **kwargs: Any) -> CLIPConfig:
        return cls(text_config=text_config.to_dict(), vision_config=vision_config.to_dict(), **kwargs)

    def get_text_config(self, *args: Any, **kwargs: Any) -> PretrainedConfig:
        return self.text_config


# --- outputs -------------------------------------------------------------------------------------------


@dataclass
class CLIPTextModelOutput(ModelOutput):
    """The projected end-of-text state (``text_embeds``) and the text tower's states."""

    text_embeds: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class CLIPVisionModelOutput(ModelOutput):
    """The projected class-token state (``image_embeds``) and the image tower's states."""

    image_embeds: torch.Tensor | None = None
    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class CLIPOutput(ModelOutput):
    """Image-text similarities (``logits_per_image`` ``(images, texts)`` and its transpose), the normalised
    embeddings, both towers' outputs, and the contrastive loss when asked for."""

    loss: torch.Tensor | None = None
    logits_per_image: torch.Tensor | None = None
    logits_per_text: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


# --- the towers ------------------------------------------------------------------------------------------


class CLIPTextEmbeddings(nn.Module):
    def __init__(self, config: CLIPTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)

    def forward(self, input_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        seq = input_ids.shape[-1] if input_ids is not None else inputs_embeds.shape[-2]
        limit = self.position_embedding.num_embeddings
        if seq > limit:
            raise ValueError(f"The text is {seq} tokens long, but the CLIP text model accepts at most {limit} "
                             "(max_position_embeddings); pass truncation=True to the tokenizer.")
        if position_ids is None:
            position_ids = torch.arange(seq, device=self.position_embedding.weight.device)[None]
        if inputs_embeds is None:
            inputs_embeds = self.token_embedding(input_ids)
        return inputs_embeds + self.position_embedding(position_ids)


class CLIPVisionEmbeddings(nn.Module):
    def __init__(self, config: CLIPVisionConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.image_size, self.patch_size = config.image_size, config.patch_size
        self.class_embedding = nn.Parameter(torch.zeros(self.embed_dim))
        self.patch_embedding = nn.Conv2d(config.num_channels, self.embed_dim, kernel_size=self.patch_size,
                                         stride=self.patch_size, bias=False)
        self.num_patches = (self.image_size // self.patch_size) ** 2
        self.num_positions = self.num_patches + 1
        self.position_embedding = nn.Embedding(self.num_positions, self.embed_dim)

    def forward(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        batch, _, height, width = pixel_values.shape
        if not interpolate_pos_encoding and (height != self.image_size or width != self.image_size):
            raise ValueError(f"Input image size ({height}*{width}) doesn't match model ({self.image_size}*"
                             f"{self.image_size}); resize the images or pass interpolate_pos_encoding=True.")
        weight = self.patch_embedding.weight
        patches = self.patch_embedding(pixel_values.to(weight.dtype)).flatten(2).transpose(1, 2)
        embeddings = torch.cat([self.class_embedding.expand(batch, 1, -1), patches], dim=1)
        positions = self.position_embedding.weight[None]
        if interpolate_pos_encoding:
            positions = interpolate_positions(positions, height, width, self.patch_size)
        return embeddings + positions


class CLIPAttention(EncoderSelfAttention):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig):
        super().__init__(config, config.attention_dropout)
        self.embed_dim = config.hidden_size
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(self.embed_dim, self.embed_dim)
                                                                for _ in range(4))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        out, weights = self.attend(hidden, (self.q_proj, self.k_proj, self.v_proj), mask, output_attentions)
        return self.out_proj(out), weights


class CLIPMLP(nn.Module):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig):
        super().__init__()
        self.config = config
        self.activation_fn = get_activation(config.hidden_act)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_fn(self.fc1(hidden)))


class CLIPEncoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig):
        super().__init__()
        self.self_attn = CLIPAttention(config)
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = CLIPMLP(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool = False):
        attended, weights = self.self_attn(self.layer_norm1(hidden), mask, output_attentions)
        hidden = hidden + attended
        return hidden + self.mlp(self.layer_norm2(hidden)), weights

    def first_token(self, hidden: torch.Tensor) -> torch.Tensor:
        """The layer's output for the first position alone, ``(batch, 1, hidden)``, without a mask: keys and
        values come from every position, the query, output projection and MLP from the first only."""
        attention = self.self_attn
        normed = self.layer_norm1(hidden)
        q = split_heads(attention.q_proj(normed[:, :1]), attention.num_heads)  # (batch, heads, 1, head_dim)
        k, v = (split_heads(proj(normed), attention.num_heads) for proj in (attention.k_proj, attention.v_proj))
        attend = attention_function(attention.config._attn_implementation, False)
        out, _ = attend(q, k, v, None, dropout=0.0)
        hidden = hidden[:, :1] + attention.out_proj(merge_heads(out))
        return hidden + self.mlp(self.layer_norm2(hidden))


class CLIPEncoder(LayerStack):
    def __init__(self, config: CLIPTextConfig | CLIPVisionConfig):
        super().__init__([CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers)], attribute="layers")


def _normal(module: nn.Module, std: float) -> None:
    if getattr(module, "weight", None) is not None:
        nn.init.normal_(module.weight, std=std)


class CLIPPreTrainedModel(PreTrainedModel):
    config_class = CLIPConfig
    base_model_prefix = "clip"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CLIPTextEmbeddings", "CLIPEncoderLayer", "CLIPVisionEmbeddings"]

    def _init_weights(self, module: nn.Module) -> None:
        factor = getattr(self.config, "initializer_factor", 1.0)
        if isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.zero_()
        if isinstance(module, CLIPTextEmbeddings):
            _normal(module.token_embedding, factor * 0.02)
            _normal(module.position_embedding, factor * 0.02)
        elif isinstance(module, CLIPVisionEmbeddings):
            nn.init.normal_(module.class_embedding, std=module.embed_dim ** -0.5 * factor)
            _normal(module.patch_embedding, module.config.initializer_range * factor)
            _normal(module.position_embedding, module.config.initializer_range * factor)
        elif isinstance(module, CLIPAttention):
            layers = module.config.num_hidden_layers
            for proj in (module.q_proj, module.k_proj, module.v_proj):
                _normal(proj, module.embed_dim ** -0.5 * (2 * layers) ** -0.5 * factor)
            _normal(module.out_proj, module.embed_dim ** -0.5 * factor)
        elif isinstance(module, CLIPMLP):
            hidden, layers = module.config.hidden_size, module.config.num_hidden_layers
            _normal(module.fc1, (2 * hidden) ** -0.5 * factor)
            _normal(module.fc2, hidden ** -0.5 * (2 * layers) ** -0.5 * factor)

    def _flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> tuple[bool, bool]:
        return (output_flag(self.config, "output_attentions", output_attentions),
                output_flag(self.config, "output_hidden_states", output_hidden_states))

    def _projected(self, output_cls: type, embeds: torch.Tensor, tower: BaseModelOutputWithPooling,
                   return_dict: bool | None) -> Any:
        """A ``...WithProjection`` model's output: the projected pooled state ``embeds`` (``text_embeds`` or
        ``image_embeds``, the first field of ``output_cls``) and the tower's states."""
        out = output_cls(embeds, tower.last_hidden_state, tower.hidden_states, tower.attentions)
        return self._outputs(out, return_dict)


def _causal_mask(attention_mask: torch.Tensor | None, seq: int, device: torch.device) -> torch.Tensor:
    """Boolean ``(batch or 1, 1, seq, seq)``: each token sees itself and earlier tokens that are not padding."""
    mask = torch.ones(seq, seq, dtype=torch.bool, device=device).tril()[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask.bool()[:, None, None, :]
    return mask


class CLIPTextModel(InputEmbeddings, CLIPPreTrainedModel):
    """The text tower: ``last_hidden_state`` (after the final LayerNorm) and ``pooler_output`` (the state
    at the end-of-text token)."""

    input_embeddings_path = "embeddings.token_embedding"

    config_class = CLIPTextConfig
    base_model_prefix = "text_model"

    def __init__(self, config: CLIPTextConfig):
        super().__init__(config)
        self.embeddings = CLIPTextEmbeddings(config)
        self.encoder = CLIPEncoder(config)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.eos_token_id = config.eos_token_id
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> BaseModelOutputWithPooling:
        if input_ids is None:
            raise ValueError("You have to specify input_ids")
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        input_ids = input_ids.view(-1, input_ids.shape[-1])
        hidden = self.embeddings(input_ids=input_ids, position_ids=position_ids)
        mask = _causal_mask(attention_mask, input_ids.shape[-1], hidden.device)
        hidden, all_hidden, all_weights = self.encoder(hidden, mask, output_attentions, output_hidden_states)
        hidden = self.final_layer_norm(hidden)
        # The end-of-text token: the highest id for old configs (eos_token_id == 2), else the first eos.
        ids = input_ids.to(device=hidden.device, dtype=torch.int)
        position = ids.argmax(-1) if self.eos_token_id == 2 else (ids == self.eos_token_id).int().argmax(-1)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), position]
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden,
                                         attentions=all_weights)
        return self._outputs(out, return_dict)


class CLIPVisionModel(CLIPPreTrainedModel):
    """The image tower: ``last_hidden_state`` and ``pooler_output`` (the class token after
    ``post_layernorm``)."""

    config_class = CLIPVisionConfig
    base_model_prefix = "vision_model"
    main_input_name = "pixel_values"

    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        self.embeddings = CLIPVisionEmbeddings(config)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)  # sic: the checkpoint key
        self.encoder = CLIPEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def forward(self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool | None = False,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> BaseModelOutputWithPooling:
        if pixel_values is None:
            raise ValueError("You have to specify pixel_values")
        output_attentions, output_hidden_states = self._flags(output_attentions, output_hidden_states)
        hidden = self.pre_layrnorm(self.embeddings(pixel_values, bool(interpolate_pos_encoding)))
        hidden, all_hidden, all_weights = self.encoder(hidden, None, output_attentions, output_hidden_states)
        pooled = self.post_layernorm(hidden[:, 0])
        out = BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled, hidden_states=all_hidden,
                                         attentions=all_weights)
        return self._outputs(out, return_dict)

    def class_token_state(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """``pooler_output`` ``(batch, hidden)`` with the last layer run for the class token alone.

        The pooled state reads only the class token, so the last layer's query, output projection and MLP
        are needed for that row only (keys and values still come from every position): about a twelfth of a
        12-layer tower is skipped. Equal to the full forward's ``pooler_output`` up to float rounding.
        """
        if pixel_values is None:
            raise ValueError("You have to specify pixel_values")
        hidden = self.pre_layrnorm(self.embeddings(pixel_values, bool(interpolate_pos_encoding)))
        *layers, last = self.encoder.layers
        for layer in layers:
            hidden, _ = layer(hidden, None, False)
        return self.post_layernorm(last.first_token(hidden)[:, 0])

    def pooled_class_token(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """``pooler_output``, computed as :meth:`class_token_state` does (the name the image pipelines look
        for in any image tower)."""
        return self.class_token_state(pixel_values, interpolate_pos_encoding)


def _with_sub_attention(config: CLIPConfig) -> CLIPConfig:
    # The towers read the attention implementation from their own configs; give them the outer choice.
    for sub in (config.text_config, config.vision_config):
        sub._attn_implementation = config._attn_implementation
    return config


class CLIPModel(InputEmbeddings, CLIPPreTrainedModel):
    """Both towers, their projections to ``projection_dim`` and the learned temperature ``logit_scale``."""

    input_embeddings_path = "text_model.embeddings.token_embedding"

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        _with_sub_attention(config)
        self.projection_dim = config.projection_dim
        self.text_embed_dim = config.text_config.hidden_size
        self.vision_embed_dim = config.vision_config.hidden_size
        self.text_model = CLIPTextModel(config.text_config)
        self.vision_model = CLIPVisionModel(config.vision_config)
        self.visual_projection = nn.Linear(self.vision_embed_dim, self.projection_dim, bias=False)
        self.text_projection = nn.Linear(self.text_embed_dim, self.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:
            factor = self.config.initializer_factor
            _normal(self.text_projection, self.text_embed_dim ** -0.5 * factor)
            _normal(self.visual_projection, self.vision_embed_dim ** -0.5 * factor)
            self.logit_scale.fill_(float(self.config.logit_scale_init_value))

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          position_ids: torch.Tensor | None = None, return_dict: bool | None = None,
                          **kwargs: Any) -> BaseModelOutputWithPooling:
        """The text tower's output with ``pooler_output`` replaced by the projected text embedding (not yet
        normalised), as transformers 5 returns it."""
        out = self.text_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                              return_dict=True, **kwargs)
        out.pooler_output = self.text_projection(out.pooler_output)
        return self._outputs(out, return_dict)

    def get_image_features(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False,
                           return_dict: bool | None = None, **kwargs: Any) -> BaseModelOutputWithPooling:
        """The image tower's output with ``pooler_output`` replaced by the projected image embedding."""
        out = self.vision_model(pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                return_dict=True, **kwargs)
        out.pooler_output = self.visual_projection(out.pooler_output)
        return self._outputs(out, return_dict)

    def forward(self, input_ids: torch.Tensor | None = None, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                return_loss: bool | None = None, interpolate_pos_encoding: bool = False,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> CLIPOutput:
        flags = {"output_attentions": output_attentions, "output_hidden_states": output_hidden_states}
        vision = self.get_image_features(pixel_values, interpolate_pos_encoding, return_dict=True, **flags)
        text = self.get_text_features(input_ids, attention_mask, position_ids, return_dict=True, **flags)
        image_embeds, text_embeds, logits_per_text = self._similarity(vision.pooler_output, text.pooler_output)
        loss = clip_loss(logits_per_text) if return_loss else None
        out = CLIPOutput(loss=loss, logits_per_image=logits_per_text.t(), logits_per_text=logits_per_text,
                         text_embeds=text_embeds, image_embeds=image_embeds, text_model_output=text,
                         vision_model_output=vision)
        return self._outputs(out, return_dict)

    def _similarity(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The projected image and text embeddings normalised, and ``logits_per_text``."""
        image_embeds = image / image.norm(p=2, dim=-1, keepdim=True)
        text_embeds = text / text.norm(p=2, dim=-1, keepdim=True)
        return image_embeds, text_embeds, text_embeds @ image_embeds.t() * self.logit_scale.exp()

    def class_token_logits(self, input_ids: torch.Tensor, pixel_values: torch.Tensor,
                           attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                           interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """``forward(...).logits_per_image`` ``(images, texts)`` alone, the image tower's last layer run for
        the class token only (:meth:`CLIPVisionModel.class_token_state`): what zero-shot image
        classification needs. Equal to the full forward's up to float rounding."""
        text = self.get_text_features(input_ids, attention_mask, position_ids, return_dict=True).pooler_output
        image = self.visual_projection(self.vision_model.class_token_state(pixel_values, interpolate_pos_encoding))
        return self._similarity(image, text)[2].t()

    def set_attn_implementation(self, attn_implementation: str) -> None:
        super().set_attn_implementation(attn_implementation)
        _with_sub_attention(self.config)


def clip_loss(similarity: torch.Tensor) -> torch.Tensor:
    """The symmetric contrastive loss: each text should match its own image, and each image its text."""
    targets = torch.arange(len(similarity), device=similarity.device)
    return (nn.functional.cross_entropy(similarity, targets) + nn.functional.cross_entropy(similarity.t(), targets)) / 2


class CLIPTextModelWithProjection(InputEmbeddings, CLIPPreTrainedModel):
    """The text tower and its projection: ``text_embeds`` per text."""

    input_embeddings_path = "text_model.embeddings.token_embedding"

    config_class = CLIPTextConfig
    base_model_prefix = "text_model"

    def __init__(self, config: CLIPTextConfig):
        super().__init__(config)
        self.text_model = CLIPTextModel(config)
        self.text_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, output_attentions: bool | None = None,
                output_hidden_states: bool | None = None, return_dict: bool | None = None,
                **kwargs: Any) -> CLIPTextModelOutput:
        text = self.text_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                               return_dict=True)
        return self._projected(CLIPTextModelOutput, self.text_projection(text.pooler_output), text, return_dict)


class CLIPVisionModelWithProjection(CLIPPreTrainedModel):
    """The image tower and its projection: ``image_embeds`` per image."""

    config_class = CLIPVisionConfig
    base_model_prefix = "vision_model"
    main_input_name = "pixel_values"

    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        self.vision_model = CLIPVisionModel(config)
        self.visual_projection = nn.Linear(config.hidden_size, config.projection_dim, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.vision_model.embeddings.patch_embedding

    def forward(self, pixel_values: torch.Tensor | None = None, interpolate_pos_encoding: bool = False,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> CLIPVisionModelOutput:
        vision = self.vision_model(pixel_values=pixel_values, interpolate_pos_encoding=interpolate_pos_encoding,
                                   output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                                   return_dict=True)
        return self._projected(CLIPVisionModelOutput, self.visual_projection(vision.pooler_output), vision,
                               return_dict)


class CLIPForImageClassification(CLIPPreTrainedModel):
    """The image tower with a linear classifier on the mean of its patch states (the class token left out)."""

    main_input_name = "pixel_values"

    def __init__(self, config: CLIPConfig):
        super().__init__(config)
        _with_sub_attention(config)
        self.vision_model = CLIPVisionModel(config.vision_config)
        hidden = config.vision_config.hidden_size
        self.classifier = nn.Linear(hidden, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self and isinstance(self.classifier, nn.Linear):
            _normal(self.classifier, self.config.vision_config.hidden_size ** -0.5 * self.config.initializer_factor)

    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_attentions: bool | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs: Any) -> ImageClassifierOutput:
        encoded = self.vision_model(pixel_values, output_attentions=output_attentions,
                                    output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.classifier(encoded.last_hidden_state[:, 1:].mean(dim=1))
        loss = sequence_classification_loss(logits, labels, self.config) if labels is not None else None
        return self._head_output(ImageClassifierOutput, loss, encoded, return_dict, logits=logits)

    def set_attn_implementation(self, attn_implementation: str) -> None:
        super().set_attn_implementation(attn_implementation)
        _with_sub_attention(self.config)


register("clip", CLIPConfig, base=CLIPModel, zero_shot_image_classification=CLIPModel,
         image_classification=CLIPForImageClassification)
register("clip_text_model", CLIPTextConfig, base=CLIPTextModel)
register("clip_vision_model", CLIPVisionConfig, base=CLIPVisionModel)

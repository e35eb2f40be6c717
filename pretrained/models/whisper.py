"""Whisper: a speech-to-text encoder-decoder (log-mel features in, tokens out).

The encoder reads ``(batch, num_mel_bins, 3000)`` log-mel frames (30 s) through two 1-d convolutions (the
second halves the frame rate), adds a fixed sinusoidal table (saved in checkpoints as
``encoder.embed_positions.weight``) and runs pre-LayerNorm layers with a final ``layer_norm``. The decoder
has learned positions (no offset), pre-LayerNorm layers and a final ``layer_norm``; ``proj_out`` is tied to
its token embedding. The layers and attention are the shared ones of :mod:`pretrained.modeling.seq2seq`,
with Whisper's one difference: ``k_proj`` has no bias. ``generate()`` (language / task / timestamp tokens,
long-form decoding) lives in :mod:`pretrained.generation.whisper`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pretrained.configuration import PretrainedConfig
from pretrained.generation.mixin import GenerationMixin
from pretrained.modeling.outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from pretrained.modeling.seq2seq import (
    DecoderLayer,
    EncoderLayer,
    Seq2SeqDecoder,
    Seq2SeqPreTrainedModel,
    _Stack,
    shift_tokens_right,
)
from pretrained.modeling.seq2seq_heads import (
    decoder_inputs,
    encoder_decoder_forward,
    keep_logits_positions,
    seq2seq_lm_output,
)
from pretrained.models.auto import register

__all__ = ["WhisperConfig", "WhisperModel", "WhisperForConditionalGeneration", "WhisperPreTrainedModel",
           "WhisperEncoder", "WhisperDecoder", "sinusoids", "shift_tokens_right"]


class WhisperConfig(PretrainedConfig):
    """Configuration of a Whisper model (field names and defaults as in transformers: whisper-tiny's shape
    with the multilingual vocabulary)."""

    model_type = "whisper"
    attribute_map = {
        "num_key_value_heads": "encoder_attention_heads",
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }

    def __init__(
        self,
        vocab_size: int = 51865,
        num_mel_bins: int = 80,
        encoder_layers: int = 4,
        encoder_attention_heads: int = 6,
        decoder_layers: int = 4,
        decoder_attention_heads: int = 6,
        decoder_ffn_dim: int = 1536,
        encoder_ffn_dim: int = 1536,
        encoder_layerdrop: float = 0.0,
        decoder_layerdrop: float = 0.0,
        decoder_start_token_id: int = 50257,
        use_cache: bool = True,
        is_encoder_decoder: bool = True,
        activation_function: str = "gelu",
        d_model: int = 384,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        activation_dropout: float = 0.0,
        init_std: float = 0.02,
        scale_embedding: bool = False,
        max_source_positions: int = 1500,
        max_target_positions: int = 448,
        pad_token_id: int | None = 50256,
        bos_token_id: int | None = 50256,
        eos_token_id: int | list[int] | None = 50256,
        suppress_tokens: list[int] | None = None,
        begin_suppress_tokens: list[int] | None = (220, 50256),
        use_weighted_layer_sum: bool = False,
        classifier_proj_size: int = 256,
        apply_spec_augment: bool = False,
        mask_time_prob: float = 0.05,
        mask_time_length: int = 10,
        mask_time_min_masks: int = 2,
        mask_feature_prob: float = 0.0,
        mask_feature_length: int = 10,
        mask_feature_min_masks: int = 0,
        median_filter_width: int = 7,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        if isinstance(begin_suppress_tokens, tuple):
            begin_suppress_tokens = list(begin_suppress_tokens)  # JSON round trips give lists
        self._store_arguments(locals())
        kwargs["is_encoder_decoder"] = is_encoder_decoder
        super().__init__(**kwargs)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's encoder positions: ``channels / 2`` sines then as many cosines, at geometrically spaced
    timescales from 1 to ``max_timescale``."""
    if channels % 2:
        raise ValueError(f"sinusoidal positions need an even number of channels, got {channels}")
    step = math.log(max_timescale) / (channels // 2 - 1)
    inverse = torch.exp(-step * torch.arange(channels // 2))
    angles = torch.arange(length)[:, None] * inverse[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _unbiased_keys(layer: nn.Module) -> nn.Module:
    # Whisper's key projections carry no bias (a bias on keys shifts every score of a query equally,
    # so it never changes the softmax); the checkpoints have no k_proj.bias.
    for attn in (getattr(layer, "self_attn", None), getattr(layer, "encoder_attn", None)):
        if attn is not None:
            dim = attn.k_proj.in_features
            attn.k_proj = nn.Linear(dim, dim, bias=False, device=attn.k_proj.weight.device)
    return layer


class WhisperEncoder(_Stack):
    """The audio encoder: ``conv1`` / ``conv2`` (GELU after each), sinusoidal ``embed_positions``,
    pre-LayerNorm ``layers`` and a final ``layer_norm`` (the shared encoder's layer loop)."""

    final_norm = True
    input_embeddings_path = "conv1"

    def __init__(self, config: WhisperConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        dim = config.d_model
        self.dropout = config.dropout
        self.conv1 = nn.Conv1d(config.num_mel_bins, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, dim)
        self.embed_positions.requires_grad_(False)  # fixed, yet saved with the weights
        self.layers = nn.ModuleList(_unbiased_keys(EncoderLayer(config, i, normalize_before=True))
                                    for i in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(dim)
        self.gradient_checkpointing = False

    def _freeze_parameters(self) -> None:
        for param in self.parameters():
            param.requires_grad = False

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutput | tuple:
        """Encode ``input_features`` ``(batch, num_mel_bins, 2 * max_source_positions)``. The feature
        extractor's ``attention_mask`` is accepted and unused: Whisper attends to the padded silence too."""
        expected = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
        if input_features.dim() != 3 or input_features.shape[-1] != expected:
            raise ValueError(f"Whisper expects input_features of shape (batch, {self.config.num_mel_bins}, "
                             f"{expected}) (30 s of log-mel frames, padded), got {tuple(input_features.shape)}")
        weight = self.conv1.weight
        hidden = F.gelu(self.conv1(input_features.to(weight.device, weight.dtype)))
        hidden = F.gelu(self.conv2(hidden)).transpose(1, 2)  # (batch, frames, d_model), channel-strided
        # positions first: the sum takes the first operand's layout, so the states come out contiguous
        # (with the transposed convolution output first, every later add kept its channel-strided layout
        # and each LayerNorm copied its input to contiguous first)
        hidden = self.embed_positions.weight[: hidden.shape[1]].to(hidden.dtype) + hidden
        hidden = F.dropout(hidden, self.dropout, self.training)
        # (no padding mask: Whisper attends to the padded silence too)
        return self._encode(hidden, None, output_attentions, output_hidden_states, return_dict)


class WhisperDecoder(Seq2SeqDecoder):
    """The text decoder: token embedding, learned ``embed_positions`` (row ``p`` for position ``p``),
    pre-LayerNorm layers with cross-attention, and a final ``layer_norm``. Its embeddings are never scaled
    (transformers ignores ``scale_embedding`` here)."""

    embedding_norm = False
    final_norm = True
    normalize_before = True

    def __init__(self, config: WhisperConfig) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.dropout = config.dropout
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_scale = 1.0
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.gradient_checkpointing = False
        self._position_ids: torch.Tensor | None = None
        self.layers = nn.ModuleList(_unbiased_keys(DecoderLayer(config, i, normalize_before=True))
                                    for i in range(config.decoder_layers))
        self._norms()

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
               positions: torch.Tensor) -> torch.Tensor:
        # per-row positions when given (left-padded prompts in long-form decoding)
        position_ids = getattr(self, "_position_ids", None)
        return super()._embed(input_ids, inputs_embeds, positions if position_ids is None else position_ids)

    def forward(self, *args: Any, position_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """As :meth:`Seq2SeqDecoder.forward`, plus ``position_ids`` ``(batch, length)``."""
        outer = getattr(self, "_position_ids", None)  # set by WhisperModel.forward
        if position_ids is not None:
            self._position_ids = position_ids
        try:
            return super().forward(*args, **kwargs)
        finally:
            self._position_ids = outer


class WhisperPreTrainedModel(Seq2SeqPreTrainedModel):
    """Shared settings of the Whisper models."""

    config_class = WhisperConfig
    main_input_name = "input_features"
    _no_split_modules = ["EncoderLayer", "DecoderLayer"]
    _keys_to_ignore_on_load_unexpected: list[str] = []

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.Conv1d) and not module.weight.is_meta:
            module.weight.data.normal_(0.0, self.config.init_std)
            if module.bias is not None:
                module.bias.data.zero_()
        if isinstance(module, WhisperEncoder) and not module.embed_positions.weight.is_meta:
            with torch.no_grad():
                module.embed_positions.weight.copy_(sinusoids(*module.embed_positions.weight.shape))

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """Encoder positions produced from ``input_lengths`` feature frames (the stride-2 convolution)."""
        return (input_lengths - 1) // 2 + 1


class WhisperModel(WhisperPreTrainedModel):
    """The bare Whisper encoder-decoder: the decoder's last hidden states (and the encoder's output)."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.encoder = WhisperEncoder(config)
        self.decoder = WhisperDecoder(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.decoder.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.decoder.embed_tokens = value

    def freeze_encoder(self) -> None:
        """Stop gradients to the encoder (fine-tuning the decoder alone)."""
        self.encoder._freeze_parameters()

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Any = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqModelOutput | tuple:
        """Encode ``input_features`` (or take ``encoder_outputs``) and decode ``decoder_input_ids`` against
        them. Keyword arguments: ``output_attentions``, ``output_hidden_states``, ``return_dict``,
        ``cache_position``, ``cache`` (transformers 5's name of ``past_key_values``)."""
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError("give input_features (or encoder_outputs)")
            flags = {k: kwargs.get(k) for k in ("output_attentions", "output_hidden_states")}
            encoder_outputs = self.encoder(input_features, return_dict=True, **flags)
        # The features' attention mask covers mel frames, not encoder positions, and the decoder attends to
        # every encoder position anyway: it is not passed on.
        self.decoder._position_ids = decoder_position_ids
        try:
            arguments = dict(locals(), attention_mask=None)
            return self._outputs(encoder_decoder_forward(self, arguments), kwargs.get("return_dict"))
        finally:
            self.decoder._position_ids = None


class WhisperForConditionalGeneration(GenerationMixin, WhisperPreTrainedModel):
    """Whisper with its language-modelling head ``proj_out`` (tied to the decoder's token embedding):
    speech recognition and speech translation."""

    _tied_weights_keys = {"proj_out.weight": "model.decoder.embed_tokens.weight"}
    # language / task / timestamp prompts and window-by-window decoding
    _generate_entry = "pretrained.generation.whisper:generate"
    # generate() feeds decoder_position_ids counted from the decoder mask (padded previous-text prompts)
    _decoder_positions_from_mask = True

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.model = WhisperModel(config)
        self.proj_out = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.max_target_positions = config.max_target_positions
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.proj_out

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.proj_out = value

    def get_input_embeddings(self) -> nn.Module:
        return self.model.get_input_embeddings()

    def freeze_encoder(self) -> None:
        """Stop gradients to the encoder (fine-tuning the decoder alone)."""
        self.model.encoder._freeze_parameters()

    def detect_language(self, input_features: torch.Tensor | None = None, encoder_outputs: Any = None,
                        generation_config: Any = None, num_segment_frames: int = 3000
                        ) -> torch.Tensor:
        """The most likely language token of each row: one decoder step from the start token, scored over
        ``generation_config.lang_to_id`` only."""
        if (input_features is None) == (encoder_outputs is None):
            raise ValueError("give exactly one of input_features or encoder_outputs")
        config = generation_config or self.generation_config
        if input_features is not None:
            inputs = {"input_features": input_features[:, :, :num_segment_frames]}
            batch = input_features.shape[0]
        else:
            inputs = {"encoder_outputs": encoder_outputs}
            batch = encoder_outputs[0].shape[0]
        start = torch.full((batch, 1), config.decoder_start_token_id, dtype=torch.long, device=self.device)
        with torch.no_grad():
            logits = self(**inputs, decoder_input_ids=start, use_cache=False).logits[:, -1]
        keep = torch.zeros_like(logits[0], dtype=torch.bool)
        keep[list(config.lang_to_id.values())] = True
        return logits.masked_fill(~keep, float("-inf")).argmax(-1)

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: Any = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Seq2SeqLMOutput | tuple:
        """Next-token logits; with ``labels`` the cross-entropy loss (decoder inputs made by shifting the
        labels right when not given). ``logits_to_keep`` is accepted as a keyword argument."""
        if labels is not None:
            if labels.shape[1] > self.max_target_positions:
                raise ValueError(f"labels have {labels.shape[1]} tokens; the decoder takes at most "
                                 f"{self.max_target_positions} (max_target_positions)")
            use_cache = False
            decoder_input_ids = decoder_inputs(self, decoder_input_ids, decoder_inputs_embeds, labels)
        logits_to_keep = kwargs.pop("logits_to_keep", 0)
        return_dict = kwargs.pop("return_dict", None)
        outputs = self.model(input_features, attention_mask, decoder_input_ids, decoder_attention_mask,
                             encoder_outputs, past_key_values, decoder_inputs_embeds, decoder_position_ids,
                             use_cache, return_dict=True, **kwargs)
        logits = self.proj_out(keep_logits_positions(outputs.last_hidden_state, logits_to_keep))
        return seq2seq_lm_output(self, outputs, logits, labels, return_dict)


register("whisper", WhisperConfig, base=WhisperModel, speech_seq2seq=WhisperForConditionalGeneration)

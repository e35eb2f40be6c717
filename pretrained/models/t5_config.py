"""The configurations of the T5 family: T5 (v1.0, v1.1 / flan-T5), mT5 and UMT5.

The variants share every field; two class flags read by the modules of :mod:`pretrained.models.t5` set
them apart:

==========  ===========================================================================================
``t5``      v1.0 (``feed_forward_proj="relu"``, decoder output scaled by ``d_model**-0.5`` before the tied
            LM head) or v1.1 / flan-T5 (``"gated-gelu"``, ``tie_word_embeddings=False``: no scaling)
``mt5``     v1.1 with a multilingual vocabulary; the decoder output is never scaled
            (``scales_decoder_output = False``)
``umt5``    every self-attention layer has its own relative position bias (``relative_bias_every_layer``;
            T5: only the first layer's, shared by the others)
==========  ===========================================================================================
"""

from __future__ import annotations

from typing import Any

from pretrained.configuration import PretrainedConfig


class T5Config(PretrainedConfig):
    """Configuration of a T5 model (field names and defaults as in transformers).

    ``feed_forward_proj`` is ``"<act>"`` or ``"gated-<act>"`` (``"gated-gelu"`` means the tanh GELU).
    ``scale_decoder_outputs`` (multiply the decoder output by ``d_model**-0.5`` before the LM head) follows
    ``tie_word_embeddings`` unless given: the original T5 tied and scaled, v1.1 does neither. Unlike
    transformers 5, which always ties and keeps only the scaling flag, ``tie_word_embeddings=False`` is
    kept, so a checkpoint with its own ``lm_head.weight`` loads untied either way.
    """

    model_type = "t5"
    # The decoder's cache is not a prediction (Trainer.prediction_step leaves it out).
    keys_to_ignore_at_inference = ["past_key_values"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
        "head_dim": "d_kv",
    }
    # UMT5 gives each self-attention layer its own relative position bias; T5 shares the first layer's.
    relative_bias_every_layer = False
    # mT5 never scales the decoder output (its checkpoints are untied).
    scales_decoder_output = True

    def __init__(
        self,
        vocab_size: int = 32128,
        d_model: int = 512,
        d_kv: int = 64,
        d_ff: int = 2048,
        num_layers: int = 6,
        num_decoder_layers: int | None = None,
        num_heads: int = 8,
        relative_attention_num_buckets: int = 32,
        relative_attention_max_distance: int = 128,
        dropout_rate: float = 0.1,
        layer_norm_epsilon: float = 1e-6,
        initializer_factor: float = 1.0,
        feed_forward_proj: str = "relu",
        is_encoder_decoder: bool = True,
        use_cache: bool = True,
        pad_token_id: int | None = 0,
        eos_token_id: int | list[int] | None = 1,
        classifier_dropout: float = 0.0,
        tie_word_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        self._store_arguments(locals())
        self.num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
        self.is_decoder = kwargs.pop("is_decoder", False)  # (the stacks know their side; kept for the file)
        parts = feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(
                f"feed_forward_proj {feed_forward_proj!r} is not valid: use '<activation>' or "
                "'gated-<activation>', e.g. 'relu' or 'gated-gelu'"
            )
        self.is_gated_act = parts[0] == "gated"
        # "gated-gelu" has always meant the tanh approximation in T5 checkpoints.
        self.dense_act_fn = "gelu_new" if feed_forward_proj == "gated-gelu" else parts[-1]
        kwargs.pop("dense_act_fn", None)
        kwargs.pop("is_gated_act", None)
        scale = kwargs.pop("scale_decoder_outputs", None)
        if self.scales_decoder_output:
            self.scale_decoder_outputs = tie_word_embeddings is not False if scale is None else scale
        super().__init__(
            is_encoder_decoder=is_encoder_decoder,
            pad_token_id=pad_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )


class MT5Config(T5Config):
    """mT5: T5 v1.1 with a 250k multilingual vocabulary (defaults as in transformers)."""

    model_type = "mt5"
    scales_decoder_output = False

    def __init__(
        self,
        vocab_size: int = 250112,
        d_ff: int = 1024,
        num_layers: int = 8,
        num_heads: int = 6,
        feed_forward_proj: str = "gated-gelu",
        decoder_start_token_id: int | None = 0,
        **kwargs: Any,
    ) -> None:
        if type(self).model_type == "mt5":
            kwargs.setdefault("bos_token_id", None)  # (a field of transformers' MT5Config only)
        super().__init__(
            vocab_size=vocab_size, d_ff=d_ff, num_layers=num_layers, num_heads=num_heads,
            feed_forward_proj=feed_forward_proj, decoder_start_token_id=decoder_start_token_id, **kwargs,
        )


class UMT5Config(MT5Config):
    """UMT5: mT5 with a relative position bias in every self-attention layer."""

    model_type = "umt5"
    relative_bias_every_layer = True
    scales_decoder_output = True

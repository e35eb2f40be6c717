"""MarianMT: translation models with fixed sinusoidal positions and scaled embeddings.

Layers are BART's (post-LayerNorm) without a LayerNorm after the embeddings. The source and target
vocabularies may be one table shared by encoder, decoder and head (``share_encoder_decoder_embeddings``,
the default) or two: then the decoder and the head have ``decoder_vocab_size`` rows. The sinusoidal table
is computed, never saved (older checkpoints that hold it are read without it). Decoding starts from
``decoder_start_token_id`` (the pad token in the published models).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pretrained.modeling.seq2seq import Seq2SeqDecoder, Seq2SeqEncoder, shift_tokens_right  # noqa: F401 (public)
from pretrained.models.auto import register
from pretrained.models.bart import (
    BartConfig,
    BartDecoderWrapper,
    BartForCausalLM,
    BartForConditionalGeneration,
    BartModel,
)


class MarianConfig(BartConfig):
    """Configuration of a Marian model (field names and defaults as in transformers)."""

    model_type = "marian"
    _default_num_labels = 2

    def __init__(
        self,
        vocab_size: int = 58101,
        decoder_vocab_size: int | None = None,
        decoder_start_token_id: int | None = 58100,
        scale_embedding: bool = False,
        pad_token_id: int | None = 58100,
        eos_token_id: int | list[int] | None = 0,
        bos_token_id: int | None = None,
        forced_eos_token_id: int | list[int] | None = 0,
        share_encoder_decoder_embeddings: bool = True,
        **kwargs: Any,
    ) -> None:
        self.decoder_vocab_size = decoder_vocab_size or vocab_size
        self.share_encoder_decoder_embeddings = share_encoder_decoder_embeddings
        kwargs.pop("classifier_dropout", None)
        super().__init__(vocab_size=vocab_size, decoder_start_token_id=decoder_start_token_id,
                         scale_embedding=scale_embedding, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
                         bos_token_id=bos_token_id, forced_eos_token_id=forced_eos_token_id, **kwargs)
        del self.classifier_dropout  # not a Marian field


class MarianEncoder(Seq2SeqEncoder):
    """Marian's encoder: sinusoidal positions, no LayerNorm after the embeddings."""

    learned_positions = False
    scaled_embedding_module = False
    embedding_norm = False


class MarianDecoder(Seq2SeqDecoder):
    """Marian's decoder: sinusoidal positions, no LayerNorm after the embeddings; given ``inputs_embeds``
    are scaled too."""

    learned_positions = False
    scaled_embedding_module = False
    embedding_norm = False
    scales_given_embeds = True


def _shared(config: MarianConfig) -> bool:
    return bool(getattr(config, "share_encoder_decoder_embeddings", True))


class MarianModel(BartModel):
    """The bare Marian encoder-decoder."""

    config_class = MarianConfig
    _keys_to_ignore_on_load_unexpected = [*BartModel._keys_to_ignore_on_load_unexpected, r"embed_positions\.weight"]

    def __init__(self, config: MarianConfig) -> None:
        super(BartModel, self).__init__(config)
        if _shared(config):
            self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
            self.encoder = MarianEncoder(config, self.shared)
            self.decoder = MarianDecoder(config, self.shared)
        else:
            self.encoder = MarianEncoder(config)
            self.decoder = MarianDecoder(config, vocab_size=config.decoder_vocab_size)
        self.post_init()

    def _tie_pairs(self) -> dict[str, str]:
        if not _shared(self.config):
            return {}
        return {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        if _shared(self.config):
            self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value
        else:
            self.encoder.embed_tokens = value

    def get_decoder_input_embeddings(self) -> nn.Embedding:
        if _shared(self.config):
            raise ValueError("the decoder shares the encoder's embeddings (share_encoder_decoder_embeddings); "
                             "use get_input_embeddings()")
        return self.decoder.embed_tokens

    def set_decoder_input_embeddings(self, value: nn.Embedding) -> None:
        if _shared(self.config):
            raise ValueError("the decoder shares the encoder's embeddings (share_encoder_decoder_embeddings); "
                             "use set_input_embeddings()")
        self.decoder.embed_tokens = value

    def _default_decoder_inputs(self, input_ids: torch.Tensor | None) -> torch.Tensor:
        raise ValueError("Marian needs decoder_input_ids (or decoder_inputs_embeds, or labels)")


class MarianMTModel(BartForConditionalGeneration):
    """Marian with its language-modelling head: translation."""

    config_class = MarianConfig
    model_class = MarianModel
    _keys_to_ignore_on_load_unexpected = MarianModel._keys_to_ignore_on_load_unexpected
    _keys_to_ignore_on_load_missing = ["final_logits_bias", r"embed_positions\.weight"]

    def __init__(self, config: MarianConfig) -> None:
        super(BartForConditionalGeneration, self).__init__(config)
        self.model = MarianModel(config)
        vocab = config.vocab_size if _shared(config) else config.decoder_vocab_size
        self.register_buffer("final_logits_bias", torch.zeros((1, vocab)))
        self.lm_head = nn.Linear(config.d_model, vocab, bias=False)
        self.post_init()

    def resize_token_embeddings(self, new_num_tokens: int, pad_to_multiple_of: int | None = None) -> nn.Embedding:
        """Resize the source vocabulary (and, when shared, the target one with the head and its bias)."""
        if not _shared(self.config):  # the encoder's table only; the target side keeps decoder_vocab_size
            if pad_to_multiple_of:
                new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
            old = self.model.encoder.embed_tokens
            new = self._resized(old, nn.Embedding(new_num_tokens, old.embedding_dim, old.padding_idx,
                                                  device=old.weight.device, dtype=old.weight.dtype))
            self.model.encoder.embed_tokens = new
            self.config.vocab_size = new_num_tokens
            return new
        new = super(BartForConditionalGeneration, self).resize_token_embeddings(new_num_tokens, pad_to_multiple_of)
        self.config.decoder_vocab_size = new.num_embeddings
        self._resize_final_logits_bias(new.num_embeddings)
        return new

    def _tie_pairs(self) -> dict[str, str]:
        tie = getattr(self.config, "tie_word_embeddings", True)
        if _shared(self.config):
            pairs = {"model.encoder.embed_tokens.weight": "model.shared.weight",
                     "model.decoder.embed_tokens.weight": "model.shared.weight"}
            return {**pairs, "lm_head.weight": "model.shared.weight"} if tie else pairs
        return {"lm_head.weight": "model.decoder.embed_tokens.weight"} if tie else {}


class MarianDecoderWrapper(BartDecoderWrapper):
    """Holds Marian's decoder under ``decoder`` (see :class:`MarianForCausalLM`)."""

    config_class = MarianConfig
    decoder_class = MarianDecoder
    _keys_to_ignore_on_load_unexpected = MarianModel._keys_to_ignore_on_load_unexpected


class MarianForCausalLM(BartForCausalLM):
    """Marian's decoder alone with the language-modelling head."""

    config_class = MarianConfig
    wrapper_class = MarianDecoderWrapper
    _keys_to_ignore_on_load_unexpected = MarianModel._keys_to_ignore_on_load_unexpected


register("marian", MarianConfig, base=MarianModel, seq2seq_lm=MarianMTModel, causal_lm=MarianForCausalLM)

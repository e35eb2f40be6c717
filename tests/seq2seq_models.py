"""Tiny random encoder-decoders (BART, mBART, Marian) built and saved by transformers, shared by tests."""

import torch
import transformers as T

SIZES = dict(vocab_size=99, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
             dropout=0.0, attention_dropout=0.0)
# pad 1, bos 0, eos 2 in every family (Marian's published defaults are vocabulary-sized)
FAMILIES = {
    "bart": (T.BartConfig, T.BartForConditionalGeneration, {}),
    "mbart": (T.MBartConfig, T.MBartForConditionalGeneration, {"decoder_start_token_id": 2}),
    "marian": (T.MarianConfig, T.MarianMTModel,
               {"pad_token_id": 1, "eos_token_id": 2, "bos_token_id": 0, "forced_eos_token_id": 2,
                "decoder_start_token_id": 1, "scale_embedding": True}),
    "marian_separate_vocab": (T.MarianConfig, T.MarianMTModel,
                              {"pad_token_id": 1, "eos_token_id": 2, "bos_token_id": 0, "forced_eos_token_id": 2,
                               "decoder_start_token_id": 1, "scale_embedding": True, "decoder_vocab_size": 77,
                               "share_encoder_decoder_embeddings": False, "tie_word_embeddings": False}),
}


def tiny_config(family: str, **overrides):
    config_class, _, extra = FAMILIES[family]
    return config_class(**{**SIZES, **extra, **overrides})


def save_tiny_seq2seq(path, family: str = "bart", head=None, **overrides):
    """Save a tiny random model of ``family`` (its conditional-generation head unless ``head`` names another
    transformers class) into ``path``, with a random ``final_logits_bias``; returns ``(transformers model,
    path)``."""
    torch.manual_seed(0)
    model_class = getattr(T, head) if head else FAMILIES[family][1]
    model = model_class(tiny_config(family, **overrides)).eval()
    bias = getattr(model, "final_logits_bias", None)
    if bias is not None:
        with torch.no_grad():
            bias.normal_(0, 0.5)
    model.save_pretrained(path)
    return model, path


def padded_batch():
    """Three source rows of different lengths, right-padded with the pad id 1 (as BART tokenizers pad)."""
    ids = torch.tensor([[0, 5, 6, 7, 8, 9, 2], [0, 10, 11, 2, 1, 1, 1], [0, 20, 21, 22, 23, 2, 1]])
    return ids, (ids != 1).long()

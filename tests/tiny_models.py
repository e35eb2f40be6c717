"""Tiny random models built and saved by transformers (the test-only oracle), shared by test files."""

import torch
import transformers as T

TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)


def save_tiny(path, head="BertForMaskedLM", **overrides):
    """Save a tiny random BERT with ``head`` into ``path``; returns ``path``."""
    torch.manual_seed(0)
    getattr(T, head)(T.BertConfig(**{**TINY, **overrides})).save_pretrained(path)
    return path


def tiny_decode_llama(hidden_size: int = 32, intermediate_size: int = 64, layers: int = 2, bias: bool = False):
    """A seeded random pretrained ``LlamaForCausalLM`` for decode-path tests, in eval mode: vocabulary 96,
    4 heads over 2 key/value heads, no end-of-sequence token (runs always make every new token)."""
    from pretrained.models.llama import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=96, hidden_size=hidden_size, intermediate_size=intermediate_size, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, eos_token_id=None,
        pad_token_id=0, attention_bias=bias, mlp_bias=bias,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def generate_greedy(model, fused: bool, **kwargs):
    """``model.generate`` greedily with its scores, with (``fused``) or without the fused eager decode
    operations of ``pretrained.inference.decode_ops`` (``runner.FUSED_OPS``, restored after)."""
    from pretrained.generation import runner

    runner.FUSED_OPS = fused
    try:
        return model.generate(do_sample=False, output_scores=True, return_dict_in_generate=True, **kwargs)
    finally:
        runner.FUSED_OPS = True

"""The forwards written once for several heads and families (modeling/seq2seq_heads.py, modeling/decoder.py)
keep transformers' argument names and order, so positional and keyword calls port unchanged.

transformers 5 calls the cache argument ``cache``; pretrained keeps ``past_key_values`` in the signature
and takes ``cache`` as a keyword alias, so the two names are compared as one.
"""

from __future__ import annotations

import inspect

import pytest

SHARED_FORWARDS = [
    "BartModel", "BartForConditionalGeneration", "BartForSequenceClassification", "BartForQuestionAnswering",
    "MarianModel", "MarianMTModel",
    *(f"{prefix}{head}" for prefix in ("T5", "MT5", "UMT5") for head in (
        "Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification",
        "ForTokenClassification", "ForQuestionAnswering")),
    *(f"{prefix}{head}" for prefix in ("Llama", "Mistral", "Qwen2", "Qwen3") for head in (
        "ForCausalLM", "ForSequenceClassification")),
    "WhisperModel", "WhisperForConditionalGeneration",
]


def _arguments(cls: type) -> list[str]:
    return ["cache" if name == "past_key_values" else name for name in inspect.signature(cls.forward).parameters]


@pytest.mark.parametrize("name", SHARED_FORWARDS)
def test_forward_arguments_match_transformers(name: str) -> None:
    transformers = pytest.importorskip("transformers")
    import pretrained

    assert _arguments(getattr(pretrained, name)) == _arguments(getattr(transformers, name))


def test_decoder_inputs_default_per_family() -> None:
    """The shared LM forward's hook: without decoder inputs BART denoises (the input shifted right), T5's
    decoder asks for its inputs, Marian says what it needs."""
    import torch

    import pretrained

    seq2seq = dict(vocab_size=50, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                   decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16)
    input_ids = torch.tensor([[0, 5, 6, 2]])
    bart = pretrained.BartForConditionalGeneration(pretrained.BartConfig(**seq2seq)).eval()
    assert bart(input_ids=input_ids).logits.shape == (1, 4, 50)
    t5 = pretrained.T5ForConditionalGeneration(pretrained.T5Config(vocab_size=50, d_model=16, d_kv=4, d_ff=32,
                                                                    num_layers=1, num_heads=2))
    with pytest.raises(ValueError, match="input_ids or inputs_embeds"):
        t5(input_ids=input_ids)
    marian = pretrained.MarianMTModel(pretrained.MarianConfig(**seq2seq, pad_token_id=49, decoder_start_token_id=49))
    with pytest.raises(ValueError, match="Marian needs decoder_input_ids"):
        marian(input_ids=input_ids)

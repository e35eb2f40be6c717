"""A tiny Whisper tokenizer built with transformers (a byte-level BPE trained here plus Whisper's special and
timestamp tokens), shared by the Whisper tokenizer, processor and speech-pipeline tests."""

import json

import tokenizers
import transformers

from pretrained.tokenization.whisper import LANGUAGES

CORPUS = ["the quick brown fox jumps over the lazy dog", "hello world, this is whisper speaking",
          "bonjour le monde", "numbers 123 and symbols !?"] * 20


def _specials():
    return (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{code}|>" for code in LANGUAGES]
            + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
               "<|notimestamps|>"])


def build_reference_tokenizer():
    """A transformers WhisperTokenizer over a tiny byte-level BPE with Whisper's special and timestamp tokens."""
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=[],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    raw = tokenizers.Tokenizer(tokenizers.models.BPE())
    raw.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(CORPUS, trainer)
    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    specials = _specials()
    ref = transformers.WhisperTokenizer(vocab=model["vocab"], merges=merges, pad_token="<|endoftext|>",
                                        extra_special_tokens=specials[1:])
    ref.add_tokens([tokenizers.AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False)
                    for i in range(1501)])
    return ref

"""Tokenization: the transformers tokenizer API around the Rust `tokenizers` library.

- `auto.py`: `AutoTokenizer` (class from `tokenizer_config.json` / `config.json`).
- `fast.py`: `PreTrainedTokenizerFast`, the tokenizer over a `tokenizers.Tokenizer` (encoding hot path,
  vocabulary, decoding, saving).
- `base.py`: `PreTrainedTokenizerBase` (special tokens, argument resolution, `pad`, `decode`, chat).
- `models.py`: family classes (`BertTokenizer`, `GPT2Tokenizer`, `RobertaTokenizer`, `LlamaTokenizer`,
  `T5Tokenizer`, ...) and `builders.py`, which builds their Rust tokenizers from vocabularies.
- `loading.py`: file resolution and the saved configuration -> constructor arguments.
- `batch_encoding.py`: `BatchEncoding` and the strategy enums.
- `chat_template.py`: sandboxed Jinja rendering with `{% generation %}` tracking.
- `sentencepiece_model.py`: a reader for SentencePiece `.model` files (no `sentencepiece` needed).
"""

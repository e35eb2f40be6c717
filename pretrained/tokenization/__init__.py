"""Tokenization: the transformers tokenizer API around the Rust `tokenizers` library.

- `auto.py`: `AutoTokenizer` (class from `tokenizer_config.json` / `config.json`).
- `fast.py`: `PreTrainedTokenizerFast`, the tokenizer over a `tokenizers.Tokenizer` (backend
  construction, vocabulary, bos/eos post-processor, `_encode_plus`, decoding).
- `fast_encoding.py`: the steps of the encoding hot path (input batching, Rust truncation/padding
  settings, overflow rows, list outputs).
- `base.py`: `PreTrainedTokenizerBase` (padding/truncation arguments, `__call__` / `encode`, `decode`),
  assembled from mixins:
  - `special_tokens.py`: named special tokens (`pad_token`, `pad_token_id`, ...), `add_tokens`.
  - `padding.py`: `pad` of encoded inputs, and the numpy padding of Rust encodings for tensor outputs.
  - `chat_template.py`: `apply_chat_template`, with sandboxed Jinja rendering and `{% generation %}`.
- `saving.py`: `from_pretrained` / `save_pretrained`; `loading.py`: file resolution and the saved
  configuration -> constructor arguments.
- `models.py`: family classes (`BertTokenizer`, `GPT2Tokenizer`, `RobertaTokenizer`, `LlamaTokenizer`,
  `T5Tokenizer`, `MBartTokenizer`, ...) and `builders.py`, which builds their Rust tokenizers from vocabularies.
- `marian.py`: `MarianTokenizer`, whose text is segmented by the `sentencepiece` library (source and target
  models) before a word-level Rust tokenizer maps the pieces to `vocab.json` ids.
- `batch_encoding.py`: `BatchEncoding` and the strategy enums.
- `sentencepiece_model.py`: a reader for SentencePiece `.model` files (no `sentencepiece` needed).
"""

"""Tokenization: `AutoTokenizer`, `PreTrainedTokenizerFast` over the Rust `tokenizers` library, `BatchEncoding`."""

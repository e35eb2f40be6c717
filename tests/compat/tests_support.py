"""A tiny WordPiece tokenizer for the example-program tests, saved the way transformers saves one."""

WORDS = ["good", "bad", "fine", "awful", "nice", "poor", "the", "movie", "was", "very"]


def save_wordpiece_tokenizer(folder):
    """Save a BERT tokenizer over `WORDS` (64-id vocabulary) to `folder` with transformers."""
    import transformers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + WORDS + [f"w{i}" for i in range(64 - len(specials) - len(WORDS))]
    path = folder / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(vocab_file=str(path), model_max_length=32)
    tokenizer.save_pretrained(folder)

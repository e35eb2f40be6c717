"""A tiny BERT classifier saved by transformers, and token rows to train it on (the tests of what a run
reports and of transformers' random numbers share them)."""

import torch

# 2 layers of width 16 over a 64-token vocabulary: a training step takes milliseconds
SIZES = {"vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2}
SIZES |= {"intermediate_size": 32, "max_position_embeddings": 32}


def save_tiny_bert(folder, dropout=0.0):
    """Save a `BertForSequenceClassification` made by transformers (seeded) to `folder`."""
    import transformers

    cfg = transformers.BertConfig(**SIZES, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)


def token_rows(n=32, extra_column=False):
    """`n` rows of 8 random token ids with alternating labels (plus an unused `sentence` column)."""
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(1, 64, (8,), generator=g), "labels": i % 2} for i in range(n)]
    for row in rows if extra_column else ():
        row["sentence"] = 0  # a column the model's forward does not take
    return rows

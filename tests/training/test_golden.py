"""Golden loss curves: pretrained's Trainer and transformers' Trainer (test-only oracle) on the same
saved model and data, dropout off, data in a fixed order, give the same first 20 losses.

With gradient accumulation, a model whose forward takes **kwargs but ignores `num_items_in_batch`
(BERT's heads) sums its micro-batch means in both libraries (transformers' rule, kept for parity; see
tests/compat/test_example_programs.py); a model without **kwargs gets the exact mean.
"""

import pytest
import torch

import pretrained

pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
pytestmark = pytest.mark.filterwarnings("ignore")


def _common(out, **kw):
    return dict(
        output_dir=str(out),
        max_steps=20,
        logging_steps=1,
        learning_rate=2e-3,
        warmup_steps=3,
        weight_decay=0.01,
        train_sampling_strategy="sequential",
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
        **kw,
    )


def _curves(tmp_path, pretrained_cls, transformers_cls, data, collator, **kw):
    import transformers

    curves = []
    for lib, cls in ((pretrained, pretrained_cls), (transformers, transformers_cls)):
        model = cls.from_pretrained(tmp_path / "model")
        args = lib.TrainingArguments(**_common(tmp_path / lib.__name__, **kw))
        trainer = lib.Trainer(model=model, args=args, train_dataset=data, data_collator=collator)
        trainer.train()
        logs = [h for h in trainer.state.log_history if "loss" in h]
        curves.append([(h["step"], h["loss"], h["grad_norm"], h["learning_rate"], h["epoch"]) for h in logs])
    return curves


def _assert_close(ours, theirs):
    assert len(ours) == len(theirs) == 20
    for a, b in zip(ours, theirs):
        assert a[0] == b[0]
        assert a[1] == pytest.approx(b[1], abs=1e-4), (a, b)
        assert a[2] == pytest.approx(b[2], rel=1e-3, abs=1e-4), (a, b)
        assert a[3] == pytest.approx(b[3], rel=1e-9), (a, b)
        assert a[4] == pytest.approx(b[4], rel=1e-9), (a, b)


def test_bert_classifier_matches_transformers(tmp_path):
    import transformers

    cfg = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=3,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(cfg).save_pretrained(tmp_path / "model")
    g = torch.Generator().manual_seed(1)
    data = []
    for i in range(96):
        ids = torch.randint(5, 100, (16,), generator=g)
        mask = torch.ones(16, dtype=torch.long)
        mask[10 + i % 6 :] = 0  # some padding
        data.append({"input_ids": ids * mask, "attention_mask": mask, "labels": int(ids[:3].sum()) % 3})
    ours, theirs = _curves(
        tmp_path,
        pretrained.BertForSequenceClassification,
        transformers.BertForSequenceClassification,
        data,
        transformers.default_data_collator,
        per_device_train_batch_size=8,
    )
    _assert_close(ours, theirs)
    assert ours[-1][1] < ours[0][1]  # it learns


def test_llama_with_accumulation_matches_transformers(tmp_path):
    """Token-level loss with padding and accumulation: both normalise by the label tokens of the step."""
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path / "model")
    g = torch.Generator().manual_seed(2)
    data = []
    for _ in range(80):
        n = int(torch.randint(4, 17, (1,), generator=g))
        data.append(torch.randint(1, 64, (n,), generator=g).tolist())

    def collate(rows):
        length = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}

    from pretrained.models.llama import LlamaForCausalLM

    ours, theirs = _curves(
        tmp_path,
        LlamaForCausalLM,
        transformers.LlamaForCausalLM,
        data,
        collate,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
    )
    _assert_close(ours, theirs)

"""Checkpoints cross between the libraries; gradient checkpointing on pretrained's BERT."""

import pytest
import torch

import pretrained

pytestmark = pytest.mark.filterwarnings("ignore")


def _tiny_bert(folder):
    import transformers

    cfg = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(cfg).save_pretrained(folder)


def _data():
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(1, 64, (8,), generator=g), "labels": i % 2} for i in range(64)]


def _args(lib, out, steps):
    return lib.TrainingArguments(
        output_dir=str(out),
        max_steps=steps,
        save_steps=5,
        per_device_train_batch_size=8,
        disable_tqdm=True,
        use_cpu=True,
        report_to="none",
    )


@pytest.mark.parametrize("writer", ["pretrained", "transformers"])
def test_checkpoint_resumes_in_the_other_library(tmp_path, writer):
    pytest.importorskip("accelerate")
    import transformers

    _tiny_bert(tmp_path / "model")
    libs = {"pretrained": pretrained, "transformers": transformers}
    reader = "transformers" if writer == "pretrained" else "pretrained"
    out = tmp_path / "out"
    w = libs[writer]
    w.Trainer(
        w.BertForSequenceClassification.from_pretrained(tmp_path / "model"),
        _args(w, out, 5),
        train_dataset=_data(),
    ).train()
    r = libs[reader]
    trainer = r.Trainer(
        r.BertForSequenceClassification.from_pretrained(tmp_path / "model"),
        _args(r, out, 10),
        train_dataset=_data(),
    )
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-5"))
    assert trainer.state.global_step == 10
    assert [h["step"] for h in trainer.state.log_history if "train_loss" in h] == [10]


def test_gradient_checkpointing_gives_the_same_training(tmp_path):
    _tiny_bert(tmp_path / "model")
    weights = []
    for flag in (False, True):
        model = pretrained.BertForSequenceClassification.from_pretrained(tmp_path / "model")
        args = pretrained.TrainingArguments(
            str(tmp_path / f"out{flag}"),
            max_steps=3,
            gradient_checkpointing=flag,
            save_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
        )
        pretrained.Trainer(model, args, train_dataset=_data()).train()
        assert model.is_gradient_checkpointing == flag
        weights.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*weights):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="gradient_checkpointing_enable"):
        args = pretrained.TrainingArguments(
            str(tmp_path / "x"), max_steps=1, gradient_checkpointing=True, disable_tqdm=True
        )
        pretrained.Trainer(torch.nn.Linear(2, 2), args, train_dataset=[{"input": torch.zeros(2)}]).train()

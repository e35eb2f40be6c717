"""Seq2SeqTrainer, Seq2SeqTrainingArguments and DataCollatorForSeq2Seq against transformers on a tiny T5
(no generation: see test_seq2seq_trainer_generate.py for predict_with_generate)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pretrained

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore")

from seq2seq_helpers import features, save_tiny_t5  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


def _libs():
    return {"pretrained": pretrained, "transformers": transformers}


@pytest.mark.parametrize("options", [
    {}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 32}, {"label_pad_token_id": 0},
])
def test_collator_matches_transformers(folder, options):
    batches = {}
    for name, lib in _libs().items():
        tokenizer = lib.AutoTokenizer.from_pretrained(folder)
        model = lib.AutoModelForSeq2SeqLM.from_pretrained(folder)
        collator = lib.DataCollatorForSeq2Seq(tokenizer, model=model, **options)
        batches[name] = collator(features(tokenizer)[:3])
    ours, theirs = batches["pretrained"], batches["transformers"]
    assert list(ours.keys()) == list(theirs.keys())
    assert "decoder_input_ids" in ours and (ours["labels"] == options.get("label_pad_token_id", -100)).any()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def _train(lib, folder, out, **extra):
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModelForSeq2SeqLM.from_pretrained(folder)
    args = lib.Seq2SeqTrainingArguments(
        output_dir=str(out), max_steps=6, per_device_train_batch_size=2, per_device_eval_batch_size=3,
        learning_rate=3e-3, logging_steps=1, save_strategy="no", seed=7, disable_tqdm=True, report_to="none",
        use_cpu=True, **extra,
    )
    data = features(tokenizer)
    # Six eval examples in batches of three: transformers weighs a short last batch like a whole one.
    trainer = lib.Seq2SeqTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data[:6],
        data_collator=lib.DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer,
    )
    trainer.train()
    return trainer


def test_training_losses_and_evaluation_match(folder, tmp_path):
    pytest.importorskip("accelerate")
    trainers = {name: _train(lib, folder, tmp_path / name) for name, lib in _libs().items()}
    losses = {name: [h["loss"] for h in t.state.log_history if "loss" in h] for name, t in trainers.items()}
    assert len(losses["pretrained"]) == 6
    np.testing.assert_allclose(losses["pretrained"], losses["transformers"], atol=1e-5, rtol=0)
    assert losses["pretrained"][-1] < losses["pretrained"][0]  # it learns
    evals = {name: t.evaluate() for name, t in trainers.items()}
    assert abs(evals["pretrained"]["eval_loss"] - evals["transformers"]["eval_loss"]) < 1e-5
    data = features(trainers["pretrained"].processing_class)[:6]
    ours, theirs = (t.predict(data) for t in trainers.values())
    np.testing.assert_allclose(ours.predictions[0], theirs.predictions[0], atol=1e-4, rtol=0)  # the logits
    np.testing.assert_array_equal(ours.label_ids, theirs.label_ids)
    assert abs(ours.metrics["test_loss"] - theirs.metrics["test_loss"]) < 1e-5


def test_arguments_match_transformers(tmp_path):
    ours = pretrained.Seq2SeqTrainingArguments(str(tmp_path))
    theirs = transformers.Seq2SeqTrainingArguments(str(tmp_path))
    for key in ("sortish_sampler", "predict_with_generate", "generation_max_length", "generation_num_beams",
                "generation_config"):
        assert getattr(ours, key) == getattr(theirs, key), key
    parser = pretrained.HfArgumentParser(pretrained.Seq2SeqTrainingArguments)
    (args,) = parser.parse_args_into_dataclasses([
        "--output_dir", str(tmp_path), "--predict_with_generate", "--generation_max_length", "16",
        "--generation_num_beams", "2", "--generation_config", str(tmp_path / "gen"),
    ])
    assert args.predict_with_generate and args.generation_max_length == 16 and args.generation_num_beams == 2
    assert str(args.generation_config) == str(tmp_path / "gen")
    config = pretrained.GenerationConfig(max_length=12, num_beams=3)
    as_dict = pretrained.Seq2SeqTrainingArguments(str(tmp_path), generation_config=config).to_dict()
    assert as_dict["generation_config"]["num_beams"] == 3
    json.dumps(as_dict)


def test_generation_config_argument(folder, tmp_path):
    pretrained.GenerationConfig(max_length=9, num_beams=2, decoder_start_token_id=0).save_pretrained(tmp_path / "gen")
    model = pretrained.AutoModelForSeq2SeqLM.from_pretrained(folder)
    args = pretrained.Seq2SeqTrainingArguments(str(tmp_path / "out"), generation_config=str(tmp_path / "gen"),
                                               report_to="none", use_cpu=True)
    trainer = pretrained.Seq2SeqTrainer(model=model, args=args)
    assert model.generation_config.max_length == 9 and model.generation_config.num_beams == 2
    loaded = pretrained.Seq2SeqTrainer.load_generation_config(tmp_path / "gen" / "generation_config.json")
    assert loaded.num_beams == 2 and loaded is not model.generation_config
    with pytest.raises(ValueError, match="Fix these issues"):
        pretrained.Seq2SeqTrainer.load_generation_config(pretrained.GenerationConfig(num_beams=1, length_penalty=2.0,
                                                                                      early_stopping=True))
    padded = trainer._pad_tensors_to_max_len(torch.tensor([[5, 6]]), 4)
    assert padded.tolist() == [[5, 6, 0, 0]]  # the model's pad token (no tokenizer given)


def test_compat_module_paths():
    from pretrained.trainer_seq2seq import Seq2SeqTrainer
    from pretrained.training_args_seq2seq import Seq2SeqTrainingArguments

    assert Seq2SeqTrainer is pretrained.Seq2SeqTrainer
    assert Seq2SeqTrainingArguments is pretrained.Seq2SeqTrainingArguments


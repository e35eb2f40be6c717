"""Seq2SeqTrainer with predict_with_generate against transformers on a tiny T5: generated predictions,
labels padded to the generation length, metrics computed on decoded text.

These need generate() for encoder-decoders, which the generation package gains separately; until then
they fail.
"""

from __future__ import annotations

import numpy as np
import pytest

import pretrained

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore")

from seq2seq_helpers import features, save_tiny_t5  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


def _trainer(lib, folder, out, **extra):
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModelForSeq2SeqLM.from_pretrained(folder)

    def compute_metrics(prediction):
        preds = np.where(prediction.predictions != -100, prediction.predictions, tokenizer.pad_token_id)
        labels = np.where(prediction.label_ids != -100, prediction.label_ids, tokenizer.pad_token_id)
        decoded = tokenizer.batch_decode(preds, skip_special_tokens=True)
        references = tokenizer.batch_decode(labels, skip_special_tokens=True)
        return {"exact": float(np.mean([a == b for a, b in zip(decoded, references)])),
                "gen_len": float(np.mean([len(d) for d in decoded]))}

    args = lib.Seq2SeqTrainingArguments(
        output_dir=str(out), max_steps=4, per_device_train_batch_size=2, per_device_eval_batch_size=3,
        learning_rate=3e-3, save_strategy="no", seed=7, disable_tqdm=True, report_to="none", use_cpu=True,
        predict_with_generate=True, **extra,
    )
    data = features(tokenizer)
    trainer = lib.Seq2SeqTrainer(
        model=model, args=args, train_dataset=data, eval_dataset=data[:6], processing_class=tokenizer,
        data_collator=lib.DataCollatorForSeq2Seq(tokenizer, model=model), compute_metrics=compute_metrics,
    )
    trainer.train()
    return trainer


@pytest.mark.parametrize("extra", [{}, {"generation_max_length": 7, "generation_num_beams": 3}])
def test_evaluate_and_predict_with_generate_match(folder, tmp_path, extra):
    pytest.importorskip("accelerate")
    libs = {"pretrained": pretrained, "transformers": transformers}
    trainers = {name: _trainer(lib, folder, tmp_path / name, **extra) for name, lib in libs.items()}
    evals = {name: t.evaluate() for name, t in trainers.items()}
    for key in ("eval_loss", "eval_exact", "eval_gen_len"):
        assert abs(evals["pretrained"][key] - evals["transformers"][key]) < 1e-5, key
    data = features(trainers["pretrained"].processing_class)[:6]
    ours, theirs = (t.predict(data) for t in trainers.values())
    np.testing.assert_array_equal(ours.predictions, theirs.predictions)
    np.testing.assert_array_equal(ours.label_ids, theirs.label_ids)
    # padded to the model's generation config max_length (20), whatever generation_max_length says
    assert ours.predictions.shape == (6, 20)
    # generate() keyword arguments given to predict override the arguments
    ours, theirs = (t.predict(data, max_new_tokens=4, num_beams=2) for t in trainers.values())
    np.testing.assert_array_equal(ours.predictions, theirs.predictions)

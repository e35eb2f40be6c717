"""A transformers program fine-tuning a T5 with Seq2SeqTrainer runs unchanged on pretrained (through
`python -m pretrained.compat`) with the same losses as under transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import pretrained

pytest.importorskip("transformers")

from seq2seq_helpers import save_tiny_t5  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


PROGRAM = '''
import json, sys
from transformers import (AutoModelForSeq2SeqLM, AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer,
                          Seq2SeqTrainingArguments, set_seed)
from transformers.tokenization_utils_sentencepiece import SentencePieceBackend  # as run_translation.py

folder, out = sys.argv[1], sys.argv[2]
set_seed(3)
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSeq2SeqLM.from_pretrained(folder)
pairs = [("summarize: the quick brown fox", "fox"), ("translate English to German: Good morning!", "Guten Morgen!"),
         ("translate English to German: Thank you very much.", "Vielen Dank."), ("summarize: dogs are good", "dogs")]
data = [dict(tokenizer(s, text_target=t, max_length=16, truncation=True)) for s, t in pairs]
args = Seq2SeqTrainingArguments(output_dir=out, max_steps=4, per_device_train_batch_size=2, logging_steps=1,
                                save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True,
                                learning_rate=1e-3, seed=3)
trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=data, eval_dataset=data,
                         data_collator=DataCollatorForSeq2Seq(tokenizer, model=model), processing_class=tokenizer)
train_metrics = trainer.train().metrics
metrics = trainer.evaluate(max_length=8, num_beams=1)
print(json.dumps({"losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
                  "eval_loss": metrics["eval_loss"], "model": type(model).__module__,
                  "train_keys": sorted(train_metrics), "eval_keys": sorted(metrics),
                  "sentencepiece_backend": isinstance(tokenizer, SentencePieceBackend)}))
'''


def test_a_transformers_program_runs_unchanged(folder, tmp_path):
    import os
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    pytest.importorskip("accelerate")
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(PROGRAM))
    root = Path(pretrained.__file__).parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    results = {}
    for name, runner in (("transformers", [sys.executable]), ("pretrained", [sys.executable, "-m", "pretrained.compat"])):
        done = subprocess.run([*runner, str(script), folder, str(tmp_path / name)], capture_output=True, text=True,
                              cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    assert results["pretrained"]["model"] == "pretrained.models.t5"
    assert results["transformers"]["model"].startswith("transformers.")
    np.testing.assert_allclose(results["pretrained"]["losses"], results["transformers"]["losses"], atol=1e-5, rtol=0)
    assert abs(results["pretrained"]["eval_loss"] - results["transformers"]["eval_loss"]) < 1e-5
    # the metrics files the example scripts write: with disable_tqdm the printer drops `total_flos` from the
    # train metrics in transformers, so it must here too
    for key in ("train_keys", "eval_keys", "sentencepiece_backend"):
        assert results["pretrained"][key] == results["transformers"][key], key
    assert "total_flos" not in results["pretrained"]["train_keys"]

"""Programs of the kind transformers' `examples/pytorch` scripts are, run on pretrained.

In-process parity with transformers' Trainer (test-only oracle) for what those scripts exercise:
gradient accumulation on a BERT head (transformers sums the micro-batch means), MLM with random masks
and dropout (the loader reads one batch ahead, the eval loader draws a seed), GPT-2's LM-head loss
(label items counted unshifted, in training and evaluation), `training_args.bin`, the `set_*` helpers,
`unwrap_model`, `DataCollatorMixin`. Then two programs of our own run as scripts: a Trainer program
(parser, logging, datasets.map with our tokenizer, metrics files, model card) under
`python -m pretrained.compat` and under transformers, compared; and an accelerate loop under the alias.
"""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

import pretrained

pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate")
pytestmark = pytest.mark.filterwarnings("ignore")

BERT = dict(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32)


def _rows(n, width=8, labels=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    rows = [{"input_ids": torch.randint(5, 64, (width,), generator=g).tolist()} for _ in range(n)]
    for i, row in enumerate(rows):
        row["attention_mask"] = [1] * width
        if labels:
            row["labels"] = i % 2
    return rows


def _both(tmp_path, build, data, collator=None, eval_data=None, **kw):
    """Train (and evaluate) the same saved model with both libraries; return (log, eval_loss) per lib."""
    import transformers

    results = []
    for lib in (pretrained, transformers):
        model = build(lib)
        args = lib.TrainingArguments(str(tmp_path / lib.__name__), logging_steps=1, save_strategy="no",
                                     report_to="none", use_cpu=True, disable_tqdm=True, seed=7, **kw)
        make_collator = collator(lib) if collator else lib.default_data_collator
        trainer = lib.Trainer(model=model, args=args, train_dataset=data, eval_dataset=eval_data,
                              data_collator=make_collator)
        trainer.train()
        log = [(h["loss"], h["grad_norm"]) for h in trainer.state.log_history if "loss" in h]
        evaluated = trainer.evaluate()["eval_loss"] if eval_data is not None else None
        results.append((log, evaluated))
    return results


def _assert_same(results):
    (ours, our_eval), (theirs, their_eval) = results
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a[0] == pytest.approx(b[0], abs=1e-5) and a[1] == pytest.approx(b[1], rel=1e-4), (a, b)
    if their_eval is not None:
        assert our_eval == pytest.approx(their_eval, abs=1e-5)


def test_bert_classifier_with_accumulation_logs_transformers_numbers(tmp_path):
    import transformers

    cfg = transformers.BertConfig(**BERT, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(cfg).save_pretrained(tmp_path / "model")
    results = _both(tmp_path, lambda lib: lib.BertForSequenceClassification.from_pretrained(tmp_path / "model"),
                    _rows(24), max_steps=5, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                    learning_rate=1e-3)
    _assert_same(results)
    # the logged loss is the sum of the two micro-batch means (transformers' rule): about twice the mean
    assert results[0][0][0][0] > 1.2


def test_mlm_masks_dropout_and_eval_follow_transformers(tmp_path):
    import transformers
    from tests_support import save_wordpiece_tokenizer

    cfg = transformers.BertConfig(**BERT, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    torch.manual_seed(0)
    transformers.BertForMaskedLM(cfg).save_pretrained(tmp_path / "model")
    save_wordpiece_tokenizer(tmp_path / "model")
    rows = [{k: v for k, v in r.items() if k != "labels"} for r in _rows(22)]

    def collator(lib):
        tokenizer = lib.AutoTokenizer.from_pretrained(tmp_path / "model")
        return lib.DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.3)

    # 7 steps of 4 over 22 rows: the run stops inside its second epoch (the read-ahead batch matters)
    results = _both(tmp_path, lambda lib: lib.BertForMaskedLM.from_pretrained(tmp_path / "model"), rows,
                    collator=collator, eval_data=rows[:10], max_steps=7, per_device_train_batch_size=4,
                    learning_rate=1e-3)
    _assert_same(results)


def test_gpt2_lm_head_loss_counts_items_like_transformers(tmp_path):
    import transformers

    cfg = transformers.GPT2Config(vocab_size=64, n_embd=16, n_layer=2, n_head=2, n_positions=32)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "model")
    rows = [{"input_ids": r["input_ids"], "labels": r["input_ids"]} for r in _rows(16, labels=False)]
    results = _both(tmp_path, lambda lib: lib.GPT2LMHeadModel.from_pretrained(tmp_path / "model"), rows,
                    eval_data=rows[:6], max_steps=3, per_device_train_batch_size=4,
                    gradient_accumulation_steps=2, learning_rate=1e-3)
    _assert_same(results)


def test_training_args_bin_is_transformers_object_and_reads_back_without_unpickling(tmp_path):
    import transformers

    from pretrained.training.args_file import load_training_args, save_training_args

    args = pretrained.TrainingArguments(str(tmp_path), learning_rate=3e-4, lr_scheduler_type="cosine",
                                        eval_strategy="steps", eval_steps=5, hub_token="secret")
    save_training_args(args, tmp_path / "ours.bin")
    theirs = torch.load(tmp_path / "ours.bin", weights_only=False)
    assert type(theirs) is transformers.TrainingArguments
    assert theirs.learning_rate == 3e-4 and theirs.lr_scheduler_type == transformers.SchedulerType.COSINE
    assert theirs.eval_strategy == transformers.IntervalStrategy.STEPS and theirs.hub_token == "<HUB_TOKEN>"
    assert theirs.device.type == "cpu" and theirs.to_dict()["eval_steps"] == 5  # transformers' methods work
    assert oct(os.stat(tmp_path / "ours.bin").st_mode & 0o777) == oct(0o666 & ~_umask())

    torch.save(transformers.TrainingArguments(str(tmp_path), learning_rate=2e-5), tmp_path / "theirs.bin")
    for name, rate in (("ours.bin", 3e-4), ("theirs.bin", 2e-5)):
        fields = load_training_args(tmp_path / name)
        assert fields["learning_rate"] == rate and isinstance(fields["optim"], str)
    # anything but the known classes is refused, never run
    evil = tmp_path / "evil.bin"
    torch.save({"x": 1}, evil)
    with zipfile.ZipFile(evil) as z:
        member = next(n for n in z.namelist() if n.endswith("data.pkl"))
        other = {n: z.read(n) for n in z.namelist() if n != member}
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr(member, pickle.dumps(os.system, protocol=2))
        for n, data in other.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="refusing to load posix.system|refusing to load nt.system"):
        load_training_args(evil)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_set_helpers_set_what_transformers_sets(tmp_path):
    import transformers

    calls = [("set_training", dict(learning_rate=1e-3, batch_size=4, num_epochs=2, gradient_accumulation_steps=2)),
             ("set_evaluate", dict(strategy="steps", steps=10, batch_size=16)),
             ("set_testing", dict(batch_size=3)),
             ("set_save", dict(strategy="steps", steps=20, total_limit=2)),
             ("set_logging", dict(strategy="steps", steps=5, first_step=True)),
             ("set_optimizer", dict(name="sgd", learning_rate=0.1, beta1=0.8)),
             ("set_lr_scheduler", dict(name="cosine", max_steps=50, warmup_steps=5)),
             ("set_dataloader", dict(train_batch_size=2, eval_batch_size=4, drop_last=True, sampler_seed=3))]
    ours = pretrained.TrainingArguments(str(tmp_path), report_to="none")
    theirs = transformers.TrainingArguments(str(tmp_path), report_to="none")
    for name, kw in calls:
        assert getattr(ours, name)(**kw) is ours
        getattr(theirs, name)(**kw)
    mine, other = ours.to_dict(), theirs.to_dict()
    fresh_mine = pretrained.TrainingArguments(str(tmp_path), report_to="none").to_dict()
    fresh_other = transformers.TrainingArguments(str(tmp_path), report_to="none").to_dict()
    touched = {k for k in other if other[k] != fresh_other[k]} | {k for k in mine if mine[k] != fresh_mine[k]}
    assert len(touched) > 20
    # no delay: ours stores 0 where transformers stores None; report_to: ours normalised as at init ([])
    assert mine["report_to"] == [] and other["report_to"] == "none"
    for key in sorted(touched - {"eval_delay", "report_to"}):
        assert mine[key] == other[key], key
    with pytest.raises(ValueError, match="positive number of steps"):
        ours.set_save(strategy="steps", steps=0)
    with pytest.raises(ValueError, match="not a valid IntervalStrategy"):
        ours.set_evaluate(strategy="sometimes")


def test_unwrap_model_and_collator_mixin_at_transformers_paths():
    from pretrained.data.data_collator import DataCollatorMixin
    from pretrained.modeling_utils import unwrap_model

    inner = torch.nn.Linear(2, 2)
    assert unwrap_model(torch.nn.DataParallel(torch.nn.DataParallel(inner))) is inner
    assert unwrap_model(torch.compile(inner)) is inner
    outer = torch.nn.Sequential(torch.nn.DataParallel(inner))
    assert unwrap_model(outer, recursive=True)[0] is inner

    class Pairs(DataCollatorMixin):
        def torch_call(self, features):
            return torch.tensor(features)

        def numpy_call(self, features):
            return list(features)

    assert torch.equal(Pairs()([1, 2]), torch.tensor([1, 2])) and Pairs()([1], return_tensors="np") == [1]
    with pytest.raises(ValueError, match="return_tensors='tf' is not supported"):
        Pairs()([1], return_tensors="tf")


TRAINER_PROGRAM = '''
import json, logging, os, sys
from dataclasses import dataclass, field
import datasets
import transformers
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, HfArgumentParser, Trainer,
                          TrainingArguments, set_seed)
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import check_min_version
from transformers.utils.versions import require_version

check_min_version("4.57.0.dev0")
require_version("datasets>=1.8.0")
logger = logging.getLogger(__name__)

@dataclass
class ModelArguments:
    model_name_or_path: str = field(metadata={"help": "model folder"})
    max_seq_length: int = field(default=16)

def main():
    model_args, training_args = HfArgumentParser((ModelArguments, TrainingArguments)).parse_args_into_dataclasses()
    logging.basicConfig(handlers=[logging.StreamHandler(sys.stdout)])
    if training_args.should_log:
        transformers.utils.logging.set_verbosity_info()
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger.warning(f"rank {training_args.local_process_index} {training_args.parallel_mode.value}")
    set_seed(training_args.seed)
    words = ["good", "bad", "fine", "awful", "nice", "poor"]
    rows = {"sentence": [" ".join(words[(i * 7 + j) % 6] for j in range(4)) for i in range(24)],
            "label": [i % 2 for i in range(24)]}
    raw = datasets.Dataset.from_dict(rows)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    model = AutoModelForSequenceClassification.from_pretrained(model_args.model_name_or_path, from_tf=False)
    with training_args.main_process_first(desc="tokenize"):
        data = raw.map(lambda b: tokenizer(b["sentence"], padding="max_length", truncation=True,
                                           max_length=model_args.max_seq_length), batched=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=data, eval_dataset=data.select(range(8)),
                      processing_class=tokenizer,
                      compute_metrics=lambda p: {"accuracy": float((p.predictions.argmax(-1) == p.label_ids).mean())})
    result = trainer.train(resume_from_checkpoint=get_last_checkpoint(training_args.output_dir))
    trainer.save_model()
    metrics = result.metrics
    metrics["train_samples"] = len(data)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    trainer.create_model_card(finetuned_from=model_args.model_name_or_path, tasks="text-classification")

main()
'''


def _run(program, args, alias, cwd, timeout=240):
    runner = [sys.executable, "-m", "pretrained.compat"] if alias else [sys.executable]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(pretrained.__file__)),
                                                     os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([*runner, str(program), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def _tiny_classifier(folder):
    import transformers
    from tests_support import save_wordpiece_tokenizer

    torch.manual_seed(0)
    transformers.BertForSequenceClassification(transformers.BertConfig(**BERT)).save_pretrained(folder)
    save_wordpiece_tokenizer(folder)


@pytest.mark.slow  # two interpreter starts (about a minute on a loaded box)
def test_trainer_program_runs_unchanged_under_the_alias_like_transformers(tmp_path):
    pytest.importorskip("datasets")
    _tiny_classifier(tmp_path / "model")
    program = tmp_path / "program.py"
    program.write_text(TRAINER_PROGRAM)
    outs = {}
    for alias in (True, False):
        out = tmp_path / ("alias" if alias else "transformers")
        log = _run(program, ["--model_name_or_path", str(tmp_path / "model"), "--output_dir", str(out),
                             "--max_steps", "6", "--per_device_train_batch_size", "4", "--save_steps", "3",
                             "--gradient_accumulation_steps", "2", "--report_to", "none", "--learning_rate",
                             "1e-3", "--logging_steps", "2"], alias, tmp_path)
        if alias:
            assert "***** Running training *****" in log and "Saving model checkpoint to" in log
        outs[alias] = out
    names = {alias: sorted(os.listdir(out)) for alias, out in outs.items()}
    assert names[True] == names[False]
    for name in ("all_results.json", "train_results.json", "eval_results.json"):
        ours, theirs = (json.loads((outs[a] / name).read_text()) for a in (True, False))
        assert set(ours) == set(theirs), name
        for key, value in theirs.items():
            if "runtime" not in key and "per_second" not in key:
                assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-6), (name, key)
    state = [json.loads((outs[a] / "trainer_state.json").read_text()) for a in (True, False)]
    assert set(state[0]) == set(state[1])
    assert json.loads((outs[True] / "config.json").read_text()) == json.loads((outs[False] / "config.json").read_text())
    assert "accuracy" in (outs[True] / "README.md").read_text().lower()


ACCELERATE_PROGRAM = '''
import json, os, sys
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer, SchedulerType, get_scheduler
from transformers.modeling_utils import unwrap_model

folder, out = sys.argv[1], sys.argv[2]
accelerator = Accelerator(gradient_accumulation_steps=2)
transformers.utils.logging.set_verbosity_info()
set_seed(3)
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder)
texts = ["good fine nice", "bad awful poor"] * 8
batch_rows = [dict(tokenizer(t), labels=i % 2) for i, t in enumerate(texts)]
collator = transformers.DataCollatorWithPadding(tokenizer)
loader = DataLoader(batch_rows, batch_size=4, shuffle=True, collate_fn=collator)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scheduler = get_scheduler(SchedulerType("linear"), optimizer=optimizer, num_warmup_steps=0, num_training_steps=8)
model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
losses = []
for epoch in range(2):
    model.train()
    for batch in loader:
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        losses.append(loss.item())
accelerator.wait_for_everyone()
unwrapped = accelerator.unwrap_model(model)
assert unwrap_model(model) is unwrapped
unwrapped.save_pretrained(out, is_main_process=accelerator.is_main_process, save_function=accelerator.save)
tokenizer.save_pretrained(out)
accelerator.save_state(os.path.join(out, "step_8"))
with open(os.path.join(out, "all_results.json"), "w") as f:
    json.dump({"losses": losses}, f)
'''


@pytest.mark.slow
def test_accelerate_loop_program_runs_under_the_alias(tmp_path):
    import transformers

    _tiny_classifier(tmp_path / "model")
    program = tmp_path / "loop.py"
    program.write_text(ACCELERATE_PROGRAM)
    out = tmp_path / "out"
    _run(program, [str(tmp_path / "model"), str(out)], True, tmp_path)
    losses = json.loads((out / "all_results.json").read_text())["losses"]
    assert len(losses) == 8 and all(loss == loss for loss in losses)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
    assert "model.safetensors" in os.listdir(out / "step_8")
    # what the alias run saved loads in transformers with the same logits as in pretrained
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    theirs = transformers.BertForSequenceClassification.from_pretrained(out).eval()(input_ids=ids).logits
    ours = pretrained.BertForSequenceClassification.from_pretrained(out).eval()(input_ids=ids).logits
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)

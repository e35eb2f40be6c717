"""What a run reports, as transformers reports it: metrics printed and saved, the state, the model card,
push_to_hub without network, flos and speed metrics, the INFO log lines, the trainer_utils enums."""

import json
import logging
import os
import stat

import pytest
import torch
from tiny_bert import save_tiny_bert, token_rows

import pretrained
from pretrained.training import outputs
from pretrained.training.reporting import metrics_format

pytestmark = pytest.mark.filterwarnings("ignore")


def _accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def _run(lib, model_dir, out, **kw):
    args = lib.TrainingArguments(
        output_dir=str(out),
        max_steps=4,
        per_device_train_batch_size=8,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        report_to="none",
        **kw,
    )
    trainer = lib.Trainer(
        lib.BertForSequenceClassification.from_pretrained(model_dir),
        args,
        train_dataset=token_rows(),
        eval_dataset=token_rows(16),
        compute_metrics=_accuracy,
    )
    train = trainer.train().metrics
    return trainer, train, trainer.evaluate(), trainer.predict(token_rows(16)).metrics


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    """The same tiny run in pretrained and in transformers: (trainer, train, eval, predict metrics) each."""
    pytest.importorskip("accelerate")
    import transformers

    tmp = tmp_path_factory.mktemp("runs")
    save_tiny_bert(tmp / "model")
    return {
        name: _run(lib, tmp / "model", tmp / name, include_num_input_tokens_seen="all", logging_steps=2)
        for name, lib in (("pretrained", pretrained), ("transformers", transformers))
    }


def test_metric_keys_and_flos_match_transformers(both_runs):
    ours, theirs = both_runs["pretrained"], both_runs["transformers"]
    # PrinterCallback (disable_tqdm) pops `total_flos` from the returned train metrics themselves, in
    # transformers and here (the example scripts write those metrics to train_results.json)
    for i in (1, 2, 3):  # train, evaluate, predict
        assert set(ours[i]) == set(theirs[i])
    assert "total_flos" not in ours[1]
    assert {"train_samples_per_second", "train_steps_per_second", "train_runtime"} <= set(ours[1])
    assert {"test_samples_per_second", "test_steps_per_second"} <= set(ours[3])
    assert [set(h) - {"total_flos"} for h in ours[0].state.log_history] == [
        set(h) - {"total_flos"} for h in theirs[0].state.log_history
    ]
    assert any("train_tokens_per_second" in h for h in ours[0].state.log_history)
    assert ours[0].state.total_flos > 0
    assert ours[0].state.total_flos == theirs[0].state.total_flos
    batch = {"input_ids": torch.zeros(8, 8, dtype=torch.long)}
    assert ours[0].floating_point_ops(batch) == theirs[0].floating_point_ops(batch)


def test_log_metrics_prints_transformers_block(both_runs, capsys):
    from transformers.trainer_pt_utils import log_metrics

    trainer, train, evaluation, _ = both_runs["pretrained"]
    for metrics in (train, evaluation):
        trainer.log_metrics("train", metrics)
        ours = capsys.readouterr().out
        log_metrics(trainer, "train", metrics)  # transformers' own function, given our trainer
        assert ours == capsys.readouterr().out
        assert ours.startswith("***** train metrics *****\n")
    assert metrics_format({"train_runtime": 3725.5, "total_flos": 3 * 2**30})["train_runtime"] == "1:02:05.50"
    assert metrics_format({"total_flos": 3 * 2**30 + 5})["total_flos"] == "3GF"


def test_save_metrics_writes_split_and_merged_files_with_the_umask(both_runs, tmp_path):
    trainer = both_runs["pretrained"][0]
    trainer.args.output_dir = str(tmp_path / "metrics")
    old = os.umask(0o022)
    try:
        trainer.save_metrics("train", {"train_loss": 0.5, "epoch": 1.0})
        trainer.save_metrics("eval", {"eval_loss": 0.25})
        trainer.save_metrics("test", {"test_loss": 0.125}, combined=False)
    finally:
        os.umask(old)
    out = tmp_path / "metrics"
    assert json.loads((out / "train_results.json").read_text()) == {"epoch": 1.0, "train_loss": 0.5}
    assert json.loads((out / "all_results.json").read_text()) == {
        "epoch": 1.0,
        "train_loss": 0.5,
        "eval_loss": 0.25,
    }
    assert (out / "test_results.json").exists()
    assert sorted(os.listdir(out)) == [
        "all_results.json",
        "eval_results.json",
        "test_results.json",
        "train_results.json",
    ]
    assert stat.S_IMODE(os.stat(out / "all_results.json").st_mode) == 0o644
    (out / "all_results.json").write_text("{not json")
    with pytest.raises(OSError, match="all_results.json"):
        trainer.save_metrics("eval", {"eval_loss": 0.25})


def test_save_state_loads_in_transformers(both_runs, tmp_path):
    from transformers import TrainerState

    trainer = both_runs["pretrained"][0]
    trainer.args.output_dir = str(tmp_path / "state")
    trainer.save_state()
    theirs = TrainerState.load_from_json(str(tmp_path / "state" / "trainer_state.json"))
    assert theirs.global_step == trainer.state.global_step == 4
    assert theirs.log_history == trainer.state.log_history


def test_model_card_has_results_and_hyperparameters(both_runs, tmp_path):
    from huggingface_hub import ModelCard

    trainer = both_runs["pretrained"][0]
    trainer.args.output_dir = str(tmp_path / "card")
    trainer.create_model_card(
        language="en",
        license="apache-2.0",
        finetuned_from="org/base",
        tasks="text-classification",
        dataset="glue",
    )
    from pretrained.training.model_card import _eval_results
    card = ModelCard.load(tmp_path / "card" / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "org/base"
    assert "generated_from_trainer" in card.data.tags
    text = card.text
    last_eval = [h for h in trainer.state.log_history if "eval_loss" in h][-1]
    assert f"- Loss: {last_eval['eval_loss']:.4f}" in text
    assert f"- Accuracy: {last_eval['eval_accuracy']}" in text  # 0.5: short floats are shown as they are
    assert "fine-tuned version of [org/base](https://huggingface.co/org/base) on the glue dataset" in text
    assert "- learning_rate: 5e-05" in text and "- training_steps: 4" in text
    # the results table lists the evaluations made during training, found as transformers finds them
    # (before the first log entry with `train_runtime`, which here is every entry: tokens are counted)
    theirs = both_runs["transformers"][0]
    theirs.args.output_dir = str(tmp_path / "their_card")
    (tmp_path / "their_card").mkdir()
    theirs.create_model_card(finetuned_from="org/base", tasks="text-classification", dataset="glue")
    their_text = (tmp_path / "their_card" / "README.md").read_text()
    assert ("### Training results" in text) == ("### Training results" in their_text)

    rows, _ = _eval_results([{"loss": 1.0, "step": 2}, {"eval_loss": 0.5, "eval_accuracy": 0.5, "step": 2},
                             {"train_runtime": 1.0, "step": 2}, {"eval_loss": 0.4, "step": 2}])
    assert rows == [{"Training Loss": 1.0, "Epoch": None, "Step": 2, "Validation Loss": 0.5, "Accuracy": 0.5}]


def test_push_to_hub_offline_is_a_clear_error_and_writes_nothing(both_runs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    trainer = both_runs["pretrained"][0]
    trainer.args.output_dir = str(tmp_path / "push")
    trainer.hub_model_id = None
    with pytest.raises(OSError, match="push_to_hub.*'push'.*nothing was written"):
        trainer.push_to_hub()
    assert not (tmp_path / "push").exists()


def test_push_to_hub_saves_then_uploads_the_folder(both_runs, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id, kw))
            return huggingface_hub.RepoUrl(f"https://huggingface.co/me/{repo_id}")

        def upload_folder(self, **kw):
            calls.append(("upload", sorted(os.listdir(kw["folder_path"])), kw))
            return "commit-info"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    trainer = both_runs["pretrained"][0]
    trainer.args.output_dir = str(tmp_path / "my-model")
    trainer.hub_model_id = None
    pushed = []

    class Seen(pretrained.TrainerCallback):
        def on_push_begin(self, args, state, control, **kwargs):
            pushed.append(state.global_step)

    trainer.add_callback(Seen)
    try:
        assert trainer.push_to_hub(commit_message="done", revision="dev") == "commit-info"
    finally:
        trainer.pop_callback(Seen)
    assert pushed == [4]
    (_, repo, _), (_, files, kw) = calls
    assert repo == "my-model" and trainer.hub_model_id == "me/my-model"
    assert {"README.md", "model.safetensors", "config.json", "training_args.bin"} <= set(files)
    assert kw["repo_id"] == "me/my-model" and kw["commit_message"] == "done" and kw["revision"] == "dev"
    assert "# my-model" in (tmp_path / "my-model" / "README.md").read_text()


def test_info_lines_users_look_for(tmp_path, caplog):
    save_tiny_bert(tmp_path / "model")
    args = pretrained.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        save_steps=2,
        per_device_train_batch_size=8,
        disable_tqdm=True,
        use_cpu=True,
        report_to="none",
    )
    model = pretrained.BertForSequenceClassification.from_pretrained(tmp_path / "model")
    trainer = pretrained.Trainer(model, args, train_dataset=token_rows(extra_column=True))
    with caplog.at_level(logging.INFO, logger="pretrained"):
        trainer.train()
        trainer.save_model()
    text = caplog.text
    assert "***** Running training *****" in text
    assert "  Num examples = 32" in text and "  Total optimization steps = 2" in text
    assert f"Saving model checkpoint to {tmp_path / 'out' / 'checkpoint-2'}" in text
    assert f"Saving model checkpoint to {tmp_path / 'out'}\n" in text + "\n"
    assert "Training completed" in text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pretrained"):
        trainer.evaluate(token_rows(12))
    assert "***** Running Evaluation *****\n  Num examples = 12\n  Batch size = 8" in "\n".join(
        r.getMessage().strip("\n") for r in caplog.records
    )
    assert (
        "The following columns in the training set don't have a corresponding argument in "
        "`BertForSequenceClassification.forward` and have been ignored: sentence." in text
    )
    assert all(r.name.startswith("pretrained") for r in caplog.records if "Running training" in r.message)


def test_trainer_utils_enums_match_transformers():
    from transformers import trainer_utils

    for name in ("SchedulerType", "IntervalStrategy", "SaveStrategy", "HubStrategy"):
        ours, theirs = getattr(outputs, name), getattr(trainer_utils, name)
        assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs]
    assert outputs.IntervalStrategy("steps") == "steps"
    with pytest.raises(ValueError, match="'hourly' is not a valid IntervalStrategy.*'epoch'"):
        outputs.IntervalStrategy("hourly")
    assert outputs.speed_metrics("eval", 0.0, num_samples=10, num_steps=2, num_tokens=5).keys() == {
        "eval_runtime",
        "eval_samples_per_second",
        "eval_steps_per_second",
        "eval_tokens_per_second",
    }


def test_scheduler_type_members_build_schedules(quiet_args):
    from pretrained.training.schedulers import get_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_scheduler(outputs.SchedulerType.LINEAR, opt, num_warmup_steps=0, num_training_steps=10)
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.9)


def test_parameter_and_learning_rate_helpers(quiet_args):
    from training_helpers import TinyClassifier, VectorDataset

    model = TinyClassifier()
    model.net[0].weight.requires_grad_(False)
    trainer = pretrained.Trainer(model, quiet_args(max_steps=1), train_dataset=VectorDataset())
    assert trainer.get_num_trainable_parameters() == sum(p.numel() for p in model.parameters()) - 8 * 16
    with pytest.raises(ValueError, match="no optimizer yet"):
        trainer.get_learning_rates()
    trainer.create_optimizer()
    assert trainer.get_learning_rates() == [5e-5, 5e-5]
    bias = model.net[3].bias
    assert any(p is bias for p in trainer.get_optimizer_group(bias)["params"])
    assert trainer.get_optimizer_group("net.3.bias") is trainer.get_optimizer_group(bias)
    assert len(trainer.get_optimizer_group()) == 2
    with pytest.raises(KeyError, match="no parameter named 'nope'"):
        trainer.get_optimizer_group("nope")
    with pytest.raises(ValueError, match="in no optimizer group"):
        trainer.get_optimizer_group(model.net[0].weight)

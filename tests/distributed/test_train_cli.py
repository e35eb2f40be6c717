"""`pretrained train --nproc-per-node 2 config.json` runs the training under torchrun."""

import json
import sys

import pytest
from cli_fixtures import save_tiny_bert_classifier
from dist_helpers import launch

from pretrained.training.launch import torchrun_command


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert_classifier(tmp_path_factory.mktemp("tiny-bert"))


def test_nproc_per_node_runs_two_processes(tmp_path, tiny_bert):
    rows = [{"text": f"sample {w} number {i}", "label": i % 2} for i, w in enumerate("abcdefghijklmnop")]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = {
        "model": str(tiny_bert),
        "task": "sequence-classification",
        "train_file": str(tmp_path / "train.jsonl"),
        "max_length": 16,
        "args": {"output_dir": str(tmp_path / "out"), "max_steps": 2, "per_device_train_batch_size": 2,
                 "save_steps": 2, "disable_tqdm": True, "use_cpu": True, "report_to": "none"},
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = [
        sys.executable,
        "-m",
        "pretrained",
        "train",
        "--nproc-per-node",
        "2",
        str(tmp_path / "config.json"),
    ]
    done = launch(command, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"')]
    metrics = [m for m in metrics if "train_loss" in m]
    assert len(metrics) == 1  # printed by the main process only
    assert metrics[0]["train_loss"] > 0
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # each of the two processes saved its own RNG state: there were two
    assert {p.name for p in (tmp_path / "out" / "checkpoint-2").glob("rng_state_*.pth")} == {
        "rng_state_0.pth",
        "rng_state_1.pth",
    }


def test_torchrun_command_for_several_nodes(monkeypatch):
    import argparse

    for name in ("LOCAL_RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    args = argparse.Namespace(config="c.json", output_dir=None, resume=True, set=["seed=3"],
                              nproc_per_node="4", nnodes="2", node_rank=None, rdzv_endpoint="host0:29500",
                              rdzv_id="job1", rdzv_backend=None, max_restarts=None)  # fmt: skip
    command = torchrun_command(args)
    assert command[1:3] == ["-m", "torch.distributed.run"]
    assert "--standalone" not in command
    assert {"--nproc-per-node=4", "--nnodes=2", "--rdzv-endpoint=host0:29500", "--rdzv-backend=c10d"} <= set(
        command
    )
    assert command[-6:] == ["pretrained", "train", "c.json", "--resume", "--set", "seed=3"]
    monkeypatch.setenv("LOCAL_RANK", "0")  # already one of torchrun's processes: no second launch
    assert torchrun_command(args) is None

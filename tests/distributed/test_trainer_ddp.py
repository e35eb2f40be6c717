"""`Trainer` under `torchrun --nproc-per-node 2` (gloo): the loss curve of one process with twice the batch."""

import json
import shutil

import pytest
import torch
import transformers
from dist_helpers import torchrun
from dist_trainer import main
from safetensors.torch import load_file


def _losses(folder):
    with open(folder / "log_history.json") as f:
        history = json.load(f)
    return [(e["step"], e["loss"], e.get("grad_norm")) for e in history if "loss" in e]


def _eval_losses(folder):
    with open(folder / "log_history.json") as f:
        return [e["eval_loss"] for e in json.load(f) if "eval_loss" in e]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one")
    main(str(folder), 4)  # one process, the global batch of two processes
    return folder


@pytest.fixture(scope="module")
def reference(reference_run):
    return _losses(reference_run)


@pytest.mark.parametrize("mode", ["ddp", "fsdp", "ddp_accumulate"])
def test_two_processes_match_one_with_twice_the_batch(tmp_path, reference, reference_run, mode):
    # ddp_accumulate: batches of 1, two accumulated per step (reduced once, with the second)
    torchrun("dist_trainer.py", str(tmp_path), "1" if mode == "ddp_accumulate" else "2", mode)
    losses = _losses(tmp_path)
    assert [s for s, _, _ in losses] == [1, 2, 3, 4]
    for (step, loss, norm), (_, ref_loss, ref_norm) in zip(losses, reference):
        assert loss == pytest.approx(ref_loss, abs=1e-5), (mode, step)
        assert norm == pytest.approx(ref_norm, abs=1e-5), (mode, step)
    # evaluation (every process runs the whole evaluation set) gives the one process's eval loss
    assert _eval_losses(tmp_path) == pytest.approx(_eval_losses(reference_run), abs=1e-5)
    assert len(_eval_losses(tmp_path)) == 2
    assert (tmp_path / "checkpoint-4" / "rng_state_1.pth").is_file()
    # the weights saved by the main process (gathered from the shards under FSDP) are the one process's
    saved = load_file(tmp_path / "checkpoint-4" / "model.safetensors")
    expected = load_file(reference_run / "checkpoint-4" / "model.safetensors")
    assert set(saved) == set(expected)
    for name, value in expected.items():
        # (Adam divides by the root of tiny second moments: a gradient summed in another order moves a
        # near-zero-gradient weight by up to ~1e-5 after 4 steps; the losses above agree to 1e-5)
        torch.testing.assert_close(saved[name], value, atol=5e-5, rtol=0, msg=name)
    # and transformers reads them
    loaded, info = transformers.LlamaForCausalLM.from_pretrained(
        tmp_path / "checkpoint-4", output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_tensor_parallel_model_matches_one_process(tmp_path, tmp_path_factory):
    # tp=2: both processes read the same batches, so the reference has the same batch size
    torchrun("dist_trainer.py", str(tmp_path), "4", "tp")
    reference = tmp_path_factory.mktemp("one-tp")
    main(str(reference), 4)
    assert [s for s, _, _ in _losses(tmp_path)] == [1, 2, 3, 4]
    for (step, loss, norm), (_, ref_loss, ref_norm) in zip(_losses(tmp_path), _losses(reference)):
        assert loss == pytest.approx(ref_loss, abs=1e-5), step
        assert norm == pytest.approx(ref_norm, abs=1e-5), step


@pytest.mark.parametrize("mode", ["ddp", "fsdp", "tp"])
def test_resume_under_torchrun_is_exact(tmp_path, mode):
    torchrun("dist_trainer.py", str(tmp_path), "2", mode)
    full = _losses(tmp_path)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    shutil.copytree(tmp_path / "checkpoint-2", resumed_dir / "checkpoint-2")
    torchrun("dist_trainer.py", str(resumed_dir), "2", mode, "4", str(resumed_dir / "checkpoint-2"))
    resumed = [e for e in _losses(resumed_dir) if e[0] > 2]
    assert len(resumed) == 2 and resumed == [e for e in full if e[0] > 2]

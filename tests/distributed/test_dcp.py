"""Distributed checkpoints: saved by FSDP over dp=2 or by tp=2, loaded by dp=2 and by one process."""

import torch
from dist_helpers import torchrun
from dist_workers import LR, tiny_llama

from pretrained.distributed import checkpoint


def _assert_same_optimizer_state(loaded, saved):
    assert set(loaded["state"]) == set(saved["state"])
    for name, state in saved["state"].items():
        for key, value in state.items():
            torch.testing.assert_close(loaded["state"][name][key], value, atol=0, rtol=0, msg=f"{name}.{key}")
    assert [g["lr"] for g in loaded["param_groups"]] == [g["lr"] for g in saved["param_groups"]]


def test_dcp_dp2_to_dp2_and_to_one_process(tmp_path):
    torchrun("dist_workers.py", "dcp_save", str(tmp_path))
    torchrun("dist_workers.py", "dcp_load", str(tmp_path))
    saved = torch.load(tmp_path / "saved_full.pt")
    assert (tmp_path / "dcp" / ".metadata").is_file() and not (tmp_path / "dcp.partial").exists()
    assert saved["optim"]["state"], "the saved optimizer has state"

    # onto dp=2 again (another model's weights were replaced)
    loaded = torch.load(tmp_path / "loaded_full.pt")
    for name, value in saved["model"].items():
        torch.testing.assert_close(loaded["model"][name], value, atol=0, rtol=0, msg=name)
    _assert_same_optimizer_state(loaded["optim"], saved["optim"])

    # onto one process without a process group: plain tensors
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model = tiny_llama(seed=7)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    checkpoint.load(tmp_path / "dcp", model, optimizer)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved["model"][name], atol=0, rtol=0, msg=name)
    _, optim_state = get_state_dict(model, optimizer)
    _assert_same_optimizer_state(optim_state, saved["optim"])
    # and training goes on from there
    model(
        **{"input_ids": torch.zeros(1, 4, dtype=torch.long), "labels": torch.zeros(1, 4, dtype=torch.long)}
    ).loss.backward()
    optimizer.step()


def test_load_names_a_missing_checkpoint(tmp_path):
    model = tiny_llama()
    try:
        checkpoint.load(tmp_path, model)
    except FileNotFoundError as e:
        assert str(tmp_path) in str(e) and ".metadata" in str(e)
    else:
        raise AssertionError("expected FileNotFoundError")


def test_dcp_tp2_to_dp2(tmp_path):
    # saved from tensor-parallel DTensor shards, loaded into FSDP shards over dp=2: the same states
    torchrun("dist_workers.py", "dcp_save_tp", str(tmp_path))
    torchrun("dist_workers.py", "dcp_load", str(tmp_path))
    saved = torch.load(tmp_path / "saved_full.pt")
    loaded = torch.load(tmp_path / "loaded_full.pt")
    assert saved["optim"]["state"], "the saved optimizer has state"
    assert set(loaded["model"]) == set(saved["model"])
    for name, value in saved["model"].items():
        torch.testing.assert_close(loaded["model"][name], value, atol=0, rtol=0, msg=name)
    _assert_same_optimizer_state(loaded["optim"], saved["optim"])

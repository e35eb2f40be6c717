"""FSDP2 over dp=2 and context parallelism over cp=2, against one process running unsharded."""

import torch
from dist_helpers import torchrun
from dist_workers import LR, STEPS, global_batch, local_bytes, padded_batch, tiny_llama, train_steps

from pretrained.distributed.context_parallel import ContextParallel


def test_fsdp_dp2_matches_one_process(tmp_path):
    torchrun("dist_workers.py", "fsdp", str(tmp_path))
    result = torch.load(tmp_path / "fsdp.pt")
    model = tiny_llama()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    train_steps(model, optimizer, [global_batch()] * STEPS)
    full_bytes = local_bytes(model, optimizer)
    state = model.state_dict()
    assert set(result["model"]) == set(state)
    for name, value in state.items():
        torch.testing.assert_close(result["model"][name], value, atol=1e-5, rtol=0, msg=name)
    # parameters + optimizer state held by one rank of two
    assert result["bytes"] <= 0.55 * full_bytes, (result["bytes"], full_bytes)


def test_context_parallel_cp2_matches_unsharded(tmp_path):
    torchrun("dist_workers.py", "cp", str(tmp_path))
    result = torch.load(tmp_path / "cp.pt")
    model = tiny_llama()
    outputs = model(**padded_batch())
    outputs.loss.backward()
    torch.testing.assert_close(result["loss"], outputs.loss.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(result["logits"], outputs.logits.detach(), atol=1e-5, rtol=0)
    for name, p in model.named_parameters():
        torch.testing.assert_close(result["grads"][name], p.grad, atol=1e-5, rtol=0, msg=name)


def test_fsdp_over_cp2_trains_like_one_process(tmp_path):
    # the cp ranks' gradients are summed (their losses are shares of one batch's loss), not averaged
    torchrun("dist_workers.py", "fsdp_cp", str(tmp_path))
    result = torch.load(tmp_path / "fsdp_cp.pt")
    model = tiny_llama()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    train_steps(model, optimizer, [padded_batch()] * STEPS)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(result["model"][name], value, atol=1e-5, rtol=0, msg=name)


def test_clipping_mixed_dtensor_and_plain_gradients(tmp_path):
    torchrun("dist_workers.py", "clip", str(tmp_path))
    result = torch.load(tmp_path / "clip.pt")
    expected_grads = [t.clone() for t in result["full"]]
    params = [torch.nn.Parameter(torch.zeros_like(t)) for t in expected_grads]
    for p, g in zip(params, expected_grads):
        p.grad = g
    for norm_type in (2.0, float("inf")):
        expected = torch.nn.utils.clip_grad_norm_(params, 0.5, norm_type=norm_type)
        torch.testing.assert_close(result["norms"][norm_type], expected, atol=1e-6, rtol=0)
    for got, p in zip(result["grads"], params):
        torch.testing.assert_close(got, p.grad, atol=1e-6, rtol=0)


def test_load_balanced_layout():
    cp = ContextParallel.__new__(ContextParallel)  # the layout needs only the size and the rank
    cp.size, cp.rank, cp.load_balance = 2, 0, True
    assert cp.indices(8, 0).tolist() == [0, 1, 6, 7]
    assert cp.indices(8, 1).tolist() == [2, 3, 4, 5]
    cp.load_balance = False
    assert cp.indices(8, 1).tolist() == [4, 5, 6, 7]
    try:
        cp.indices(7)
    except ValueError as e:
        assert "multiple of 2" in str(e)
    else:
        raise AssertionError("expected a ValueError for a length that does not split")

"""`inference.hugepages`: weights copied into 2 MB-aligned, huge-page-advised memory for compiled decoding."""

from __future__ import annotations

import gc

import pytest
import torch
from torch import nn

from pretrained.inference import hugepages

pytestmark = pytest.mark.skipif(not hugepages.SUPPORTED, reason="no MADV_HUGEPAGE on this OS")


def test_empty_is_aligned_tracked_and_released():
    t = hugepages.empty((1024, 1024), torch.float32)  # 4 MB
    assert t.shape == (1024, 1024) and t.dtype == torch.float32 and t.is_contiguous()
    assert t.data_ptr() % hugepages.HUGE_PAGE == 0 and hugepages.in_huge_pages(t)
    t.fill_(2.0)
    assert hugepages.in_huge_pages(t[512:]) and hugepages.placed(t)
    start = t.data_ptr()
    view = t[3:5].clone()
    del t
    gc.collect()
    assert start not in hugepages._ends  # the region was unmapped and forgotten
    assert torch.equal(view, torch.full((2, 1024), 2.0))
    small = hugepages.empty((10,), torch.float32)  # under 2 MB: ordinary memory
    assert not hugepages.in_huge_pages(small) and hugepages.placed(small)


def test_move_weights_keeps_values_ties_and_training(tmp_path):
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(2048, 512), nn.LayerNorm(512), nn.Linear(512, 2048, bias=False))
    model[2].weight = model[0].weight  # tied (4 MB)
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != "2.weight"}, tmp_path / "w.st")
    loaded = load_file(tmp_path / "w.st")  # memory-mapped from the file, as from_pretrained leaves them
    model.load_state_dict({**loaded, "2.weight": loaded["0.weight"]}, assign=True)
    model[2].weight = model[0].weight
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    files = hugepages._file_mappings()
    assert hugepages._in(files, model[1].weight.data_ptr())

    with torch.inference_mode():
        moved = hugepages.move_weights(model)
    assert moved == 2048 * 512 * 4 + 2 * 512 * 4  # the table once (tied), and LayerNorm's small tensors
    assert model[2].weight is model[0].weight and hugepages.in_huge_pages(model[0].weight)
    files = hugepages._file_mappings()
    assert not any(hugepages._in(files, p.data_ptr()) for p in model.parameters())  # file released
    for k, v in model.state_dict().items():
        assert torch.equal(v, expected[k]), k
    assert hugepages.move_weights(model) == 0  # nothing left to do
    # still trainable (not inference tensors), gradients flow
    model(torch.tensor([[1, 2]])).sum().backward()
    assert model[0].weight.grad is not None and model[0].weight.requires_grad


def test_pack_puts_tensors_side_by_side_and_keeps_them_usable():
    torch.manual_seed(0)
    layers = [nn.Linear(512, n) for n in (1024, 256, 256)]  # 3 MB together: a huge-page region
    params = [layer.weight for layer in layers]
    values = [p.detach().clone() for p in params]
    with torch.inference_mode():
        packed = hugepages.pack(params)
    assert packed.shape == (1536, 512) and hugepages.in_huge_pages(packed)
    assert [layer.weight is p for layer, p in zip(layers, params)] == [True] * 3
    assert all(torch.equal(p, v) for p, v in zip(params, values))
    assert params[1].data_ptr() == packed.data_ptr() + 1024 * 512 * 4
    assert params[2].data_ptr() == packed.data_ptr() + 1280 * 512 * 4
    # not inference tensors: training still works and writes into the packed memory
    layers[2](torch.randn(2, 512)).sum().backward()
    with torch.no_grad():
        params[2] -= params[2].grad
    assert torch.equal(packed[1280:], params[2])
    with pytest.raises(ValueError, match="equal trailing sizes"):
        hugepages.pack([torch.zeros(2, 3), torch.zeros(2, 4)])


def test_collapse_and_huge_page_bytes_report_what_the_kernel_did():
    t = hugepages.empty((2048, 1024), torch.float32).fill_(1.0)  # 8 MB
    collapsed = hugepages.collapse(t)  # False on kernels before 6.1 or without THP: nothing to assert
    huge, total = hugepages.huge_page_bytes([t, t[1024:]])
    assert total == 8 << 20  # the region once, whatever views of it are passed
    assert 0 <= huge <= total and huge % hugepages.HUGE_PAGE == 0
    if collapsed:
        assert huge == total
    assert hugepages.huge_page_bytes([torch.ones(10)]) == (0, 0)  # not a huge-page region
    assert not hugepages.collapse(torch.ones(1 << 20))

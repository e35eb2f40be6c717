"""Every schedule of get_scheduler against transformers' (test-only oracle), and state round trips."""

import pytest
import torch

from pretrained import get_scheduler

CASES = [
    ("linear", {}),
    ("cosine", {}),
    ("cosine", {"num_cycles": 1.5}),
    ("cosine_with_restarts", {"num_cycles": 3}),
    ("polynomial", {"lr_end": 1e-4, "power": 2.0}),
    ("constant", {}),
    ("constant_with_warmup", {}),
    ("inverse_sqrt", {}),
    ("inverse_sqrt", {"timescale": 7}),
    ("cosine_with_min_lr", {"min_lr": 1e-3}),
    ("cosine_with_min_lr", {"min_lr_rate": 0.1}),
    ("cosine_warmup_with_min_lr", {"min_lr_rate": 0.05, "warmup_lr_rate": 0.1}),
    ("warmup_stable_decay", {"num_decay_steps": 10}),
    (
        "warmup_stable_decay",
        {"num_decay_steps": 8, "warmup_type": "cosine", "decay_type": "1-sqrt", "min_lr_ratio": 0.1},
    ),
]


def _lrs(get, name, kwargs, steps=40, warmup=6):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = get(
        name, opt, num_warmup_steps=warmup, num_training_steps=30, scheduler_specific_kwargs=dict(kwargs)
    )
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out, sched


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_schedule_matches_transformers(name, kwargs):
    from transformers.optimization import get_scheduler as reference

    ours, _ = _lrs(get_scheduler, name, kwargs)
    theirs, _ = _lrs(reference, name, kwargs)
    assert ours == pytest.approx(theirs, rel=1e-12, abs=1e-15)
    assert len(set(ours)) > 1 or name == "constant"


def test_reduce_on_plateau_and_state_round_trip(tmp_path):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = get_scheduler(
        "reduce_lr_on_plateau", opt, scheduler_specific_kwargs={"patience": 0, "factor": 0.5}
    )
    for metric in (1.0, 2.0, 3.0):
        sched.step(metric)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)

    _, sched = _lrs(get_scheduler, "cosine", {}, steps=10)
    torch.save(sched.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched2 = get_scheduler("cosine", opt2, num_warmup_steps=6, num_training_steps=30)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_scheduler_errors_name_the_problem():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.raises(ValueError, match="unknown scheduler 'nope'"):
        get_scheduler("nope", opt)
    with pytest.raises(ValueError, match="needs num_training_steps"):
        get_scheduler("linear", opt, num_warmup_steps=0)
    with pytest.raises(ValueError, match="min_lr"):
        get_scheduler("cosine_with_min_lr", opt, num_warmup_steps=0, num_training_steps=10)
    with pytest.raises(ValueError, match="lr_end"):
        get_scheduler("polynomial", opt, 0, 10, {"lr_end": 0.1})

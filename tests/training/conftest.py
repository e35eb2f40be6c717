"""Fixtures of the training tests."""

import os
import sys

import pytest

# the tests import their tiny models from training_helpers.py next to this file
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def quiet_args(tmp_path):
    """TrainingArguments factory with the progress bar off and output in tmp_path."""
    from pretrained import TrainingArguments

    def make(**kw):
        kw.setdefault("output_dir", str(tmp_path / "out"))
        kw.setdefault("disable_tqdm", True)
        kw.setdefault("report_to", "none")
        kw.setdefault("use_cpu", True)
        return TrainingArguments(**kw)

    return make


@pytest.fixture(autouse=True)
def _silence_printer(monkeypatch):
    # PrinterCallback prints every log; keep test output readable
    from pretrained.training import callbacks

    monkeypatch.setattr(callbacks.PrinterCallback, "on_log", lambda self, *a, **k: None)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # tiny models gain nothing from intra-op threads, and pytest workers with several threads
    # each oversubscribe a small CPU, which slows every step down
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""Random numbers as transformers draws them: the same dropout masks from the same seed, its
`rng_state.pth` read back exactly, and resume picking the newest checkpoint that can be read."""

import logging
import os
import pickle

import pytest
import torch
from tiny_bert import save_tiny_bert, token_rows

import pretrained
from pretrained.training import checkpoints as ckpt

pytestmark = pytest.mark.filterwarnings("ignore")


def _losses(lib, model_dir, out, resume=None, after=0, **kw):
    kw.setdefault("max_steps", 10)
    args = lib.TrainingArguments(
        output_dir=str(out),
        logging_steps=1,
        per_device_train_batch_size=8,
        disable_tqdm=True,
        use_cpu=True,
        report_to="none",
        seed=7,
        **kw,
    )
    trainer = lib.Trainer(
        lib.BertForSequenceClassification.from_pretrained(model_dir), args, train_dataset=token_rows()
    )
    trainer.train(resume_from_checkpoint=resume)
    # a state resumed by ours carries the checkpoint's log history (transformers' does not): compare after it
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h and h["step"] > after}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("accelerate")
    folder = tmp_path_factory.mktemp("bert") / "model"
    save_tiny_bert(folder, dropout=0.1)
    return folder


def test_dropout_losses_match_transformers(model_dir, tmp_path):
    """Dropout 0.1, 10 steps over several epochs: the same losses as transformers, step for step."""
    import transformers

    kw = {"save_strategy": "no"}
    ours = _losses(pretrained, model_dir, tmp_path / "ours", **kw)
    theirs = _losses(transformers, model_dir, tmp_path / "theirs", **kw)
    assert list(ours) == list(theirs) == list(range(1, 11))
    for step in ours:
        assert ours[step] == pytest.approx(theirs[step], abs=1e-6), step


@pytest.mark.parametrize("saved_at", [3, 4])  # mid-epoch, and at an epoch's end (4 steps per epoch)
def test_transformers_checkpoint_resumes_with_its_rng(model_dir, tmp_path, saved_at):
    """A checkpoint the transformers Trainer wrote resumes in ours with the losses of transformers
    resuming it (and of the uninterrupted run): its rng_state.pth (numpy arrays inside) is read."""
    import transformers

    out = tmp_path / "written"
    full = _losses(transformers, model_dir, out, save_steps=saved_at)
    folder = str(out / f"checkpoint-{saved_at}")
    with pytest.raises(pickle.UnpicklingError):  # what made ours skip it before
        torch.load(os.path.join(folder, ckpt.RNG_STATE_NAME), weights_only=True)
    ours = _losses(
        pretrained, model_dir, tmp_path / "ours", resume=folder, after=saved_at, save_strategy="no"
    )
    theirs = _losses(
        transformers, model_dir, tmp_path / "theirs", resume=folder, after=saved_at, save_strategy="no"
    )
    assert list(ours) == list(theirs) == list(range(saved_at + 1, 11))
    for step in ours:
        assert ours[step] == pytest.approx(theirs[step], abs=1e-6), step
        assert ours[step] == pytest.approx(full[step], abs=1e-6), step


def test_numpy_allowance_is_scoped_and_narrow(tmp_path):
    """Only the globals that rebuild a numpy array, only for that load."""
    import numpy as np

    path = tmp_path / "arr.pth"
    torch.save({"numpy": np.arange(4, dtype=np.uint32)}, path)
    assert ckpt.torch_load(str(path), numpy_arrays=True)["numpy"].tolist() == [0, 1, 2, 3]
    with pytest.raises(pickle.UnpicklingError):
        ckpt.torch_load(str(path))  # the allowance did not outlive its load

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError):
        ckpt.torch_load(str(tmp_path / "evil.pth"), numpy_arrays=True)


def test_resume_true_skips_unreadable_and_weightless_checkpoints(model_dir, tmp_path, caplog):
    out = tmp_path / "out"
    _losses(pretrained, model_dir, out, max_steps=4, save_steps=2, save_total_limit=None)
    newest, weightless = out / "checkpoint-6", out / "checkpoint-5"
    for broken in (newest, weightless):
        broken.mkdir()
    (newest / ckpt.TRAINER_STATE_NAME).write_text('{"global_step": 6,')  # cut short
    (newest / ckpt.WEIGHTS_NAME).write_bytes(b"")
    (weightless / ckpt.TRAINER_STATE_NAME).write_text('{"global_step": 5}')
    with caplog.at_level(logging.INFO, logger="pretrained"):
        assert ckpt.get_last_checkpoint(str(out)) == str(out / "checkpoint-4")
        losses = _losses(pretrained, model_dir, out, resume=True, max_steps=6, save_strategy="no")
    assert list(losses) == [1, 2, 3, 4, 5, 6]
    assert "Resuming training from checkpoint with epoch 1 and global step 4" in caplog.text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(newest) in m and "does not parse" in m for m in warned)
    assert any(str(weightless) in m and "no model weights" in m for m in warned)
    with pytest.raises(ValueError, match=r"checkpoint-6 is not a complete checkpoint: .*does not parse"):
        _losses(pretrained, model_dir, out, resume=str(newest), max_steps=8)

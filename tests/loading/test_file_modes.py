"""A saved model folder gets the user's umask on every file, like files written with ``open``."""

import os
import stat

import pytest

import pretrained as P


@pytest.mark.parametrize("umask", [0o022, 0o077])
@pytest.mark.parametrize("max_shard_size", ["50GB", "20KB"])
def test_model_files_follow_the_umask(saved, tmp_path, umask, max_shard_size):
    model = P.AutoModelForMaskedLM.from_pretrained(saved)
    old = os.umask(umask)
    try:
        model.save_pretrained(tmp_path, max_shard_size=max_shard_size)
    finally:
        os.umask(old)
    names = sorted(os.listdir(tmp_path))
    assert "config.json" in names and any(n.endswith(".safetensors") for n in names)
    assert not [n for n in names if n.endswith(".tmp")]
    for name in names:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name

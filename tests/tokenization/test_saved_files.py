"""What a saved tokenizer folder holds: the files transformers writes, with the user's umask, and never
the arguments that only said where to load from."""

import json
import os
import stat

import pytest
import transformers

from pretrained import AutoTokenizer

LOADING_ARGUMENTS = {"cache_dir": None, "token": None, "revision": None, "local_files_only": True,
                     "force_download": False, "trust_remote_code": False, "subfolder": ""}


@pytest.mark.parametrize("name", ["bert_uncased", "gpt2", "llama_spbpe"])
def test_loading_arguments_never_saved(tokenizer_dirs, tmp_path, name):
    path = tokenizer_dirs(name)
    AutoTokenizer.from_pretrained(path, **LOADING_ARGUMENTS).save_pretrained(tmp_path / "ours")
    transformers.AutoTokenizer.from_pretrained(path).save_pretrained(tmp_path / "theirs")
    ours = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "tokenizer_config.json").read_text())
    assert not set(ours) & set(LOADING_ARGUMENTS)
    # transformers 5.24 also writes `is_local` / `local_files_only`: loading facts, left out on purpose
    for key in ("is_local", "local_files_only"):
        theirs.pop(key, None)
    assert ours == theirs


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_saved_files_follow_the_umask(tokenizer_dirs, tmp_path, umask):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dirs("bytelevel_chatml"))
    old = os.umask(umask)
    try:
        written = tokenizer.save_pretrained(tmp_path)
    finally:
        os.umask(old)
    assert {os.path.basename(p) for p in written} >= {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask, path

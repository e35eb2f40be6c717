"""The folder and JSON helpers of ``pretrained.utils.io`` that several save / load paths share."""

import json
import os

import pytest

from pretrained.utils.io import output_folder, read_optional_json, replace_folder


def test_output_folder_creates_and_refuses(tmp_path):
    target = tmp_path / "a" / "b"
    assert output_folder(target) == target and target.is_dir()
    assert output_folder(str(target)) == target  # an existing folder is fine
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(AssertionError, match="should be a directory"):
        output_folder(file)
    with pytest.raises(ValueError, match="should be a directory"):
        output_folder(file, not_a_folder=ValueError)
    with pytest.raises(NotImplementedError, match="push_to_hub"):
        output_folder(tmp_path / "c", push_to_hub=True)
    assert not (tmp_path / "c").exists()


def test_replace_folder_swaps_in_the_new_one(tmp_path):
    new, final = tmp_path / "new", tmp_path / "final"
    new.mkdir()
    (new / "x").write_text("new")
    replace_folder(new, final)
    assert (final / "x").read_text() == "new" and not new.exists()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "y").write_text("newer")
    replace_folder(newer, final)  # an older folder of that name is replaced, not merged
    assert sorted(os.listdir(final)) == ["y"]
    assert sorted(os.listdir(tmp_path)) == ["final"]  # the old one moved aside was removed


def test_read_optional_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert read_optional_json(tmp_path, "config.json", {}) == {"model_type": "bert"}
    assert read_optional_json(tmp_path, "missing.json", {}) == {}
    assert read_optional_json(tmp_path / "config.json", "config.json", {}) == {}  # a file is not searched
    (tmp_path / "broken.json").write_text("[1, 2]")
    with pytest.raises(OSError, match="broken.json must hold a JSON object"):  # present but not an object
        read_optional_json(tmp_path, "broken.json", {})

"""Session fixtures for the pipeline tests (builders live in pipeline_fixtures.py)."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from pipeline_fixtures import ModelDirs  # noqa: E402


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """{"sequence", "multi_label", "token", "qa", "mlm", "nli", "base", "causal"} -> saved folder."""
    return ModelDirs(tmp_path_factory.mktemp("pipelines"))

"""check_min_version, require_version and the is_*_available helpers."""

import importlib.metadata
import importlib.util
import sys

import pytest

from pretrained.utils import import_utils
from pretrained.utils.versions import TRANSFORMERS_API_VERSION, check_min_version, require_version


def test_check_min_version_compares_against_the_api_level():
    assert TRANSFORMERS_API_VERSION == "5.24.0"
    check_min_version("4.57.0.dev0")
    check_min_version("5.24.0")
    with pytest.raises(ImportError, match=r"requires transformers 5\.25\.0\.dev0 .* 5\.24\.0"):
        check_min_version("5.25.0.dev0")


def test_require_version():
    numpy_version = importlib.metadata.version("numpy")
    require_version("numpy")
    require_version(f"numpy=={numpy_version}")
    require_version("numpy>=1.0,<1000")
    require_version(f"python>={sys.version_info.major}.{sys.version_info.minor}")
    with pytest.raises(ImportError, match=r"numpy<1\.0 is required .* found numpy==.*\nupgrade it"):
        require_version("numpy<1.0", "upgrade it")
    with pytest.raises(importlib.metadata.PackageNotFoundError, match="no-such-package-xyz"):
        require_version("no-such-package-xyz>=1")
    with pytest.raises(ValueError, match="cannot read"):
        require_version("numpy~>1")


def test_transformers_requirement_takes_the_api_level():
    require_version("transformers>=5.24.0")


def test_availability_answers_are_truthful():
    assert import_utils.is_torch_available() is True
    assert import_utils.is_tokenizers_available() is True
    assert import_utils.is_datasets_available() is (importlib.util.find_spec("datasets") is not None)
    # Features pretrained does not implement answer False whatever is installed.
    assert import_utils.is_torch_xla_available() is False
    assert import_utils.is_flash_attn_2_available() is False
    assert import_utils.is_torch_xla_available.__name__ == "is_torch_xla_available"

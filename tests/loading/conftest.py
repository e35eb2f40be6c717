import pytest
from tiny_models import save_tiny


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("bert"))

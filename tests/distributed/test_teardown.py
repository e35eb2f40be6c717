"""`close_distributed` frees a destroyed process group that torch still references, so that no gloo thread
is left at interpreter shutdown (where one can abort the process: see backend_threads.py)."""

import json
import sys

import pytest
from dist_helpers import torchrun

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/task")


def test_close_distributed_joins_the_gloo_threads_torch_keeps(tmp_path):
    torchrun("teardown_worker.py", str(tmp_path))
    for rank in (0, 1):
        seen = json.loads((tmp_path / f"threads-{rank}.json").read_text())
        assert seen["after_close"] == []
        # what the worker covers: torch's destroy_process_group alone leaves the group's threads running
        # (when a torch release frees them itself, this fails and the clean-up may go)
        assert "pt_gloo_runloop" in seen["after_destroy"], seen

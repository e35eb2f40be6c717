"""examples/3d_parallel.py runs its own sanity checks on 2 CPU processes: dp=2, cp=2 and tp=2."""

import os

import pytest
from dist_helpers import ROOT, torchrun


@pytest.mark.parametrize("layout", [["--dp", "2"], ["--cp", "2"], ["--tp", "2"]])
def test_3d_example_passes_its_checks(tmp_path, layout):
    script = os.path.join(ROOT, "examples", "3d_parallel.py")
    output = torchrun(script, *layout, "--steps", "4", "--checkpoint-dir", str(tmp_path / "dcp"))
    assert "FAIL" not in output
    assert output.count("ok  ") == 4, output[-3000:]

"""Running a program under `python -m torch.distributed.run` from a test."""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEARDOWN_ABORT = "terminate called without an active exception"


def launch(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command that starts local processes (torchrun, `pretrained train --nproc-per-node`), with one
    thread per process, offline, this checkout first on the path and no rank variables of an outer run.

    A port taken between `--standalone` picking it and the rendezvous binding it is retried (up to 3 times);
    so, once, is the C++ teardown abort ("terminate called without an active exception"): a gloo worker
    thread still alive at interpreter shutdown is ended by Python inside a destructor. `close_distributed`
    now frees the groups before shutdown and the workers check that no gloo thread is left (a failure
    every time, not retried); the retry stays for programs without that check (`pretrained train`).
    Returns the last run.
    """
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    aborts = 0
    for _ in range(4):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        if not done.returncode:
            break
        if re.search(r"(?i)address already in use|EADDRINUSE", output):
            continue
        if TEARDOWN_ABORT in output and aborts == 0:
            aborts += 1
            continue
        break
    return done


def torchrun(script: str, *args: str, nproc: int = 2, timeout: float = 300) -> str:
    """Run `script` (a path, or a file of tests/distributed) on `nproc` local processes; returns the output.

    `--standalone` lets the rendezvous pick a free port, so tests may run side by side. The timeout is
    generous: a run takes 10-30 s, but much longer on a box shared with other test runs.
    """
    path = script if os.path.isabs(script) else os.path.join(HERE, script)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", path, *args]
    done = launch(cmd, timeout)
    output = done.stdout + done.stderr
    if done.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n{output[-6000:]}")
    return output

"""`pretrained train --nproc-per-node N ...`: the command starts itself again under torchrun.

The options are torchrun's own (``--nproc-per-node``, ``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``,
``--rdzv-id``, ``--rdzv-backend``, ``--max-restarts``); the same ``pretrained train`` command line,
without them, runs in every process. On one machine the rendezvous picks a free port
(``--standalone``); across machines every node runs the same command with its ``--node-rank`` (or an
``--rdzv-id`` shared by all) and one ``--rdzv-endpoint HOST:PORT`` that all of them reach.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

_OPTIONS = {  # our option -> (torchrun option, type)
    "nproc_per_node": ("--nproc-per-node", str),
    "nnodes": ("--nnodes", str),
    "node_rank": ("--node-rank", int),
    "rdzv_endpoint": ("--rdzv-endpoint", str),
    "rdzv_id": ("--rdzv-id", str),
    "rdzv_backend": ("--rdzv-backend", str),
    "max_restarts": ("--max-restarts", int),
}


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add torchrun's launch options to the `train` sub-command."""
    group = parser.add_argument_group("several processes (started with torchrun)")
    for dest, (flag, kind) in _OPTIONS.items():
        underscored = "--" + flag[2:].replace("-", "_")
        group.add_argument(flag, underscored, dest=dest, type=kind, default=None, help=f"torchrun's {flag}")


def under_torchrun() -> bool:
    """Whether this process was started by torchrun (it sets TORCHELASTIC_RUN_ID and LOCAL_RANK)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def torchrun_command(cli_args: argparse.Namespace) -> list[str] | None:
    """The command that runs this `pretrained train` under torchrun, or None when no launch option
    was given (or this process is already one of torchrun's)."""
    given = {dest: getattr(cli_args, dest, None) for dest in _OPTIONS}
    if all(v is None for v in given.values()) or under_torchrun():
        return None
    command = [sys.executable, "-m", "torch.distributed.run"]
    multi_node = given["nnodes"] not in (None, "1") or given["rdzv_endpoint"] is not None
    if not multi_node:
        command.append("--standalone")  # a free local port, no rendezvous to set up
    elif given["rdzv_endpoint"] is not None and given["rdzv_backend"] is None:
        given["rdzv_backend"] = "c10d"
    for dest, (flag, _) in _OPTIONS.items():
        if given[dest] is not None:
            command.append(f"{flag}={given[dest]}")
    command += ["--module", "pretrained", "train", cli_args.config]
    if cli_args.output_dir:
        command += ["--output-dir", cli_args.output_dir]
    if cli_args.resume is True:
        command.append("--resume")
    elif cli_args.resume is not None:
        command += ["--resume", str(cli_args.resume)]
    for item in cli_args.set:
        command += ["--set", item]
    return command


def relaunch(cli_args: argparse.Namespace) -> int | None:
    """Run `pretrained train` under torchrun when launch options were given; its exit code, or None
    to go on in this process."""
    command = torchrun_command(cli_args)
    if command is None:
        return None
    return subprocess.run(command, check=False).returncode

"""``python -m pretrained.compat script.py [args...]``: run a program written for transformers, unchanged,
with ``transformers`` resolving to ``pretrained`` (``python -m pretrained.compat -m package.module`` for a
module)."""

from __future__ import annotations

import os
import runpy
import sys

from pretrained.compat import install_alias

USAGE = "usage: python -m pretrained.compat script.py [args...] | -m module [args...]"


def main(argv: list[str]) -> None:
    """Install the alias, then run ``argv[0]`` (a script path, or ``-m module``) as ``__main__`` with
    ``argv[1:]`` as its arguments."""
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        raise SystemExit(USAGE)
    install_alias()
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return
    script = argv[0]
    if not os.path.isfile(script):
        raise SystemExit(f"pretrained.compat: no such script: {script!r}\n{USAGE}")
    sys.argv = list(argv)
    # As `python script.py` does: the script's folder comes first, so its sibling modules import.
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
